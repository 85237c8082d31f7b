//! Turning a raw hit into an [`Event`]: the probe it names, its goroutine,
//! the load bias of a position-independent image, and each value decoded
//! by type (`value::decode`), with the run-time types of interfaces
//! resolved against the image as hits name them.

use std::collections::HashMap;

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
    types: TypeTable,
    limits: Limits,
    /// Type DIE -> type id, shared with the planner's numbering.
    cache: HashMap<u64, TypeId>,
    /// Runtime type descriptor address -> type (or `None`: not in DWARF).
    by_descriptor: HashMap<u64, Option<TypeId>>,
}

/// Resolves what a hit names at run time against the image.
struct Runtime<'s, 'i> {
    image: &'i Image,
    cache: &'s mut HashMap<u64, TypeId>,
    by_descriptor: &'s mut HashMap<u64, Option<TypeId>>,
    /// Where the image is loaded in the hit's process minus its link-time
    /// addresses (0 unless it is position-independent).
    bias: u64,
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
}

impl Decoding {
    /// The decoding state for the probes `planner` has made so far.
    pub fn of(planner: &Planner) -> Decoding {
        let (types, cache) = planner.type_state();
        Decoding {
            types,
            limits: planner.limits(),
            cache,
            by_descriptor: HashMap::new(),
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
    #[serde(skip)]
    pub lang: Lang,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    Call,
    Return,
    /// A source line was reached (a logpoint).
    Line,
}

/// Decodes a hit of `probe`, whose value slots refer to `state`'s types.
pub fn decode(image: &Image, state: &mut Decoding, probe: &Probe, hit: &RawHit) -> Event {
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
    let mut runtime = Runtime {
        image,
        cache: &mut state.cache,
        by_descriptor: &mut state.by_descriptor,
        bias,
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
        lang: func.lang,
    }
}
