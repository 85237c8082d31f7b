//! C and C++ notation, as gdb prints arguments (`info args`, a frame
//! line): `{x = 1, y = 2}`, `{7, 8, 9}`, `65 'A'`, `GREEN`,
//! `(P_READ | P_EXEC)`, `0x4005d4 "hello"`, `0x401136 <double_it>`,
//! floats as `%g` with 9 (`float`) or 17 (`double`) significant digits,
//! `<optimized out>`, repeats of more than ten equal elements as
//! `0 <repeats 16 times>`. A C++ reference is `@0x7ffd…: value`, as gdb
//! shows one.
//!
//! Where gdb shows a pointer by its address only, logprobe follows it
//! (up to `--max-depth`, as for Go) and writes what it points to after an
//! arrow: `0x7ffd5a40 -> {x = 1, y = 2}`; one not followed (the depth
//! limit, a cycle, `void *`) is its address, as in gdb.

use std::fmt::Write as _;

use crate::image::OPTIMIZED_OUT;
use crate::value::Value;

/// Runs of equal elements longer than this are written `x <repeats N
/// times>` (gdb's `repeat_count_threshold`).
const REPEATS: usize = 10;

impl Value {
    /// C notation, as gdb prints values.
    pub fn c(&self) -> String {
        let mut s = String::new();
        self.write_c(&mut s);
        s
    }

    fn write_c(&self, out: &mut String) {
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
            Value::Float { value, bits } => out.push_str(&c_float(*value, *bits)),
            Value::Complex { re, im, bits } => {
                let half = bits / 2;
                let _ = write!(out, "{} + {}i", c_float(*re, half), c_float(*im, half));
            }
            Value::Char { value, .. } => {
                let _ = write!(out, "{value} {}", char_literal(*value));
            }
            Value::Enum { value, name, .. } => match name {
                Some(n) => out.push_str(n),
                None => {
                    let _ = write!(out, "{value}");
                }
            },
            Value::String { value, more, raw } => {
                out.push_str(&c_quote(raw.as_deref().unwrap_or(value.as_bytes())));
                if *more > 0 {
                    out.push_str("...");
                }
            }
            Value::Pointer { address, .. } => {
                let _ = write!(out, "{address:#x}");
            }
            Value::Nil { .. } => out.push_str("0x0"),
            Value::Ref {
                r#type,
                address,
                target,
            } => {
                if r#type.ends_with('&') {
                    let _ = write!(out, "@{address:#x}: ");
                    target.write_c(out);
                } else if matches!(**target, Value::String { .. }) {
                    let _ = write!(out, "{address:#x} ");
                    target.write_c(out);
                } else if let Value::Unreadable { reason } = &**target {
                    let _ = write!(out, "{address:#x} <error: {reason}>");
                } else {
                    let _ = write!(out, "{address:#x} -> ");
                    target.write_c(out);
                }
            }
            Value::Struct { fields, .. } => {
                out.push('{');
                for (i, f) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    let _ = write!(out, "{} = ", f.name);
                    f.value.write_c(out);
                }
                out.push('}');
            }
            Value::Array { items, more, .. } => write_items(out, items, *more),
            Value::Slice { items, more, .. } => match items {
                Some(items) => write_items(out, items, *more),
                None => out.push_str("{...}"),
            },
            Value::Func { name, address } => match (name, address) {
                (_, 0) => out.push_str("0x0"),
                (Some(n), a) => {
                    let _ = write!(out, "{a:#x} <{n}>");
                }
                (None, a) => {
                    let _ = write!(out, "{a:#x}");
                }
            },
            Value::Named { value, .. } => value.write_c(out),
            Value::Elided { .. } => out.push_str("..."),
            Value::Opaque { r#type } => {
                let _ = write!(out, "<{type}>");
            }
            Value::Unreadable { reason } if reason == OPTIMIZED_OUT => {
                out.push_str("<optimized out>");
            }
            Value::Unreadable { reason } => {
                let _ = write!(out, "<error: {reason}>");
            }
            // Go's kinds, which C code does not have.
            other => out.push_str(&other.go()),
        }
    }
}

