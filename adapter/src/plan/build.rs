//! Building probes for a function: choosing the instructions to probe
//! (capstone) and writing the capture recipe of each from the calling
//! convention and the parameters' DWARF types.
//!
//! Entry probes of Go functions sit on the conditional jump of the stack
//! check (`CMPQ SP, 0x10(R14); JBE morestack`) with a guard that skips the
//! pass that is about to grow the stack, so each call is reported once and
//! the arguments are still in their ABI registers. Return probes sit on
//! every `RET` (never a uretprobe: Go moves and walks stacks).
//!
//! Beyond the value's own registers or stack slot, `Planner::follow` adds
//! the reads that copy what the value points to at the moment of the call
//! (strings, pointees, slice elements, map buckets, an interface's dynamic
//! value), within `Limits` and the recipe budgets of `plan`.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use anyhow::{anyhow, bail, Context, Result};
use capstone::arch::x86::{ArchMode, ArchSyntax};
use capstone::arch::{BuildsCapstone, BuildsCapstoneSyntax};
use capstone::Capstone;

use super::goabi::{self, Assignment, Loc};
use super::{
    Buffer, Capture, DerefSlot, Guard, Len, Limits, Path, PathStep, Piece, Probe, ProbeKind,
    Recipe, Reg, ValueSlot, MAX_CAPTURES, MAX_READ, MAX_RECIPE_BYTES,
};
use crate::image::goruntime::{map_layout, BucketMap, MapLayout};
use crate::image::{FuncId, Image, Lang, Param, Place, TypeId, TypeKind, TypeTable, Variable};

/// Largest stack-assigned value copied whole, in bytes.
const MAX_STACK_VALUE: u64 = 4096;
/// Most bytes of a pointee copied through a pointer.
const MAX_POINTEE: u32 = 4096;
/// Bytes of an interface's data copied: enough for most dynamic values
/// (an error's struct, a boxed number or string header, a small struct).
pub const IFACE_DATA: u32 = 128;
/// Words at the start of an interface's data window that are followed
/// speculatively.
const IFACE_WORDS: u32 = 8;
/// Most bytes read through each word of an interface's data window.
const IFACE_WORD_READ: u32 = 256;
/// Words at the start of each read through the window that are followed
/// once more, when the depth limit allows (a string or an interface in a
/// struct the dynamic value points to: `*fmt.wrapError`'s inner
/// `*errors.errorString`'s text).
const IFACE_DEEP_WORDS: u32 = 4;

/// Turns functions of one image into probes, resolving the types they need.
pub struct Planner<'a> {
    pub image: &'a Image,
    pub types: TypeTable,
    cache: HashMap<u64, TypeId>,
    pub limits: Limits,
    next_id: u32,
    cs: Capstone,
    /// Where the value being followed must stop adding steps.
    budget: Cell<Budget>,
    /// Reads through an interface's data window whose first words are
    /// still to be followed, speculatively, with what the value's share
    /// has left once everything typed in it is followed: (capture, bytes
    /// read through each word).
    speculative: RefCell<Vec<(u16, u32)>>,
}

/// Capture count and total bytes a recipe may reach while one value is
/// being followed.
#[derive(Debug, Clone, Copy)]
struct Budget {
    captures: usize,
    bytes: u64,
}

/// An instruction chosen as a probe site.
struct Site {
    address: u64,
    guard: Option<Guard>,
    instruction: Vec<u8>,
    scratch: Option<u64>,
}

/// A decoded instruction: address, mnemonic, operands, bytes.
type Insn = (u64, String, String, Vec<u8>);

impl<'a> Planner<'a> {
    pub fn new(image: &'a Image, limits: Limits) -> Result<Self> {
        let cs = Capstone::new()
            .x86()
            .mode(ArchMode::Mode64)
            .syntax(ArchSyntax::Intel)
            .build()
            .map_err(|e| anyhow!("initialising capstone: {e}"))?;
        Ok(Planner {
            image,
            types: TypeTable::default(),
            cache: HashMap::new(),
            limits,
            next_id: 0,
            cs,
            budget: Cell::new(Budget {
                captures: MAX_CAPTURES,
                bytes: MAX_RECIPE_BYTES as u64,
            }),
            speculative: RefCell::new(Vec::new()),
        })
    }

    /// Copies of the resolved types and of the DIE -> type cache, so that a
    /// decoder can go on resolving (interfaces' dynamic types) with the
    /// same type ids.
    pub fn type_state(&self) -> (TypeTable, HashMap<u64, TypeId>) {
        (self.types.clone(), self.cache.clone())
    }

