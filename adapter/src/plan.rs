//! Probe sites and capture recipes: what to read, where, when a probe fires.
//!
//! A [`Probe`] names one instruction of one function (its file offset and its
//! address) and carries a [`Recipe`]: a list of [`Capture`] steps that a backend
//! executes, in order, when the instruction is reached. The steps know nothing
//! of types; they say "8 bytes from RAX", "24 bytes at SP+8", "up to 64 bytes at
//! the address held in capture 3, as many as capture 4 says". Both backends run
//! the same recipes, which is what makes their output identical by construction.
//!
//! The meaning of the captured bytes (which argument, which type) is kept in
//! [`ValueSlot`]s beside the recipe, for the decoder; backends never look at them.
//!
//! Building plans from the image: [`Planner`] (`planner`) drives it; `site`
//! chooses instructions, `lang` holds what each calling convention decides
//! (`lang::go`, `lang::sysv`), `recipe` writes one recipe within the
//! budgets, following pointers (`maps` for Go maps), `place` turns ABI and
//! DWARF locations into captures, `path` reads a logpoint's expressions,
//! `filter` compiles what of a condition the probes check themselves.

pub mod filter;
pub mod lang;
mod maps;
mod path;
mod place;
mod planner;
pub mod recipe;
pub mod site;
pub mod unwind;

pub use planner::{PlanOptions, Planner};

use crate::image::{FuncId, TypeId};

/// A general-purpose register, numbered as its 8-byte slot in the kernel's
/// `struct pt_regs` (x86-64), which is also the order of ptrace's
/// `user_regs_struct`. The eBPF program reads `((u64 *)ctx)[reg]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[repr(u8)]
pub enum Reg {
    R15 = 0,
    R14 = 1,
    R13 = 2,
    R12 = 3,
    Rbp = 4,
    Rbx = 5,
    R11 = 6,
    R10 = 7,
    R9 = 8,
    R8 = 9,
    Rax = 10,
    Rcx = 11,
    Rdx = 12,
    Rsi = 13,
    Rdi = 14,
    OrigRax = 15,
    Rip = 16,
    Cs = 17,
    Eflags = 18,
    Rsp = 19,
    Ss = 20,
}

impl Reg {
    /// Go's integer argument registers, in assignment order (amd64 ABIInternal).
    pub const GO_INT_ARGS: [Reg; 9] = [
        Reg::Rax,
        Reg::Rbx,
        Reg::Rcx,
        Reg::Rdi,
        Reg::Rsi,
        Reg::R8,
        Reg::R9,
        Reg::R10,
        Reg::R11,
    ];
    /// System V integer argument registers, in order.
    pub const SYSV_INT_ARGS: [Reg; 6] = [Reg::Rdi, Reg::Rsi, Reg::Rdx, Reg::Rcx, Reg::R8, Reg::R9];

    /// The slot index in `pt_regs` / `user_regs_struct`.
    pub fn slot(self) -> usize {
        self as usize
    }
}

/// How many bytes a memory read takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Len {
    /// Always this many bytes.
    Fixed(u32),
    /// `min(count * scale, max)` bytes, where `count` is the little-endian
    /// u64 at byte `offset` of capture `capture` (a string's or slice's
    /// length). A negative or unreadable count reads nothing.
    Counted {
        capture: u16,
        offset: u16,
        scale: u32,
        max: u32,
    },
    /// `min((1 << n) * scale, max)` bytes, where `n` is the byte at
    /// `offset` of capture `capture` (at most 31): a Go map's `1 << B`
    /// buckets. An unreadable byte reads nothing.
    Shifted {
        capture: u16,
        offset: u16,
        scale: u32,
        max: u32,
    },
}

impl Len {
    /// The most bytes this length can ask for.
    pub fn max(self) -> u32 {
        match self {
            Len::Fixed(n) => n,
            Len::Counted { max, .. } | Len::Shifted { max, .. } => max,
        }
    }
}

