//! Building probes for a function: choosing the instructions to probe
//! (capstone) and writing the capture recipe of each from the calling
//! convention and the parameters' DWARF types.
//!
//! Entry probes of Go functions sit on the conditional jump of the stack
//! check (`CMPQ SP, 0x10(R14); JBE morestack`) with a guard that skips the
//! pass that is about to grow the stack, so each call is reported once and
//! the arguments are still in their ABI registers. Return probes sit on
//! every `RET` (never a uretprobe: Go moves and walks stacks).

use std::collections::HashMap;

use anyhow::{anyhow, Context, Result};
use capstone::arch::x86::{ArchMode, ArchSyntax};
use capstone::arch::{BuildsCapstone, BuildsCapstoneSyntax};
use capstone::Capstone;

use super::goabi::{self, Assignment, Loc};
use super::{
    Buffer, Capture, DerefSlot, Guard, Len, Limits, Piece, Probe, ProbeKind, Recipe, Reg, ValueSlot,
};
use crate::image::{FuncId, Image, Lang, Param, TypeId, TypeKind, TypeTable};

/// Largest stack-assigned value copied whole, in bytes.
const MAX_STACK_VALUE: u64 = 4096;
/// Elements of an array walked for nested strings.
const MAX_ARRAY_WALK: u64 = 64;

/// Turns functions of one image into probes, resolving the types they need.
pub struct Planner<'a> {
    pub image: &'a Image,
    pub types: TypeTable,
    cache: HashMap<u64, TypeId>,
    pub limits: Limits,
    next_id: u32,
    cs: Capstone,
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
        })
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
        if lang == Lang::Go {
            if let Some(off) = self.image.goid_offset {
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
                    if slot.unavailable.is_none() {
                        self.follow(&mut recipe, &mut slot, *ty, 0);
                    }
                }
                (None, _) => slot.unavailable = Some(String::from("type unknown")),
                (Some(_), None) => slot.unavailable = Some(String::from("location unknown")),
            }
            recipe.values.push(slot);
        }
        recipe
    }

    /// Adds captures for memory the value points to (string bytes), walking
    /// into struct fields and array elements.
    fn follow(&self, recipe: &mut Recipe, slot: &mut ValueSlot, ty: TypeId, at: u32) {
        let t = self.types.underlying(ty);
        match &t.kind {
            TypeKind::String => {
                let (Some((pc, po)), Some((lc, lo))) = (locate(slot, at), locate(slot, at + 8))
                else {
                    return;
                };
                let len = Len::Counted {
                    capture: lc,
                    offset: lo,
                    scale: 1,
                    max: self.limits.max_string_len,
                };
                let d = push(
                    recipe,
                    Capture::Deref {
                        base: pc,
                        offset: po,
                        add: 0,
                        len,
                    },
                );
                slot.derefs.push(DerefSlot {
                    from: Buffer::Image,
                    at,
                    capture: d,
                });
            }
            TypeKind::Struct { fields } => {
                for f in fields.clone() {
                    self.follow(recipe, slot, f.ty, at + f.offset as u32);
                }
            }
            TypeKind::Array {
                elem: Some(e),
                count,
            } => {
                let size = self.types.get(*e).size as u32;
                for i in 0..(*count).min(MAX_ARRAY_WALK) as u32 {
                    self.follow(recipe, slot, *e, at + i * size);
                }
            }
            _ => {}
        }
    }
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