    /// The entry probe and one return probe per `RET` of function `id`.
    pub fn plan_function(&mut self, id: FuncId) -> Result<Vec<Probe>> {
        let image = self.image;
        let func = &image.functions[id];
        let code = image
            .code(func)
            .ok_or_else(|| anyhow!("{}: code is not in the file", func.name))?;
        let insns: Vec<Insn> = {
            let decoded = self
                .cs
                .disasm_all(code, func.low)
                .map_err(|e| anyhow!("{}: cannot disassemble: {e}", func.name))?;
            decoded
                .iter()
                .map(|i| {
                    (
                        i.address(),
                        i.mnemonic().unwrap_or("").to_string(),
                        i.op_str().unwrap_or("").to_string(),
                        i.bytes().to_vec(),
                    )
                })
                .collect()
        };

        let at_low = Site {
            address: func.low,
            guard: None,
            instruction: Vec::new(),
            scratch: None,
        };
        let mut entry = match func.lang {
            Lang::Go if !entry_at_low() => go_entry_site(&insns).unwrap_or(at_low),
            _ => at_low,
        };
        if let Some(insn) = insns.iter().find(|i| i.0 == entry.address) {
            entry.instruction = insn.3.clone();
            entry.scratch = scratch_after(image, id, insn);
        }
        let returns: Vec<Site> = insns
            .iter()
            .filter(|i| i.1 == "ret")
            .map(|i| Site {
                address: i.0,
                guard: None,
                instruction: i.3.clone(),
                scratch: None,
            })
            .collect();

        let params: Vec<Param> = func.params.clone();
        let lang = func.lang;
        let resolve = |planner: &mut Self, p: &Param| -> Option<TypeId> {
            let die = p.type_ref?;
            planner
                .image
                .resolve_type(&mut planner.types, &mut planner.cache, die)
                .ok()
        };
        let args: Vec<(String, Option<TypeId>)> = params
            .iter()
            .filter(|p| !p.is_result)
            .map(|p| (p.name.clone(), resolve(self, p)))
            .collect();
        let results: Vec<(String, Option<TypeId>)> = params
            .iter()
            .filter(|p| p.is_result)
            .map(|p| (p.name.clone(), resolve(self, p)))
            .collect();

        let (arg_locs, result_locs) = self.locate(lang, &args, &results);

        let mut probes = Vec::with_capacity(1 + returns.len());
        let recipe = self.recipe(lang, &args, &arg_locs);
        probes.push(self.probe(id, ProbeKind::Entry, entry, recipe)?);
        for ret in returns {
            let recipe = self.recipe(lang, &results, &result_locs);
            probes.push(self.probe(id, ProbeKind::Return, ret, recipe)?);
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
    /// gets a slot saying why.
    pub fn plan_line(
        &mut self,
        id: FuncId,
        address: u64,
        vars: &[Variable],
        paths: &[Path],
    ) -> Result<Probe> {
        let image = self.image;
        let func = &image.functions[id];
        let code = image
            .code(func)
            .ok_or_else(|| anyhow!("{}: code is not in the file", func.name))?;
        let start = address
            .checked_sub(func.low)
            .filter(|&o| (o as usize) < code.len())
            .ok_or_else(|| anyhow!("{address:#x} is outside {}", func.name))?;
        let instruction = {
            let decoded = self
                .cs
                .disasm_count(&code[start as usize..], address, 1)
                .map_err(|e| anyhow!("{}: cannot disassemble: {e}", func.name))?;
            decoded
                .iter()
                .next()
                .map(|i| i.bytes().to_vec())
                .ok_or_else(|| anyhow!("no instruction at {address:#x}"))?
        };
        let mut recipe = self.recipe(func.lang, &[], &[]);
        let cfa = image.cfa_at(address);
        for v in vars {
            let ty = v.type_ref.and_then(|die| {
                image
                    .resolve_type(&mut self.types, &mut self.cache, die)
                    .ok()
            });
            let mut slot = ValueSlot {
                name: v.name.clone(),
                ty,
                pieces: Vec::new(),
                size: 0,
                derefs: Vec::new(),
                unavailable: None,
            };
            match (ty, &v.location) {
                (None, _) => slot.unavailable = Some(String::from("type unknown")),
                (_, Err(why)) => slot.unavailable = Some(why.clone()),
                (Some(ty), Ok(places)) => {
                    let size = self.types.get(ty).size;
                    slot.size = size as u32;
                    if size > MAX_STACK_VALUE {
                        slot.unavailable =
                            Some(format!("value of {size} bytes is too large to capture"));
                    } else {
                        let mut at = 0u32;
                        for p in places {
                            let len = p.size.unwrap_or(size - at as u64) as u32;
                            match place_capture(&mut recipe, p.place, len, cfa) {
                                Some(capture) => slot.pieces.push(Piece { at, len, capture }),
                                None => {
                                    slot.unavailable =
                                        Some(String::from("frame address unknown at this line"));
                                    break;
                                }
                            }
                            at += len;
                        }
                    }
                }
            }
            recipe.values.push(slot);
        }
        for path in paths {
            if let Some(slot) = self.plan_path(&mut recipe, path) {
                recipe.values.push(slot);
            }
        }
        // Only now what the values (and the paths' targets) point to, in
        // shares of what is left, so the recipe stays within the budgets.
        if recipe.captures.len() > MAX_CAPTURES {
            bail!(
                "{} variables and expressions at this line need more than {MAX_CAPTURES} reads",
                recipe.values.len()
            );
        }
        self.follow_shared(&mut recipe);
        self.probe(
            id,
            ProbeKind::Line,
            Site {
                address,
                guard: None,
                instruction,
                scratch: None,
            },
            recipe,
        )
    }

    fn probe(
        &mut self,
        func: FuncId,
        kind: ProbeKind,
        site: Site,
        recipe: Recipe,
    ) -> Result<Probe> {
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
            guard: site.guard,
            instruction: site.instruction,
            scratch: site.scratch,
            recipe,
        })
    }

