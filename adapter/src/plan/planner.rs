//! The planner: turns the functions and source lines of one image into
//! probes, resolving the types they need into its own table.
//!
//! For a function: its convention (`lang`) picks the entry site and the
//! arguments' and results' locations; `site` finds the `RET`s; each probe's
//! recipe is written by a `recipe::Builder` (registers and stack slots by
//! `place`, then what they point to). For C, C++ and Rust, DWARF has the
//! last word on the arguments at the entry: a location list's entry for
//! that address (optimized code) or a constant is used as it is, a value
//! it has no place for there is `<optimized out>`, and the convention
//! fills in only where DWARF names a slot the prologue has not written yet
//! (unoptimized code), unless the compiler changed the function's
//! signature. For a line: the variables in scope,
//! located by DWARF (`place`), and the logpoint's paths (`path`). A
//! condition, when there is one, is compiled into the probes' filters as
//! they are planned (`filter`), and the returns of a filtered function are
//! paired with the calls its entry admits.
//!
//! A planner lives as long as a set of probes is being made (a trace, a
//! logpoint); it keeps the type table and the next probe id, and nothing
//! about any one recipe.

use std::collections::HashMap;

use anyhow::{bail, Context, Result};
use capstone::Capstone;

use super::lang::{self, Assignment, Convention};
use super::recipe::Builder;
use super::site::{self, Site};
use super::unwind;
use super::{
    filter, place, Capture, EntrySite, FrameRole, Len, Limits, Pairing, Path, Probe, ProbeKind,
    RateLimit, Recipe, Reg, TypeArgs, MAX_CAPTURES, MAX_STACK_FRAMES,
};
use crate::expr::Expr;
use crate::image::{AtEntry, Lang, PlacePiece};
use crate::image::{FuncId, Image, Type, TypeId, TypeKind, TypeTable, Variable};

/// What shapes every plan besides the function itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanOptions {
    pub limits: Limits,
    /// Entry probes on a function's first instruction whatever its
    /// convention prefers (the benchmark's probe-site comparison).
    pub entry_at_low: bool,
    /// Conditions compiled into the probes' filters, so the backend
    /// checks what it can; off, the adapter checks every hit itself (to
    /// measure what the filters save).
    pub prefilter: bool,
    /// Hits per second each probe that starts a hit (an entry or a
    /// logpoint's line) may report, and all of them together.
    pub rate: RateLimit,
    /// Frames of the call stack each hit carries (0: none), at most
    /// [`MAX_STACK_FRAMES`].
    pub stack: u16,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            limits: Limits::default(),
            entry_at_low: false,
            prefilter: true,
            rate: RateLimit::default(),
            stack: 0,
        }
    }
}

/// Turns functions of one image into probes, resolving the types they need.
pub struct Planner<'a> {
    pub image: &'a Image,
    pub types: TypeTable,
    cache: HashMap<u64, TypeId>,
    pub options: PlanOptions,
    next_id: u32,
    cs: Capstone,
    /// Which functions no unwind can pass through, made on first use.
    unwind: Option<unwind::Analysis<'a>>,
}

/// A value to place: its name and type, if known.
type Named = (String, Option<TypeId>);

/// Where a value of an entry or return probe is taken from.
#[derive(Debug, Clone)]
enum Where {
    /// Where the calling convention puts it (`None`: it could not say).
    Abi(Option<Assignment>),
    /// Where DWARF says it is at the probe's address.
    Dwarf(Vec<PlacePiece>),
    /// Nowhere: the compiler did not keep it there.
    OptimizedOut,
}

impl<'a> Planner<'a> {
    pub fn new(image: &'a Image, options: PlanOptions) -> Result<Self> {
        Ok(Planner {
            image,
            types: TypeTable::default(),
            cache: HashMap::new(),
            options,
            next_id: 0,
            cs: site::disassembler()?,
            unwind: None,
        })
    }

