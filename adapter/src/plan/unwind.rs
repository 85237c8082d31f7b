//! Whether an unwind can pass through a function's frame, which decides
//! how its returns are seen under eBPF.
//!
//! A uretprobe (one probe on the entry for all of a function's returns,
//! which the kernel runs without single-stepping anything) replaces the
//! return address on the stack with the kernel's trampoline. An unwinder
//! that meets that address (a C++ exception, a Rust panic with
//! `panic=unwind`, glibc's forced unwind of `pthread_exit`) finds no frame
//! information for it and aborts the program (`std::terminate`). So a C++,
//! Rust (or unknown-language) function gets a uretprobe only with a proof
//! that no unwind can pass through its frame, one of:
//!
//! * **a Rust function, and the program cannot start an unwind**
//!   ([`cannot_unwind`]): it is Rust built with `panic=abort`, its symbol
//!   table is there and neither defines nor imports anything that starts
//!   an unwind (`_Unwind_RaiseException`, `__cxa_throw`, `pthread_exit`,
//!   … : a Rust program built with `panic=unwind` imports
//!   `_Unwind_RaiseException`, one built with `panic=abort` does not), nor
//!   `dlopen` (a library loaded later), and it needs no C++ runtime library
//!   (libstdc++ throws from inside its own functions, `operator new` for
//!   one);
//! * **nothing the function calls can start one** ([`prove`]): every
//!   instruction of the function, and of every function it reaches by
//!   direct calls and direct jumps to another function (a bounded number
//!   of them), decodes; none has an indirect call or jump, nor a call or
//!   jump to anything but the start of a function the image describes (a
//!   PLT stub, an import, is unknown), and none reached is a known
//!   starter of unwinds by its name (`std::panicking::…`,
//!   `core::panicking::…`, `__cxa_throw`, `_Unwind_…`, …). A leaf that
//!   leaves only through `RET` is the simplest case.
//!
//! Not considered: a signal handler that throws or panics out of a signal
//! frame (which needs `-fnon-call-exceptions`; Rust cannot). C functions
//! keep their uretprobes without a proof, as before (a C callback that a
//! C++ exception unwinds through is the one case that can hurt:
//! docs/architecture.md, Probe sites); Go functions never get one.

use std::collections::HashMap;

use anyhow::{Context, Result};
use capstone::Capstone;
use object::{Object, ObjectSymbol};

use super::site::{self, Insn};
use crate::image::{FuncId, Image, Lang};

/// At most this many functions are walked to prove one function safe.
pub const MAX_FUNCTIONS: usize = 256;

/// Symbols whose presence (defined or imported) means the program can
/// start an unwind, or load a library that can.
const PROGRAM_STARTERS: &[&str] = &[
    "_Unwind_RaiseException",
    "_Unwind_ForcedUnwind",
    "_Unwind_Resume_or_Rethrow",
    "_Unwind_SjLj_RaiseException",
    "_Unwind_SjLj_ForcedUnwind",
    "__cxa_throw",
    "__cxa_rethrow",
    "pthread_exit",
    "pthread_cancel",
    "__pthread_unwind",
    "__pthread_unwind_next",
    "thrd_exit",
    "dlopen",
    "dlmopen",
];

/// Libraries that throw from inside their own functions.
const THROWING_LIBRARIES: &[&str] = &["libstdc++.so", "libc++.so", "libc++abi.so", "libsupc++"];

/// Parts of the names of functions that start (or may start) an unwind:
/// a function reached whose name has one of them makes the proof fail.
/// Broad on purpose: a safe function taken for a starter only costs speed.
const STARTER_NAMES: &[&str] = &[
    "panicking::",
    "rust_panic",
    "begin_unwind",
    "__rust_start_panic",
    "resume_unwind",
    "panic_any",
    "_Unwind_",
    "__cxa_throw",
    "__cxa_rethrow",
    "__throw_",
    "rethrow_exception",
    "pthread_exit",
    "pthread_cancel",
    "thrd_exit",
];

/// Whether a function of this name starts an unwind (or may).
pub fn starts_unwind(name: &str) -> bool {
    let demangled = rustc_demangle::try_demangle(name)
        .map(|d| format!("{d:#}"))
        .unwrap_or_else(|_| name.to_string());
    STARTER_NAMES
        .iter()
        .any(|s| name.contains(s) || demangled.contains(s))
}

