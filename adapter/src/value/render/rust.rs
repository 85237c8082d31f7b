//! Rust notation, as `{:?}` (`#[derive(Debug)]` and the standard
//! library's `Debug` impls) prints values: `"hello"`, `'é'`, `[1, 2, 3]`,
//! `Some(7)`, `Err("bad")`, `Rect { w: 3, h: 4 }`, `Point { x: 1, y: 2 }`,
//! `(7, true)`, floats as Rust prints them (`5.0`, `1e21`). A reference,
//! a `Box`, an `Rc` or an `Arc` shows what it points to, as `Debug` does.
//!
//! What `{:?}` has no notation for: a value cut at a limit ends in
//! `...+N more` (as in Go notation), contents not captured are `..`, a
//! pointer not followed is its address, a value the compiler did not keep
//! is `<optimized out>`, and one that cannot be read `<unreadable: why>`.

use std::fmt::Write as _;

use crate::image::OPTIMIZED_OUT;
use crate::value::{FieldValue, Value};

impl Value {
    /// Rust notation, as `{:?}` prints values.
    pub fn rust(&self) -> String {
        let mut s = String::new();
        self.write_rust(&mut s);
        s
    }

    fn write_rust(&self, out: &mut String) {
        match self {
            Value::Bool { value } => {
                let _ = write!(out, "{value}");
            }
            Value::Int { value } => {
                let _ = write!(out, "{value}");
            }
            Value::Uint { value } => {
                let _ = write!(out, "{value}");
            }
            Value::Float { value, bits: 32 } => {
                let _ = write!(out, "{:?}", *value as f32);
            }
            Value::Float { value, .. } => {
                let _ = write!(out, "{value:?}");
            }
            Value::Complex { re, im, .. } => {
                let _ = write!(out, "Complex {{ re: {re:?}, im: {im:?} }}");
            }
            Value::Char { value, .. } => {
                match u32::try_from(*value).ok().and_then(char::from_u32) {
                    Some(c) => {
                        let _ = write!(out, "{c:?}");
                    }
                    None => {
                        let _ = write!(out, "<invalid char {value:#x}>");
                    }
                }
            }
            Value::Enum { value, name, .. } => match name {
                Some(n) => out.push_str(short(n)),
                None => {
                    let _ = write!(out, "{value}");
                }
            },
            Value::String { value, more, .. } => {
                let _ = write!(out, "{value:?}");
                if *more > 0 {
                    let _ = write!(out, "...+{more} more");
                }
            }
            Value::Pointer { address, .. } => {
                let _ = write!(out, "{address:#x}");
            }
            Value::Nil { .. } => out.push_str("0x0"),
            Value::Ref { target, .. } => target.write_rust(out),
            Value::Array { items, more, .. } => write_items(out, Some(items), *more),
            Value::Slice { items, more, .. } => write_items(out, items.as_deref(), *more),
            Value::Struct { r#type, fields } => write_struct(out, r#type, fields),
            Value::Func { name, address } => match name {
                Some(n) => out.push_str(n),
                None => {
                    let _ = write!(out, "{address:#x}");
                }
            },
            Value::Named { value, .. } => value.write_rust(out),
            Value::Elided { .. } => out.push_str(".."),
            Value::Opaque { r#type } => out.push_str(r#type),
            Value::Unreadable { reason } if reason == OPTIMIZED_OUT => {
                out.push_str("<optimized out>");
            }
            Value::Unreadable { reason } => {
                let _ = write!(out, "<unreadable: {reason}>");
            }
            // Go's kinds, which Rust code does not have.
            other => out.push_str(&other.go()),
        }
    }
}

/// `[a, b, c]`, `[a, ...+N more]`, `[..]` when the elements were not captured.
fn write_items(out: &mut String, items: Option<&[Value]>, more: u64) {
    out.push('[');
    match items {
        None => out.push_str(".."),
        Some(items) => {
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                v.write_rust(out);
            }
            if more > 0 {
                if !items.is_empty() {
                    out.push_str(", ");
                }
                let _ = write!(out, "...+{more} more");
            }
        }
    }
    out.push(']');
}

/// A struct, tuple, tuple struct, enum variant, or a standard library
/// smart pointer (shown as what it points to).
fn write_struct(out: &mut String, ty: &str, fields: &[FieldValue]) {
    let bare = without_generics(ty);
    // Rc<T> and Arc<T> show their value: `ptr.pointer` leads to the
    // shared box, whose `value` (Rc) or `data` (Arc) it is.
    if matches!(bare.as_str(), "alloc::rc::Rc" | "alloc::sync::Arc") {
        if let Some(inner) = shared_value(fields) {
            inner.write_rust(out);
            return;
        }
    }
    if ty.starts_with('(') {
        out.push('(');
        for (i, f) in fields.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            f.value.write_rust(out);
        }
        if fields.len() == 1 {
            out.push(',');
        }
        out.push(')');
        return;
    }
    let name = bare.rsplit("::").next().unwrap_or(&bare);
    out.push_str(name);
    if fields.is_empty() {
        return;
    }
    let positional = fields
        .iter()
        .enumerate()
        .all(|(i, f)| f.name == format!("__{i}"));
    if positional {
        out.push('(');
        for (i, f) in fields.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            f.value.write_rust(out);
        }
        out.push(')');
    } else {
        out.push_str(" { ");
        for (i, f) in fields.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            let _ = write!(out, "{}: ", f.name);
            f.value.write_rust(out);
        }
        out.push_str(" }");
    }
}

