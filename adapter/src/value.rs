//! Decoding captured bytes into typed values, and showing them.
//!
//! [`decode`] rebuilds each value's in-memory image from the pieces its
//! [`ValueSlot`] names, then walks the DWARF type over it, following the
//! captures that pointers inside the value were resolved to. [`Value`] is the
//! language-neutral tree; [`Value::go`] shows it in Go notation as Delve does
//! (`"quoted"`, `(*main.T)(0xc000012345)`, `main.Celsius(21.5)`), and
//! [`Value::c`] as gdb does.

use std::collections::HashMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::image::{TypeId, TypeKind, TypeTable};
use crate::plan::{Buffer, ValueSlot};

/// A decoded value.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Value {
    Bool {
        value: bool,
    },
    Int {
        value: i64,
    },
    Uint {
        value: u64,
    },
    Float {
        value: f64,
        bits: u8,
    },
    Complex {
        re: f64,
        im: f64,
        bits: u8,
    },
    /// A string; `more` counts the bytes not captured (over the limit).
    String {
        value: String,
        more: u64,
    },
    Pointer {
        r#type: String,
        address: u64,
    },
    Struct {
        r#type: String,
        fields: Vec<(String, Value)>,
    },
    /// A value of a named non-struct type (`main.Celsius(21.5)`).
    Named {
        r#type: String,
        value: Box<Value>,
    },
    /// A nil interface.
    Nil {
        r#type: String,
    },
    /// A kind the decoder does not show yet.
    Opaque {
        r#type: String,
    },
    Unreadable {
        reason: String,
    },
}

/// The bytes one hit captured, in recipe order.
pub type Captures = [Option<Vec<u8>>];

/// Decodes one value of a hit.
pub fn decode(types: &TypeTable, slot: &ValueSlot, captures: &Captures) -> Value {
    if let Some(reason) = &slot.unavailable {
        return Value::Unreadable {
            reason: reason.clone(),
        };
    }
    let Some(ty) = slot.ty else {
        return Value::Unreadable {
            reason: String::from("type unknown"),
        };
    };
    let mut image = vec![0u8; slot.size as usize];
    for p in &slot.pieces {
        let Some(bytes) = captures.get(p.capture as usize).and_then(|c| c.as_deref()) else {
            return Value::Unreadable {
                reason: String::from("memory not readable"),
            };
        };
        let n = (p.len as usize).min(bytes.len());
        if let Some(dst) = image.get_mut(p.at as usize..p.at as usize + n) {
            dst.copy_from_slice(&bytes[..n]);
        }
    }
    let derefs: HashMap<(Buffer, u32), u16> = slot
        .derefs
        .iter()
        .map(|d| ((d.from, d.at), d.capture))
        .collect();
    let d = Decoder {
        types,
        captures,
        derefs,
    };
    d.value(ty, &image, Buffer::Image, 0, 0)
}

struct Decoder<'a> {
    types: &'a TypeTable,
    captures: &'a Captures,
    derefs: HashMap<(Buffer, u32), u16>,
}

const MAX_DEPTH: u32 = 16;

fn le(bytes: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = bytes.len().min(8);
    b[..n].copy_from_slice(&bytes[..n]);
    u64::from_le_bytes(b)
}

fn sign_extend(v: u64, size: u64) -> i64 {
    if size == 0 || size >= 8 {
        return v as i64;
    }
    let shift = 64 - size * 8;
    ((v << shift) as i64) >> shift
}

impl Decoder<'_> {
    fn value(&self, ty: TypeId, buf: &[u8], from: Buffer, at: u32, depth: u32) -> Value {
        let t = self.types.get(ty);
        let size = t.size as usize;
        let Some(bytes) = buf.get(at as usize..at as usize + size) else {
            return Value::Unreadable {
                reason: String::from("value not captured"),
            };
        };
        if depth > MAX_DEPTH {
            return Value::Opaque {
                r#type: t.name.clone(),
            };
        }
        match &t.kind {
            TypeKind::Bool => Value::Bool {
                value: bytes.first().copied().unwrap_or(0) != 0,
            },
            TypeKind::Int => Value::Int {
                value: sign_extend(le(bytes), t.size),
            },
            TypeKind::Uint => Value::Uint { value: le(bytes) },
            TypeKind::Float if size == 4 => Value::Float {
                value: f32::from_bits(le(bytes) as u32) as f64,
                bits: 32,
            },
            TypeKind::Float => Value::Float {
                value: f64::from_bits(le(bytes)),
                bits: 64,
            },
            TypeKind::Complex if size == 8 => Value::Complex {
                re: f32::from_bits(le(&bytes[..4]) as u32) as f64,
                im: f32::from_bits(le(&bytes[4..]) as u32) as f64,
                bits: 64,
            },
            TypeKind::Complex => Value::Complex {
                re: f64::from_bits(le(&bytes[..8])),
                im: f64::from_bits(le(&bytes[8..])),
                bits: 128,
            },
            TypeKind::String => {
                let ptr = le(&bytes[..8]);
                let len = le(&bytes[8..16]);
                if len == 0 {
                    return Value::String {
                        value: String::new(),
                        more: 0,
                    };
                }
                match self
                    .derefs
                    .get(&(from, at))
                    .and_then(|&c| self.captures.get(c as usize))
                {
                    Some(Some(data)) => Value::String {
                        value: String::from_utf8_lossy(data).into_owned(),
                        more: len.saturating_sub(data.len() as u64),
                    },
                    _ => Value::Unreadable {
                        reason: format!("string at {ptr:#x} not readable"),
                    },
                }
            }
            TypeKind::Pointer { .. }
            | TypeKind::UnsafePointer
            | TypeKind::Map
            | TypeKind::Chan
            | TypeKind::Func => Value::Pointer {
                r#type: t.name.clone(),
                address: le(bytes),
            },
            TypeKind::Struct { fields } => Value::Struct {
                r#type: t.name.clone(),
                fields: fields
                    .iter()
                    .map(|f| {
                        (
                            f.name.clone(),
                            self.value(f.ty, buf, from, at + f.offset as u32, depth + 1),
                        )
                    })
                    .collect(),
            },
            TypeKind::Named { underlying }
                if matches!(self.types.underlying(*underlying).kind, TypeKind::Interface) =>
            {
                // `error` is a typedef of an interface typedef: one name is enough.
                match self.value(*underlying, buf, from, at, depth + 1) {
                    Value::Nil { .. } => Value::Nil {
                        r#type: t.name.clone(),
                    },
                    other => other,
                }
            }
            TypeKind::Named { underlying } => {
                let inner = self.value(*underlying, buf, from, at, depth + 1);
                match inner {
                    Value::Struct { fields, .. } => Value::Struct {
                        r#type: t.name.clone(),
                        fields,
                    },
                    other => Value::Named {
                        r#type: t.name.clone(),
                        value: Box::new(other),
                    },
                }
            }
            TypeKind::Interface if le(&bytes[..8]) == 0 => Value::Nil {
                r#type: t.name.clone(),
            },
            _ => Value::Opaque {
                r#type: t.name.clone(),
            },
        }
    }
}