/// What a function's own instructions say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Local {
    /// The direct calls and jumps to other functions it makes: (the
    /// instruction's address, its target).
    Calls(Vec<(u64, u64)>),
    /// Why it cannot be proven (an indirect call, undecoded bytes, …).
    Unprovable(String),
}

/// The last word of a mnemonic: `notrack jmp` is a `jmp`.
fn op(mnemonic: &str) -> &str {
    mnemonic.split_whitespace().last().unwrap_or("")
}

/// A branch's direct target (`0x401136`), or `None` for one through a
/// register or memory.
fn direct(operands: &str) -> Option<u64> {
    u64::from_str_radix(operands.trim().strip_prefix("0x")?, 16).ok()
}

/// What the instructions `insns` of a function at `[low, high)` say.
pub fn local(insns: &[Insn], low: u64, high: u64) -> Local {
    let end = insns
        .last()
        .map(|(at, _, _, bytes)| at.saturating_add(bytes.len() as u64));
    if insns.first().map(|i| i.0) != Some(low) || end != Some(high) {
        return Local::Unprovable(match end {
            Some(end) if end < high => format!("bytes at {end:#x} do not decode"),
            _ => format!("its code at {low:#x} does not decode"),
        });
    }
    let mut calls = Vec::new();
    for (at, mnemonic, operands, _) in insns {
        let op = op(mnemonic);
        // Far ones (`lcall`, `ljmp`) never have a direct target here.
        let call = op.starts_with("call") || op == "lcall";
        let jump = op.starts_with('j') || op.starts_with("loop") || op == "ljmp";
        if !(call || jump) {
            continue;
        }
        let kind = if call { "call" } else { "jump" };
        match direct(operands) {
            None => return Local::Unprovable(format!("indirect {kind} at {at:#x}")),
            Some(t) if jump && t >= low && t < high => {}
            Some(t) => calls.push((*at, t)),
        }
    }
    Local::Calls(calls)
}

/// The code a proof walks: the functions, by start address, and what
/// each one's instructions say.
pub trait Code {
    /// The function that starts at `address`.
    fn starting_at(&self, address: u64) -> Option<FuncId>;
    fn name(&self, id: FuncId) -> String;
    fn local(&mut self, id: FuncId) -> Local;
}

/// "a → b → c", the calls by which the walk from `a` reached `f` (`c`).
fn via(parent: &HashMap<FuncId, Option<FuncId>>, code: &impl Code, f: FuncId) -> String {
    let mut chain = vec![code.name(f)];
    let mut at = f;
    while let Some(Some(p)) = parent.get(&at) {
        chain.push(code.name(*p));
        at = *p;
    }
    chain.reverse();
    chain.join(" → ")
}

/// Proves that no unwind can start while `start` is on the stack (see
/// the module's notes): the number of functions walked, or why not.
pub fn prove(code: &mut impl Code, start: FuncId) -> std::result::Result<usize, String> {
    if starts_unwind(&code.name(start)) {
        return Err(format!("{} can start an unwind", code.name(start)));
    }
    let mut parent: HashMap<FuncId, Option<FuncId>> = HashMap::from([(start, None)]);
    let mut work = vec![start];
    while let Some(f) = work.pop() {
        let calls = match code.local(f) {
            Local::Calls(calls) => calls,
            Local::Unprovable(why) => {
                let path = via(&parent, code, f);
                return Err(format!("{path}: {why}"));
            }
        };
        for (at, target) in calls {
            let Some(g) = code.starting_at(target) else {
                let path = via(&parent, code, f);
                return Err(format!(
                    "{path}: {at:#x} calls {target:#x}, not the start of a function the \
                     image describes (a PLT stub, an import)"
                ));
            };
            if starts_unwind(&code.name(g)) {
                let path = via(&parent, code, f);
                return Err(format!(
                    "{path}: {at:#x} calls {}, which can start an unwind",
                    code.name(g)
                ));
            }
            if parent.contains_key(&g) {
                continue;
            }
            if parent.len() >= MAX_FUNCTIONS {
                return Err(format!(
                    "its calls reach more than {MAX_FUNCTIONS} functions"
                ));
            }
            parent.insert(g, Some(f));
            work.push(g);
        }
    }
    Ok(parent.len())
}