    /// The unwind analysis of the image, made on first use.
    fn unwind(&mut self) -> Result<&mut unwind::Analysis<'a>> {
        if self.unwind.is_none() {
            self.unwind = Some(unwind::Analysis::new(self.image)?);
        }
        self.unwind
            .as_mut()
            .context("the unwind analysis was just made")
    }

    /// The limits values are captured (and shown) with.
    pub fn limits(&self) -> Limits {
        self.options.limits
    }

    /// Copies of the resolved types and of the DIE -> type cache, so that a
    /// decoder can go on resolving (interfaces' dynamic types) with the
    /// same type ids.
    pub fn type_state(&self) -> (TypeTable, HashMap<u64, TypeId>) {
        (self.types.clone(), self.cache.clone())
    }

    /// The type of DWARF type DIE `die`, resolved into the table.
    fn resolve(&mut self, die: Option<u64>) -> Option<TypeId> {
        self.image
            .resolve_type(&mut self.types, &mut self.cache, die?)
            .ok()
    }

    /// The entry probe and, when `returns`, one return probe per `RET` of
    /// function `id`. With a `condition`, the entry probe gets the filter
    /// compiled from it, and then opens a frame for each call it admits,
    /// which the return probes close: a return is reported only when its
    /// call was.
    pub fn plan_function(
        &mut self,
        id: FuncId,
        condition: Option<&Expr>,
        returns: bool,
    ) -> Result<Vec<Probe>> {
        let image = self.image;
        let func = &image.functions[id];
        let insns = site::instructions(&self.cs, image, func)?;
        let conv = lang::of(func.lang);
        let chosen = match self.options.entry_at_low {
            true => None,
            false => conv.entry_site(&insns),
        };
        let entry = site::entry(image, id, &insns, chosen);
        let returns = match returns {
            true => site::returns(&insns),
            false => Vec::new(),
        };

        let mut args: Vec<Named> = Vec::new();
        let mut dictionary: Option<usize> = None;
        for p in func.args() {
            let ty = match p.dictionary {
                true => {
                    dictionary = Some(args.len());
                    // Before Go 1.27 it has no DWARF: a pointer.
                    self.resolve(p.type_ref).or(Some(self.word_pointer()))
                }
                false => self.resolve(p.type_ref),
            };
            args.push((p.name.clone(), ty));
        }
        let mut results: Vec<Named> = Vec::new();
        for p in func.results() {
            results.push((p.name.clone(), self.resolve(p.type_ref)));
        }
        // What DWARF says of the arguments at the entry (C, C++, Rust).
        let sizes: Vec<Option<u64>> = args
            .iter()
            .map(|(_, ty)| ty.map(|t| self.types.get(t).size))
            .collect();
        let places = match func.lang {
            Lang::Go => None,
            _ => image.entry_places(func, &sizes),
        };
        let sub = image.subprogram(func);
        if let Some(places) = &places {
            // DWARF reaching an argument through a pointer in its slot:
            // C++ passes that class by reference.
            for ((_, ty), p) in args.iter().zip(places) {
                if let (Some(ty), AtEntry::Convention { indirect: true }) = (ty, p) {
                    self.types.set_by_reference(*ty);
                }
            }
        }
        let (arg_locs, result_locs) = self.locate(conv, &args, &results);
        // The dictionary entries the values of type parameters name.
        let mut entries: Vec<u64> = args
            .iter()
            .chain(&results)
            .filter_map(|(_, t)| match self.types.get((*t)?).kind {
                TypeKind::Shape { index, .. } => Some(index),
                _ => None,
            })
            .collect();
        entries.sort_unstable();
        entries.dedup();
        let generic = dictionary.map(|d| (d, entries.as_slice()));

        let arg_wheres: Vec<Where> = match &places {
            None => arg_locs.into_iter().map(Where::Abi).collect(),
            Some(places) => arg_locs
                .into_iter()
                .zip(places)
                .zip(&sizes)
                .map(|((abi, p), size)| match p {
                    // A zero-sized value needs no bytes to be shown.
                    _ if *size == Some(0) => Where::Abi(abi),
                    AtEntry::Pieces(pieces) => Where::Dwarf(pieces.clone()),
                    AtEntry::Convention { .. } if sub.is_none_or(|s| s.args_by_abi) => {
                        Where::Abi(abi)
                    }
                    AtEntry::Convention { .. } | AtEntry::OptimizedOut(_) => Where::OptimizedOut,
                })
                .collect(),
        };
        let result_wheres: Vec<Where> = match sub {
            Some(s) if !s.results_by_abi => vec![Where::OptimizedOut; result_locs.len()],
            _ => result_locs.into_iter().map(Where::Abi).collect(),
        };

        let mut probes = Vec::with_capacity(1 + returns.len());
        let mut recipe = self.recipe(conv, &args, &arg_wheres, generic);
        let filtered = self.filter(&mut recipe, condition);
        let limited = self.rate_limit(&mut recipe);
        let mut call = self.probe(id, ProbeKind::Entry, entry, recipe)?;
        let pairing = (filtered || limited).then(|| Pairing {
            role: FrameRole::Open,
            key: call.id,
            g: conv.frame_base(image),
        });
        call.recipe.pairing = pairing;
        probes.push(call);
        let generic = dictionary.map(|_| (usize::MAX, &[][..]));
        for ret in returns {
            let mut recipe = self.recipe(conv, &results, &result_wheres, generic);
            recipe.pairing = pairing.map(|open| Pairing {
                role: FrameRole::Close,
                ..open
            });
            probes.push(self.probe(id, ProbeKind::Return, ret, recipe)?);
        }
        // A uretprobe replaces the return address on the stack, which an
        // unwinder (C++ exceptions, Rust panics) would find: C, and other
        // functions no unwind can pass through (`unwind`); never Go.
        let uretprobe = match func.lang {
            Lang::Go => false,
            _ => self.unwind()?.returns(id, &insns)?.uretprobe,
        };
        if uretprobe {
            let at = EntrySite {
                address: func.low,
                file_offset: image
                    .file_offset(func.low)
                    .with_context(|| format!("{}: its entry is not in the file", func.name))?,
            };
            for p in probes.iter_mut().filter(|p| p.kind == ProbeKind::Return) {
                p.returns_at = Some(at);
            }
        }
        Ok(probes)
    }

    /// A probe at `address` (a statement of function `id`) capturing every
    /// variable in `vars` where it lives at that address. A variable that
    /// cannot be read there gets a slot saying why.
    ///
    /// Each of `paths` that goes through a pointer or a slice gets a slot of
    /// its own (see [`Path`]); a path that stays inside its variable needs
    /// none (the decoded variable holds it) and one that cannot be followed
    /// gets a slot saying why. With a `condition`, the probe gets the
    /// filter compiled from it.
    pub fn plan_line(
        &mut self,
        id: FuncId,
        address: u64,
        vars: &[Variable],
        paths: &[Path],
        condition: Option<&Expr>,
    ) -> Result<Probe> {
        let image = self.image;
        let site = site::at(&self.cs, image, id, address)?;
        let conv = lang::of(image.functions[id].lang);
        let mut typed = Vec::with_capacity(vars.len());
        for v in vars {
            typed.push((v, self.resolve(v.type_ref)));
        }
        let cfa = image.cfa_at(address);
        let mut b = Builder::new(&self.types, self.options.limits);
        self.prologue(&mut b, conv);
        for (v, ty) in typed {
            let slot = place::located(&mut b, v, ty, cfa);
            b.recipe.values.push(slot);
        }
        for path in paths {
            if let Some(slot) = b.path(path) {
                b.recipe.values.push(slot);
            }
        }
        // Only now what the values (and the paths' targets) point to, in
        // shares of what is left, so the recipe stays within the budgets.
        if b.recipe.captures.len() > MAX_CAPTURES {
            bail!(
                "{} variables and expressions at this line need more than {MAX_CAPTURES} reads",
                b.recipe.values.len()
            );
        }
        b.follow_shared();
        let mut recipe = b.finish();
        self.filter(&mut recipe, condition);
        self.rate_limit(&mut recipe);
        self.probe(id, ProbeKind::Line, site, recipe)
    }

    /// Gives `recipe` the rate limits, if there are any; whether there are.
    fn rate_limit(&self, recipe: &mut Recipe) -> bool {
        let rate = self.options.rate;
        recipe.rate = rate.any().then_some(rate);
        recipe.rate.is_some()
    }

    /// Gives `recipe` the filter compiled from `condition`, if any of it
    /// compiles and filters are on; whether it did.
    fn filter(&self, recipe: &mut Recipe, condition: Option<&Expr>) -> bool {
        let Some(c) = condition.filter(|_| self.options.prefilter) else {
            return false;
        };
        recipe.filter = filter::compile(c, recipe, &self.types);
        recipe.filter.is_some()
    }

    fn probe(
        &mut self,
        func: FuncId,
        kind: ProbeKind,
        site: Site,
        mut recipe: Recipe,
    ) -> Result<Probe> {
        if self.options.stack > 0 && recipe.captures.len() < MAX_CAPTURES {
            // Frame 0 is the probe itself; the others are return addresses,
            // plus one more that tells whether the stack goes on.
            let count = self.options.stack.min(MAX_STACK_FRAMES);
            let (cfa, offset) = self.cfa(kind, site.address);
            recipe.stack = Some(super::recipe::push(
                &mut recipe,
                Capture::Frames { cfa, offset, count },
            ));
        }
        let file_offset = self
            .image
            .file_offset(site.address)
            .with_context(|| format!("address {:#x} is not in the file", site.address))?;
        let id = self.next_id;
        self.next_id += 1;
        Ok(Probe {
            id,
            func,
            kind,
            address: site.address,
            file_offset,
            library: None,
            guard: site.guard,
            instruction: site.instruction,
            scratch: site.scratch,
            returns_at: None,
            recipe,
        })
    }

    /// Where the canonical frame address is at a probe of `kind` at
    /// `address`, from the call frame information; without it, SP + 8 at
    /// an entry or a `RET` (the return address on top) and RBP + 16 inside
    /// a function (a frame pointer's frame).
    fn cfa(&self, kind: ProbeKind, address: u64) -> (Reg, i32) {
        let known = self
            .image
            .cfa_at(address)
            .and_then(|(reg, off)| Some((place::dwarf_reg(reg)?, i32::try_from(off).ok()?)));
        known.unwrap_or(match kind {
            ProbeKind::Entry | ProbeKind::Return => (Reg::Rsp, 8),
            ProbeKind::Line => (Reg::Rbp, 16),
        })
    }

    /// The location of each argument and result under the function's
    /// convention; `None` where it is unknown.
    fn locate(
        &self,
        conv: &dyn Convention,
        args: &[Named],
        results: &[Named],
    ) -> (Vec<Option<Assignment>>, Vec<Option<Assignment>>) {
        let all_typed = args.iter().chain(results).all(|(_, t)| t.is_some());
        if !all_typed {
            // One unknown size would shift every later location.
            return (vec![None; args.len()], vec![None; results.len()]);
        }
        let a: Vec<TypeId> = args.iter().filter_map(|(_, t)| *t).collect();
        let r: Vec<TypeId> = results.iter().filter_map(|(_, t)| *t).collect();
        let (a, r) = conv.assign(&self.types, &a, &r);
        (
            a.into_iter().map(Some).collect(),
            r.into_iter().map(Some).collect(),
        )
    }

    /// The recipe of an entry or return probe showing `values` taken from
    /// `wheres`. A shape instantiation's probes (`generic`: which of
    /// `values` is the dictionary, which of its entries to read; on a
    /// return probe, neither) learn their type arguments ([`TypeArgs`]);
    /// the dictionary is read, not shown.
    fn recipe(
        &self,
        conv: &dyn Convention,
        values: &[Named],
        wheres: &[Where],
        generic: Option<(usize, &[u64])>,
    ) -> Recipe {
        let mut b = Builder::new(&self.types, self.options.limits);
        self.prologue(&mut b, conv);
        let mut dictionary = None;
        for (i, ((name, ty), at)) in values.iter().zip(wheres).enumerate() {
            let slot = match at {
                Where::Abi(loc) => place::assigned(&mut b, name, *ty, loc.as_ref()),
                Where::Dwarf(pieces) => {
                    let v = Variable {
                        name: name.clone(),
                        type_ref: None,
                        location: Ok(pieces.clone()),
                    };
                    // At a function's first instruction the CFA is SP+8
                    // (DWARF register 7), above the return address.
                    place::located(&mut b, &v, *ty, Some((7, 8)))
                }
                Where::OptimizedOut => place::optimized_out(name, *ty),
            };
            match generic {
                Some((d, _)) if d == i => dictionary = slot.pieces.first().map(|p| p.capture),
                _ => b.recipe.values.push(slot),
            }
        }
        if let Some((_, entries)) = generic {
            let entries = match dictionary {
                Some(d) => entries
                    .iter()
                    .map(|&i| {
                        let entry = Capture::Deref {
                            base: d,
                            offset: 0,
                            add: (8 * i).min(i32::MAX as u64) as i32,
                            len: Len::Fixed(8),
                        };
                        (i, b.push(entry))
                    })
                    .collect(),
                None => Vec::new(),
            };
            let frame = self.image.g.and_then(|g| {
                let add = i32::try_from(g.stack_hi).ok()?;
                let g = b.push(Capture::Reg(Reg::R14));
                let hi = b.push(Capture::Deref {
                    base: g,
                    offset: 0,
                    add,
                    len: Len::Fixed(8),
                });
                Some([g, hi, b.push(Capture::Reg(Reg::Rsp))])
            });
            b.recipe.type_args = Some(TypeArgs { entries, frame });
        }
        b.follow_shared();
        b.finish()
    }

    /// A pointer-sized word: the type of a dictionary DWARF does not list.
    fn word_pointer(&mut self) -> TypeId {
        const NAME: &str = "*[]uintptr";
        if let Some(id) = self.cache.get(&u64::MAX) {
            return *id;
        }
        let id = self.types.push(Type {
            name: NAME.into(),
            size: 8,
            kind: TypeKind::UnsafePointer,
        });
        self.cache.insert(u64::MAX, id);
        id
    }

    /// What every recipe starts with: the probe's run-time address in a
    /// position-independent image, then the convention's context.
    fn prologue(&self, b: &mut Builder, conv: &dyn Convention) {
        if self.image.pie {
            b.recipe.pc = Some(b.push(Capture::Reg(Reg::Rip)));
        }
        conv.context(self.image, &mut b.recipe);
    }
}