/// One step of a recipe. Each step yields one byte string (possibly shorter
/// than asked, or marked unreadable), numbered by its position in the recipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Capture {
    /// The 8 bytes of a general-purpose register.
    Reg(Reg),
    /// The low 8 bytes of XMM register `n` (floats and complex halves).
    Xmm(u8),
    /// `len` bytes at the stack pointer plus `offset`.
    Stack { offset: i32, len: u32 },
    /// Bytes at the address found as a little-endian u64 at byte `offset` of
    /// an earlier capture `base`, plus `add`. A null address reads nothing.
    Deref {
        base: u16,
        offset: u16,
        add: i32,
        len: Len,
    },
    /// The return addresses of the innermost `count` frames, 8 bytes each,
    /// innermost first: the first is read just below the canonical frame
    /// address (`cfa` plus `offset`, where the call pushed it), the others
    /// by walking the frame pointer chain from RBP (`[fp + 8]` is a return
    /// address, `[fp]` the caller's frame pointer). RBP is skipped once when
    /// it points into the probed function's own frame (between SP and the
    /// CFA), and the walk ends where a frame pointer does not grow toward
    /// the stack's base or a read fails: code built without frame pointers
    /// yields its first caller only. Fewer bytes than `8 * count` mean the
    /// walk reached its end.
    Frames { cfa: Reg, offset: i32, count: u16 },
}

impl Capture {
    /// The most bytes this step can yield.
    pub fn max_len(&self) -> u32 {
        match *self {
            Capture::Reg(_) | Capture::Xmm(_) => 8,
            Capture::Stack { len, .. } => len,
            Capture::Deref { len, .. } => len.max(),
            Capture::Frames { count, .. } => 8 * u32::from(count),
        }
    }
}

/// A condition under which a hit is not reported at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Guard {
    /// The probe sits on a conditional jump (Go's stack-check `JBE` to
    /// `morestack`); when that jump is about to be taken, the function will be
    /// re-entered after the stack grows, so this pass is skipped. `cc` is the
    /// x86 condition code (the low nibble of the `0x7x`/`0x0f 0x8x` opcode).
    UnlessJumpTaken { cc: u8 },
}

/// What a probe marks in the life of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ProbeKind {
    Entry,
    Return,
    /// A source line inside the function (a logpoint); the recipe captures
    /// the variables in scope there.
    Line,
}

impl ProbeKind {
    /// `entry`, `return` or `line`.
    pub fn name(self) -> &'static str {
        match self {
            ProbeKind::Entry => "entry",
            ProbeKind::Return => "return",
            ProbeKind::Line => "line",
        }
    }
}

/// One armed instruction.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Probe {
    /// Index of this probe in the plan; backends report it with every hit
    /// (the eBPF backend uses it as the uprobe's attach cookie).
    pub id: u32,
    pub func: FuncId,
    pub kind: ProbeKind,
    /// Virtual address in the ELF file (before any load bias).
    pub address: u64,
    /// Offset of the instruction in the ELF file, for uprobes.
    pub file_offset: u64,
    /// The shared library the instruction is in, by its real path (how
    /// the kernel names its mapping); `None`: the executable.
    pub library: Option<std::path::PathBuf>,
    pub guard: Option<Guard>,
    /// The original bytes of the probed instruction (for step-over).
    pub instruction: Vec<u8>,
    /// Never-executed padding (the `int3` fill after the function) where a
    /// copy of the instruction can be single-stepped out of line; `None` when
    /// there is no room or the instruction depends on its own address.
    pub scratch: Option<u64>,
    /// For a return probe of a function whose every exit is one of its
    /// `RET`s and that is C or that no unwind can pass through
    /// ([`unwind`]): the entry of the function, where a uretprobe sees each of
    /// its returns (one uretprobe stands for all of them), which a backend
    /// may use instead of probing the `RET`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub returns_at: Option<EntrySite>,
    pub recipe: Recipe,
}

/// A function's entry, where a uretprobe goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EntrySite {
    /// Virtual address in the ELF file.
    pub address: u64,
    /// Offset in the ELF file.
    pub file_offset: u64,
}