    /// The location of each argument and result under the function's ABI;
    /// `None` where it is unknown.
    fn locate(
        &self,
        lang: Lang,
        args: &[(String, Option<TypeId>)],
        results: &[(String, Option<TypeId>)],
    ) -> (Vec<Option<Assignment>>, Vec<Option<Assignment>>) {
        let all_typed = args.iter().chain(results).all(|(_, t)| t.is_some());
        if !all_typed {
            // One unknown size would shift every later location.
            return (vec![None; args.len()], vec![None; results.len()]);
        }
        let a: Vec<TypeId> = args.iter().filter_map(|(_, t)| *t).collect();
        let r: Vec<TypeId> = results.iter().filter_map(|(_, t)| *t).collect();
        let (a, r) = match lang {
            Lang::Go => goabi::assign(&self.types, &a, &r),
            _ => sysv_assign(&self.types, &a, &r),
        };
        (
            a.into_iter().map(Some).collect(),
            r.into_iter().map(Some).collect(),
        )
    }

    fn recipe(
        &self,
        lang: Lang,
        values: &[(String, Option<TypeId>)],
        locs: &[Option<Assignment>],
    ) -> Recipe {
        let mut recipe = Recipe::default();
        if self.image.pie {
            recipe.pc = Some(push(&mut recipe, Capture::Reg(Reg::Rip)));
        }
        if lang == Lang::Go {
            if let Some(off) = self.image.g.map(|g| g.goid) {
                let g = push(&mut recipe, Capture::Reg(Reg::R14));
                let goid = push(
                    &mut recipe,
                    Capture::Deref {
                        base: g,
                        offset: 0,
                        add: off as i32,
                        len: Len::Fixed(8),
                    },
                );
                recipe.goid = Some(goid);
            }
        }
        for ((name, ty), loc) in values.iter().zip(locs) {
            let mut slot = ValueSlot {
                name: name.clone(),
                ty: *ty,
                pieces: Vec::new(),
                size: 0,
                derefs: Vec::new(),
                unavailable: None,
            };
            match (ty, loc) {
                (Some(ty), Some(loc)) => {
                    let size = self.types.get(*ty).size;
                    slot.size = size as u32;
                    match loc {
                        Assignment::Registers(pieces) => {
                            for p in pieces {
                                let c = match p.loc {
                                    Loc::Int(r) => Capture::Reg(r),
                                    Loc::Float(x) => Capture::Xmm(x),
                                };
                                let capture = push(&mut recipe, c);
                                slot.pieces.push(Piece {
                                    at: p.at,
                                    len: p.len,
                                    capture,
                                });
                            }
                        }
                        Assignment::Stack { .. } if size > MAX_STACK_VALUE => {
                            slot.unavailable =
                                Some(format!("value of {size} bytes is too large to capture"));
                        }
                        Assignment::Stack { offset } => {
                            let capture = push(
                                &mut recipe,
                                Capture::Stack {
                                    offset: 8 + *offset as i32,
                                    len: size as u32,
                                },
                            );
                            slot.pieces.push(Piece {
                                at: 0,
                                len: size as u32,
                                capture,
                            });
                        }
                    }
                }
                (None, _) => slot.unavailable = Some(String::from("type unknown")),
                (Some(_), None) => slot.unavailable = Some(String::from("location unknown")),
            }
            recipe.values.push(slot);
        }
        self.follow_shared(&mut recipe);
        recipe
    }

