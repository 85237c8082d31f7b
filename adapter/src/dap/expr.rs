//! The small expression language of logpoints and traces, evaluated in the
//! adapter against a hit's decoded values.
//!
//! * Conditions: `x > 10 && s == "go"` — comparisons (`== != < <= > >=`) of
//!   paths and literals (integers, floats, strings, `true`, `false`, `nil`),
//!   combined with `&&`, `||`, `!` and parentheses.
//! * Paths: a variable `x`, a field `a.b`, `len(s)`, `*p`, `a[3]`, and
//!   chains of them (`p.next.val` through pointers). In a logpoint a path
//!   through a pointer or a slice is captured when the probe fires (see
//!   [`paths`] and `plan::Path`); elsewhere only what the hit's values hold
//!   can be read, and the rest fails with a clear message.
//! * Hit conditions: `5` (the 5th hit), `>= 5`, `% 10 == 0` (every 10th;
//!   `% 10` alone means the same).
//! * Log messages: `{expr}` is replaced by the value, `{{`/`}}` are braces,
//!   `$FUNCTION`, `$GOROUTINE`, `$THREAD` name the hit's context. An
//!   expression that cannot be read shows `<error: why>` in place.

use anyhow::{anyhow, bail, Result};

use crate::plan::{Path, PathStep};
use crate::trace::{Event, NamedValue};
use crate::value::Value;

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Lit(Scalar),
    Var(String),
    Field(Box<Expr>, String),
    Index(Box<Expr>, Box<Expr>),
    Deref(Box<Expr>),
    Len(Box<Expr>),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Cmp(Box<Expr>, Op, Box<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Int(i128),
    Float(f64),
    Str(String),
    Bool(bool),
    Nil,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Int(i128),
    Float(f64),
    Str(String),
    Sym(&'static str),
}

fn lex(s: &str) -> Result<Vec<Tok>> {
    let b: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    const SYMS: [&str; 16] = [
        "&&", "||", "==", "!=", "<=", ">=", "<", ">", "!", "(", ")", "[", "]", ".", "*", "%",
    ];
    while i < b.len() {
        let c = b[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == '.' || b[i] == '_') {
                i += 1;
            }
            let text: String = b[start..i].iter().filter(|&&c| c != '_').collect();
            if let Some(hex) = text.strip_prefix("0x") {
                out.push(Tok::Int(
                    i128::from_str_radix(hex, 16).map_err(|_| anyhow!("bad number {text}"))?,
                ));
            } else if text.contains('.') || text.contains('e') {
                out.push(Tok::Float(
                    text.parse().map_err(|_| anyhow!("bad number {text}"))?,
                ));
            } else {
                out.push(Tok::Int(
                    text.parse().map_err(|_| anyhow!("bad number {text}"))?,
                ));
            }
        } else if c.is_alphabetic() || c == '_' || c == '~' {
            let start = i;
            while i < b.len() && (b[i].is_alphanumeric() || b[i] == '_' || b[i] == '~') {
                i += 1;
            }
            out.push(Tok::Ident(b[start..i].iter().collect()));
        } else if c == '"' || c == '`' {
            let quote = c;
            i += 1;
            let mut text = String::new();
            loop {
                let Some(&c) = b.get(i) else {
                    bail!("unterminated string");
                };
                i += 1;
                if c == quote {
                    break;
                }
                if c == '\\' && quote == '"' {
                    let Some(&e) = b.get(i) else {
                        bail!("unterminated string");
                    };
                    i += 1;
                    text.push(match e {
                        'n' => '\n',
                        't' => '\t',
                        other => other,
                    });
                } else {
                    text.push(c);
                }
            }
            out.push(Tok::Str(text));
        } else {
            let rest: String = b[i..b.len().min(i + 2)].iter().collect();
            let Some(sym) = SYMS.iter().find(|s| rest.starts_with(**s)) else {
                bail!("unexpected character {c:?}");
            };
            out.push(Tok::Sym(sym));
            i += sym.len();
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn eat(&mut self, sym: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Sym(s)) if *s == sym) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn or(&mut self) -> Result<Expr> {
        let mut e = self.and()?;
        while self.eat("||") {
            e = Expr::Or(Box::new(e), Box::new(self.and()?));
        }
        Ok(e)
    }
    fn and(&mut self) -> Result<Expr> {
        let mut e = self.cmp()?;
        while self.eat("&&") {
            e = Expr::And(Box::new(e), Box::new(self.cmp()?));
        }
        Ok(e)
    }
    fn cmp(&mut self) -> Result<Expr> {
        let left = self.unary()?;
        let op = match self.peek() {
            Some(Tok::Sym("==")) => Op::Eq,
            Some(Tok::Sym("!=")) => Op::Ne,
            Some(Tok::Sym("<")) => Op::Lt,
            Some(Tok::Sym("<=")) => Op::Le,
            Some(Tok::Sym(">")) => Op::Gt,
            Some(Tok::Sym(">=")) => Op::Ge,
            _ => return Ok(left),
        };
        self.pos += 1;
        Ok(Expr::Cmp(Box::new(left), op, Box::new(self.unary()?)))
    }
    fn unary(&mut self) -> Result<Expr> {
        if self.eat("!") {
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        if self.eat("*") {
            return Ok(Expr::Deref(Box::new(self.unary()?)));
        }
        self.postfix()
    }
    fn postfix(&mut self) -> Result<Expr> {
        let mut e = self.primary()?;
        loop {
            if self.eat(".") {
                match self.peek().cloned() {
                    Some(Tok::Ident(name)) => {
                        self.pos += 1;
                        e = Expr::Field(Box::new(e), name);
                    }
                    _ => bail!("expected a field name after '.'"),
                }
            } else if self.eat("[") {
                let i = self.or()?;
                if !self.eat("]") {
                    bail!("expected ']'");
                }
                e = Expr::Index(Box::new(e), Box::new(i));
            } else {
                return Ok(e);
            }
        }
    }
    fn primary(&mut self) -> Result<Expr> {
        let Some(tok) = self.peek().cloned() else {
            bail!("expression ends too early");
        };
        self.pos += 1;
        Ok(match tok {
            Tok::Int(n) => Expr::Lit(Scalar::Int(n)),
            Tok::Float(f) => Expr::Lit(Scalar::Float(f)),
            Tok::Str(s) => Expr::Lit(Scalar::Str(s)),
            Tok::Ident(id) if id == "true" => Expr::Lit(Scalar::Bool(true)),
            Tok::Ident(id) if id == "false" => Expr::Lit(Scalar::Bool(false)),
            Tok::Ident(id) if id == "nil" => Expr::Lit(Scalar::Nil),
            Tok::Ident(id) if id == "len" && self.eat("(") => {
                let inner = self.or()?;
                if !self.eat(")") {
                    bail!("expected ')' after len(...");
                }
                Expr::Len(Box::new(inner))
            }
            Tok::Ident(id) => Expr::Var(id),
            Tok::Sym("(") => {
                let e = self.or()?;
                if !self.eat(")") {
                    bail!("expected ')'");
                }
                e
            }
            Tok::Sym(s) => bail!("unexpected '{s}'"),
        })
    }
}

/// Parses an expression (a condition, or the inside of `{...}`).
pub fn parse(s: &str) -> Result<Expr> {
    let mut p = Parser {
        toks: lex(s)?,
        pos: 0,
    };
    let e = p.or()?;
    if p.pos != p.toks.len() {
        bail!("unexpected text after the expression in {s:?}");
    }
    Ok(e)
}

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
        Value::Pointer { address, .. } => Scalar::Int(*address as i128),
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

fn eval(e: &Expr, vars: &[NamedValue]) -> Result<Out> {
    if matches!(e, Expr::Field(..) | Expr::Deref(_) | Expr::Index(..)) {
        if let Some(name) = canonical(e) {
            if let Some(v) = vars.iter().rev().find(|v| v.name == name) {
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
            let mut v = match eval(base, vars)? {
                Out::Value(v) => v,
                Out::Scalar(_) => bail!("a literal has no field {field}"),
            };
            while let Value::Named { value, .. } = v {
                v = *value;
            }
            match v {
                Value::Struct { fields, .. } => match fields.into_iter().find(|f| &f.name == field)
                {
                    Some(f) => Out::Value(f.value),
                    None => bail!("no field {field}"),
                },
                Value::Pointer { .. } => {
                    bail!("{field}: the pointed-to struct is not captured")
                }
                other => bail!("{} has no field {field}", other.go()),
            }
        }
        Expr::Index(_, _) => {
            bail!("cannot index here (only constant indexes in logpoints are captured)")
        }
        Expr::Deref(_) => {
            bail!("cannot dereference here (pointees are captured in logpoints only)")
        }
        Expr::Len(inner) => match eval(inner, vars)? {
            Out::Value(Value::String { value, more, .. }) => {
                Out::Scalar(Scalar::Int(value.len() as i128 + more as i128))
            }
            Out::Scalar(Scalar::Str(s)) => Out::Scalar(Scalar::Int(s.len() as i128)),
            _ => bail!("len() of this value is not supported"),
        },
        Expr::Not(inner) => Out::Scalar(Scalar::Bool(!truth(inner, vars)?)),
        Expr::And(a, b) => Out::Scalar(Scalar::Bool(truth(a, vars)? && truth(b, vars)?)),
        Expr::Or(a, b) => Out::Scalar(Scalar::Bool(truth(a, vars)? || truth(b, vars)?)),
        Expr::Cmp(a, op, b) => {
            let a = as_scalar(eval(a, vars)?)?;
            let b = as_scalar(eval(b, vars)?)?;
            Out::Scalar(Scalar::Bool(compare(&a, *op, &b)?))
        }
    })
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

/// A hit condition over the hit count (1 for the first hit).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HitCondition {
    Cmp(Op, u64),
    Every(u64),
}

impl HitCondition {
    pub fn parse(s: &str) -> Result<HitCondition> {
        let s = s.trim();
        let num = |t: &str| -> Result<u64> {
            t.trim()
                .parse()
                .map_err(|_| anyhow!("bad hit condition {s:?}: expected a number, `>= N` or `% N`"))
        };
        if let Some(rest) = s.strip_prefix('%') {
            let n = match rest.split_once("==") {
                Some((n, zero)) if num(zero)? == 0 => num(n)?,
                Some(_) => bail!("bad hit condition {s:?}: only `% N == 0` is supported"),
                None => num(rest)?,
            };
            if n == 0 {
                bail!("bad hit condition {s:?}: modulo zero");
            }
            return Ok(HitCondition::Every(n));
        }
        for (p, op) in [
            (">=", Op::Ge),
            ("<=", Op::Le),
            ("==", Op::Eq),
            ("!=", Op::Ne),
            (">", Op::Gt),
            ("<", Op::Lt),
        ] {
            if let Some(rest) = s.strip_prefix(p) {
                return Ok(HitCondition::Cmp(op, num(rest)?));
            }
        }
        Ok(HitCondition::Cmp(Op::Eq, num(s)?))
    }

    pub fn holds(self, hits: u64) -> bool {
        match self {
            HitCondition::Every(n) => hits.is_multiple_of(n),
            HitCondition::Cmp(op, n) => match op {
                Op::Eq => hits == n,
                Op::Ne => hits != n,
                Op::Lt => hits < n,
                Op::Le => hits <= n,
                Op::Gt => hits > n,
                Op::Ge => hits >= n,
            },
        }
    }
}

/// A parsed log message.
#[derive(Debug, Clone)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone)]
enum Part {
    Text(String),
    Expr(std::result::Result<Expr, String>),
    Function,
    Goroutine,
    Thread,
}

impl Template {
    /// The expressions inside `{...}` that parsed.
    pub fn exprs(&self) -> impl Iterator<Item = &Expr> {
        self.parts.iter().filter_map(|p| match p {
            Part::Expr(Ok(e)) => Some(e),
            _ => None,
        })
    }

    pub fn parse(s: &str) -> Template {
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut rest = s;
        while let Some(c) = rest.chars().next() {
            if rest.starts_with("{{") {
                text.push('{');
                rest = &rest[2..];
            } else if rest.starts_with("}}") {
                text.push('}');
                rest = &rest[2..];
            } else if c == '{' {
                let Some(end) = rest.find('}') else {
                    text.push_str(rest);
                    break;
                };
                let inner = &rest[1..end];
                parts.push(Part::Text(std::mem::take(&mut text)));
                parts.push(Part::Expr(parse(inner).map_err(|e| format!("{e:#}"))));
                rest = &rest[end + 1..];
            } else if let Some((token, part)) = [
                ("$FUNCTION", Part::Function),
                ("$GOROUTINE", Part::Goroutine),
                ("$THREAD", Part::Thread),
            ]
            .into_iter()
            .find(|(t, _)| rest.starts_with(t))
            {
                parts.push(Part::Text(std::mem::take(&mut text)));
                parts.push(part);
                rest = &rest[token.len()..];
            } else {
                text.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
        parts.push(Part::Text(text));
        Template { parts }
    }

    /// The message for one hit.
    pub fn render(&self, event: &Event) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Function => out.push_str(&event.function),
                Part::Goroutine => match event.goroutine {
                    Some(g) => out.push_str(&g.to_string()),
                    None => out.push('?'),
                },
                Part::Thread => out.push_str(&event.thread.to_string()),
                Part::Expr(Err(e)) => out.push_str(&format!("<error: {e}>")),
                Part::Expr(Ok(e)) => match eval(e, &event.values) {
                    Ok(Out::Value(v)) => out.push_str(&v.go()),
                    Ok(Out::Scalar(s)) => out.push_str(&match s {
                        Scalar::Int(n) => n.to_string(),
                        Scalar::Float(f) => f.to_string(),
                        Scalar::Str(s) => crate::value::go_quote(&s),
                        Scalar::Bool(b) => b.to_string(),
                        Scalar::Nil => String::from("nil"),
                    }),
                    Err(e) => out.push_str(&format!("<error: {e:#}>")),
                },
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vec<NamedValue> {
        vec![
            NamedValue {
                name: "x".into(),
                value: Value::Int { value: 42 },
            },
            NamedValue {
                name: "s".into(),
                value: Value::String {
                    value: "go".into(),
                    more: 0,
                    raw: None,
                },
            },
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
        assert!(holds(&parse("y > 1").unwrap(), &v).is_err());
    }

    #[test]
    fn hit_conditions() {
        let h = |s: &str| HitCondition::parse(s).unwrap();
        assert!(h("5").holds(5) && !h("5").holds(6));
        assert!(h(">= 5").holds(7) && !h(">= 5").holds(4));
        assert!(h("% 10 == 0").holds(20) && !h("% 10 == 0").holds(21));
        assert!(h("%3").holds(3));
        assert!(HitCondition::parse("abc").is_err());
    }
}
