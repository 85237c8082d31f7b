//! Evaluating an expression over a hit's decoded values: paths through
//! fields, pointers, indexes and `len()`, comparisons of scalars, and the
//! path expressions a logpoint captures when its probe fires ([`paths`]).

use anyhow::{anyhow, bail, Result};

use super::{Expr, Op, Scalar};
use crate::plan::{Path, PathStep};
use crate::value::{NamedValue, Value};

/// What an expression evaluates to.
#[derive(Debug, Clone)]
pub enum Out {
    Scalar(Scalar),
    Value(Value),
}

fn scalar_of(v: &Value) -> Result<Scalar> {
    Ok(match v {
        Value::Bool { value } => Scalar::Bool(*value),
        Value::Int { value } => Scalar::Int(*value as i128),
        Value::Uint { value } => Scalar::Int(*value as i128),
        Value::Float { value, .. } => Scalar::Float(*value),
        Value::String { value, .. } => Scalar::Str(value.clone()),
        Value::Pointer { address, .. } | Value::Ref { address, .. } => {
            Scalar::Int(*address as i128)
        }
        Value::Nil { .. } => Scalar::Nil,
        Value::Named { value, .. } => scalar_of(value)?,
        Value::Unreadable { reason } => bail!("{reason}"),
        other => bail!("{} cannot be compared", other.go()),
    })
}

/// The name under which a path expression's captured value is stored:
/// `x`, `x.f`, `(*x)`, `x[3]`; `None` for anything that is not a path.
pub fn canonical(e: &Expr) -> Option<String> {
    Some(match e {
        Expr::Var(v) => v.clone(),
        Expr::Field(b, f) => format!("{}.{f}", canonical(b)?),
        Expr::Deref(b) => format!("(*{})", canonical(b)?),
        Expr::Index(b, i) => match &**i {
            Expr::Lit(Scalar::Int(n)) if *n >= 0 => format!("{}[{n}]", canonical(b)?),
            _ => return None,
        },
        _ => return None,
    })
}

/// The path expressions in `e` that go through a field, pointer or index,
/// for the planner to capture.
pub fn paths(e: &Expr, out: &mut Vec<Path>) {
    fn steps(e: &Expr, out: &mut Vec<PathStep>) -> Option<String> {
        match e {
            Expr::Var(v) => Some(v.clone()),
            Expr::Field(b, f) => {
                let base = steps(b, out)?;
                out.push(PathStep::Field(f.clone()));
                Some(base)
            }
            Expr::Deref(b) => {
                let base = steps(b, out)?;
                out.push(PathStep::Deref);
                Some(base)
            }
            Expr::Index(b, i) => match &**i {
                Expr::Lit(Scalar::Int(n)) if *n >= 0 => {
                    let base = steps(b, out)?;
                    out.push(PathStep::Index(*n as u64));
                    Some(base)
                }
                _ => None,
            },
            _ => None,
        }
    }
    match e {
        Expr::Field(..) | Expr::Deref(_) | Expr::Index(..) => {
            let mut s = Vec::new();
            if let (Some(base), Some(name)) = (steps(e, &mut s), canonical(e)) {
                if !out.iter().any(|p| p.name == name) {
                    out.push(Path {
                        name,
                        base,
                        steps: s,
                    });
                }
            }
        }
        _ => {}
    }
    match e {
        Expr::Field(b, _) | Expr::Deref(b) | Expr::Len(b) | Expr::Not(b) => paths(b, out),
        Expr::Index(a, b) | Expr::And(a, b) | Expr::Or(a, b) | Expr::Cmp(a, _, b) => {
            paths(a, out);
            paths(b, out);
        }
        Expr::Lit(_) | Expr::Var(_) => {}
    }
}

/// The variables `e` names, each once, in order of appearance.
pub fn variables(e: &Expr, out: &mut Vec<String>) {
    match e {
        Expr::Var(v) => {
            if !out.contains(v) {
                out.push(v.clone());
            }
        }
        Expr::Field(b, _) | Expr::Deref(b) | Expr::Len(b) | Expr::Not(b) => variables(b, out),
        Expr::Index(a, b) | Expr::And(a, b) | Expr::Or(a, b) | Expr::Cmp(a, _, b) => {
            variables(a, out);
            variables(b, out);
        }
        Expr::Lit(_) => {}
    }
}