    /// Follows what the recipe's values point to, each value getting an
    /// equal share of what the budgets have left (what one leaves flows to
    /// the next), so that a large first value cannot starve the others.
    fn follow_shared(&self, recipe: &mut Recipe) {
        let mut slots = std::mem::take(&mut recipe.values);
        let n = slots.len();
        for (i, slot) in slots.iter_mut().enumerate() {
            let Some(ty) = slot.ty.filter(|_| slot.unavailable.is_none()) else {
                continue;
            };
            let left = (n - i) as u64;
            let (steps, bytes) = (recipe.captures.len(), recipe_bytes(recipe));
            self.budget.set(Budget {
                captures: steps + MAX_CAPTURES.saturating_sub(steps) / left as usize,
                bytes: bytes + (MAX_RECIPE_BYTES as u64).saturating_sub(bytes) / left,
            });
            self.follow(recipe, slot, ty, Buffer::Image, 0, 0);
            let speculative = std::mem::take(&mut *self.speculative.borrow_mut());
            'reads: for (c, window) in speculative {
                for k in 0..IFACE_DEEP_WORDS {
                    let to = (Buffer::Capture(c), k * 8, 0);
                    let word = (c, (k * 8) as u16);
                    if self
                        .deref_into(recipe, slot, to, word, 0, Len::Fixed(window))
                        .is_none()
                    {
                        break 'reads;
                    }
                }
            }
        }
        recipe.values = slots;
    }

    /// Bytes the value being followed may still have read.
    fn room(&self, recipe: &Recipe) -> u32 {
        let left = self.budget.get().bytes.saturating_sub(recipe_bytes(recipe));
        left.min(u32::MAX as u64) as u32
    }

    /// Adds a `Deref` of the pointer at `(capture, offset)`, unless the
    /// current value's share of the budgets ([`MAX_CAPTURES`] steps,
    /// [`MAX_RECIPE_BYTES`] bytes) is used up.
    fn deref(
        &self,
        recipe: &mut Recipe,
        (base, offset): (u16, u16),
        add: i32,
        len: Len,
    ) -> Option<u16> {
        let step = Capture::Deref {
            base,
            offset,
            add,
            len,
        };
        let budget = self.budget.get();
        if recipe.captures.len() >= budget.captures
            || recipe_bytes(recipe) + step.max_len() as u64 > budget.bytes
        {
            return None;
        }
        Some(push(recipe, step))
    }

    /// [`Self::deref`], recorded in `slot` as the pointer at byte `at` of
    /// `from` being followed (its target captured from byte `start` on).
    #[allow(clippy::too_many_arguments)]
    fn deref_into(
        &self,
        recipe: &mut Recipe,
        slot: &mut ValueSlot,
        (from, at, start): (Buffer, u32, u32),
        ptr: (u16, u16),
        add: i32,
        len: Len,
    ) -> Option<u16> {
        let capture = self.deref(recipe, ptr, add, len)?;
        slot.derefs.push(DerefSlot {
            from,
            at,
            capture,
            start,
        });
        Some(capture)
    }

    /// Adds captures for memory the value of type `ty` at byte `at` of
    /// buffer `buf` points to: string bytes, pointees, slice and map
    /// contents, an interface's dynamic type and value, a channel's counts,
    /// a func's code pointer. `depth` counts the indirections already
    /// followed; recursion ends at `Limits::max_depth` and at
    /// [`MAX_CAPTURES`], so recursive types terminate.
    fn follow(
        &self,
        recipe: &mut Recipe,
        slot: &mut ValueSlot,
        ty: TypeId,
        buf: Buffer,
        at: u32,
        depth: u32,
    ) {
        let t = self.types.underlying(ty);
        let limits = self.limits;
        let deeper = depth < limits.max_depth;
        let word = |slot: &ValueSlot, at: u32| -> Option<(u16, u16)> {
            match buf {
                Buffer::Image => locate(slot, at),
                Buffer::Capture(c) => Some((c, u16::try_from(at).ok()?)),
            }
        };
        match &t.kind {
            TypeKind::String => {
                let (Some(ptr), Some(len)) = (word(slot, at), word(slot, at + 8)) else {
                    return;
                };
                let len = Len::Counted {
                    capture: len.0,
                    offset: len.1,
                    scale: 1,
                    max: limits.max_string_len.min(MAX_READ).min(self.room(recipe)),
                };
                self.deref_into(recipe, slot, (buf, at, 0), ptr, 0, len);
            }
            TypeKind::Struct { fields } => {
                for f in fields {
                    self.follow(recipe, slot, f.ty, buf, at + f.offset as u32, depth);
                }
            }
            TypeKind::Array {
                elem: Some(e),
                count,
            } => {
                let size = self.types.get(*e).size as u32;
                let n = (*count).min(limits.max_array_values as u64) as u32;
                for i in 0..n {
                    self.follow(recipe, slot, *e, buf, at + i * size, depth);
                }
            }
            TypeKind::Slice { elem: Some(e) } if deeper => {
                let size = self.types.get(*e).size as u32;
                // As many elements as the limit asks, one read holds and
                // this value's share of the budget has room for.
                // Elements that point somewhere leave half the room for
                // what they point to.
                let room = match points(&self.types, *e, 0) {
                    true => self.room(recipe) / 2,
                    false => self.room(recipe),
                };
                let n = limits
                    .max_array_values
                    .min(MAX_READ.min(room) / size.max(1));
                let (Some(ptr), Some(len)) = (word(slot, at), word(slot, at + 8)) else {
                    return;
                };
                if size == 0 || n == 0 {
                    return;
                }
                let len = Len::Counted {
                    capture: len.0,
                    offset: len.1,
                    scale: size,
                    max: n * size,
                };
                let Some(d) = self.deref_into(recipe, slot, (buf, at, 0), ptr, 0, len) else {
                    return;
                };
                for i in 0..n {
                    self.follow(recipe, slot, *e, Buffer::Capture(d), i * size, depth + 1);
                }
            }
            TypeKind::Pointer { pointee: Some(p) } if deeper => {
                // A large pointee is copied in part; the decoder shows the
                // fields that fit.
                let size = self.types.get(*p).size.min(MAX_POINTEE as u64) as u32;
                let Some(ptr) = word(slot, at) else { return };
                if size == 0 {
                    return;
                }
                let Some(d) = self.deref_into(recipe, slot, (buf, at, 0), ptr, 0, Len::Fixed(size))
                else {
                    return;
                };
                self.follow(recipe, slot, *p, Buffer::Capture(d), 0, depth + 1);
            }
            TypeKind::Interface { empty } => {
                let (Some(tab), Some(data)) = (word(slot, at), word(slot, at + 8)) else {
                    return;
                };
                if !*empty {
                    // itab._type sits after itab.inter.
                    if self
                        .deref_into(recipe, slot, (buf, at, 8), tab, 8, Len::Fixed(8))
                        .is_none()
                    {
                        return;
                    }
                }
                if !deeper {
                    // The dynamic type is named; its value shown by address.
                    return;
                }
                // The dynamic type is known only when the hit is decoded, so
                // a fixed window of the data is copied, and every word of it
                // is followed once more as if it were a pointer (a string's
                // bytes, a pointed-to struct): the decoder uses the reads
                // that the dynamic type makes meaningful.
                let Some(d) = self.deref_into(
                    recipe,
                    slot,
                    (buf, at + 8, 0),
                    data,
                    0,
                    Len::Fixed(IFACE_DATA),
                ) else {
                    return;
                };
                if depth + 1 < limits.max_depth {
                    let window = limits.max_string_len.clamp(8, IFACE_WORD_READ);
                    for k in 0..IFACE_WORDS {
                        let word = (d, (k * 8) as u16);
                        let to = (Buffer::Capture(d), k * 8, 0);
                        let Some(w) =
                            self.deref_into(recipe, slot, to, word, 0, Len::Fixed(window))
                        else {
                            return;
                        };
                        // One level further only after the rest of the
                        // value: guesses must not starve typed reads.
                        if depth + 2 < limits.max_depth {
                            self.speculative.borrow_mut().push((w, window));
                        }
                    }
                }
            }
            TypeKind::Map { hmap: Some(h) } if deeper => {
                let Some(MapLayout::Buckets(layout)) = map_layout(&self.types, *h) else {
                    return;
                };
                if let Some(ptr) = word(slot, at) {
                    self.follow_map(recipe, slot, &layout, (buf, at), ptr, depth);
                }
            }
            TypeKind::Chan if deeper => {
                // hchan starts with qcount and dataqsiz.
                if let Some(ptr) = word(slot, at) {
                    self.deref_into(recipe, slot, (buf, at, 0), ptr, 0, Len::Fixed(16));
                }
            }
            TypeKind::Func => {
                // A func value points to a funcval whose first word is the code.
                if let Some(ptr) = word(slot, at) {
                    self.deref_into(recipe, slot, (buf, at, 0), ptr, 0, Len::Fixed(8));
                }
            }
            _ => {}
        }
    }

    /// Adds the reads of a Go map (Go 1.19's `hmap` and `bmap`s) whose
    /// pointer is at `ptr`: the header; as many buckets from
    /// `hmap.buckets` as a map of `max_array_values` entries has at most
    /// (6.5 entries a bucket, Go's load factor); half as many from
    /// `hmap.oldbuckets`, which a map part way through growing still keeps
    /// entries in; the overflow chain of every bucket read, to
    /// [`MAP_OVERFLOW_LEVELS`] buckets deep; then what the entries' keys and
    /// values point to, for the slots most likely to be in use first (the
    /// lower slots of the main buckets, which fill first, then the
    /// overflow buckets'), as far as this value's share of the budget goes.
    /// Which slots are in use, which buckets exist (`1 << B`) and which old
    /// buckets are evacuated is only known to the decoder: the reads may go
    /// past the real arrays, and a null `oldbuckets` or overflow pointer
    /// reads nothing.
    fn follow_map(
        &self,
        recipe: &mut Recipe,
        slot: &mut ValueSlot,
        layout: &BucketMap,
        (buf, at): (Buffer, u32),
        ptr: (u16, u16),
        depth: u32,
    ) {
        let bsize = layout.bucket_size;
        if bsize == 0 || bsize > MAX_READ {
            return;
        }
        let Some(m) = self.deref_into(
            recipe,
            slot,
            (buf, at, 0),
            ptr,
            0,
            Len::Fixed(layout.hmap_size),
        ) else {
            return;
        };
        let points = points(&self.types, layout.key, 0) || points(&self.types, layout.value, 0);
        let mut n = BucketMap::buckets_for(self.limits.max_array_values);
        // The bucket reads, with one level of overflow, take at most half of
        // what is left when the entries point somewhere, so that what they
        // point to gets the other half.
        let budget = self.budget.get();
        let room = match points {
            true => self.room(recipe) as u64 / 2,
            false => self.room(recipe) as u64,
        };
        let steps = budget.captures.saturating_sub(recipe.captures.len()) as u64 / 2;
        let cost = |n: u32| {
            let buckets = (n + (n / 2).max(1)) as u64;
            (2 * buckets * bsize as u64, 2 + buckets)
        };
        while n > 1 && (n * bsize > MAX_READ || cost(n).0 > room || cost(n).1 > steps) {
            n /= 2;
        }
        let mut main = Vec::new();
        // `1 << B` buckets, and half as many old ones, up to the count the
        // budget allows: reads past the real arrays would follow garbage.
        for (field, count, scale) in [
            (layout.buckets_at, n, bsize),
            (layout.oldbuckets_at, (n / 2).max(1), bsize / 2),
        ] {
            let Ok(b_at) = u16::try_from(layout.b_at) else {
                break;
            };
            let len = Len::Shifted {
                capture: m,
                offset: b_at,
                scale,
                max: count * bsize,
            };
            let Some(c) = self.deref_into(
                recipe,
                slot,
                (Buffer::Capture(m), field, 0),
                (m, field as u16),
                0,
                len,
            ) else {
                break;
            };
            main.extend((0..count).map(|i| (c, i * bsize)));
        }
        let mut level = main;
        for overflow in 0.. {
            if points {
                self.follow_slots(recipe, slot, layout, &level, depth + 1);
            }
            if overflow == MAP_OVERFLOW_LEVELS {
                break;
            }
            let mut next = Vec::new();
            for &(c, off) in &level {
                let link = off + layout.overflow_at;
                let Ok(link16) = u16::try_from(link) else {
                    break;
                };
                let to = (Buffer::Capture(c), link, 0);
                match self.deref_into(recipe, slot, to, (c, link16), 0, Len::Fixed(bsize)) {
                    Some(d) => next.push((d, 0)),
                    None => break,
                }
            }
            if next.is_empty() {
                break;
            }
            level = next;
        }
    }

    /// Follows the keys and values of `buckets` (capture, offset of the
    /// bucket in it), slot 0 of every bucket first, then slot 1, and so on.
    fn follow_slots(
        &self,
        recipe: &mut Recipe,
        slot: &mut ValueSlot,
        layout: &BucketMap,
        buckets: &[(u16, u32)],
        depth: u32,
    ) {
        for i in 0..BucketMap::SLOTS {
            for &(c, off) in buckets {
                let k = off + layout.keys_at + i * layout.key_size;
                let v = off + layout.values_at + i * layout.value_size;
                self.follow(recipe, slot, layout.key, Buffer::Capture(c), k, depth);
                self.follow(recipe, slot, layout.value, Buffer::Capture(c), v, depth);
            }
        }
    }
}

