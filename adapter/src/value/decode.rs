//! Decoding captured bytes into [`Value`]s.
//!
//! [`decode`] rebuilds each value's in-memory image from the pieces its
//! [`ValueSlot`] names, then walks the DWARF type over it, following the
//! captures that pointers inside the value were resolved to (a string's
//! bytes, a pointee, a slice's elements, a map's buckets, an interface's
//! dynamic value). An interface's dynamic type is looked up only here, from
//! the runtime type descriptor address the hit captured, through
//! [`Resolve`]. Maps are read by their runtime layout (`maps`).

mod maps;

use std::collections::HashMap;

use super::{FieldValue, Value};
use crate::image::{TypeId, TypeKind, TypeTable};
use crate::plan::{Buffer, Limits, ValueSlot};

/// The bytes one hit captured, in recipe order.
pub type Captures = [Option<Vec<u8>>];

/// What the decoder asks of the program's image while decoding.
pub trait Resolve {
    /// The type whose runtime descriptor (`runtime._type`) is at `addr`,
    /// resolved into `types`.
    fn runtime_type(&mut self, types: &mut TypeTable, addr: u64) -> Option<TypeId>;
    /// The name of the function containing code address `pc`.
    fn function_name(&self, pc: u64) -> Option<String>;
}

/// A [`Resolve`] that knows nothing (tests, images without DWARF).
pub struct NoResolve;

impl Resolve for NoResolve {
    fn runtime_type(&mut self, _: &mut TypeTable, _: u64) -> Option<TypeId> {
        None
    }
    fn function_name(&self, _: u64) -> Option<String> {
        None
    }
}

/// Decodes one value of a hit.
pub fn decode(
    types: &mut TypeTable,
    resolve: &mut dyn Resolve,
    limits: Limits,
    slot: &ValueSlot,
    captures: &Captures,
) -> Value {
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
    let derefs: HashMap<(Buffer, u32), (u16, u32)> = slot
        .derefs
        .iter()
        .map(|d| ((d.from, d.at), (d.capture, d.start)))
        .collect();
    let mut d = Decoder {
        types,
        resolve,
        limits,
        image: &image,
        captures,
        derefs,
        path: Vec::new(),
    };
    d.value(ty, Buffer::Image, 0, 0)
}

struct Decoder<'a> {
    types: &'a mut TypeTable,
    resolve: &'a mut dyn Resolve,
    limits: Limits,
    image: &'a [u8],
    captures: &'a Captures,
    /// `(buffer, offset of a pointer)` -> (capture it was followed into,
    /// offset in the pointee where that capture starts).
    derefs: HashMap<(Buffer, u32), (u16, u32)>,
    /// Pointees being shown (address and pointer type), outermost first: a
    /// pointer back to one of them is a cycle and is shown by address. The
    /// type is part of the key because a struct and its first field share
    /// an address.
    path: Vec<(u64, TypeId)>,
}

/// Nesting bound of the decoder itself (the plan's depth limit is what
/// normally ends recursion; this only protects against malformed types).
const MAX_NESTING: u32 = 64;

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

fn unreadable(reason: impl Into<String>) -> Value {
    Value::Unreadable {
        reason: reason.into(),
    }
}

/// Whether Go stores a value of this type directly in an interface's data
/// word (pointer-shaped types) rather than behind a pointer.
fn direct_iface(types: &TypeTable, ty: TypeId) -> bool {
    let t = types.underlying(ty);
    match &t.kind {
        TypeKind::Pointer { .. }
        | TypeKind::UnsafePointer
        | TypeKind::Map { .. }
        | TypeKind::Chan
        | TypeKind::Func => true,
        TypeKind::Struct { fields } if fields.len() == 1 => direct_iface(types, fields[0].ty),
        TypeKind::Array {
            elem: Some(e),
            count: 1,
        } => direct_iface(types, *e),
        _ => false,
    }
}

