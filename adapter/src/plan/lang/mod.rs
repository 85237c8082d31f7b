//! What a language's calling convention and runtime decide in a plan, one
//! module per convention: [`go`] (Go's ABIInternal, goroutines) and
//! [`sysv`] (C, C++ and Rust under the System V x86-64 ABI). Each says
//! where a function's entry probe goes, where its arguments and results
//! are at entry and at `RET`, and what every recipe of its code captures
//! first (Go: the goroutine id). A new convention is a new module and an
//! arm in [`of`]; the rest of the planner is shared.

pub mod go;
pub mod goabi;
pub mod sysv;

use super::site::{Insn, Site};
use super::{Recipe, Reg};
use crate::image::{Image, Lang, TypeId, TypeTable};

/// A register holding (part of) a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loc {
    Int(Reg),
    Float(u8),
}

/// One scalar piece of a value: bytes `[at, at + len)` of its in-memory image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegPiece {
    pub at: u32,
    pub len: u32,
    pub loc: Loc,
}

/// Where a convention puts one argument or result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assignment {
    Registers(Vec<RegPiece>),
    /// Offset from the start of the caller's argument area, which is at
    /// SP+8 on entry and at `RET` (SP+0 holds the return address).
    Stack {
        offset: u64,
    },
}

/// Argument and result locations, one per value, in order.
pub type Assignments = (Vec<Assignment>, Vec<Assignment>);

/// The parts of a plan a language's convention decides.
pub trait Convention: Sync {
    /// The entry probe's site among the function's instructions; `None`
    /// for its first instruction.
    fn entry_site(&self, insns: &[Insn]) -> Option<Site>;

    /// Where each argument is at entry and each result at `RET`.
    fn assign(&self, types: &TypeTable, args: &[TypeId], results: &[TypeId]) -> Assignments;

    /// Adds the captures every recipe of this language's code starts with
    /// (after the probe's address), naming them in the recipe.
    fn context(&self, image: &Image, recipe: &mut Recipe);

    /// The register holding the running thread's runtime context and the
    /// offset in it of the top of its stack, so that a call's frame is
    /// named by depth across stack copies (Go: `g` and `g.stack.hi`);
    /// `None` where frames are named by thread and SP.
    fn frame_base(&self, image: &Image) -> Option<(Reg, u16)>;
}

/// The convention of code in `lang`.
pub fn of(lang: Lang) -> &'static dyn Convention {
    match lang {
        Lang::Go => &go::Go,
        Lang::C | Lang::Rust | Lang::Other => &sysv::SysV,
    }
}