/// The value inside an `Rc`'s or `Arc`'s shared box, if it was captured.
fn shared_value(fields: &[FieldValue]) -> Option<&Value> {
    // Down the single-field wrappers (`ptr: NonNull { pointer: … }`) to
    // the reference to the box.
    let mut v = &fields.iter().find(|f| f.name == "ptr")?.value;
    for _ in 0..8 {
        match v {
            Value::Struct { fields, .. } if fields.len() == 1 => v = &fields[0].value,
            Value::Ref { target, .. } => {
                let Value::Struct { fields, .. } = &**target else {
                    return None;
                };
                return fields
                    .iter()
                    .find(|f| f.name == "value" || f.name == "data")
                    .map(|f| &f.value);
            }
            _ => return None,
        }
    }
    None
}

/// `core::option::Option<u32>::Some` → `core::option::Option::Some`.
fn without_generics(ty: &str) -> String {
    let mut out = String::with_capacity(ty.len());
    let mut depth = 0usize;
    for c in ty.chars() {
        match c {
            '<' => depth += 1,
            '>' => depth = depth.saturating_sub(1),
            c if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// The last segment of a path: `main::Color::Green` → `Green`.
fn short(path: &str) -> &str {
    path.rsplit("::").next().unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(name: &str, value: Value) -> FieldValue {
        FieldValue {
            name: name.into(),
            value,
        }
    }

    #[test]
    fn values_look_as_debug_prints_them() {
        let int = |v| Value::Int { value: v };
        let point = Value::Struct {
            r#type: "main::Point".into(),
            fields: vec![field("x", int(1)), field("y", int(2))],
        };
        assert_eq!(point.rust(), "Point { x: 1, y: 2 }");
        let some = Value::Struct {
            r#type: "core::option::Option<u32>::Some".into(),
            fields: vec![field("__0", Value::Uint { value: 7 })],
        };
        assert_eq!(some.rust(), "Some(7)");
        let none = Value::Struct {
            r#type: "core::option::Option<u32>::None".into(),
            fields: vec![],
        };
        assert_eq!(none.rust(), "None");
        let tuple = Value::Struct {
            r#type: "(i32, bool)".into(),
            fields: vec![
                field("__0", int(7)),
                field("__1", Value::Bool { value: true }),
            ],
        };
        assert_eq!(tuple.rust(), "(7, true)");
        assert_eq!(
            Value::Float {
                value: 5.0,
                bits: 64
            }
            .rust(),
            "5.0"
        );
        assert_eq!(
            Value::Float {
                value: 1e21,
                bits: 64
            }
            .rust(),
            "1e21"
        );
        assert_eq!(Value::string("tab\t\"q\"").rust(), "\"tab\\t\\\"q\\\"\"");
        let e = Value::Char {
            r#type: "char".into(),
            value: 'é' as i64,
        };
        assert_eq!(e.rust(), "'é'");
        let v = Value::Slice {
            r#type: "alloc::vec::Vec<i32>".into(),
            address: 1,
            len: 3,
            cap: 3,
            items: Some(vec![int(1), int(2), int(3)]),
            more: 0,
        };
        assert_eq!(v.rust(), "[1, 2, 3]");
        let boxed = Value::Ref {
            r#type: "alloc::boxed::Box<main::Point>".into(),
            address: 0x10,
            target: Box::new(point.clone()),
        };
        assert_eq!(boxed.rust(), "Point { x: 1, y: 2 }");
        let rc = Value::Struct {
            r#type: "alloc::rc::Rc<main::Point, alloc::alloc::Global>".into(),
            fields: vec![field(
                "ptr",
                Value::Struct {
                    r#type: "core::ptr::non_null::NonNull<…>".into(),
                    fields: vec![field(
                        "pointer",
                        Value::Ref {
                            r#type: "*const alloc::rc::RcInner<main::Point>".into(),
                            address: 0x20,
                            target: Box::new(Value::Struct {
                                r#type: "alloc::rc::RcInner<main::Point>".into(),
                                fields: vec![
                                    field("strong", int(1)),
                                    field("weak", int(1)),
                                    field("value", point),
                                ],
                            }),
                        },
                    )],
                },
            )],
        };
        assert_eq!(rc.rust(), "Point { x: 1, y: 2 }");
    }
}