/// Overflow buckets followed after each bucket read (a chain longer than
/// this means more than `8 * (1 + MAP_OVERFLOW_LEVELS)` entries with the
/// same bucket hash bits: rare unless the map is far larger than the
/// element limit).
const MAP_OVERFLOW_LEVELS: u32 = 2;

/// Whether a value of type `ty` holds anything `follow` would read through.
fn points(types: &TypeTable, ty: TypeId, depth: u32) -> bool {
    if depth > 8 {
        return true;
    }
    match &types.underlying(ty).kind {
        TypeKind::Struct { fields } => fields.iter().any(|f| points(types, f.ty, depth + 1)),
        TypeKind::Array { elem: Some(e), .. } => points(types, *e, depth + 1),
        TypeKind::String
        | TypeKind::Pointer { .. }
        | TypeKind::Slice { .. }
        | TypeKind::Interface { .. }
        | TypeKind::Map { .. }
        | TypeKind::Chan
        | TypeKind::Func => true,
        _ => false,
    }
}

/// The most bytes a recipe's steps can read in all.
fn recipe_bytes(recipe: &Recipe) -> u64 {
    recipe.captures.iter().map(|c| c.max_len() as u64).sum()
}

/// Where the bytes of a value being followed along a path are.
#[derive(Clone, Copy)]
enum At {
    /// Inside the base variable's image, at this byte.
    Image(u32),
    /// In memory at the pointer found at byte `offset` of capture `capture`,
    /// plus `add`; not read yet.
    Memory { capture: u16, offset: u16, add: i64 },
}