impl<'a> Decoder<'a> {
    fn bytes(&self, b: Buffer) -> Option<&'a [u8]> {
        match b {
            Buffer::Image => Some(self.image),
            Buffer::Capture(c) => self.captures.get(c as usize)?.as_deref(),
        }
    }

    /// The capture a pointer at `(from, at)` was followed into from the
    /// pointee's start, if it was and the read succeeded.
    fn target(&self, from: Buffer, at: u32) -> Option<u16> {
        match *self.derefs.get(&(from, at))? {
            (c, 0) => self.bytes(Buffer::Capture(c)).map(|_| c),
            _ => None,
        }
    }

    /// The bytes the pointee of the pointer at `(from, at)` holds from its
    /// offset `offset` on, whichever way they were captured.
    fn pointee_bytes(&self, from: Buffer, at: u32, offset: u32) -> Option<&'a [u8]> {
        let (c, start) = *self.derefs.get(&(from, at))?;
        let skip = offset.checked_sub(start)? as usize;
        self.bytes(Buffer::Capture(c))?.get(skip..)
    }

    fn value(&mut self, ty: TypeId, from: Buffer, at: u32, depth: u32) -> Value {
        let t = self.types.get(ty).clone();
        let size = t.size as usize;
        let Some(buf) = self.bytes(from) else {
            return unreadable("memory not readable");
        };
        // A struct or an array may be captured in part (a pointee larger
        // than one read): its fields and elements check their own bytes.
        let partial = matches!(
            self.types.underlying(ty).kind,
            TypeKind::Struct { .. } | TypeKind::Array { .. }
        );
        let end = if partial {
            buf.len().min(at as usize + size)
        } else {
            at as usize + size
        };
        let Some(bytes) = buf.get(at as usize..end) else {
            return Value::Elided { r#type: t.name };
        };
        if depth > MAX_NESTING {
            return Value::Opaque { r#type: t.name };
        }
        let word = |i: usize| le(bytes.get(i * 8..i * 8 + 8).unwrap_or(&[]));
        let basic = match &t.kind {
            TypeKind::Bool => Some(Value::Bool {
                value: bytes.first().copied().unwrap_or(0) != 0,
            }),
            TypeKind::Int => Some(Value::Int {
                value: sign_extend(le(bytes), t.size),
            }),
            TypeKind::Uint => Some(Value::Uint { value: le(bytes) }),
            TypeKind::Float if size == 4 => Some(Value::Float {
                value: f32::from_bits(le(bytes) as u32) as f64,
                bits: 32,
            }),
            TypeKind::Float => Some(Value::Float {
                value: f64::from_bits(le(bytes)),
                bits: 64,
            }),
            TypeKind::Complex if size == 8 => Some(Value::Complex {
                re: f32::from_bits(le(&bytes[..4]) as u32) as f64,
                im: f32::from_bits(le(&bytes[4..]) as u32) as f64,
                bits: 64,
            }),
            TypeKind::Complex if size == 16 => Some(Value::Complex {
                re: f64::from_bits(le(&bytes[..8])),
                im: f64::from_bits(le(&bytes[8..])),
                bits: 128,
            }),
            TypeKind::String if size == 16 => Some(self.string(from, at, word(0), word(1))),
            _ => None,
        };
        if let Some(v) = basic {
            // Go's named basic types (`main.Celsius`, `time.Duration`) are
            // base types with a qualified name; builtin names have no dot.
            return if t.name.contains('.') {
                Value::Named {
                    r#type: t.name,
                    value: Box::new(v),
                }
            } else {
                v
            };
        }
        match t.kind {
            TypeKind::Pointer { pointee } => {
                let address = word(0);
                if address == 0 {
                    return Value::Nil { r#type: t.name };
                }
                match (pointee, self.target(from, at)) {
                    (Some(p), Some(c)) if !self.path.contains(&(address, ty)) => {
                        self.path.push((address, ty));
                        let target = self.value(p, Buffer::Capture(c), 0, depth + 1);
                        self.path.pop();
                        Value::Ref {
                            r#type: t.name,
                            address,
                            target: Box::new(target),
                        }
                    }
                    _ => Value::Pointer {
                        r#type: t.name,
                        address,
                    },
                }
            }
            TypeKind::UnsafePointer => Value::Pointer {
                r#type: t.name,
                address: word(0),
            },
            TypeKind::Slice { elem } => {
                let (address, len, cap) = (word(0), word(1), word(2));
                let items = match (elem, self.target(from, at)) {
                    _ if address == 0 || len == 0 => Some(Vec::new()),
                    (Some(e), Some(c)) => {
                        let esize = self.types.get(e).size.max(1);
                        let got = self.bytes(Buffer::Capture(c)).map_or(0, |b| b.len() as u64);
                        let n = (got / esize)
                            .min(len)
                            .min(self.limits.max_array_values as u64);
                        Some(
                            (0..n)
                                .map(|i| {
                                    self.value(e, Buffer::Capture(c), (i * esize) as u32, depth + 1)
                                })
                                .collect(),
                        )
                    }
                    _ => None,
                };
                let more = items
                    .as_ref()
                    .map_or(0, |i| len.saturating_sub(i.len() as u64));
                Value::Slice {
                    r#type: t.name,
                    address,
                    len,
                    cap,
                    items,
                    more,
                }
            }
            TypeKind::Array { elem, count } => {
                let Some(e) = elem else {
                    return Value::Opaque { r#type: t.name };
                };
                let esize = self.types.get(e).size;
                let n = count.min(self.limits.max_array_values as u64);
                let items = (0..n)
                    .map(|i| self.value(e, from, at + (i * esize) as u32, depth + 1))
                    .collect();
                Value::Array {
                    r#type: t.name,
                    items,
                    more: count - n,
                }
            }
            TypeKind::Struct { fields } => Value::Struct {
                r#type: t.name,
                fields: fields
                    .iter()
                    .map(|f| FieldValue {
                        name: f.name.clone(),
                        value: self.value(f.ty, from, at + f.offset as u32, depth + 1),
                    })
                    .collect(),
            },
            TypeKind::Interface { empty } if size == 16 => {
                self.interface(t.name, empty, from, at, word(0), depth)
            }
            TypeKind::Map { hmap } => self.map(t.name, hmap, from, at, word(0), depth),
            TypeKind::Chan => {
                if word(0) == 0 {
                    return Value::Nil { r#type: t.name };
                }
                match self
                    .target(from, at)
                    .and_then(|c| self.bytes(Buffer::Capture(c)))
                {
                    Some(h) if h.len() >= 16 => Value::Chan {
                        r#type: t.name,
                        len: le(&h[..8]),
                        cap: le(&h[8..16]),
                    },
                    _ => Value::Pointer {
                        r#type: t.name,
                        address: word(0),
                    },
                }
            }
            TypeKind::Func => {
                let address = word(0);
                if address == 0 {
                    return Value::Func {
                        name: None,
                        address,
                    };
                }
                let pc = self
                    .target(from, at)
                    .and_then(|c| self.bytes(Buffer::Capture(c)))
                    .filter(|b| b.len() >= 8)
                    .map(le);
                Value::Func {
                    name: pc.and_then(|pc| self.resolve.function_name(pc)),
                    address: pc.unwrap_or(address),
                }
            }
            TypeKind::Named { underlying } => {
                let inner = self.value(underlying, from, at, depth + 1);
                inner.named(t.name)
            }
            _ => Value::Opaque { r#type: t.name },
        }
    }

    fn string(&self, from: Buffer, at: u32, ptr: u64, len: u64) -> Value {
        if len == 0 {
            return Value::String {
                value: String::new(),
                more: 0,
                raw: None,
            };
        }
        if !self.derefs.contains_key(&(from, at)) {
            return Value::Elided {
                r#type: String::from("string"),
            };
        }
        match self
            .target(from, at)
            .and_then(|c| self.bytes(Buffer::Capture(c)))
        {
            Some(data) => {
                let n = (len.min(self.limits.max_string_len as u64) as usize).min(data.len());
                let bytes = &data[..n];
                Value::String {
                    value: String::from_utf8_lossy(bytes).into_owned(),
                    more: len - n as u64,
                    raw: std::str::from_utf8(bytes).is_err().then(|| bytes.to_vec()),
                }
            }
            None => unreadable(format!("string at {ptr:#x} not readable")),
        }
    }

    fn interface(
        &mut self,
        name: String,
        empty: bool,
        from: Buffer,
        at: u32,
        tab: u64,
        depth: u32,
    ) -> Value {
        if tab == 0 {
            return Value::Nil { r#type: name };
        }
        let descriptor = if empty {
            Some(tab)
        } else {
            // itab._type follows itab.inter.
            self.pointee_bytes(from, at, 8)
                .filter(|b| b.len() >= 8)
                .map(le)
        };
        let dynamic = descriptor.and_then(|d| self.resolve.runtime_type(self.types, d));
        let Some(dt) = dynamic else {
            return Value::Interface {
                r#type: name,
                dynamic: String::from("?"),
                value: Box::new(match descriptor {
                    Some(d) => unreadable(format!("no DWARF type for runtime type {d:#x}")),
                    None => Value::Elided {
                        r#type: String::from("?"),
                    },
                }),
            };
        };
        let dynamic = self.types.get(dt).name.clone();
        let value = if direct_iface(self.types, dt) {
            // The data word is the value itself.
            self.value(dt, from, at + 8, depth + 1)
        } else {
            match self.target(from, at + 8) {
                Some(c) => self.value(dt, Buffer::Capture(c), 0, depth + 1),
                None => Value::Elided {
                    r#type: dynamic.clone(),
                },
            }
        };
        Value::Interface {
            r#type: name,
            dynamic,
            value: Box::new(value),
        }
    }
}

impl Value {
    /// This value shown under the name of a named type defined over it.
    fn named(self, name: String) -> Value {
        match self {
            Value::Struct { fields, .. } => Value::Struct {
                r#type: name,
                fields,
            },
            Value::Slice {
                address,
                len,
                cap,
                items,
                more,
                ..
            } => Value::Slice {
                r#type: name,
                address,
                len,
                cap,
                items,
                more,
            },
            Value::Array { items, more, .. } => Value::Array {
                r#type: name,
                items,
                more,
            },
            Value::Map { entries, more, .. } => Value::Map {
                r#type: name,
                entries,
                more,
            },
            Value::Chan { len, cap, .. } => Value::Chan {
                r#type: name,
                len,
                cap,
            },
            Value::Nil { .. } => Value::Nil { r#type: name },
            Value::Interface { dynamic, value, .. } => Value::Interface {
                r#type: name,
                dynamic,
                value,
            },
            Value::Ref {
                address, target, ..
            } => Value::Ref {
                r#type: name,
                address,
                target,
            },
            Value::Pointer { address, .. } => Value::Pointer {
                r#type: name,
                address,
            },
            // A typedef of the same name (Go emits some twice).
            Value::Named { r#type, value } if r#type == name => Value::Named { r#type, value },
            v @ (Value::Func { .. }
            | Value::Unreadable { .. }
            | Value::Opaque { .. }
            | Value::Elided { .. }) => v,
            other => Value::Named {
                r#type: name,
                value: Box::new(other),
            },
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::image::{Field, Type};
    use crate::plan::{DerefSlot, Piece};

    pub(super) fn ty(t: &mut TypeTable, name: &str, size: u64, kind: TypeKind) -> TypeId {
        t.push(Type {
            name: name.into(),
            size,
            kind,
        })
    }

    /// Makes `id` (pushed before its fields could point to it) a struct.
    pub(super) fn define_struct(t: &mut TypeTable, id: TypeId, fields: Vec<Field>) {
        let old = t.get(id);
        let (name, size) = (old.name.clone(), old.size);
        let kind = TypeKind::Struct { fields };
        t.set(id, Type { name, size, kind });
    }

    pub(super) fn words(ws: &[u64]) -> Option<Vec<u8>> {
        Some(ws.iter().flat_map(|w| w.to_le_bytes()).collect())
    }

    /// A slot whose image is capture 0 whole, with the given derefs.
    pub(super) fn slot(ty: TypeId, size: u32, derefs: &[(Buffer, u32, u16, u32)]) -> ValueSlot {
        ValueSlot {
            name: "v".into(),
            ty: Some(ty),
            pieces: vec![Piece {
                at: 0,
                len: size,
                capture: 0,
            }],
            size,
            derefs: derefs
                .iter()
                .map(|&(from, at, capture, start)| DerefSlot {
                    from,
                    at,
                    capture,
                    start,
                })
                .collect(),
            unavailable: None,
        }
    }

    #[test]
    fn slices_of_strings_follow_each_element() {
        let mut t = TypeTable::default();
        let string = ty(&mut t, "string", 16, TypeKind::String);
        let slice = ty(
            &mut t,
            "[]string",
            24,
            TypeKind::Slice { elem: Some(string) },
        );
        let caps = vec![
            words(&[0x1000, 3, 4]),
            words(&[0x2000, 2, 0x3000, 1, 0x4000, 100]),
            Some(b"ab".to_vec()),
            Some(b"c".to_vec()),
            Some(b"xyz".to_vec()),
        ];
        let s = slot(
            slice,
            24,
            &[
                (Buffer::Image, 0, 1, 0),
                (Buffer::Capture(1), 0, 2, 0),
                (Buffer::Capture(1), 16, 3, 0),
                (Buffer::Capture(1), 32, 4, 0),
            ],
        );
        let limits = Limits {
            max_array_values: 3,
            ..Limits::default()
        };
        let v = decode(&mut t, &mut NoResolve, limits, &s, &caps);
        assert_eq!(
            v.go(),
            r#"[]string len: 3, cap: 4, ["ab","c","xyz"...+97 more]"#
        );
        // An element whose bytes were not planned is elided, like Delve's `...`.
        let s = slot(
            slice,
            24,
            &[(Buffer::Image, 0, 1, 0), (Buffer::Capture(1), 0, 2, 0)],
        );
        let v = decode(&mut t, &mut NoResolve, limits, &s, &caps);
        assert_eq!(v.go(), r#"[]string len: 3, cap: 4, ["ab",...,...]"#);
    }

    #[test]
    fn a_pointer_cycle_is_shown_by_address_once_it_comes_back() {
        let mut t = TypeTable::default();
        let int = ty(&mut t, "int", 8, TypeKind::Int);
        let node = t.push(Type {
            name: "main.Node".into(),
            size: 16,
            kind: TypeKind::Void,
        });
        let ptr = ty(
            &mut t,
            "*main.Node",
            8,
            TypeKind::Pointer {
                pointee: Some(node),
            },
        );
        let fields = vec![
            Field {
                name: "V".into(),
                offset: 0,
                ty: int,
                embedded: false,
            },
            Field {
                name: "Next".into(),
                offset: 8,
                ty: ptr,
                embedded: false,
            },
        ];
        define_struct(&mut t, node, fields);
        let caps = vec![
            words(&[0xa000]),
            words(&[1, 0xb000]),
            words(&[2, 0xa000]),
            words(&[1, 0xb000]),
        ];
        let s = slot(
            ptr,
            8,
            &[
                (Buffer::Image, 0, 1, 0),
                (Buffer::Capture(1), 8, 2, 0),
                (Buffer::Capture(2), 8, 3, 0),
            ],
        );
        let v = decode(&mut t, &mut NoResolve, Limits::default(), &s, &caps);
        assert_eq!(
            v.go(),
            "*main.Node {V: 1, Next: *main.Node {V: 2, Next: (*main.Node)(0xa000)}}"
        );
        let json = serde_json::to_value(&v).expect("serializes");
        assert_eq!(json["kind"], "ref");
        assert_eq!(json["address"], 0xa000);
    }

    /// Knows one runtime type descriptor.
    struct OneType(u64, TypeId);

    impl Resolve for OneType {
        fn runtime_type(&mut self, _: &mut TypeTable, addr: u64) -> Option<TypeId> {
            (addr == self.0).then_some(self.1)
        }
        fn function_name(&self, pc: u64) -> Option<String> {
            (pc == 0x401000).then(|| "main.double".to_string())
        }
    }

    #[test]
    fn interfaces_show_their_dynamic_type_and_value() {
        let mut t = TypeTable::default();
        let int = ty(&mut t, "int", 8, TypeKind::Int);
        let eface = ty(
            &mut t,
            "interface {}",
            16,
            TypeKind::Interface { empty: true },
        );
        let error = ty(&mut t, "error", 16, TypeKind::Interface { empty: false });
        // interface{}(42): the data word points to the int.
        let caps = vec![words(&[0x5000, 0x6000]), words(&[42])];
        let s = slot(eface, 16, &[(Buffer::Image, 8, 1, 0)]);
        let v = decode(
            &mut t,
            &mut OneType(0x5000, int),
            Limits::default(),
            &s,
            &caps,
        );
        assert_eq!(v.go(), "interface {}(int) 42");
        // error: the type comes from itab._type (a capture starting at +8).
        let caps = vec![words(&[0x7000, 0x6000]), words(&[0x5000]), words(&[7])];
        let s = slot(
            error,
            16,
            &[(Buffer::Image, 0, 1, 8), (Buffer::Image, 8, 2, 0)],
        );
        let v = decode(
            &mut t,
            &mut OneType(0x5000, int),
            Limits::default(),
            &s,
            &caps,
        );
        assert_eq!(v.go(), "error(int) 7");
        // Unknown descriptor, and nil.
        let v = decode(&mut t, &mut NoResolve, Limits::default(), &s, &caps);
        assert_eq!(
            v.go(),
            "error(?) (unreadable no DWARF type for runtime type 0x5000)"
        );
        let caps = vec![words(&[0, 0])];
        let v = decode(&mut t, &mut NoResolve, Limits::default(), &s, &caps);
        assert_eq!(v.go(), "error nil");
    }

    #[test]
    fn funcs_chans_and_named_types() {
        let mut t = TypeTable::default();
        let f = ty(&mut t, "func(int) int", 8, TypeKind::Func);
        let caps = vec![words(&[0x9000]), words(&[0x401000])];
        let s = slot(f, 8, &[(Buffer::Image, 0, 1, 0)]);
        let v = decode(&mut t, &mut OneType(0, 0), Limits::default(), &s, &caps);
        assert_eq!(v.go(), "main.double");
        let caps = vec![words(&[0])];
        let v = decode(&mut t, &mut NoResolve, Limits::default(), &s, &caps);
        assert_eq!(v.go(), "nil");

        let c = ty(&mut t, "chan int", 8, TypeKind::Chan);
        let caps = vec![words(&[0x9000]), words(&[3, 10])];
        let s = slot(c, 8, &[(Buffer::Image, 0, 1, 0)]);
        let v = decode(&mut t, &mut NoResolve, Limits::default(), &s, &caps);
        assert_eq!(v.go(), "chan int 3/10");

        let d = ty(&mut t, "time.Duration", 8, TypeKind::Int);
        let caps = vec![words(&[1_500_000_000])];
        let s = slot(d, 8, &[]);
        let v = decode(&mut t, &mut NoResolve, Limits::default(), &s, &caps);
        assert_eq!(v.go(), "time.Duration(1500000000)");
        let z = ty(&mut t, "complex128", 16, TypeKind::Complex);
        let caps = vec![words(&[1.5f64.to_bits(), (-2.0f64).to_bits()])];
        let s = slot(z, 16, &[]);
        let v = decode(&mut t, &mut NoResolve, Limits::default(), &s, &caps);
        assert_eq!(v.go(), "(1.5 + -2i)");
    }
}