/// The capture steps of one probe plus how to read the results back.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Recipe {
    pub captures: Vec<Capture>,
    /// Capture holding the 8-byte goroutine id, for Go functions.
    pub goid: Option<u16>,
    /// Capture holding the run-time address of the probed instruction
    /// (`RIP` when the probe fires), for a position-independent image: the
    /// decoder subtracts the probe's link-time address to get the load
    /// bias, which run-time addresses the hit holds (an interface's type
    /// descriptor, a func's code pointer) must lose before they are looked
    /// up in the image.
    pub pc: Option<u16>,
    /// One slot per value shown: the arguments on entry, the results on return.
    pub values: Vec<ValueSlot>,
    /// A test over the captured bytes: a hit that fails it is not reported.
    pub filter: Option<Filter>,
    /// How this probe takes part in pairing calls with their returns, when
    /// a filter or a rate limit may reject calls.
    pub pairing: Option<Pairing>,
    /// The rate limits a probe that starts a hit (an entry, a logpoint's
    /// line) is held to; a return follows its call through `pairing`.
    pub rate: Option<RateLimit>,
    /// For a Go shape instantiation: how its values' type arguments are
    /// learnt.
    pub type_args: Option<TypeArgs>,
    /// Capture holding the call stack's return addresses
    /// ([`Capture::Frames`]), when stacks are asked for.
    pub stack: Option<u16>,
}

/// How a probe of a Go shape instantiation (a generic function compiled
/// for GC shapes) learns the type arguments of a call, so that values of
/// type parameters are shown with their real types, for the decoder only.
/// The entry probe reads the call's dictionary entries (each the address
/// of a type argument's runtime descriptor); a return probe finds them by
/// its frame, as the entry probe saw it.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct TypeArgs {
    /// (dictionary entry, capture holding it): every entry the function's
    /// arguments and results name; none on a return probe.
    pub entries: Vec<(u64, u16)>,
    /// Captures of `g`, `g.stack.hi` and SP: the call's frame, named as
    /// [`Pairing`] names it.
    pub frame: Option<[u16; 3]>,
}

/// A test the backend itself runs on a hit's captured bytes (the part of a
/// DAP condition over integers, booleans, pointers and strings that can be
/// checked there), so that a rejected hit costs no event and no decoding.
///
/// The ops form a postfix program over a stack of u64. It runs once the
/// first `after` captures are taken; when it rejects the hit, the later
/// captures are not taken at all. A filter only ever rejects hits the full
/// condition rejects: when any value it loads was not captured (an
/// unreadable register, memory, a short read) the hit is reported and the
/// adapter decides.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Filter {
    pub ops: Vec<FilterOp>,
    /// Constant bytes compared by [`FilterOp::Prefix`].
    pub bytes: Vec<u8>,
    /// Captures taken before the test (one past the highest it reads).
    pub after: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum FilterOp {
    /// Pushes the little-endian integer of `size` (1, 2, 4 or 8) bytes at
    /// byte `at` of capture `capture`, sign-extended when `signed`.
    Load {
        capture: u16,
        at: u16,
        size: u8,
        signed: bool,
    },
    Push(u64),
    /// Pops `b` then `a`, pushes `a op b` as 0 or 1.
    Cmp {
        op: CmpOp,
        signed: bool,
    },
    /// Pushes 1 when capture `capture` is at least `len` bytes long and
    /// begins with `bytes[at..at + len]`, else 0.
    Prefix {
        capture: u16,
        at: u8,
        len: u8,
    },
    /// Pops two truth values (non-zero is true), pushes their conjunction.
    And,
    Or,
    Not,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    pub fn holds(self, a: u64, b: u64, signed: bool) -> bool {
        let ord = match signed {
            true => (a as i64).cmp(&(b as i64)),
            false => a.cmp(&b),
        };
        match self {
            CmpOp::Eq => ord.is_eq(),
            CmpOp::Ne => ord.is_ne(),
            CmpOp::Lt => ord.is_lt(),
            CmpOp::Le => ord.is_le(),
            CmpOp::Gt => ord.is_gt(),
            CmpOp::Ge => ord.is_ge(),
        }
    }
}

/// Most ops in one [`Filter`].
pub const MAX_FILTER_OPS: usize = 32;
/// Most constant bytes in one [`Filter`].
pub const MAX_FILTER_BYTES: usize = 64;
/// Depth of a filter's value stack.
pub const FILTER_STACK: usize = 8;

/// Hits per second, as token buckets that hold one second's worth: `probe`
/// for each probe that starts a hit (every function of a trace, every
/// logpoint line), `total` for all of them together; 0 is no limit. Both
/// backends check them once a hit has passed its filter, before the rest
/// of its captures: a hit over either is not reported, and is counted
/// for its probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct RateLimit {
    pub probe: u32,
    pub total: u32,
}

impl RateLimit {
    pub fn any(self) -> bool {
        self.probe > 0 || self.total > 0
    }
}