impl At {
    /// `n` bytes further on.
    fn plus(self, n: u64) -> At {
        match self {
            At::Image(o) => At::Image(o + n as u32),
            At::Memory {
                capture,
                offset,
                add,
            } => At::Memory {
                capture,
                offset,
                add: add + n as i64,
            },
        }
    }
}

impl Planner<'_> {
    /// A slot for `path`; `None` if the path never leaves its variable.
    fn plan_path(&self, recipe: &mut Recipe, path: &Path) -> Option<ValueSlot> {
        let unavailable = |why: String| ValueSlot {
            name: path.name.clone(),
            ty: None,
            pieces: Vec::new(),
            size: 0,
            derefs: Vec::new(),
            unavailable: Some(why),
        };
        // The innermost variable of that name (later ones shadow earlier).
        let base = recipe.values.iter().rev().find(|v| v.name == path.base)?;
        if let Some(why) = &base.unavailable {
            return Some(unavailable(format!("{}: {why}", path.base)));
        }
        let mut ty = base.ty?;
        let base = base.clone();
        let mut at = At::Image(0);
        let mut left_image = false;
        // The (capture, offset) holding the 8 bytes at `at`, reading memory
        // into a capture when needed.
        let pointer_at = |recipe: &mut Recipe, at: At| -> Option<(u16, u16)> {
            match at {
                At::Image(o) => locate(&base, o),
                At::Memory {
                    capture,
                    offset,
                    add,
                } => {
                    let c = push(
                        recipe,
                        Capture::Deref {
                            base: capture,
                            offset,
                            add: add as i32,
                            len: Len::Fixed(8),
                        },
                    );
                    Some((c, 0))
                }
            }
        };
        for step in &path.steps {
            let t = self.types.underlying(ty).clone();
            match (step, &t.kind) {
                (PathStep::Deref, TypeKind::Pointer { pointee: Some(p) }) => {
                    let Some((capture, offset)) = pointer_at(recipe, at) else {
                        return Some(unavailable(String::from("pointer not captured")));
                    };
                    at = At::Memory {
                        capture,
                        offset,
                        add: 0,
                    };
                    ty = *p;
                    left_image = true;
                }
                (PathStep::Field(name), TypeKind::Pointer { pointee: Some(p) }) => {
                    let inner = self.types.underlying(*p);
                    let TypeKind::Struct { fields } = &inner.kind else {
                        return Some(unavailable(format!("{} has no field {name}", t.name)));
                    };
                    let Some(f) = fields.iter().find(|f| &f.name == name) else {
                        return Some(unavailable(format!("{} has no field {name}", inner.name)));
                    };
                    let Some((capture, offset)) = pointer_at(recipe, at) else {
                        return Some(unavailable(String::from("pointer not captured")));
                    };
                    at = At::Memory {
                        capture,
                        offset,
                        add: f.offset as i64,
                    };
                    ty = f.ty;
                    left_image = true;
                }
                (PathStep::Field(name), TypeKind::Struct { fields }) => {
                    let Some(f) = fields.iter().find(|f| &f.name == name) else {
                        return Some(unavailable(format!("{} has no field {name}", t.name)));
                    };
                    at = at.plus(f.offset);
                    ty = f.ty;
                }
                (
                    PathStep::Index(i),
                    TypeKind::Array {
                        elem: Some(e),
                        count,
                    },
                ) => {
                    if i >= count {
                        return Some(unavailable(format!("index {i} out of range [0:{count}]")));
                    }
                    let size = self.types.get(*e).size;
                    at = at.plus(i * size);
                    ty = *e;
                }
                (PathStep::Index(i), TypeKind::Slice { elem: Some(e) }) => {
                    // The data pointer is the slice's first word. The
                    // length is not checked here: the element is read
                    // from the backing array, which holds at least `cap`.
                    let Some((capture, offset)) = pointer_at(recipe, at) else {
                        return Some(unavailable(String::from("slice not captured")));
                    };
                    let size = self.types.get(*e).size;
                    at = At::Memory {
                        capture,
                        offset,
                        add: (i * size) as i64,
                    };
                    ty = *e;
                    left_image = true;
                }
                (step, _) => {
                    let what = match step {
                        PathStep::Field(f) => format!("no field {f}"),
                        PathStep::Deref => String::from("nothing to dereference"),
                        PathStep::Index(i) => format!("no element [{i}] to read"),
                    };
                    return Some(unavailable(format!("{}: {what}", t.name)));
                }
            }
        }
        if !left_image {
            return None;
        }
        let At::Memory {
            capture,
            offset,
            add,
        } = at
        else {
            return None;
        };
        let size = self.types.get(ty).size;
        if size > MAX_STACK_VALUE {
            return Some(unavailable(format!("value of {size} bytes is too large")));
        }
        let c = push(
            recipe,
            Capture::Deref {
                base: capture,
                offset,
                add: add as i32,
                len: Len::Fixed(size as u32),
            },
        );
        let slot = ValueSlot {
            name: path.name.clone(),
            ty: Some(ty),
            pieces: vec![Piece {
                at: 0,
                len: size as u32,
                capture: c,
            }],
            size: size as u32,
            derefs: Vec::new(),
            unavailable: None,
        };
        Some(slot)
    }
}

