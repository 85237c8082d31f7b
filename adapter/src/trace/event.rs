//! Turning a raw hit into an [`Event`]: the probe it names, its goroutine,
//! the load bias of a position-independent image, and each value decoded
//! by type (`value::decode`), with the run-time types of interfaces
//! resolved against the image as hits name them.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;

use crate::backend::RawHit;
use crate::image::{Image, Lang, TypeId, TypeTable};
use crate::plan::{Limits, Planner, Probe, ProbeKind};
pub use crate::value::NamedValue;
use crate::value::{self};

/// What decoding hits needs besides the image: the planner's types (grown
/// with the dynamic types of interfaces as hits name them) and the limits
/// the values were captured with.
#[derive(Default)]
pub struct Decoding {
    /// The shared library the probes are in; `None`: the executable.
    pub(super) library: Option<Arc<Image>>,
    types: TypeTable,
    limits: Limits,
    /// Type DIE -> type id, shared with the planner's numbering.
    cache: HashMap<u64, TypeId>,
    /// Runtime type descriptor address -> type (or `None`: not in DWARF).
    by_descriptor: HashMap<u64, Option<TypeId>>,
    /// The type arguments (dictionary entry -> runtime type descriptor
    /// address) of the calls of Go shape instantiations that have not
    /// returned yet, by frame (`g`, `g.stack.hi - SP`), for their returns.
    calls: HashMap<(u64, u64), HashMap<u64, u64>>,
    /// Code address (link-time) -> its function and source line, for
    /// stacks.
    places: HashMap<u64, (Option<crate::image::FuncId>, Option<u64>)>,
}

/// Most calls [`Decoding::calls`] remembers; a call that never returns
/// (a panic) is forgotten when it is full.
const MAX_OPEN_CALLS: usize = 65536;

/// Resolves what a hit names at run time against the image.
struct Runtime<'s, 'i> {
    image: &'i Image,
    cache: &'s mut HashMap<u64, TypeId>,
    by_descriptor: &'s mut HashMap<u64, Option<TypeId>>,
    /// Where the image is loaded in the hit's process minus its link-time
    /// addresses (0 unless it is position-independent).
    bias: u64,
    /// The hit's type arguments: dictionary entry -> runtime type
    /// descriptor address.
    type_args: HashMap<u64, u64>,
}

impl value::Resolve for Runtime<'_, '_> {
    fn runtime_type(&mut self, types: &mut TypeTable, addr: u64) -> Option<TypeId> {
        let addr = addr.wrapping_sub(self.bias);
        if let Some(known) = self.by_descriptor.get(&addr) {
            return *known;
        }
        let ty = self
            .image
            .runtime_type_die(addr)
            .and_then(|die| self.image.resolve_type(types, self.cache, die).ok());
        self.by_descriptor.insert(addr, ty);
        ty
    }

    fn function_name(&self, pc: u64) -> Option<String> {
        let f = self.image.function_at(pc.wrapping_sub(self.bias))?;
        Some(self.image.functions[f].name.clone())
    }

    fn type_argument(&mut self, types: &mut TypeTable, index: u64) -> Option<TypeId> {
        let descriptor = *self.type_args.get(&index)?;
        self.runtime_type(types, descriptor)
    }

    fn vtable_type(&mut self, types: &mut TypeTable, addr: u64) -> Option<TypeId> {
        let die = self.image.vtable_type_die(addr.wrapping_sub(self.bias))?;
        self.image.resolve_type(types, self.cache, die).ok()
    }
}

impl Decoding {
    /// Whether DWARF describes the probed functions: their library's,
    /// else `executable`'s.
    pub(super) fn described(&self, executable: &Image) -> bool {
        self.library.as_deref().unwrap_or(executable).has_dwarf
    }

    /// The decoding state for the probes `planner` has made so far.
    pub fn of(planner: &Planner) -> Decoding {
        let (types, cache) = planner.type_state();
        Decoding {
            library: None,
            types,
            limits: planner.limits(),
            cache,
            by_descriptor: HashMap::new(),
            calls: HashMap::new(),
            places: HashMap::new(),
        }
    }

    /// The function and source line of link-time code address `pc`.
    fn place(&mut self, image: &Image, pc: u64) -> (Option<crate::image::FuncId>, Option<u64>) {
        if let Some(p) = self.places.get(&pc) {
            return *p;
        }
        let line = image.lines_at(&[pc]).ok().and_then(|l| l.get(&pc).copied());
        let place = (image.function_at(pc), line);
        if self.places.len() < MAX_OPEN_CALLS {
            self.places.insert(pc, place);
        }
        place
    }

