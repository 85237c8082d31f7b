//! Decoding the kinds C, C++ and Rust values have and Go's do not:
//! characters, enums (a C flag enum named bit by bit, as gdb does),
//! bitfields, the NUL-terminated string behind a `char *`, function
//! pointers, spans (a pointer and a count: Rust's `&str`, slices,
//! `String`, `Vec`; C++'s `std::string`), Rust trait objects (the value
//! of the type their vtable is for) and Rust enums with data (the variant
//! the discriminant selects, niche-encoded ones included).

use super::{le, sign_extend, unreadable, Decoder};
use crate::image::{Type, TypeId, TypeKind};
use crate::plan::Buffer;
use crate::value::Value;

impl Decoder<'_> {
    /// The value of a C, C++ or Rust kind at byte `at` of `from`
    /// (`bytes` are its own); `None` for the kinds `value` decodes.
    pub(super) fn native(
        &mut self,
        t: &Type,
        from: Buffer,
        at: u32,
        bytes: &[u8],
        depth: u32,
    ) -> Option<Value> {
        let word = |i: u32| le(bytes.get(i as usize..i as usize + 8).unwrap_or(&[]));
        Some(match &t.kind {
            TypeKind::Char { signed } => Value::Char {
                r#type: t.name.clone(),
                value: integer(le(bytes), t.size, *signed),
            },
            TypeKind::Enum {
                signed,
                enumerators,
            } => {
                let value = integer(le(bytes), t.size, *signed);
                Value::Enum {
                    r#type: t.name.clone(),
                    value,
                    name: enumerator(enumerators, value),
                }
            }
            TypeKind::Bits { base, shift, bits } => {
                let raw = le(bytes) >> shift;
                let mask = match *bits {
                    64.. => u64::MAX,
                    n => (1u64 << n) - 1,
                };
                self.bits(*base, raw & mask, *bits)
            }
            TypeKind::CString { .. } => self.c_string(t, from, at, word(0)),
            TypeKind::FnPtr => {
                let address = word(0);
                Value::Func {
                    name: match address {
                        0 => None,
                        a => self.resolve.function_name(a),
                    },
                    address,
                }
            }
            TypeKind::Span {
                elem,
                ptr,
                len,
                cap,
                text,
            } => {
                let (address, count) = (word(*ptr), word(*len));
                let cap = cap.map_or(count, word);
                match text {
                    true => self.string(from, at + ptr, address, count),
                    false => self.elements(t, from, at + ptr, *elem, (address, count, cap), depth),
                }
            }
            TypeKind::Dyn { data, vtable } => {
                let (address, table) = (word(*data), word(*vtable));
                let concrete = self.resolve.vtable_type(self.types, table);
                match (concrete, self.target(from, at + data)) {
                    (Some(c), Some(capture)) if address != 0 => Value::Ref {
                        r#type: t.name.clone(),
                        address,
                        target: Box::new(self.value(c, Buffer::Capture(capture), 0, depth + 1)),
                    },
                    _ => Value::Pointer {
                        r#type: t.name.clone(),
                        address,
                    },
                }
            }
            TypeKind::Variants { discr, variants } => {
                let selected = match discr {
                    None => variants.first(),
                    Some(d) => {
                        let size = self.types.get(d.ty).size.min(8);
                        let end = d.offset as usize + size as usize;
                        let Some(raw) = bytes.get(d.offset as usize..end) else {
                            return Some(Value::Elided {
                                r#type: t.name.clone(),
                            });
                        };
                        let value = le(raw);
                        let mask = match size {
                            8 => u64::MAX,
                            n => (1u64 << (n * 8)) - 1,
                        };
                        variants
                            .iter()
                            .find(|v| v.value.is_some_and(|x| x & mask == value))
                            .or_else(|| variants.iter().find(|v| v.value.is_none()))
                    }
                };
                match selected {
                    Some(v) => self.value(v.ty, from, at, depth + 1),
                    None => unreadable(format!("{}: no variant has this discriminant", t.name)),
                }
            }
            _ => return None,
        })
    }

    /// The value `raw` of a bitfield of `bits` bits read as `base`.
    fn bits(&mut self, base: TypeId, raw: u64, bits: u32) -> Value {
        let t = self.types.underlying(base).clone();
        let signed = matches!(
            t.kind,
            TypeKind::Int | TypeKind::Char { signed: true } | TypeKind::Enum { signed: true, .. }
        );
        let value = match signed && bits < 64 && raw >> (bits - 1).min(63) & 1 == 1 {
            true => (raw | !((1u64 << bits) - 1)) as i64,
            false => raw as i64,
        };
        match &t.kind {
            TypeKind::Bool => Value::Bool { value: raw != 0 },
            TypeKind::Int => Value::Int { value },
            TypeKind::Char { .. } => Value::Char {
                r#type: t.name.clone(),
                value,
            },
            TypeKind::Enum { enumerators, .. } => Value::Enum {
                r#type: t.name.clone(),
                value,
                name: enumerator(enumerators, value),
            },
            _ => Value::Uint { value: raw },
        }
    }

    /// The string a `char *` at `(from, at)` points to, read up to its NUL
    /// (the plan reads one byte past the limit, to tell a string of
    /// exactly that length from a longer one).
    fn c_string(&self, t: &Type, from: Buffer, at: u32, address: u64) -> Value {
        if address == 0 {
            return Value::Nil {
                r#type: t.name.clone(),
            };
        }
        let pointer = || Value::Pointer {
            r#type: t.name.clone(),
            address,
        };
        if !self.derefs.contains_key(&(from, at)) {
            return pointer();
        }
        let target = match self
            .target(from, at)
            .and_then(|c| self.bytes(Buffer::Capture(c)))
        {
            None => unreadable(format!("cannot access memory at address {address:#x}")),
            Some(data) => {
                let max = self.limits.max_string_len as usize;
                match data.iter().position(|&b| b == 0) {
                    Some(n) if n <= max => string(&data[..n], 0),
                    // No NUL within the limit: cut, with more to come.
                    _ if data.len() > max => string(&data[..max], 1),
                    // The memory ended before a NUL.
                    _ => unreadable(format!(
                        "string at {address:#x} runs into unreadable memory after {} bytes",
                        data.len()
                    )),
                }
            }
        };
        Value::Ref {
            r#type: t.name.clone(),
            address,
            target: Box::new(target),
        }
    }

    /// The elements of a slice or span whose pointer is at `(from, at)`,
    /// as a slice value.
    pub(super) fn elements(
        &mut self,
        t: &Type,
        from: Buffer,
        at: u32,
        elem: Option<TypeId>,
        (address, len, cap): (u64, u64, u64),
        depth: u32,
    ) -> Value {
        let items = match (elem, self.target(from, at)) {
            _ if address == 0 || len == 0 => Some(Vec::new()),
            (Some(e), Some(c)) => {
                let esize = self.types.get(e).size;
                let got = self.bytes(Buffer::Capture(c)).map_or(0, |b| b.len() as u64);
                let n = match esize {
                    // Zero-sized elements: all of them, none read.
                    0 => len,
                    s => got / s,
                }
                .min(len)
                .min(self.limits.max_array_values as u64);
                Some(
                    (0..n)
                        .map(|i| self.value(e, Buffer::Capture(c), (i * esize) as u32, depth + 1))
                        .collect(),
                )
            }
            _ => None,
        };
        let more = items
            .as_ref()
            .map_or(0, |i| len.saturating_sub(i.len() as u64));
        Value::Slice {
            r#type: t.name.clone(),
            address,
            len,
            cap,
            items,
            more,
        }
    }
}