/// The capture reading `len` bytes of a value that lives at `place`;
/// `None` when it is relative to a CFA that is not known.
fn place_capture(
    recipe: &mut Recipe,
    place: Place,
    len: u32,
    cfa: Option<(u16, i64)>,
) -> Option<u16> {
    // Memory at DWARF register `reg` plus `add`.
    let memory = |recipe: &mut Recipe, reg: u16, add: i64| -> Option<u16> {
        if reg == DWARF_RSP {
            return Some(push(
                recipe,
                Capture::Stack {
                    offset: add as i32,
                    len,
                },
            ));
        }
        let base = push(recipe, Capture::Reg(dwarf_reg(reg)?));
        Some(push(
            recipe,
            Capture::Deref {
                base,
                offset: 0,
                add: add as i32,
                len: Len::Fixed(len),
            },
        ))
    };
    match place {
        Place::Reg(r @ 17..=32) => Some(push(recipe, Capture::Xmm((r - 17) as u8))),
        Place::Reg(r) => Some(push(recipe, Capture::Reg(dwarf_reg(r)?))),
        Place::RegMem { reg, offset } => memory(recipe, reg, offset),
        Place::Cfa(k) => {
            let (reg, off) = cfa?;
            memory(recipe, reg, off + k)
        }
    }
}

