//! Decoding captured bytes into typed values, and showing them.
//!
//! [`decode`] rebuilds each value's in-memory image from the pieces its
//! [`ValueSlot`] names, then walks the DWARF type over it, following the
//! captures that pointers inside the value were resolved to (a string's
//! bytes, a pointee, a slice's elements, a map's buckets, an interface's
//! dynamic value). An interface's dynamic type is looked up only here, from
//! the runtime type descriptor address the hit captured, through
//! [`Resolve`]. [`Value`] is the language-neutral tree (serialized as is for
//! `--json`); [`Value::go`] shows it in Go notation as Delve does
//! (`"quoted"`, `*main.T {X: 1}`, `[]int len: 3, cap: 4, [1,2,3]`,
//! `error(*errors.errorString) *{s: "boom"}`, `main.Celsius(21.5)`), and
//! [`Value::c`] as gdb does.

use std::collections::HashMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::image::goruntime::{map_layout, BucketMap, MapLayout};
use crate::image::{TypeId, TypeKind, TypeTable};
use crate::plan::{Buffer, Limits, ValueSlot};

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
    /// `raw` holds the bytes when they are not valid UTF-8 (`value` then
    /// has U+FFFD in their place).
    String {
        value: String,
        more: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        raw: Option<Vec<u8>>,
    },
    /// A pointer shown by its address: not followed (depth limit, a cycle,
    /// `unsafe.Pointer`, a C pointer).
    Pointer {
        r#type: String,
        address: u64,
    },
    /// A pointer followed to the value it points to.
    Ref {
        r#type: String,
        address: u64,
        target: Box<Value>,
    },
    /// A nil pointer, map, channel or interface.
    Nil {
        r#type: String,
    },
    /// A Go slice; `items` is `None` when its contents were not captured,
    /// `more` counts the elements beyond the limit.
    Slice {
        r#type: String,
        address: u64,
        len: u64,
        cap: u64,
        items: Option<Vec<Value>>,
        more: u64,
    },
    Array {
        r#type: String,
        items: Vec<Value>,
        more: u64,
    },
    Struct {
        r#type: String,
        fields: Vec<FieldValue>,
    },
    /// A non-nil interface: its static type, its dynamic type's name and
    /// the dynamic value.
    Interface {
        r#type: String,
        dynamic: String,
        value: Box<Value>,
    },
    /// A Go map; `entries` is `None` when its buckets were not captured,
    /// `more` counts the elements not shown.
    Map {
        r#type: String,
        entries: Option<Vec<Entry>>,
        more: u64,
    },
    /// A Go channel: elements queued and buffer size.
    Chan {
        r#type: String,
        len: u64,
        cap: u64,
    },
    /// A non-nil func value: the function its code pointer is in.
    Func {
        name: Option<String>,
        address: u64,
    },
    /// A value of a named non-struct type (`main.Celsius(21.5)`).
    Named {
        r#type: String,
        value: Box<Value>,
    },
    /// Contents that were not captured because a limit (`--max-depth`,
    /// the recipe size) stopped the plan; shown as `...` like Delve's
    /// unloaded values.
    Elided {
        r#type: String,
    },
    /// A kind the decoder does not show.
    Opaque {
        r#type: String,
    },
    Unreadable {
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldValue {
    pub name: String,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    pub key: Value,
    pub value: Value,
}

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

    fn map(
        &mut self,
        name: String,
        hmap: Option<TypeId>,
        from: Buffer,
        at: u32,
        address: u64,
        depth: u32,
    ) -> Value {
        if address == 0 {
            return Value::Nil { r#type: name };
        }
        let layout = hmap
            .and_then(|h| map_layout(self.types, h))
            .map(|MapLayout::Buckets(b)| b);
        let hdr = self.target(from, at);
        let (Some(layout), Some(hdr)) = (layout, hdr) else {
            return Value::Map {
                r#type: name,
                entries: None,
                more: 0,
            };
        };
        let Some(h) = self.bytes(Buffer::Capture(hdr)) else {
            return unreadable("map header not readable");
        };
        let count = le(h.get(layout.count_at as usize..).unwrap_or(&[]));
        let flags = h.get(layout.flags_at as usize).copied().unwrap_or(0);
        let b = h.get(layout.b_at as usize).copied().unwrap_or(0).min(31);
        let hdr = Buffer::Capture(hdr);
        let new = self.target(hdr, layout.buckets_at);
        let Some(new) = new.filter(|&c| self.bytes(Buffer::Capture(c)).is_some()) else {
            return Value::Map {
                r#type: name,
                entries: if count == 0 { Some(Vec::new()) } else { None },
                more: 0,
            };
        };
        // A map part way through growing keeps the entries of the old
        // buckets not evacuated yet there: half as many buckets, or as many
        // when it grows in place (too many overflow buckets).
        let old_words = h.get(layout.oldbuckets_at as usize..).map(le);
        let old = match old_words {
            Some(a) if a != 0 => {
                let n = BucketMap::old_buckets(flags, b);
                Some((self.target(hdr, layout.oldbuckets_at), n))
            }
            _ => None,
        };
        let limit = self.limits.max_array_values as usize;
        let mut entries = Vec::new();
        // Buckets past those captured (of the new array, and those the
        // captured old buckets move to) hold nothing that can be shown.
        let captured = |c: Option<u16>| {
            c.and_then(|c| self.bytes(Buffer::Capture(c)))
                .map_or(0, |d| (d.len() / layout.bucket_size.max(1) as usize) as u64)
        };
        let reach = captured(Some(new)).max(old.map_or(0, |(c, n)| {
            let moved_to = (1u64 << b) / n;
            captured(c).min(n) * moved_to
        }));
        // Delve's order: bucket by bucket, each with its overflow chain; a
        // bucket whose old bucket is not evacuated yet is empty, and the
        // entries are shown from the old bucket instead, when the first of
        // the new buckets it moves to comes.
        for bi in 0..(1u64 << b).min(reach) {
            if entries.len() >= limit || entries.len() as u64 >= count {
                break;
            }
            let mut from = (new, bi as u32 * layout.bucket_size);
            if let Some((old, n)) = old {
                let ob = bi & (n - 1);
                let at = ob as u32 * layout.bucket_size;
                let waiting = old.filter(|&c| {
                    self.bucket(&layout, c, at).is_some() && !self.evacuated(&layout, c, at)
                });
                if let Some(c) = waiting {
                    if ob != bi {
                        continue;
                    }
                    from = (c, at);
                }
            }
            self.chain(&layout, from, depth, limit, &mut entries);
        }
        let more = count.saturating_sub(entries.len() as u64);
        Value::Map {
            r#type: name,
            entries: Some(entries),
            more,
        }
    }

    /// The bytes of the bucket at byte `at` of capture `c`, if all there.
    fn bucket(&self, layout: &BucketMap, c: u16, at: u32) -> Option<&'a [u8]> {
        let size = layout.bucket_size as usize;
        self.bytes(Buffer::Capture(c))?
            .get(at as usize..at as usize + size)
    }

    /// Whether an old bucket has been moved to the new buckets (its slots
    /// marked `evacuatedX`, `evacuatedY` or `evacuatedEmpty`).
    fn evacuated(&self, layout: &BucketMap, c: u16, at: u32) -> bool {
        self.bucket(layout, c, at)
            .and_then(|b| b.first())
            .is_some_and(|&t| BucketMap::evacuated(t))
    }

    /// Adds the entries of the bucket at `(c, at)` and of its overflow
    /// buckets, as far as they were captured, until `limit`.
    fn chain(
        &mut self,
        layout: &BucketMap,
        (mut c, mut at): (u16, u32),
        depth: u32,
        limit: usize,
        entries: &mut Vec<Entry>,
    ) {
        // The plan follows a bounded chain; this bound only guards against
        // a malformed slot.
        for _ in 0..MAX_NESTING {
            let Some(bucket) = self.bucket(layout, c, at) else {
                return;
            };
            for i in 0..BucketMap::SLOTS {
                if entries.len() >= limit {
                    return;
                }
                if !BucketMap::occupied(bucket[i as usize]) {
                    continue;
                }
                let k = at + layout.keys_at + i * layout.key_size;
                let v = at + layout.values_at + i * layout.value_size;
                let key = self.value(layout.key, Buffer::Capture(c), k, depth + 1);
                let value = self.value(layout.value, Buffer::Capture(c), v, depth + 1);
                entries.push(Entry { key, value });
            }
            match self.target(Buffer::Capture(c), at + layout.overflow_at) {
                Some(next) => (c, at) = (next, 0),
                None => return,
            }
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

    use crate::image::{Field, Type};
    use crate::plan::{DerefSlot, Piece};

    fn ty(t: &mut TypeTable, name: &str, size: u64, kind: TypeKind) -> TypeId {
        t.push(Type {
            name: name.into(),
            size,
            kind,
        })
    }

    /// Makes `id` (pushed before its fields could point to it) a struct.
    fn define_struct(t: &mut TypeTable, id: TypeId, fields: Vec<Field>) {
        let old = t.get(id);
        let (name, size) = (old.name.clone(), old.size);
        let kind = TypeKind::Struct { fields };
        t.set(id, Type { name, size, kind });
    }

    fn words(ws: &[u64]) -> Option<Vec<u8>> {
        Some(ws.iter().flat_map(|w| w.to_le_bytes()).collect())
    }

    /// A slot whose image is capture 0 whole, with the given derefs.
    fn slot(ty: TypeId, size: u32, derefs: &[(Buffer, u32, u16, u32)]) -> ValueSlot {
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

    /// `map[int]int` as Go 1.19's DWARF describes it: `hash<int,int>`
    /// (count, flags, B, buckets, oldbuckets) and `bucket<int,int>`
    /// (tophash, keys, values, overflow: 144 bytes).
    fn int_map(t: &mut TypeTable) -> TypeId {
        let field = |name: &str, offset: u64, ty: TypeId| Field {
            name: name.into(),
            offset,
            ty,
            embedded: false,
        };
        let int = ty(t, "int", 8, TypeKind::Int);
        let byte = ty(t, "uint8", 1, TypeKind::Uint);
        let arr = |t: &mut TypeTable, elem, name: &str, size| {
            let kind = TypeKind::Array {
                elem: Some(elem),
                count: 8,
            };
            ty(t, name, size, kind)
        };
        let tophash = arr(t, byte, "[8]uint8", 8);
        let ints = arr(t, int, "[8]int", 64);
        let bucket = ty(t, "bucket<int,int>", 144, TypeKind::Void);
        let pointer = ty(
            t,
            "*bucket<int,int>",
            8,
            TypeKind::Pointer {
                pointee: Some(bucket),
            },
        );
        let fields = vec![
            field("tophash", 0, tophash),
            field("keys", 8, ints),
            field("values", 72, ints),
            field("overflow", 136, pointer),
        ];
        define_struct(t, bucket, fields);
        let fields = vec![
            field("count", 0, int),
            field("flags", 8, byte),
            field("B", 9, byte),
            field("buckets", 16, pointer),
            field("oldbuckets", 24, pointer),
        ];
        let hmap = ty(t, "hash<int,int>", 48, TypeKind::Struct { fields });
        ty(t, "map[int]int", 8, TypeKind::Map { hmap: Some(hmap) })
    }

    /// One bucket: `tophash`, then `(key, value)` for each listed slot.
    fn bucket(tophash: [u8; 8], slots: &[(usize, u64, u64)], overflow: u64) -> Vec<u8> {
        let mut b = vec![0u8; 144];
        b[..8].copy_from_slice(&tophash);
        for &(i, k, v) in slots {
            b[8 + i * 8..16 + i * 8].copy_from_slice(&k.to_le_bytes());
            b[72 + i * 8..80 + i * 8].copy_from_slice(&v.to_le_bytes());
        }
        b[136..].copy_from_slice(&overflow.to_le_bytes());
        b
    }

    #[test]
    fn a_growing_map_shows_old_buckets_not_evacuated_yet_once() {
        let mut t = TypeTable::default();
        let m = int_map(&mut t);
        let live = [9, 9, 0, 0, 0, 0, 0, 0];
        // B=2 growing from 2 buckets: old bucket 0 is evacuated (its entry
        // now in new bucket 2), old bucket 1 is not (new 1 and 3 are empty
        // and its entries are shown once, at new bucket 1), and it has an
        // overflow bucket. Bytes past `1 << B` new buckets are garbage.
        let mut new = Vec::new();
        new.extend(bucket([0; 8], &[], 0));
        new.extend(bucket([0; 8], &[], 0));
        new.extend(bucket([9, 0, 0, 0, 0, 0, 0, 0], &[(0, 4, 40)], 0));
        new.extend(bucket([0; 8], &[], 0));
        new.extend(bucket([9; 8], &[(0, 99, 99)], 0));
        let mut old = Vec::new();
        old.extend(bucket([2, 4, 4, 4, 4, 4, 4, 4], &[(0, 4, 40)], 0));
        old.extend(bucket(live, &[(0, 1, 10), (1, 3, 30)], 0xb000));
        let header = |count: u64, flags: u8, b: u8| {
            let mut h = words(&[count, 0, 0xa000, 0xc000, 0, 0]).expect("words");
            h[8] = flags;
            h[9] = b;
            Some(h)
        };
        let caps = vec![
            words(&[0x9000]),
            header(4, 0, 2),
            Some(new),
            Some(old),
            Some(bucket([9, 0, 0, 0, 0, 0, 0, 0], &[(0, 5, 50)], 0)),
        ];
        let s = slot(
            m,
            8,
            &[
                (Buffer::Image, 0, 1, 0),
                (Buffer::Capture(1), 16, 2, 0),
                (Buffer::Capture(1), 24, 3, 0),
                (Buffer::Capture(3), 144 + 136, 4, 0),
            ],
        );
        let v = decode(&mut t, &mut NoResolve, Limits::default(), &s, &caps);
        assert_eq!(v.go(), "map[int]int [1: 10, 3: 30, 5: 50, 4: 40]");
        // An element limit stops early and counts the rest.
        let limits = Limits {
            max_array_values: 2,
            ..Limits::default()
        };
        let v = decode(&mut t, &mut NoResolve, limits, &s, &caps);
        assert_eq!(v.go(), "map[int]int [1: 10, 3: 30, ...+2 more]");

        // Growing in place (`sameSizeGrow`): as many old buckets as new.
        let mut caps = caps;
        caps[1] = header(4, 8, 1);
        let v = decode(&mut t, &mut NoResolve, Limits::default(), &s, &caps);
        assert_eq!(v.go(), "map[int]int [1: 10, 3: 30, 5: 50, ...+1 more]");
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