/// `{a, b, c}`, a character array as a string, runs of equal elements
/// as gdb's `<repeats N times>`, and `...` after the last element shown
/// when there are more.
fn write_items(out: &mut String, items: &[Value], more: u64) {
    if !items.is_empty() && items.iter().all(|v| matches!(v, Value::Char { .. })) {
        write_chars(out, items, more);
        return;
    }
    out.push('{');
    let mut i = 0;
    let mut first = true;
    while i < items.len() {
        let run = items[i..].iter().take_while(|v| **v == items[i]).count();
        if !first {
            out.push_str(", ");
        }
        first = false;
        items[i].write_c(out);
        if run > REPEATS {
            let _ = write!(out, " <repeats {run} times>");
            i += run;
        } else {
            i += 1;
        }
    }
    if more > 0 {
        out.push_str("...");
    }
    out.push('}');
}

/// A `char` array as gdb prints one: a string (its last NUL, the
/// terminator, left out), long runs of one character as
/// `'\000' <repeats 15 times>`.
fn write_chars(out: &mut String, items: &[Value], more: u64) {
    let mut bytes: Vec<u8> = items
        .iter()
        .map(|v| match v {
            Value::Char { value, .. } => *value as u8,
            _ => 0,
        })
        .collect();
    if more == 0 && bytes.last() == Some(&0) {
        bytes.pop();
    }
    if bytes.is_empty() {
        out.push_str("\"\"");
        return;
    }
    let mut parts: Vec<String> = Vec::new();
    let mut text: Vec<u8> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let run = bytes[i..].iter().take_while(|&&b| b == bytes[i]).count();
        if run > REPEATS {
            if !text.is_empty() {
                parts.push(c_quote(&std::mem::take(&mut text)));
            }
            parts.push(format!(
                "{} <repeats {run} times>",
                char_literal(bytes[i] as i8 as i64)
            ));
            i += run;
        } else {
            text.push(bytes[i]);
            i += 1;
        }
    }
    if !text.is_empty() {
        parts.push(c_quote(&text));
    }
    out.push_str(&parts.join(", "));
    if more > 0 {
        out.push_str("...");
    }
}

/// A C character literal for code `value`: `'A'`, `'\n'`, `'\310'`.
fn char_literal(value: i64) -> String {
    let c = match u32::try_from(value).ok().and_then(char::from_u32) {
        Some(c) => c,
        None => return format!("'\\{:03o}'", value as u8),
    };
    match c {
        '\'' => String::from("'\\''"),
        '\\' => String::from("'\\\\'"),
        c if c.is_ascii() => format!("'{}'", escape_ascii(c as u8)),
        _ if (value as u32) < 0x100 => format!("'\\{:03o}'", value as u8),
        c => format!("'{c}'"),
    }
}

/// An ASCII byte as it appears between quotes in C.
fn escape_ascii(b: u8) -> String {
    match b {
        b'\n' => String::from("\\n"),
        b'\t' => String::from("\\t"),
        b'\r' => String::from("\\r"),
        0x07 => String::from("\\a"),
        0x08 => String::from("\\b"),
        0x0c => String::from("\\f"),
        0x0b => String::from("\\v"),
        0x1b => String::from("\\033"),
        b if b < 0x20 || b == 0x7f => format!("\\{b:03o}"),
        b => (b as char).to_string(),
    }
}

/// A C string literal of `bytes`: UTF-8 text as it is, other bytes and
/// control characters as octal escapes, as gdb prints them.
pub fn c_quote(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                c if c.is_ascii() => out.push_str(&escape_ascii(c as u8)),
                c if c.is_control() => {
                    for b in c.to_string().bytes() {
                        let _ = write!(out, "\\{b:03o}");
                    }
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\{b:03o}");
        }
    }
    out.push('"');
    out
}

