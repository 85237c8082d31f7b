//! C notation, as gdb prints values (`{x = 1, y = 2}`, `(point *)
//! 0x7ffd...`); what C has no notation of its own for is shown as in Go.

use crate::value::Value;

impl Value {
    /// C notation, as gdb prints values.
    pub fn c(&self) -> String {
        match self {
            Value::Pointer { r#type, address }
            | Value::Ref {
                r#type, address, ..
            } => {
                if r#type.is_empty() {
                    format!("{address:#x}")
                } else {
                    format!("({type}) {address:#x}")
                }
            }
            Value::Nil { r#type } => format!("({type}) 0x0"),
            Value::Float { value, .. } => format!("{value}"),
            Value::Bool { value } => format!("{value}"),
            Value::Named { value, .. } => value.c(),
            Value::Struct { fields, .. } => {
                let inner: Vec<String> = fields
                    .iter()
                    .map(|f| format!("{} = {}", f.name, f.value.c()))
                    .collect();
                format!("{{{}}}", inner.join(", "))
            }
            Value::Array { items, .. } => {
                let inner: Vec<String> = items.iter().map(Value::c).collect();
                format!("{{{}}}", inner.join(", "))
            }
            other => other.go(),
        }
    }
}