    /// The call stack a hit of `probe` carries: frame 0 the probe itself,
    /// then a frame per return address, each shown at its call (the
    /// address before it), as Delve shows them. It ends at the first
    /// address outside the image's functions (a shared library's code, or
    /// a walk gone astray without frame pointers); `truncated` when the
    /// capture holds more frames than were asked for.
    fn stack(&mut self, image: &Image, probe: &Probe, bias: u64, bytes: &[u8]) -> Stack {
        let want = bytes.len() / 8;
        let mut frames = vec![StackFrame {
            pc: probe.address.wrapping_add(bias),
            function: image.functions[probe.func].name.clone(),
            file: image.functions[probe.func].file.clone(),
            line: self.place(image, probe.address).1,
        }];
        let asked = probe
            .recipe
            .stack
            .and_then(|c| match probe.recipe.captures.get(c as usize) {
                Some(crate::plan::Capture::Frames { count, .. }) => Some(usize::from(*count)),
                _ => None,
            });
        let asked = asked.unwrap_or(want);
        let mut ended = false;
        for chunk in bytes.chunks_exact(8).take(asked.saturating_sub(1)) {
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            let ret = u64::from_le_bytes(w);
            let call = ret.wrapping_sub(bias).wrapping_sub(1);
            let (Some(f), line) = self.place(image, call) else {
                ended = true;
                break;
            };
            frames.push(StackFrame {
                pc: ret,
                function: image.functions[f].name.clone(),
                file: image.functions[f].file.clone(),
                line,
            });
        }
        Stack {
            frames,
            truncated: !ended && want >= asked,
        }
    }

    /// The type arguments of the call `probe`'s hit belongs to: read by
    /// an entry probe (and kept for the call's return), found by a return
    /// probe; empty when neither (not generic code, or a return whose call
    /// was not seen).
    fn type_args(&mut self, probe: &Probe, word: impl Fn(u16) -> Option<u64>) -> HashMap<u64, u64> {
        let Some(t) = &probe.recipe.type_args else {
            return HashMap::new();
        };
        let frame = t.frame.and_then(|[g, hi, sp]| {
            let (g, hi, sp) = (word(g)?, word(hi)?, word(sp)?);
            Some((g, hi.wrapping_sub(sp)))
        });
        match probe.kind {
            ProbeKind::Entry => {
                let read: HashMap<u64, u64> = t
                    .entries
                    .iter()
                    .filter_map(|&(index, c)| Some((index, word(c)?)))
                    .collect();
                if let Some(frame) = frame {
                    if self.calls.len() >= MAX_OPEN_CALLS {
                        self.calls.clear();
                    }
                    self.calls.insert(frame, read.clone());
                }
                read
            }
            _ => frame
                .and_then(|f| self.calls.remove(&f))
                .unwrap_or_default(),
        }
    }
}

/// One decoded hit.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub kind: EventKind,
    pub function: String,
    pub goroutine: Option<u64>,
    pub pid: i32,
    pub thread: i32,
    /// CLOCK_MONOTONIC nanoseconds.
    pub time_ns: u64,
    pub file: Option<String>,
    pub line: Option<u64>,
    pub values: Vec<NamedValue>,
    /// The hit's call stack, innermost first (`--stack N`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stack: Option<Stack>,
    /// Call depth in a tree of followed calls (`--follow-calls`): 1 for
    /// the selected function, 2 for its callees...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub depth: Option<u32>,
    #[serde(skip)]
    pub lang: Lang,
}

/// The innermost frames of a hit's call stack.
#[derive(Debug, Clone, Serialize)]
pub struct Stack {
    pub frames: Vec<StackFrame>,
    /// More frames were there than were asked for.
    pub truncated: bool,
}

/// One frame: the code address (run time; a caller's is its return
/// address) and the function and source line it is in (a caller's: of
/// its call).
#[derive(Debug, Clone, Serialize)]
pub struct StackFrame {
    pub pc: u64,
    pub function: String,
    pub file: Option<String>,
    pub line: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    Call,
    Return,
    /// A source line was reached (a logpoint).
    Line,
}

/// Decodes a hit of `probe`, whose value slots refer to `state`'s types,
/// against `state`'s library, else `executable`.
pub fn decode(executable: &Image, state: &mut Decoding, probe: &Probe, hit: &RawHit) -> Event {
    let library = state.library.clone();
    let image = library.as_deref().unwrap_or(executable);
    let func = &image.functions[probe.func];
    let word = |capture: Option<u16>| {
        capture
            .and_then(|c| hit.captures.get(c as usize))
            .and_then(|c| c.as_deref())
            .and_then(|b| b.get(..8))
            .map(|b| {
                let mut x = [0u8; 8];
                x.copy_from_slice(b);
                u64::from_le_bytes(x)
            })
    };
    let goroutine = word(probe.recipe.goid);
    let bias = word(probe.recipe.pc).map_or(0, |pc| pc.wrapping_sub(probe.address));
    let type_args = state.type_args(probe, |c| word(Some(c)));
    let mut runtime = Runtime {
        image,
        cache: &mut state.cache,
        by_descriptor: &mut state.by_descriptor,
        bias,
        type_args,
    };
    let values = probe
        .recipe
        .values
        .iter()
        .map(|slot| NamedValue {
            name: slot.name.clone(),
            value: value::decode(
                &mut state.types,
                &mut runtime,
                state.limits,
                slot,
                &hit.captures,
            ),
        })
        .collect();
    let stack = probe
        .recipe
        .stack
        .and_then(|c| hit.captures.get(c as usize))
        .and_then(|c| c.as_deref())
        .map(|bytes| state.stack(image, probe, bias, bytes));
    Event {
        kind: match probe.kind {
            ProbeKind::Entry => EventKind::Call,
            ProbeKind::Return => EventKind::Return,
            ProbeKind::Line => EventKind::Line,
        },
        function: func.name.clone(),
        goroutine,
        pid: hit.pid,
        thread: hit.tid,
        time_ns: hit.time_ns,
        file: func.file.clone(),
        line: func.line,
        values,
        stack,
        depth: None,
        lang: func.lang,
    }
}
