//! The small expression language of conditions and log messages, shared by
//! both faces (DAP logpoints and traces, `logprobe trace --cond/--print`)
//! and evaluated against a hit's decoded values.
//!
//! * Conditions: `x > 10 && s == "go"` — comparisons (`== != < <= > >=`) of
//!   paths and literals (integers, floats, strings, `true`, `false`, `nil`),
//!   combined with `&&`, `||`, `!` and parentheses.
//! * Paths: a variable `x`, a field `a.b`, `len(s)` (strings, slices,
//!   arrays, maps, channels), `*p`, `a[3]`, `a[i]` / `m["k"]` with any
//!   expression as the index, and chains of them (`p.next.val` through
//!   pointers). In a logpoint a path with constant indexes through a
//!   pointer or a slice is captured when the probe fires (see [`paths`] and
//!   `plan::Path`). Everything else is evaluated on the hit's decoded values,
//!   which already follow pointers and hold slice, array and map elements up
//!   to the value limits: an element past them, or an index out of range,
//!   fails with a clear message.
//! * Hit conditions: `5` (the 5th hit), `>= 5`, `% 10 == 0` (every 10th;
//!   `% 10` alone means the same).
//! * Log messages: `{expr}` is replaced by the value, `{{`/`}}` are braces,
//!   `$FUNCTION`, `$GOROUTINE`, `$THREAD` name the hit's context. An
//!   expression that cannot be read shows `<error: why>` in place.
//!
//! [`parse`] reads an expression, [`eval`] evaluates it over decoded
//! values, [`hit`] holds hit conditions and [`template`] log messages.
//! What of a condition the probes can check themselves is compiled by
//! `plan::filter` from the same [`Expr`].

pub mod eval;
pub mod hit;
pub mod parse;
pub mod template;

pub use eval::{canonical, holds, paths, variables};
pub use hit::HitCondition;
pub use parse::parse;
pub use template::Template;

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

/// A comparison operator (shared with the backends' filters).
pub use crate::plan::CmpOp as Op;

#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Int(i128),
    Float(f64),
    Str(String),
    Bool(bool),
    Nil,
}