/// Whether a Rust program with these symbols (defined or imported;
/// `symtab`: its symbol table is there, not stripped) that needs these
/// libraries can start an unwind: `Ok(why not)`, or `Err(why it may)`.
/// Only Rust's `panic=abort` (its `panic_abort` runtime defines
/// `__rust_start_panic`, `panic_unwind` is absent) is trusted: an unwind
/// that a library starts cannot enter its frames (Rust aborts it), while
/// a C or C++ program's frames let a library's exception through.
pub fn cannot_unwind<'s>(
    symtab: bool,
    symbols: impl IntoIterator<Item = &'s str>,
    needed: &[String],
) -> std::result::Result<String, String> {
    if !symtab {
        return Err("the program has no symbol table (stripped)".into());
    }
    if let Some(lib) = needed
        .iter()
        .find(|n| THROWING_LIBRARIES.iter().any(|l| n.starts_with(l)))
    {
        return Err(format!("the program needs {lib}, which throws exceptions"));
    }
    let mut rust_abort = false;
    for s in symbols {
        if let Some(starter) = PROGRAM_STARTERS.iter().find(|p| **p == s) {
            return Err(format!("the program has {starter}"));
        }
        if s.contains("panic_unwind") {
            return Err("the program has Rust's panic_unwind".into());
        }
        rust_abort |= s.contains("__rust_start_panic");
    }
    match rust_abort {
        true => Ok("the program cannot start an unwind (Rust, panic=abort)".into()),
        false => Err("the program is not Rust built with panic=abort".into()),
    }
}

/// [`cannot_unwind`] of the program `image`.
fn program(image: &Image) -> Result<std::result::Result<String, String>> {
    let data = image.elf_data();
    let file = object::File::parse(data)
        .with_context(|| format!("{} is not a valid ELF file", image.path.display()))?;
    let needed = crate::trace::needed(data)
        .with_context(|| format!("reading the dynamic section of {}", image.path.display()))?;
    let symtab = file.symbol_table().is_some();
    let names: Vec<&str> = file
        .symbols()
        .chain(file.dynamic_symbols())
        .filter_map(|s| s.name().ok())
        .collect();
    Ok(cannot_unwind(symtab, names, &needed))
}

/// How a function's returns are seen under eBPF, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Returns {
    /// One uretprobe on the entry, instead of a probe on each `RET`.
    pub uretprobe: bool,
    pub why: String,
}

/// The analysis of one image: what it found so far.
pub struct Analysis<'a> {
    image: &'a Image,
    cs: Capstone,
    program: Option<std::result::Result<String, String>>,
    locals: HashMap<FuncId, Local>,
}

impl Code for Analysis<'_> {
    fn starting_at(&self, address: u64) -> Option<FuncId> {
        self.image
            .function_at(address)
            .filter(|&id| self.image.functions[id].low == address)
    }

    fn name(&self, id: FuncId) -> String {
        self.image.functions[id].name.clone()
    }

    fn local(&mut self, id: FuncId) -> Local {
        if let Some(l) = self.locals.get(&id) {
            return l.clone();
        }
        let func = &self.image.functions[id];
        let l = match site::instructions(&self.cs, self.image, func) {
            Ok(insns) => local(&insns, func.low, func.high),
            Err(e) => Local::Unprovable(format!("{e:#}")),
        };
        self.locals.insert(id, l.clone());
        l
    }
}

impl<'a> Analysis<'a> {
    pub fn new(image: &'a Image) -> Result<Self> {
        Ok(Analysis {
            image,
            cs: site::disassembler()?,
            program: None,
            locals: HashMap::new(),
        })
    }

    /// [`Analysis::returns`] of function `id`, decoded here.
    pub fn returns_of(&mut self, id: FuncId) -> Result<Returns> {
        let insns = site::instructions(&self.cs, self.image, &self.image.functions[id])?;
        self.returns(id, &insns)
    }

