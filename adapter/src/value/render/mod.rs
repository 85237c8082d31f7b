//! Writing [`Value`]s out in each language's own notation, as its debugger
//! prints them: Go as Delve does ([`go`]), C as gdb does ([`c`]). A
//! language gets its notation by a [`Notation`] variant and a module of
//! its own here (Rust's `{:?}` is the next); nothing else changes.

pub mod c;
pub mod go;

use super::Value;
use crate::image::Lang;

pub use go::{go_quote, go_quote_bytes};

/// The notation values of one language are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notation {
    Go,
    C,
}

impl Notation {
    /// The notation of code in `lang` (C's for everything but Go, until
    /// Rust has its own).
    pub fn of(lang: Lang) -> Notation {
        match lang {
            Lang::Go => Notation::Go,
            _ => Notation::C,
        }
    }

    /// `v` written in this notation.
    pub fn show(self, v: &Value) -> String {
        match self {
            Notation::Go => v.go(),
            Notation::C => v.c(),
        }
    }
}