pub(super) fn eval(e: &Expr, vars: &[NamedValue]) -> Result<Out> {
    if matches!(e, Expr::Field(..) | Expr::Deref(_) | Expr::Index(..)) {
        if let Some(name) = canonical(e) {
            if let Some(v) = vars.iter().rev().find(|v| v.name == name) {
                // A captured `s[9]` read the backing array: past `len` it
                // is out of range all the same.
                if let Expr::Index(base, index) = e {
                    if let Ok(Out::Value(b)) = eval(base, vars) {
                        if let Value::Slice { len, .. } = peel(b) {
                            if let Expr::Lit(Scalar::Int(i)) = **index {
                                if i >= len as i128 {
                                    bail!("index {i} out of range [0:{len}]");
                                }
                            }
                        }
                    }
                }
                return match &v.value {
                    Value::Unreadable { reason } => bail!("{reason}"),
                    value => Ok(Out::Value(value.clone())),
                };
            }
        }
    }
    Ok(match e {
        Expr::Lit(s) => Out::Scalar(s.clone()),
        Expr::Var(name) => match vars.iter().rev().find(|v| &v.name == name) {
            Some(v) => match &v.value {
                Value::Unreadable { reason } => bail!("{name}: {reason}"),
                value => Out::Value(value.clone()),
            },
            None => bail!("no variable {name} here"),
        },
        Expr::Field(base, field) => {
            // Go's `p.f` reads through a pointer to a struct.
            let v = match peel(value_of(eval(base, vars)?, "a literal has no fields")?) {
                Value::Ref { target, .. } => peel(readable(*target)?),
                v => v,
            };
            match v {
                Value::Struct { fields, .. } => match fields.into_iter().find(|f| &f.name == field)
                {
                    Some(f) => Out::Value(f.value),
                    None => bail!("no field {field}"),
                },
                Value::Pointer { r#type, .. } => {
                    bail!("{field}: the {type} was not followed (depth limit)")
                }
                Value::Nil { r#type } => bail!("{field}: nil {type}"),
                Value::Unreadable { reason } => bail!("{reason}"),
                Value::Elided { r#type } => bail!("{field}: {type} not captured (depth limit)"),
                other => bail!("{} has no field {field}", other.go()),
            }
        }
        Expr::Index(base, index) => {
            let base = peel(value_of(eval(base, vars)?, "a literal cannot be indexed")?);
            let index = as_scalar(eval(index, vars)?)?;
            Out::Value(index_into(base, &index)?)
        }
        Expr::Deref(inner) => {
            match peel(value_of(eval(inner, vars)?, "a literal is no pointer")?) {
                Value::Ref { target, .. } => Out::Value(readable(*target)?),
                Value::Pointer { r#type, address } => {
                    bail!("{type} at {address:#x} was not followed (depth limit)")
                }
                Value::Nil { r#type } => bail!("nil {type}"),
                Value::Unreadable { reason } => bail!("{reason}"),
                other => bail!("{} is not a pointer", other.go()),
            }
        }
        Expr::Len(inner) => Out::Scalar(Scalar::Int(length(eval(inner, vars)?)? as i128)),
        Expr::Not(inner) => Out::Scalar(Scalar::Bool(!truth(inner, vars)?)),
        Expr::And(a, b) => Out::Scalar(Scalar::Bool(truth(a, vars)? && truth(b, vars)?)),
        Expr::Or(a, b) => Out::Scalar(Scalar::Bool(truth(a, vars)? || truth(b, vars)?)),
        Expr::Cmp(a, op, b) => {
            let (a, b) = (eval(a, vars)?, eval(b, vars)?);
            if matches!(op, Op::Eq | Op::Ne) {
                if let Some(equal) = cut_string_equals(&a, &b).or_else(|| cut_string_equals(&b, &a))
                {
                    return Ok(Out::Scalar(Scalar::Bool(equal? == (*op == Op::Eq))));
                }
            }
            let (a, b) = (as_scalar(a)?, as_scalar(b)?);
            Out::Scalar(Scalar::Bool(compare(&a, *op, &b)?))
        }
    })
}

/// `a == b` when `a` is a string cut at the length limit and `b` a
/// literal: the bytes past the limit decide only when the captured ones
/// agree with the literal and it is longer. `None` when not that case.
fn cut_string_equals(a: &Out, b: &Out) -> Option<Result<bool>> {
    let (Out::Value(v), Out::Scalar(Scalar::Str(lit))) = (a, b) else {
        return None;
    };
    let Value::String { value, more, raw } = peeled(v) else {
        return None;
    };
    if *more == 0 {
        return None;
    }
    let got = raw.as_deref().unwrap_or(value.as_bytes());
    let whole = got.len() as u64 + more;
    Some(
        if whole != lit.len() as u64 || !lit.as_bytes().starts_with(got) {
            Ok(false)
        } else {
            Err(anyhow!(
                "the string is longer than the {} bytes captured (see maxStringLen)",
                got.len()
            ))
        },
    )
}

/// The value an expression names; a literal is refused with `what`.
/// Values that were not read (unreadable, or elided by a limit) fail with
/// why, so the caller only sees values it can look into.
fn value_of(o: Out, what: &str) -> Result<Value> {
    match o {
        Out::Value(v) => readable(v),
        Out::Scalar(_) => bail!("{what}"),
    }
}

fn readable(v: Value) -> Result<Value> {
    match v {
        Value::Unreadable { reason } => bail!("{reason}"),
        Value::Elided { r#type } => bail!("{type} not captured (depth limit)"),
        v => Ok(v),
    }
}

/// The value under any named types (`main.Celsius(21.5)` is a float).
fn peel(mut v: Value) -> Value {
    while let Value::Named { value, .. } = v {
        v = *value;
    }
    v
}

/// [`peel`] without taking the value: to look at its kind, not to keep it.
fn peeled(mut v: &Value) -> &Value {
    while let Value::Named { value, .. } = v {
        v = value;
    }
    v
}

/// `len(x)` of a string, slice, array, map or channel, as Go counts it.
fn length(o: Out) -> Result<u64> {
    let v = match o {
        Out::Scalar(Scalar::Str(s)) => return Ok(s.len() as u64),
        Out::Scalar(s) => bail!("len() of {s:?}"),
        Out::Value(v) => peel(readable(v)?),
    };
    Ok(match v {
        Value::String { value, more, raw } => {
            raw.map(|r| r.len()).unwrap_or(value.len()) as u64 + more
        }
        Value::Slice { len, .. } | Value::Chan { len, .. } => len,
        Value::Array { items, more, .. } => items.len() as u64 + more,
        Value::Map {
            entries: Some(e),
            more,
            ..
        } => e.len() as u64 + more,
        Value::Map { .. } => bail!("len(): the map's contents were not captured"),
        // A nil slice, map or channel.
        Value::Nil { .. } => 0,
        // `len(p)` of a pointer to an array.
        Value::Ref { target, .. } if matches!(peeled(&target), Value::Array { .. }) => {
            length(Out::Value(*target))?
        }
        Value::Unreadable { reason } => bail!("{reason}"),
        other => bail!("len() of {} is not defined", other.go()),
    })
}

/// `base[index]` on a decoded slice, array, string or map. Only the
/// elements the value limits captured can be read; an index past the
/// length is an error like Go's.
fn index_into(base: Value, index: &Scalar) -> Result<Value> {
    let position = |len: u64| -> Result<usize> {
        match index {
            Scalar::Int(i) if *i >= 0 && (*i as u128) < len as u128 => Ok(*i as usize),
            Scalar::Int(i) => bail!("index {i} out of range [0:{len}]"),
            other => bail!("index {other:?} is not an integer"),
        }
    };
    let captured = |items: Vec<Value>, i: usize| -> Result<Value> {
        let shown = items.len();
        items.into_iter().nth(i).ok_or_else(|| {
            anyhow!("element [{i}] not captured (only {shown} are, see the value limits)")
        })
    };
    match base {
        Value::Slice { len, items, .. } => {
            let i = position(len)?;
            match items {
                Some(items) => readable(captured(items, i)?),
                None => bail!("the slice's elements were not captured"),
            }
        }
        Value::Array { items, more, .. } => {
            let i = position(items.len() as u64 + more)?;
            readable(captured(items, i)?)
        }
        Value::Ref { target, .. } if matches!(peeled(&target), Value::Array { .. }) => {
            index_into(peel(readable(*target)?), index)
        }
        Value::String { value, more, raw } => {
            let bytes = raw.unwrap_or_else(|| value.into_bytes());
            let i = position(bytes.len() as u64 + more)?;
            match bytes.get(i) {
                Some(b) => Ok(Value::Uint { value: *b as u64 }),
                None => bail!("byte [{i}] not captured (see the value limits)"),
            }
        }
        Value::Map {
            entries: Some(entries),
            more,
            ..
        } => {
            for e in entries {
                if scalar_of(&e.key).ok().as_ref() == Some(index) {
                    return Ok(e.value);
                }
            }
            if more > 0 {
                bail!("key {index:?} is not among the captured entries");
            }
            bail!("no key {index:?} in the map")
        }
        Value::Map { .. } => bail!("the map's contents were not captured"),
        Value::Nil { r#type } => bail!("index into nil {type}"),
        Value::Unreadable { reason } => bail!("{reason}"),
        other => bail!("{} cannot be indexed", other.go()),
    }
}

fn as_scalar(o: Out) -> Result<Scalar> {
    match o {
        Out::Scalar(s) => Ok(s),
        Out::Value(v) => scalar_of(&v),
    }
}

fn compare(a: &Scalar, op: Op, b: &Scalar) -> Result<bool> {
    use std::cmp::Ordering;
    let ord: Option<Ordering> = match (a, b) {
        (Scalar::Int(x), Scalar::Int(y)) => Some(x.cmp(y)),
        (Scalar::Float(x), Scalar::Float(y)) => x.partial_cmp(y),
        (Scalar::Int(x), Scalar::Float(y)) => (*x as f64).partial_cmp(y),
        (Scalar::Float(x), Scalar::Int(y)) => x.partial_cmp(&(*y as f64)),
        (Scalar::Str(x), Scalar::Str(y)) => Some(x.cmp(y)),
        (Scalar::Bool(x), Scalar::Bool(y)) if matches!(op, Op::Eq | Op::Ne) => Some(x.cmp(y)),
        (Scalar::Nil, Scalar::Nil) => Some(Ordering::Equal),
        (Scalar::Nil, Scalar::Int(0)) | (Scalar::Int(0), Scalar::Nil) => Some(Ordering::Equal),
        (Scalar::Nil, _) | (_, Scalar::Nil) if matches!(op, Op::Eq | Op::Ne) => {
            Some(Ordering::Less)
        }
        _ => bail!("cannot compare {a:?} with {b:?}"),
    };
    let Some(ord) = ord else { return Ok(false) };
    Ok(match op {
        Op::Eq => ord == Ordering::Equal,
        Op::Ne => ord != Ordering::Equal,
        Op::Lt => ord == Ordering::Less,
        Op::Le => ord != Ordering::Greater,
        Op::Gt => ord == Ordering::Greater,
        Op::Ge => ord != Ordering::Less,
    })
}

fn truth(e: &Expr, vars: &[NamedValue]) -> Result<bool> {
    match as_scalar(eval(e, vars)?)? {
        Scalar::Bool(b) => Ok(b),
        other => bail!("{other:?} is not a boolean"),
    }
}

/// Evaluates a condition: `Ok(true)` to report the hit.
pub fn holds(e: &Expr, vars: &[NamedValue]) -> Result<bool> {
    truth(e, vars)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::parse;

    fn vars() -> Vec<NamedValue> {
        vec![
            NamedValue::new("x", Value::Int { value: 42 }),
            NamedValue::new("s", Value::string("go")),
            NamedValue {
                name: "p".into(),
                value: Value::Struct {
                    r#type: "main.Point".into(),
                    fields: vec![crate::value::FieldValue {
                        name: "X".into(),
                        value: Value::Int { value: 3 },
                    }],
                },
            },
        ]
    }

    #[test]
    fn conditions() {
        let v = vars();
        let t = |s: &str| holds(&parse(s).unwrap(), &v).unwrap();
        assert!(t(r#"x > 10 && s == "go""#));
        assert!(!t(r#"x > 10 && s != "go""#));
        assert!(t("!(x < 10) || false"));
        assert!(t("p.X == 3 && len(s) == 2"));
        assert!(t("x > -1 && -2.5 < x && p.X != -3"));
        assert!(parse("-x > 1").is_err());
        assert!(holds(&parse("y > 1").unwrap(), &v).is_err());
    }

    #[test]
    fn strings_cut_at_the_limit_compare_by_their_whole_length() {
        let cut = vec![NamedValue {
            name: "s".into(),
            value: Value::String {
                value: "abc".into(),
                more: 2,
                raw: None,
            },
        }];
        let t = |s: &str| holds(&parse(s).unwrap(), &cut);
        // Five bytes in all: never equal to a shorter or longer literal.
        assert!(!t(r#"s == "abc""#).unwrap());
        assert!(t(r#"s != "abcdefg""#).unwrap());
        assert!(!t(r#"s == "xbcde""#).unwrap());
        // Same length, same captured prefix: the missing bytes decide.
        assert!(t(r#"s == "abcde""#).is_err());
    }

    fn int(value: i64) -> Value {
        Value::Int { value }
    }

    #[test]
    fn lengths_indexes_and_pointers_on_decoded_values() {
        let point = Value::Struct {
            r#type: "main.Point".into(),
            fields: vec![crate::value::FieldValue {
                name: "X".into(),
                value: int(3),
            }],
        };
        let mut v = vars();
        v.extend([
            NamedValue {
                name: "xs".into(),
                value: Value::Slice {
                    r#type: "[]int".into(),
                    address: 0x1000,
                    len: 5,
                    cap: 8,
                    items: Some(vec![int(10), int(11), int(12)]),
                    more: 2,
                },
            },
            NamedValue {
                name: "arr".into(),
                value: Value::Array {
                    r#type: "[2]int".into(),
                    items: vec![int(7), int(8)],
                    more: 0,
                },
            },
            NamedValue {
                name: "m".into(),
                value: Value::Map {
                    r#type: "map[string]int".into(),
                    entries: Some(vec![crate::value::Entry {
                        key: Value::String {
                            value: "a".into(),
                            more: 0,
                            raw: None,
                        },
                        value: int(1),
                    }]),
                    more: 0,
                },
            },
            NamedValue {
                name: "pp".into(),
                value: Value::Ref {
                    r#type: "*main.Point".into(),
                    address: 0x2000,
                    target: Box::new(point),
                },
            },
            NamedValue {
                name: "none".into(),
                value: Value::Nil {
                    r#type: "*main.Point".into(),
                },
            },
            NamedValue {
                name: "i".into(),
                value: int(1),
            },
        ]);
        let t = |s: &str| holds(&parse(s).unwrap(), &v).unwrap();
        assert!(t(
            "len(xs) == 5 && len(arr) == 2 && len(m) == 1 && len(none) == 0"
        ));
        assert!(t("xs[i] == 11 && xs[len(arr)] == 12"));
        assert!(t(r#"m["a"] == 1 && arr[i] == 8 && s[i] == 111"#));
        assert!(t("pp.X == 3 && (*pp).X == 3"));
        let e = |s: &str| format!("{:#}", holds(&parse(s).unwrap(), &v).unwrap_err());
        assert_eq!(
            e("xs[4] == 0"),
            "element [4] not captured (only 3 are, see the value limits)"
        );
        assert_eq!(e("xs[5] == 0"), "index 5 out of range [0:5]");
        assert_eq!(e("none.X == 0"), "X: nil *main.Point");
        assert_eq!(e("*none == 0"), "nil *main.Point");
        assert_eq!(e(r#"m["b"] == 0"#), "no key Str(\"b\") in the map");
        // A constant index captured at a logpoint is still checked
        // against the slice's length.
        v.push(NamedValue {
            name: "xs[6]".into(),
            value: int(99),
        });
        let err = holds(&parse("xs[6] == 99").unwrap(), &v).unwrap_err();
        assert_eq!(format!("{err:#}"), "index 6 out of range [0:5]");
    }
}