    /// How the returns of function `id`, whose instructions are `insns`,
    /// are seen under eBPF.
    pub fn returns(&mut self, id: FuncId, insns: &[Insn]) -> Result<Returns> {
        let func = &self.image.functions[id];
        let ret = |why: String| Returns {
            uretprobe: false,
            why,
        };
        let uret = |why: String| Returns {
            uretprobe: true,
            why,
        };
        if func.lang == Lang::Go {
            return Ok(ret("Go moves and walks its stacks".into()));
        }
        if !site::exits_only_by_ret(insns, func.low, func.high) {
            return Ok(ret(
                "it may leave by a jump (a tail call), or has no RET".into()
            ));
        }
        if func.lang == Lang::C {
            return Ok(uret(
                "a C function that leaves only through its RETs".into(),
            ));
        }
        let whole = match func.lang {
            Lang::Rust => {
                let image = self.image;
                let program = self.program.get_or_insert_with(|| {
                    program(image).unwrap_or_else(|e| Err(format!("{e:#}")))
                });
                match program {
                    Ok(why) => return Ok(uret(why.clone())),
                    Err(why) => format!("; {why}"),
                }
            }
            _ => String::new(),
        };
        Ok(match prove(self, id) {
            Ok(1) => uret("a leaf: no unwind can pass through it".into()),
            Ok(2) => uret("nothing it calls can start an unwind (1 function checked)".into()),
            Ok(n) => uret(format!(
                "nothing it calls can start an unwind ({} functions checked)",
                n - 1
            )),
            Err(why) => ret(format!("an unwind may pass through it: {why}{whole}")),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    /// `bytes` decoded at `low`.
    fn decode(bytes: &[u8], low: u64) -> Vec<Insn> {
        site::decode(&site::disassembler().unwrap(), bytes, low).unwrap()
    }

    fn local_of(bytes: &[u8]) -> Local {
        local(&decode(bytes, 0x1000), 0x1000, 0x1000 + bytes.len() as u64)
    }

    #[test]
    fn a_leaf_calls_nothing() {
        // lea eax, [rdi + rdi*2]; add eax, esi; ret
        assert_eq!(
            local_of(&[0x8d, 0x04, 0x7f, 0x01, 0xf0, 0xc3]),
            Local::Calls(vec![])
        );
        // test edi, edi; jne +1; ret; ret (a jump inside)
        assert_eq!(
            local_of(&[0x85, 0xff, 0x75, 0x01, 0xc3, 0xc3]),
            Local::Calls(vec![])
        );
    }

    #[test]
    fn direct_calls_and_tail_jumps_are_edges() {
        // push rbx; call 0x2000; pop rbx; jmp 0x3000
        let mut code = vec![0x53, 0xe8];
        code.extend((0x2000i32 - 0x1006).to_le_bytes());
        code.extend([0x5b, 0xe9]);
        code.extend((0x3000i32 - 0x100c).to_le_bytes());
        assert_eq!(
            local_of(&code),
            Local::Calls(vec![(0x1001, 0x2000), (0x1007, 0x3000)])
        );
    }

    #[test]
    fn indirect_branches_and_undecoded_bytes_are_unprovable() {
        // call rax; ret
        assert!(
            matches!(local_of(&[0xff, 0xd0, 0xc3]), Local::Unprovable(w) if w.contains("indirect call"))
        );
        // jmp qword ptr [rip + 0]
        assert!(
            matches!(local_of(&[0xff, 0x25, 0, 0, 0, 0]), Local::Unprovable(w) if w.contains("indirect jump"))
        );
        // notrack jmp rax (a jump table)
        assert!(
            matches!(local_of(&[0x3e, 0xff, 0xe0]), Local::Unprovable(w) if w.contains("indirect jump"))
        );
        // ret; then a byte that does not decode
        assert!(
            matches!(local_of(&[0xc3, 0x06]), Local::Unprovable(w) if w.contains("do not decode"))
        );
    }

    /// Functions by id: (start, name, what their code says).
    struct Fake(Vec<(u64, &'static str, Local)>);

    impl Code for Fake {
        fn starting_at(&self, address: u64) -> Option<FuncId> {
            self.0.iter().position(|f| f.0 == address)
        }
        fn name(&self, id: FuncId) -> String {
            self.0[id].1.to_string()
        }
        fn local(&mut self, id: FuncId) -> Local {
            self.0[id].2.clone()
        }
    }

    fn calls(targets: &[u64]) -> Local {
        Local::Calls(targets.iter().map(|&t| (0, t)).collect())
    }

    #[test]
    fn a_call_graph_of_safe_functions_is_proven_recursion_included() {
        let mut code = Fake(vec![
            (0x10, "outer", calls(&[0x20, 0x30])),
            (0x20, "step", calls(&[])),
            (0x30, "rec", calls(&[0x30, 0x20])),
        ]);
        assert_eq!(prove(&mut code, 0), Ok(3));
    }

    #[test]
    fn unknown_targets_starters_and_unprovable_callees_fail_with_the_path() {
        let mut code = Fake(vec![
            (0x10, "f", calls(&[0x20])),
            (0x20, "g", calls(&[0x99])),
        ]);
        let why = prove(&mut code, 0).unwrap_err();
        assert!(why.starts_with("f → g: ") && why.contains("PLT"), "{why}");

        let mut code = Fake(vec![
            (0x10, "main::may_panic", calls(&[0x20])),
            (0x20, "std::panicking::begin_panic::<&str>", calls(&[])),
        ]);
        let why = prove(&mut code, 0).unwrap_err();
        assert!(why.contains("which can start an unwind"), "{why}");

        let mut code = Fake(vec![
            (0x10, "f", calls(&[0x20])),
            (0x20, "g", Local::Unprovable("indirect call at 0x21".into())),
        ]);
        assert_eq!(
            prove(&mut code, 0).unwrap_err(),
            "f → g: indirect call at 0x21"
        );
    }

    #[test]
    fn the_walk_is_bounded() {
        let n = MAX_FUNCTIONS as u64 + 10;
        let funcs = (0..n)
            .map(|i| (i, "f", calls(&[i + 1])))
            .chain([(n, "last", calls(&[]))])
            .collect();
        let why = prove(&mut Fake(funcs), 0).unwrap_err();
        assert!(why.contains("more than"), "{why}");
    }

    #[test]
    fn starters_are_known_by_name_mangled_or_not() {
        for name in [
            "core::panicking::panic_bounds_check",
            "std::panicking::begin_panic::<&str>",
            "__cxa_throw",
            "_Unwind_Resume",
            "std::__throw_out_of_range_fmt",
            "_ZN4core9panicking9panic_fmt17h0123456789abcdefE",
        ] {
            assert!(starts_unwind(name), "{name}");
        }
        for name in ["bench::step", "add", "geo::Shape::area"] {
            assert!(!starts_unwind(name), "{name}");
        }
    }

    #[test]
    fn a_program_cannot_unwind_only_without_unwinders_and_with_symbols() {
        let rust_abort = [
            "main",
            "_RNvCs1_7___rustc18___rust_start_panic",
            "_Unwind_Resume",
        ];
        assert_eq!(
            cannot_unwind(true, rust_abort, &[]),
            Ok("the program cannot start an unwind (Rust, panic=abort)".into())
        );
        let libs = ["libgcc_s.so.1".to_string(), "libc.so.6".to_string()];
        assert!(cannot_unwind(true, rust_abort, &libs).is_ok());
        let rust_unwind = ["main", "_Unwind_RaiseException", "__rust_start_panic"];
        assert!(cannot_unwind(true, rust_unwind, &[]).is_err());
        let panic_unwind = ["main", "_RNvNtCs1_12panic_unwind3imp5panic"];
        assert!(cannot_unwind(true, panic_unwind, &[]).is_err());
        for other in ["__cxa_throw", "pthread_exit", "dlopen"] {
            let symbols = ["main", "__rust_start_panic", other];
            assert!(cannot_unwind(true, symbols, &[]).is_err(), "{other}");
        }
        let cpp = vec!["libstdc++.so.6".to_string()];
        assert!(cannot_unwind(true, rust_abort, &cpp).is_err());
        assert!(cannot_unwind(false, rust_abort, &[]).is_err());
        // Not Rust: a library's exception may pass through its frames.
        assert!(cannot_unwind(true, ["main", "printf"], &["libc.so.6".into()]).is_err());
    }
}
