//! Values as logprobe shows them: [`Value`], the language-neutral tree a
//! hit's captured bytes are decoded into ([`decode`]), serialized as is for
//! `--json` and the DAP event's `data`, and written out in each language's
//! own notation ([`render`]).
//!
//! The decoder knows the type model (`image::types`) and the capture
//! recipe's contract (`plan::ValueSlot`), never the planner; the renderers
//! know only the tree. Adding a language's notation touches `render` alone.

pub mod decode;
pub mod render;

use serde::Serialize;

pub use decode::{decode, Captures, NoResolve, Resolve};
pub use render::{go_quote, go_quote_bytes, Notation};

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

/// A value with the name it has where it was read: a parameter, a
/// result, a variable in scope, or a logpoint's captured path (`p.next`).
#[derive(Debug, Clone, Serialize)]
pub struct NamedValue {
    pub name: String,
    pub value: Value,
}

impl NamedValue {
    pub fn new(name: impl Into<String>, value: Value) -> NamedValue {
        NamedValue {
            name: name.into(),
            value,
        }
    }
}

impl Value {
    /// A string captured whole.
    pub fn string(s: impl Into<String>) -> Value {
        Value::String {
            value: s.into(),
            more: 0,
            raw: None,
        }
    }
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
