//! Go notation, as Delve prints values (`"quoted"`, `*main.T {X: 1}`,
//! `[]int len: 3, cap: 4, [1,2,3]`, `error(*errors.errorString) *{s:
//! "boom"}`, `main.Celsius(21.5)`): floats as `strconv.FormatFloat(f, 'f',
//! -1, bits)`, strings as `strconv.Quote`, the type shown for a top-level
//! value and a struct field, not for elements.

use std::fmt::Write as _;

use crate::value::Value;

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
    go_quote_bytes(s.as_bytes())
}

/// `strconv.Quote` of bytes that need not be UTF-8: bytes that are not
/// part of a valid encoding are shown as `\xNN`, as Go does.
pub fn go_quote_bytes(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len() + 2);
    out.push('"');
    for chunk in b.utf8_chunks() {
        for c in chunk.valid().chars() {
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
                c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                    let _ = write!(out, "\\x{:02x}", c as u32);
                }
                c if c.is_control() => {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                }
                c => out.push(c),
            }
        }
        for byte in chunk.invalid() {
            let _ = write!(out, "\\x{byte:02x}");
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

    /// Writes the value; `typed` says whether its type is shown too, as
    /// Delve does for a top-level value and for struct fields (not for
    /// elements of slices, arrays and maps).
    fn write_go(&self, out: &mut String, typed: bool) {
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
                let _ = write!(out, "({} + {}i)", go_float(*re, half), go_float(*im, half));
            }
            Value::String { value, more, raw } => {
                out.push_str(&go_quote_bytes(raw.as_deref().unwrap_or(value.as_bytes())));
                if *more > 0 {
                    let _ = write!(out, "...+{more} more");
                }
            }
            Value::Pointer { r#type, address } => {
                if r#type == "unsafe.Pointer" {
                    let _ = write!(out, "{type}({address:#x})");
                } else {
                    let _ = write!(out, "({type})({address:#x})");
                }
            }
            Value::Ref { target, .. } => {
                out.push('*');
                target.write_go(out, typed);
            }
            Value::Nil { r#type } => {
                if typed {
                    let _ = write!(out, "{type} ");
                }
                out.push_str("nil");
            }
            Value::Slice {
                r#type,
                address,
                len,
                cap,
                items,
                more,
            } => {
                if typed {
                    let _ = write!(out, "{type} len: {len}, cap: {cap}, ");
                }
                if *address == 0 {
                    out.push_str("nil");
                } else {
                    write_items(out, items.as_deref(), *more);
                }
            }
            Value::Array {
                r#type,
                items,
                more,
            } => {
                if typed {
                    let _ = write!(out, "{type} ");
                }
                write_items(out, Some(items), *more);
            }
            Value::Struct { r#type, fields } => {
                if typed {
                    let _ = write!(out, "{type} ");
                }
                out.push('{');
                for (i, f) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    let _ = write!(out, "{}: ", f.name);
                    f.value.write_go(out, true);
                }
                out.push('}');
            }
            Value::Interface {
                r#type,
                dynamic,
                value,
            } => {
                if typed {
                    let _ = write!(out, "{type}({dynamic}) ");
                }
                value.write_go(out, !typed);
            }
            Value::Map {
                r#type,
                entries,
                more,
            } => {
                if typed {
                    let _ = write!(out, "{type} ");
                }
                out.push('[');
                match entries {
                    None => out.push_str("..."),
                    Some(entries) => {
                        for (i, e) in entries.iter().enumerate() {
                            if i > 0 {
                                out.push_str(", ");
                            }
                            e.key.write_go(out, false);
                            out.push_str(": ");
                            e.value.write_go(out, false);
                        }
                        if *more > 0 {
                            if !entries.is_empty() {
                                out.push_str(", ");
                            }
                            let _ = write!(out, "...+{more} more");
                        }
                    }
                }
                out.push(']');
            }
            Value::Chan { r#type, len, cap } => {
                if typed {
                    let _ = write!(out, "{type} ");
                }
                let _ = write!(out, "{len}/{cap}");
            }
            Value::Func { name, address } => match name {
                Some(n) => out.push_str(n),
                None if *address == 0 => out.push_str("nil"),
                None => {
                    let _ = write!(out, "func({address:#x})");
                }
            },
            Value::Named { r#type, value } => {
                if typed {
                    let _ = write!(out, "{type}(");
                    value.write_go(out, false);
                    out.push(')');
                } else {
                    value.write_go(out, false);
                }
            }
            Value::Elided { .. } => out.push_str("..."),
            Value::Opaque { r#type } => {
                let _ = write!(out, "{type}(…)");
            }
            Value::Unreadable { reason } => {
                let _ = write!(out, "(unreadable {reason})");
            }
        }
    }
}

/// `[a,b,c]`, `[a,...+N more]`, or `[...]` when the elements were not captured.
fn write_items(out: &mut String, items: Option<&[Value]>, more: u64) {
    out.push('[');
    match items {
        None => out.push_str("..."),
        Some(items) => {
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                v.write_go(out, false);
            }
            if more > 0 {
                if !items.is_empty() {
                    out.push(',');
                }
                let _ = write!(out, "...+{more} more");
            }
        }
    }
    out.push(']');
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
        // A string cut inside a rune, and a real U+FFFD.
        assert_eq!(go_quote_bytes(b"ab\xc3"), "\"ab\\xc3\"");
        assert_eq!(go_quote("\u{fffd}"), "\"\u{fffd}\"");
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
            raw: None,
        };
        assert_eq!(s.go(), "\"abc\"...+5 more");
    }
}
