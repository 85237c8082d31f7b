//! The snapshot thread: a trace's most recent hit, copied when the client
//! asks for it (`snapshot`), presented through DAP's `threads`,
//! `stackTrace`, `scopes` and `variables` so that an editor's Variables
//! view can show it (docs/protocol.md).
//!
//! logprobe never stops the program; the snapshot is a read-only copy of
//! values decoded at one hit, and says so in its thread's name, its
//! `stopped` event's description and every variable's `readOnly` hint.
//! Variable references are handed out as the client expands values and
//! stay valid for the snapshot's life.

use serde_json::{json, Value as Json};

use super::protocol::Source;
use crate::image::Lang;
use crate::trace::{cut, show, NamedValue, Value};

/// The thread standing for the traced process.
pub const PROGRAM_THREAD: i64 = 1;
/// The snapshot's thread.
pub const SNAPSHOT_THREAD: i64 = 2;
/// The snapshot's one frame.
const FRAME: i64 = 1;
/// Longest value text in the Variables view.
const MAX_VALUE_TEXT: usize = 400;

/// What a variables reference stands for.
enum Node {
    Scope(Vec<NamedValue>),
    Value(Value),
}

pub struct Snapshot {
    /// The trace's id.
    pub trace: String,
    /// The function (traces) or logpoint label the hit belongs to.
    pub name: String,
    source: Option<Source>,
    line: Option<u64>,
    lang: Lang,
    /// Scope names with their references.
    scopes: Vec<(String, i64)>,
    /// Reference `i + 1` is `nodes[i]`.
    nodes: Vec<Node>,
}

impl Snapshot {
    /// A snapshot of one hit: its frame's place and its scopes of values
    /// (`Arguments`, `Results`, or a logpoint's `Variables`).
    pub fn new(
        trace: String,
        name: String,
        source: Option<Source>,
        line: Option<u64>,
        lang: Lang,
        scopes: Vec<(String, Vec<NamedValue>)>,
    ) -> Snapshot {
        let mut s = Snapshot {
            trace,
            name,
            source,
            line,
            lang,
            scopes: Vec::new(),
            nodes: Vec::new(),
        };
        for (scope, values) in scopes {
            let reference = s.keep(Node::Scope(values));
            s.scopes.push((scope, reference));
        }
        s
    }

    fn keep(&mut self, node: Node) -> i64 {
        self.nodes.push(node);
        self.nodes.len() as i64
    }

    /// The function the hit belongs to, for a trace (`None` for a logpoint).
    pub fn function_name(&self) -> Option<&str> {
        self.scopes
            .first()
            .filter(|(scope, _)| scope == "Arguments")
            .map(|_| self.name.as_str())
    }

    pub fn thread_name(&self) -> String {
        format!("{}: latest hit (snapshot)", self.name)
    }

    /// The `stopped` event's body.
    pub fn stopped(&self) -> Json {
        json!({
            "reason": "snapshot",
            "threadId": SNAPSHOT_THREAD,
            "allThreadsStopped": false,
            "preserveFocusHint": false,
            "description": format!("Snapshot of the latest hit of {} (the program keeps running)", self.name),
        })
    }

    /// The `stackTrace` response body: one frame.
    pub fn stack_trace(&self) -> Json {
        let mut frame = json!({
            "id": FRAME,
            "name": format!("{} (snapshot)", self.name),
            "line": self.line.unwrap_or(0),
            "column": 0,
        });
        if let Some(s) = &self.source {
            frame["source"] = json!(s);
        }
        json!({ "stackFrames": [frame], "totalFrames": 1 })
    }

    /// The `scopes` response body.
    pub fn scopes(&self) -> Json {
        let scopes: Vec<Json> = self
            .scopes
            .iter()
            .map(|(name, reference)| {
                let count = match self.nodes.get((*reference - 1) as usize) {
                    Some(Node::Scope(v)) => v.len(),
                    _ => 0,
                };
                json!({
                    "name": name,
                    "variablesReference": reference,
                    "namedVariables": count,
                    "expensive": false,
                    "presentationHint": if name == "Arguments" { "arguments" } else { "locals" },
                })
            })
            .collect();
        json!({ "scopes": scopes })
    }

    /// The `variables` response body for `reference`; `None` if unknown.
    pub fn variables(&mut self, reference: i64) -> Option<Json> {
        let index = usize::try_from(reference).ok()?.checked_sub(1)?;
        let children: Vec<(String, Value)> = match self.nodes.get(index)? {
            Node::Scope(values) => values
                .iter()
                .map(|v| (v.name.clone(), v.value.clone()))
                .collect(),
            Node::Value(v) => children(v, self.lang),
        };
        let variables: Vec<Json> = children
            .into_iter()
            .map(|(name, value)| self.variable(name, value))
            .collect();
        Some(json!({ "variables": variables }))
    }

    fn variable(&mut self, name: String, value: Value) -> Json {
        let text = cut(show(self.lang, &value), MAX_VALUE_TEXT);
        let kind = type_name(&value).map(str::to_string);
        let reference = if children(&value, self.lang).is_empty() {
            0
        } else {
            self.keep(Node::Value(value))
        };
        let mut v = json!({
            "name": name,
            "value": text,
            "variablesReference": reference,
            "presentationHint": { "attributes": ["readOnly"] },
        });
        if let Some(t) = kind {
            v["type"] = json!(t);
        }
        v
    }
}