/// Go's `strconv.FormatFloat(f, 'f', -1, bits)`, which Delve uses.
fn go_float(v: f64, bits: u8) -> String {
    if v.is_nan() {
        return String::from("NaN");
    }
    if v.is_infinite() {
        return String::from(if v > 0.0 { "+Inf" } else { "-Inf" });
    }
    if bits == 32 {
        format!("{}", v as f32)
    } else {
        format!("{v}")
    }
}

/// Go's `strconv.Quote`: printable runes kept, the rest escaped.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            '\u{fffd}' => out.push_str("\\ufffd"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl Value {
    /// Go notation, as Delve prints values in trace output.
    pub fn go(&self) -> String {
        let mut s = String::new();
        self.write_go(&mut s, true);
        s
    }

    fn write_go(&self, out: &mut String, top: bool) {
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
            Value::Float { value, bits } => out.push_str(&go_float(*value, *bits)),
            Value::Complex { re, im, bits } => {
                let half = bits / 2;
                let sign = if *im >= 0.0 || im.is_nan() { "+" } else { "" };
                let _ = write!(
                    out,
                    "({}{sign}{}i)",
                    go_float(*re, half),
                    go_float(*im, half)
                );
            }
            Value::String { value, more } => {
                out.push_str(&go_quote(value));
                if *more > 0 {
                    let _ = write!(out, "...+{more} more");
                }
            }
            Value::Pointer { r#type, address } => {
                if *address == 0 {
                    out.push_str("nil");
                } else if r#type.starts_with('*') {
                    let _ = write!(out, "({type})({address:#x})");
                } else {
                    let _ = write!(out, "{type}({address:#x})");
                }
            }
            Value::Struct { r#type, fields } => {
                if top {
                    let _ = write!(out, "{type} ");
                }
                out.push('{');
                for (i, (name, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    let _ = write!(out, "{name}: ");
                    v.write_go(out, false);
                }
                out.push('}');
            }
            Value::Named { r#type, value } => {
                let _ = write!(out, "{type}(");
                value.write_go(out, false);
                out.push(')');
            }
            Value::Nil { r#type } => {
                if top {
                    let _ = write!(out, "{type} ");
                }
                out.push_str("nil");
            }
            Value::Opaque { r#type } => {
                let _ = write!(out, "{type}(…)");
            }
            Value::Unreadable { reason } => {
                let _ = write!(out, "(unreadable {reason})");
            }
        }
    }

    /// C notation, as gdb prints values.
    pub fn c(&self) -> String {
        match self {
            Value::Pointer { r#type, address } => {
                if r#type.is_empty() {
                    format!("{address:#x}")
                } else {
                    format!("({type}) {address:#x}")
                }
            }
            Value::Float { value, .. } => format!("{value}"),
            Value::Bool { value } => format!("{value}"),
            Value::Named { value, .. } => value.c(),
            Value::Struct { fields, .. } => {
                let inner: Vec<String> = fields
                    .iter()
                    .map(|(n, v)| format!("{n} = {}", v.c()))
                    .collect();
                format!("{{{}}}", inner.join(", "))
            }
            other => other.go(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_like_go_f_minus_one() {
        assert_eq!(go_float(1.5, 64), "1.5");
        assert_eq!(go_float(100.0, 64), "100");
        assert_eq!(go_float(1e21, 64), "1000000000000000000000");
        assert_eq!(go_float(0.1f32 as f64, 32), "0.1");
        assert_eq!(go_float(f64::INFINITY, 64), "+Inf");
    }

    #[test]
    fn strings_are_quoted_like_strconv_quote() {
        assert_eq!(go_quote("a\"b\\\n\u{1}é"), "\"a\\\"b\\\\\\n\\x01é\"");
    }

    #[test]
    fn pointers_and_truncated_strings() {
        let p = Value::Pointer {
            r#type: "*main.T".into(),
            address: 0xc000012345,
        };
        assert_eq!(p.go(), "(*main.T)(0xc000012345)");
        let s = Value::String {
            value: "abc".into(),
            more: 5,
        };
        assert_eq!(s.go(), "\"abc\"...+5 more");
    }
}
