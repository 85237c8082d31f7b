//! Writing [`Value`]s out in each language's own notation, as its debugger
//! or its own formatting prints them: Go as Delve does ([`go`]), C and C++
//! as gdb does ([`c`]), Rust as `{:?}` does ([`rust`]). A language gets
//! its notation by a [`Notation`] variant and a module of its own here;
//! nothing else changes.

pub mod c;
pub mod go;
pub mod rust;

use super::Value;
use crate::image::Lang;

pub use go::{go_quote, go_quote_bytes};

/// The notation values of one language are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notation {
    Go,
    C,
    Rust,
}

impl Notation {
    /// The notation of code in `lang` (C's for C, C++ and code of
    /// unknown language).
    pub fn of(lang: Lang) -> Notation {
        match lang {
            Lang::Go => Notation::Go,
            Lang::Rust => Notation::Rust,
            _ => Notation::C,
        }
    }

    /// `v` written in this notation.
    pub fn show(self, v: &Value) -> String {
        match self {
            Notation::Go => v.go(),
            Notation::C => v.c(),
            Notation::Rust => v.rust(),
        }
    }
}