/// The type a value names, if it names one.
fn type_name(v: &Value) -> Option<&str> {
    match v {
        Value::Pointer { r#type, .. }
        | Value::Ref { r#type, .. }
        | Value::Nil { r#type }
        | Value::Slice { r#type, .. }
        | Value::Array { r#type, .. }
        | Value::Struct { r#type, .. }
        | Value::Interface { r#type, .. }
        | Value::Map { r#type, .. }
        | Value::Chan { r#type, .. }
        | Value::Named { r#type, .. }
        | Value::Elided { r#type }
        | Value::Opaque { r#type } => Some(r#type),
        _ => None,
    }
}

/// A note for elements a limit kept from being read.
fn more(n: u64) -> (String, Value) {
    (
        "...".into(),
        Value::Unreadable {
            reason: format!("{n} more not read (see the value limits)"),
        },
    )
}

/// What expanding `v` shows: fields, elements, entries, a pointer's or an
/// interface's target (its own children when it has any).
fn children(v: &Value, lang: Lang) -> Vec<(String, Value)> {
    let through = |name: &str, target: &Value| {
        let inner = children(target, lang);
        if inner.is_empty() {
            vec![(name.to_string(), target.clone())]
        } else {
            inner
        }
    };
    match v {
        Value::Struct { fields, .. } => fields
            .iter()
            .map(|f| (f.name.clone(), f.value.clone()))
            .collect(),
        Value::Slice {
            items: Some(items),
            more: n,
            ..
        }
        | Value::Array { items, more: n, .. } => {
            let mut out: Vec<(String, Value)> = items
                .iter()
                .enumerate()
                .map(|(i, item)| (format!("[{i}]"), item.clone()))
                .collect();
            if *n > 0 {
                out.push(more(*n));
            }
            out
        }
        Value::Map {
            entries: Some(entries),
            more: n,
            ..
        } => {
            let mut out: Vec<(String, Value)> = entries
                .iter()
                .map(|e| (format!("[{}]", show(lang, &e.key)), e.value.clone()))
                .collect();
            if *n > 0 {
                out.push(more(*n));
            }
            out
        }
        Value::Ref { target, .. } => through("*", target),
        Value::Interface { value, .. } => through("data", value),
        Value::Named { value, .. } => children(value, lang),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::FieldValue;

    fn point() -> Value {
        Value::Struct {
            r#type: "main.Point".into(),
            fields: vec![
                FieldValue {
                    name: "X".into(),
                    value: Value::Int { value: 1 },
                },
                FieldValue {
                    name: "Y".into(),
                    value: Value::Int { value: 2 },
                },
            ],
        }
    }

    fn snapshot() -> Snapshot {
        Snapshot::new(
            "t1".into(),
            "main.foo".into(),
            Some(Source::from_path("/w/main.go")),
            Some(5),
            Lang::Go,
            vec![
                (
                    "Arguments".into(),
                    vec![
                        NamedValue {
                            name: "p".into(),
                            value: Value::Ref {
                                r#type: "*main.Point".into(),
                                address: 0xc000010000,
                                target: Box::new(point()),
                            },
                        },
                        NamedValue {
                            name: "xs".into(),
                            value: Value::Slice {
                                r#type: "[]int".into(),
                                address: 0xc000020000,
                                len: 5,
                                cap: 5,
                                items: Some(vec![Value::Int { value: 7 }, Value::Int { value: 8 }]),
                                more: 3,
                            },
                        },
                    ],
                ),
                (
                    "Results".into(),
                    vec![NamedValue {
                        name: "~r0".into(),
                        value: Value::Int { value: 9900 },
                    }],
                ),
            ],
        )
    }

    #[test]
    fn one_frame_at_the_hit_with_its_scopes() {
        let s = snapshot();
        assert_eq!(s.thread_name(), "main.foo: latest hit (snapshot)");
        let stack = s.stack_trace();
        assert_eq!(stack["stackFrames"][0]["line"], 5);
        assert_eq!(stack["stackFrames"][0]["source"]["path"], "/w/main.go");
        let scopes = s.scopes();
        assert_eq!(scopes["scopes"][0]["name"], "Arguments");
        assert_eq!(scopes["scopes"][0]["namedVariables"], 2);
        assert_eq!(scopes["scopes"][1]["name"], "Results");
        assert_eq!(s.stopped()["reason"], "snapshot");
    }

    #[test]
    fn values_expand_read_only_through_pointers_and_elements() {
        let mut s = snapshot();
        let args = s.variables(1).unwrap_or_default();
        let p = &args["variables"][0];
        assert_eq!(p["name"], "p");
        assert_eq!(p["type"], "*main.Point");
        assert_eq!(p["presentationHint"]["attributes"][0], "readOnly");
        let p_ref = p["variablesReference"].as_i64().unwrap_or(0);
        assert!(p_ref > 0);
        let fields = s.variables(p_ref).unwrap_or_default();
        assert_eq!(fields["variables"][0]["name"], "X");
        assert_eq!(fields["variables"][0]["value"], "1");
        assert_eq!(fields["variables"][0]["variablesReference"], 0);

        let xs_ref = args["variables"][1]["variablesReference"]
            .as_i64()
            .unwrap_or(0);
        let items = s.variables(xs_ref).unwrap_or_default();
        let names: Vec<&str> = items["variables"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v["name"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(names, ["[0]", "[1]", "..."]);

        let results = s.variables(2).unwrap_or_default();
        assert_eq!(results["variables"][0]["value"], "9900");
        assert!(s.variables(99).is_none());
        assert!(s.variables(0).is_none());
    }
}
