//! Log messages: text with `{expr}` replaced by values, `{{`/`}}` braces,
//! and `$FUNCTION`, `$GOROUTINE`, `$THREAD` naming the hit's context.

use super::eval::{eval, Out};
use super::{parse, Expr, Scalar};
use crate::value::{NamedValue, Notation, Value};

/// What a message can name about a hit besides its values.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub function: &'a str,
    pub goroutine: Option<u64>,
    pub thread: i32,
    /// The notation values are written in: the hit's language's.
    pub notation: Notation,
}

/// A parsed log message.
#[derive(Debug, Clone)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone)]
enum Part {
    Text(String),
    Expr(Expr),
    /// `{text}` that does not parse, and why.
    Bad(String, String),
    Function,
    Goroutine,
    Thread,
}

impl Template {
    /// The expressions inside `{...}` that parsed.
    pub fn exprs(&self) -> impl Iterator<Item = &Expr> {
        self.parts.iter().filter_map(|p| match p {
            Part::Expr(e) => Some(e),
            _ => None,
        })
    }

    /// The first `{...}` that does not parse: its text and why.
    pub fn bad(&self) -> Option<(&str, &str)> {
        self.parts.iter().find_map(|p| match p {
            Part::Bad(text, why) => Some((text.as_str(), why.as_str())),
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
                parts.push(match parse(inner) {
                    Ok(e) => Part::Expr(e),
                    Err(e) => Part::Bad(inner.to_string(), format!("{e:#}")),
                });
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

    /// The message for one hit with `values`.
    pub fn render(&self, cx: &Context<'_>, values: &[NamedValue]) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Function => out.push_str(cx.function),
                Part::Goroutine => match cx.goroutine {
                    Some(g) => out.push_str(&g.to_string()),
                    None => out.push('?'),
                },
                Part::Thread => out.push_str(&cx.thread.to_string()),
                Part::Bad(_, why) => out.push_str(&format!("<error: {why}>")),
                Part::Expr(e) => match eval(e, values) {
                    Ok(Out::Value(v)) => out.push_str(&cx.notation.show(&v)),
                    Ok(Out::Scalar(s)) => out.push_str(&match s {
                        Scalar::Int(n) => n.to_string(),
                        Scalar::Float(f) => f.to_string(),
                        Scalar::Str(s) => cx.notation.show(&Value::string(s)),
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

    #[test]
    fn messages_show_values_braces_and_the_hits_context() {
        let values = vec![
            NamedValue::new("x", Value::Int { value: 42 }),
            NamedValue::new("s", Value::string("go")),
        ];
        let cx = Context {
            function: "main.f",
            goroutine: Some(7),
            thread: 99,
            notation: Notation::Go,
        };
        let t = Template::parse(
            "$FUNCTION g=$GOROUTINE t=$THREAD x={x} s={s} {{x}} {\"lit\"} {nope} {x +}",
        );
        assert_eq!(
            t.render(&cx, &values),
            "main.f g=7 t=99 x=42 s=\"go\" {x} \"lit\" <error: no variable nope here> <error: unexpected character '+'>"
        );
        assert_eq!(t.exprs().count(), 4);
        assert_eq!(t.bad(), Some(("x +", "unexpected character '+'")));
        assert_eq!(Template::parse("{x} {{y}}").bad(), None);
        let no_goroutine = Context {
            goroutine: None,
            ..cx
        };
        assert_eq!(
            Template::parse("$GOROUTINE").render(&no_goroutine, &values),
            "?"
        );
    }
}