/// A token bucket of [`RateLimit`], kept in one word so that the BPF
/// program (`lp_take` in bpf/probe.bpf.c, the same arithmetic) updates it
/// with one compare-and-swap however many CPUs hit at once: `empty` is the
/// time (ns) at which the bucket was empty. It holds a token per
/// `interval(rate)` (a second / `rate`, rounded up: never more than `rate`
/// a second) since then, at most `rate` (one second's worth); taking one
/// moves `empty` on by an interval.
#[derive(Debug, Clone, Copy, Default)]
pub struct Bucket {
    empty: u64,
}

/// A second, in the bucket's units.
pub const SECOND: u64 = 1_000_000_000;

impl Bucket {
    /// Takes one token at `now` (ns) if there is one; `rate` 0 always has.
    pub fn take(&mut self, rate: u32, now: u64) -> bool {
        if rate == 0 {
            return true;
        }
        let interval = SECOND.div_ceil(u64::from(rate));
        let full = now.saturating_sub(u64::from(rate) * interval);
        let next = self.empty.max(full) + interval;
        if next > now {
            return false;
        }
        self.empty = next;
        true
    }
}

/// Pairs the calls of one function with their returns when its entry has a
/// filter: a call the filter admits opens its frame, one it rejects clears
/// it, and a return probe reports only a return whose frame is open (and
/// closes it). A frame is named by `key`, the goroutine (the `g` pointer in
/// register `g.0`) and its depth `g.stack.hi - SP` (`stack.hi` at byte
/// `g.1` of the `g`): Go copies stacks when they grow, which moves SP but
/// not the depth. Without goroutines, by the thread and SP. SP at the entry
/// probe and at a `RET` is the same: the return address is on top.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Pairing {
    pub role: FrameRole,
    pub key: u32,
    pub g: Option<(Reg, u16)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum FrameRole {
    Open,
    Close,
}

/// Where one value's bytes come from.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ValueSlot {
    pub name: String,
    /// `None` when the type is unknown (no DWARF): the value is unreadable.
    pub ty: Option<TypeId>,
    /// The value's in-memory image is assembled from these pieces: bytes
    /// `[at, at + len)` of the image come from the start of capture `capture`.
    pub pieces: Vec<Piece>,
    /// Size of the image in bytes.
    pub size: u32,
    /// Memory reached through a pointer inside the value: the pointer sitting
    /// at byte `at` of `from` was followed by capture `capture`.
    pub derefs: Vec<DerefSlot>,
    /// Why the value cannot be shown, when the plan already knows.
    pub unavailable: Option<String>,
    /// Bytes of the image the plan already knows (a constant DWARF gives
    /// for an optimized argument), placed after the pieces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub literals: Vec<Literal>,
}

/// Known bytes of a value's image: `bytes` at byte `at`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Literal {
    pub at: u32,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct Piece {
    pub at: u32,
    pub len: u32,
    pub capture: u16,
}

/// The buffer a pointer was found in: the value's own image, or a capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Buffer {
    Image,
    Capture(u16),
}

#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct DerefSlot {
    pub from: Buffer,
    pub at: u32,
    pub capture: u16,
    /// The capture holds the pointee's bytes from this offset on (8 for an
    /// interface's `itab._type`, 0 otherwise).
    pub start: u32,
}

/// A value reached from a variable through fields, pointers and indexes
/// (`p.next.val`, `*p`, `xs[3]`), captured at a line probe as its own
/// [`ValueSlot`] named `name`, because the memory behind a pointer is only
/// readable while the probe fires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    pub name: String,
    pub base: String,
    pub steps: Vec<PathStep>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathStep {
    /// A struct field; through a pointer, the pointer is followed first.
    Field(String),
    Deref,
    /// An element of an array, or (through its data pointer) of a slice.
    Index(u64),
}

/// Limits that shape recipes: how much pointed-to memory one hit copies.
/// The same limits bound what the decoder shows.
/// In DAP launch arguments (and JSON) the fields are camelCase
/// (`maxStringLen`, `maxArrayValues`, `maxDepth`); missing ones take the
/// defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Limits {
    /// Bytes of a string copied; longer strings end in `...+N more`.
    pub max_string_len: u32,
    /// Elements of a slice, an array or a map shown.
    pub max_array_values: u32,
    /// Levels of indirection followed (a pointer, a slice's or a map's
    /// contents, an interface's dynamic value each take one level; the
    /// bytes of a string take none).
    pub max_depth: u32,
}