/// A float as C's `%g` with gdb's precision: 9 significant digits for a
/// `float`, 17 for a `double`.
pub fn c_float(v: f64, bits: u8) -> String {
    if v.is_nan() {
        return String::from(if v.is_sign_negative() {
            "-nan(0x8000000000000)"
        } else {
            "nan(0x8000000000000)"
        });
    }
    if v.is_infinite() {
        return String::from(if v > 0.0 { "inf" } else { "-inf" });
    }
    let precision: usize = if bits == 32 { 9 } else { 17 };
    if v == 0.0 {
        return String::from(if v.is_sign_negative() { "-0" } else { "0" });
    }
    // The exponent %e would print, then %f or %e by C's rule.
    let e = format!("{:.*e}", precision - 1, v);
    let (mantissa, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if exp < -4 || exp >= precision as i32 {
        let m = trim_fraction(mantissa);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{m}e{sign}{:02}", exp.abs())
    } else {
        let decimals = (precision as i32 - 1 - exp).max(0) as usize;
        trim_fraction(&format!("{:.*}", decimals, v)).to_string()
    }
}

/// `1.2500` → `1.25`, `2.000` → `2`.
fn trim_fraction(s: &str) -> &str {
    match s.contains('.') {
        true => s.trim_end_matches('0').trim_end_matches('.'),
        false => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::FieldValue;

    #[test]
    fn floats_print_as_gdb_prints_them() {
        assert_eq!(c_float(1.5, 32), "1.5");
        assert_eq!(c_float(0.1f32 as f64, 32), "0.100000001");
        assert_eq!(c_float(-2.25, 64), "-2.25");
        assert_eq!(c_float(1e21, 64), "1e+21");
        assert_eq!(c_float(0.1, 64), "0.10000000000000001");
        assert_eq!(c_float(3.0, 64), "3");
        assert_eq!(c_float(0.0001, 64), "0.0001");
        assert_eq!(c_float(0.00001, 64), "1.0000000000000001e-05");
    }

    #[test]
    fn characters_strings_and_arrays() {
        let ch = |v| Value::Char {
            r#type: "char".into(),
            value: v,
        };
        assert_eq!(ch(65).c(), "65 'A'");
        assert_eq!(ch(-56).c(), "-56 '\\310'");
        assert_eq!(ch(0).c(), "0 '\\000'");
        assert_eq!(ch(39).c(), "39 '\\''");
        let name = Value::Array {
            r#type: "char [8]".into(),
            items: [97, 98, 99, 0, 0, 0, 0, 0].map(ch).to_vec(),
            more: 0,
        };
        assert_eq!(name.c(), "\"abc\\000\\000\\000\\000\"");
        let zeros = Value::Array {
            r#type: "int [16]".into(),
            items: vec![Value::Int { value: 0 }; 16],
            more: 0,
        };
        assert_eq!(zeros.c(), "{0 <repeats 16 times>}");
        let s = Value::Ref {
            r#type: "const char *".into(),
            address: 0x4005d4,
            target: Box::new(Value::String {
                value: "0123".into(),
                more: 1,
                raw: None,
            }),
        };
        assert_eq!(s.c(), "0x4005d4 \"0123\"...");
        let p = Value::Ref {
            r#type: "struct point *".into(),
            address: 0x7ffd,
            target: Box::new(Value::Struct {
                r#type: "struct point".into(),
                fields: vec![
                    FieldValue {
                        name: "x".into(),
                        value: Value::Int { value: 1 },
                    },
                    FieldValue {
                        name: "y".into(),
                        value: Value::Unreadable {
                            reason: OPTIMIZED_OUT.into(),
                        },
                    },
                ],
            }),
        };
        assert_eq!(p.c(), "0x7ffd -> {x = 1, y = <optimized out>}");
        let f = Value::Func {
            name: Some("double_it".into()),
            address: 0x401136,
        };
        assert_eq!(f.c(), "0x401136 <double_it>");
    }
}