/// A string value of `bytes`, with `more` bytes not captured.
fn string(bytes: &[u8], more: u64) -> Value {
    Value::String {
        value: String::from_utf8_lossy(bytes).into_owned(),
        more,
        raw: std::str::from_utf8(bytes).is_err().then(|| bytes.to_vec()),
    }
}

/// A little-endian integer of `size` bytes, sign-extended when `signed`.
fn integer(raw: u64, size: u64, signed: bool) -> i64 {
    match signed {
        true => sign_extend(raw, size),
        false => raw as i64,
    }
}

/// The name gdb gives `value` of an enum: its enumerator's; for a flag
/// enum (every enumerator's bits disjoint from the others', none
/// negative), the enumerators whose bits it has, and what is left as
/// `unknown: 0x…`, in parentheses; else none (shown as a number).
fn enumerator(enumerators: &[(String, i64)], value: i64) -> Option<String> {
    if let Some((n, _)) = enumerators.iter().find(|(_, v)| *v == value) {
        return Some(n.clone());
    }
    let mut seen = 0u64;
    for (_, v) in enumerators {
        if *v < 0 || (*v as u64) & seen != 0 {
            return None;
        }
        seen |= *v as u64;
    }
    if value <= 0 || enumerators.is_empty() {
        return None;
    }
    let mut left = value as u64;
    let mut parts = Vec::new();
    for (n, v) in enumerators {
        let v = *v as u64;
        if v != 0 && left & v == v {
            parts.push(n.clone());
            left &= !v;
        }
    }
    if left != 0 {
        parts.push(format!("unknown: {left:#x}"));
    }
    Some(format!("({})", parts.join(" | ")))
}

#[cfg(test)]
mod tests {
    use super::enumerator;

    #[test]
    fn enums_are_named_as_gdb_names_them() {
        let color = [("RED".into(), 0), ("GREEN".into(), 5), ("BLUE".into(), 6)];
        assert_eq!(enumerator(&color, 5).as_deref(), Some("GREEN"));
        // Not a flag enum (5 and 6 share a bit): a number.
        assert_eq!(enumerator(&color, 42), None);
        let perm = [("R".into(), 1), ("W".into(), 2), ("X".into(), 4)];
        assert_eq!(enumerator(&perm, 5).as_deref(), Some("(R | X)"));
        assert_eq!(enumerator(&perm, 9).as_deref(), Some("(R | unknown: 0x8)"));
        assert_eq!(enumerator(&perm, 0), None);
    }
}