impl Default for Limits {
    fn default() -> Self {
        // Delve's defaults for `print`/trace values: strings of 64 bytes,
        // 64 elements. Delve counts nesting by `MaxVariableRecurse` (1);
        // logprobe counts indirections and follows three, enough for a
        // pointer to a struct holding a slice of pointers.
        Limits {
            max_string_len: 64,
            max_array_values: 64,
            max_depth: 3,
        }
    }
}

/// Most capture steps one recipe may hold. Following pointers stops
/// (depth first, in field order) when a recipe reaches this size; what was
/// not captured is shown by address. Backends may rely on this bound.
pub const MAX_CAPTURES: usize = 512;

/// Most bytes one recipe may read in all (the sum of every step's largest
/// read), so that a backend can stage a hit in one fixed buffer. Like
/// [`MAX_CAPTURES`], reaching it stops following pointers.
pub const MAX_RECIPE_BYTES: u32 = 64 * 1024;

/// Most frames of a call stack one hit carries (`--stack N`); the eBPF
/// program walks at most this many (`LP_MAX_STACK`).
pub const MAX_STACK_FRAMES: u16 = 128;

/// Largest single memory read a recipe asks for, in bytes (also bounded by
/// the `u16` offsets of later `Deref` steps into the read).
pub const MAX_READ: u32 = 32 * 1024;

/// Evaluate an x86 condition code against RFLAGS (used by both backends'
/// guard checks and by the ptrace backend's jump emulation).
pub fn condition_holds(cc: u8, flags: u64) -> bool {
    let cf = flags & 0x1 != 0;
    let pf = flags & 0x4 != 0;
    let zf = flags & 0x40 != 0;
    let sf = flags & 0x80 != 0;
    let of = flags & 0x800 != 0;
    let base = match cc >> 1 {
        0 => of,
        1 => cf,
        2 => zf,
        3 => cf || zf,
        4 => sf,
        5 => pf,
        6 => sf != of,
        _ => zf || (sf != of),
    };
    if cc & 1 == 1 {
        !base
    } else {
        base
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jbe_follows_carry_and_zero() {
        // cc 6 = BE: taken when CF or ZF.
        assert!(condition_holds(6, 0x1));
        assert!(condition_holds(6, 0x40));
        assert!(!condition_holds(6, 0x0));
        // cc 7 = A: the negation.
        assert!(condition_holds(7, 0x0));
    }

    #[test]
    fn limits_read_from_launch_arguments_default_what_is_missing() {
        let l: Limits = serde_json::from_str(r#"{"maxStringLen": 100}"#).expect("parses");
        assert_eq!(
            l,
            Limits {
                max_string_len: 100,
                ..Limits::default()
            }
        );
    }

    #[test]
    fn a_bucket_holds_one_seconds_worth_and_refills_at_its_rate() {
        let mut b = Bucket::default();
        let t0 = 5 * SECOND;
        // A full bucket: a burst of `rate`, then nothing.
        assert_eq!((0..10).filter(|_| b.take(4, t0)).count(), 4);
        // A token a quarter of a second later, not before.
        assert!(!b.take(4, t0 + SECOND / 4 - 1));
        assert!(b.take(4, t0 + SECOND / 4));
        assert!(!b.take(4, t0 + SECOND / 4));
        // Idle for long: still one second's worth, no more.
        let t1 = t0 + 100 * SECOND;
        assert_eq!((0..10).filter(|_| b.take(4, t1)).count(), 4);
        // Rate 0 is no limit; a rate that does not divide a second rounds
        // its interval up, so never more than `rate` a second.
        assert!((0..1000).all(|_| b.take(0, t1)));
        let mut c = Bucket::default();
        assert_eq!((0..10).filter(|_| c.take(3, t0)).count(), 3);
        assert!(!c.take(3, t0 + SECOND / 3));
        assert!(c.take(3, t0 + SECOND / 3 + 1));
    }

    #[test]
    fn signed_conditions() {
        // cc 0xc = L: SF != OF.
        assert!(condition_holds(0xc, 0x80));
        assert!(!condition_holds(0xc, 0x880));
        // cc 0xf = G: !ZF && SF == OF.
        assert!(condition_holds(0xf, 0));
        assert!(!condition_holds(0xf, 0x40));
    }
}