/// DWARF's number for RSP on x86-64.
const DWARF_RSP: u16 = 7;

/// A DWARF x86-64 general-purpose register number as a `pt_regs` register.
fn dwarf_reg(n: u16) -> Option<Reg> {
    Some(match n {
        0 => Reg::Rax,
        1 => Reg::Rdx,
        2 => Reg::Rcx,
        3 => Reg::Rbx,
        4 => Reg::Rsi,
        5 => Reg::Rdi,
        6 => Reg::Rbp,
        7 => Reg::Rsp,
        8 => Reg::R8,
        9 => Reg::R9,
        10 => Reg::R10,
        11 => Reg::R11,
        12 => Reg::R12,
        13 => Reg::R13,
        14 => Reg::R14,
        15 => Reg::R15,
        _ => return None,
    })
}

fn push(recipe: &mut Recipe, c: Capture) -> u16 {
    recipe.captures.push(c);
    (recipe.captures.len() - 1) as u16
}

/// The capture and offset in it that hold byte `at` of a value's image.
fn locate(slot: &ValueSlot, at: u32) -> Option<(u16, u16)> {
    slot.pieces
        .iter()
        .find(|p| at >= p.at && at < p.at + p.len)
        .map(|p| (p.capture, (at - p.at) as u16))
}

/// The Go stack-check jump: `CMP rsp|r12, [r14 + 0x10]` then `Jcc`.
fn go_entry_site(insns: &[Insn]) -> Option<Site> {
    let check = insns
        .iter()
        .take(6)
        .position(|i| i.1 == "cmp" && i.2.contains("[r14 + 0x10]"))?;
    let (address, mnemonic, _, bytes) = insns.get(check + 1)?;
    if !mnemonic.starts_with('j') || mnemonic == "jmp" {
        return None;
    }
    let cc = match bytes.as_slice() {
        [b, ..] if (0x70..0x80).contains(b) => b & 0xf,
        [0x0f, b, ..] if (0x80..0x90).contains(b) => b & 0xf,
        _ => return None,
    };
    Some(Site {
        address: *address,
        guard: Some(Guard::UnlessJumpTaken { cc }),
        instruction: Vec::new(),
        scratch: None,
    })
}

/// `LOGPROBE_ENTRY_AT_LOW=1` puts Go entry probes on the function's first
/// instruction instead of the stack-check jump: the benchmark uses it to
/// show what the probe site costs.
fn entry_at_low() -> bool {
    std::env::var_os("LOGPROBE_ENTRY_AT_LOW").is_some_and(|v| v == "1")
}

/// The `int3` padding right after function `id`, if it can hold a copy of
/// `insn` that behaves the same there: not RIP-relative, not a branch.
fn scratch_after(image: &Image, id: FuncId, insn: &Insn) -> Option<u64> {
    let (_, mnemonic, operands, bytes) = insn;
    if operands.contains("rip")
        || mnemonic.starts_with('j')
        || mnemonic.starts_with("call")
        || mnemonic.starts_with("ret")
        || mnemonic == "syscall"
    {
        return None;
    }
    let func = &image.functions[id];
    let next = image.functions.get(id + 1).map(|f| f.low)?;
    let start = func.high;
    if next < start + bytes.len() as u64 {
        return None;
    }
    let at = image.file_offset(start)? as usize;
    let padding = image.bytes(at, bytes.len())?;
    padding.iter().all(|&b| b == 0xcc).then_some(start)
}

/// System V x86-64 classification for scalar parameters: integers and
/// pointers to RDI, RSI, RDX, RCX, R8, R9, floats to XMM0–7, the rest (and
/// anything larger than 8 bytes) on the stack; results in RAX or XMM0.
fn sysv_assign(
    table: &TypeTable,
    args: &[TypeId],
    results: &[TypeId],
) -> (Vec<Assignment>, Vec<Assignment>) {
    let (mut ints, mut floats, mut stack) = (0usize, 0u8, 0u64);
    let piece = |loc, size: u64| {
        Assignment::Registers(vec![goabi::RegPiece {
            at: 0,
            len: size as u32,
            loc,
        }])
    };
    let mut a = Vec::new();
    for &ty in args {
        let t = table.underlying(ty);
        let is_float = matches!(t.kind, TypeKind::Float);
        if t.size <= 8 && is_float && floats < 8 {
            a.push(piece(Loc::Float(floats), t.size));
            floats += 1;
        } else if t.size <= 8 && !is_float && ints < Reg::SYSV_INT_ARGS.len() {
            a.push(piece(Loc::Int(Reg::SYSV_INT_ARGS[ints]), t.size));
            ints += 1;
        } else {
            a.push(Assignment::Stack { offset: stack });
            stack += t.size.div_ceil(8) * 8;
        }
    }
    let r = results
        .iter()
        .map(|&ty| {
            let t = table.underlying(ty);
            if matches!(t.kind, TypeKind::Float) {
                piece(Loc::Float(0), t.size)
            } else {
                piece(Loc::Int(Reg::Rax), t.size.min(8))
            }
        })
        .collect();
    (a, r)
}
