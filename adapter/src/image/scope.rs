//! What the DWARF says about one instruction: which statement addresses a
//! source line has (the line table's `is_stmt` rows), which parameters and
//! locals are in scope at a PC and where each one lives there (location
//! expressions and lists), and the canonical frame address rule
//! (`.debug_frame`) that `DW_OP_call_frame_cfa` and Go's `fbreg` refer to.
//!
//! The location forms read are the ones that name a place or a value
//! without arithmetic on run-time values: a register (`DW_OP_regN`), memory
//! at the frame base or CFA plus a constant (`DW_OP_fbreg`,
//! `DW_OP_call_frame_cfa`), memory at a register plus a constant
//! (`DW_OP_bregN`), a constant (`DW_OP_lit…`/`DW_OP_const…` with
//! `DW_OP_stack_value`, `DW_OP_implicit_value`, `DW_AT_const_value`), a
//! register's value (`DW_OP_bregN 0`, `DW_OP_regval_type` with
//! `DW_OP_stack_value`), at a function's entry a register's value there
//! (`DW_OP_entry_value` of a register), and `DW_OP_piece` sequences of
//! those. Anything else (memory reads, arithmetic on registers, a piece
//! left empty) makes the variable `<optimized out>` with the reason, never
//! a guess.
//!
//! At a function's entry ([`Dwarf::entry_places`]) a location list's entry
//! for that address is exact; a single expression that names a slot in the
//! function's own frame (unoptimized code spills its register arguments
//! there in the prologue) is not valid yet, and the calling convention
//! says where the argument is instead ([`AtEntry::Convention`]).

use std::collections::HashMap;

use anyhow::Result;
use gimli::{AttributeValue, Operation, Reader as _, UnwindSection};

use super::dwarf::{unit_ref_to_global, Dwarf, R};

/// Why a value is not shown: the compiler did not keep it where the probe
/// fires (`<optimized out>` in C and Rust notation).
pub const OPTIMIZED_OUT: &str = "optimized out";

/// Where one piece of a variable lives at a PC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// In a register (DWARF register number).
    Reg(u16),
    /// In memory at the canonical frame address plus `offset`.
    Cfa(i64),
    /// In memory at the value of a register (DWARF number) plus `offset`.
    RegMem { reg: u16, offset: i64 },
    /// Known without reading anything: these bytes (little-endian).
    Bytes(Vec<u8>),
}

/// Where an argument is when its function's entry probe fires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AtEntry {
    /// Where DWARF says.
    Pieces(Vec<PlacePiece>),
    /// DWARF names a slot the prologue has not written yet: where the
    /// calling convention passes it. `indirect` when DWARF reaches the
    /// value through a pointer in that slot (C++ passes a class that is
    /// not trivially copyable by reference).
    Convention { indirect: bool },
    /// Not available at the entry; why.
    OptimizedOut(String),
}

/// A piece of a variable: where it is and how many bytes it covers
/// (`None`: the whole variable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacePiece {
    pub place: Place,
    pub size: Option<u64>,
}

/// A parameter or local variable in scope at a PC.
#[derive(Debug, Clone)]
pub struct Variable {
    pub name: String,
    /// Offset of the type DIE in `.debug_info`.
    pub type_ref: Option<u64>,
    /// Where it is at that PC, or why that cannot be said.
    pub location: std::result::Result<Vec<PlacePiece>, String>,
}

/// How a file name given by an editor matches one from the line table:
/// equal, or one is a path suffix of the other.
pub fn same_file(dwarf_path: &str, wanted: &str) -> bool {
    if dwarf_path == wanted {
        return true;
    }
    let suffix = |long: &str, short: &str| {
        long.len() > short.len()
            && long.ends_with(short)
            && long.as_bytes()[long.len() - short.len() - 1] == b'/'
    };
    suffix(dwarf_path, wanted) || suffix(wanted, dwarf_path)
}

impl Dwarf {
    /// The source line of each of `pcs` (sorted, without duplicates) that
    /// the line table covers: the line of the last row at or before it in
    /// its sequence. One pass over the rows of the units holding them.
    pub(super) fn lines_at(&self, pcs: &[u64]) -> Result<HashMap<u64, u64>> {
        let mut out = HashMap::new();
        for (_, unit) in &self.units {
            let mut ranges = self.dwarf.unit_ranges(unit)?;
            let mut holds = false;
            while let Some(r) = ranges.next()? {
                let first = pcs.partition_point(|&pc| pc < r.begin);
                if pcs.get(first).is_some_and(|&pc| pc < r.end) {
                    holds = true;
                    break;
                }
            }
            let (true, Some(program)) = (holds, unit.line_program.clone()) else {
                continue;
            };
            let mut rows = program.rows();
            // The previous row of the current sequence: (address, line).
            let mut prev: Option<(u64, u64)> = None;
            while let Some((_, row)) = rows.next_row()? {
                if let Some((start, line)) = prev {
                    let end = row.address();
                    let mut i = pcs.partition_point(|&pc| pc < start);
                    while let Some(&pc) = pcs.get(i).filter(|&&pc| pc < end) {
                        out.insert(pc, line);
                        i += 1;
                    }
                }
                prev = match (row.end_sequence(), row.line()) {
                    (false, Some(line)) => Some((row.address(), line.get())),
                    _ => None,
                };
            }
        }
        Ok(out)
    }

    /// Addresses of the line table's statement rows for `file:line`.
    pub(super) fn statement_addresses(&self, file: &str, line: u64) -> Result<Vec<u64>> {
        let mut out = Vec::new();
        for (u, (_, unit)) in self.units.iter().enumerate() {
            let lang = self.langs[u];
            let Some(program) = unit.line_program.clone() else {
                continue;
            };
            let mut rows = program.rows();
            // The file index of the last row whose path was compared.
            let mut cache: Option<(u64, bool)> = None;
            while let Some((header, row)) = rows.next_row()? {
                if row.end_sequence() || !row.is_stmt() {
                    continue;
                }
                if row.line().map(|l| l.get()) != Some(line) {
                    continue;
                }
                let matches = match cache {
                    Some((idx, m)) if idx == row.file_index() => m,
                    _ => {
                        let m = match row.file(header) {
                            Some(f) => same_file(&self.file_path(unit, lang, header, f)?, file),
                            None => false,
                        };
                        cache = Some((row.file_index(), m));
                        m
                    }
                };
                if matches {
                    out.push(row.address());
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// The CFA at `pc` as (DWARF register, offset), from `.debug_frame`
    /// or else `.eh_frame`.
    pub(super) fn cfa_at(&self, pc: u64) -> Option<(u16, i64)> {
        let rule = |cfa: &gimli::CfaRule<usize>| match cfa {
            gimli::CfaRule::RegisterAndOffset { register, offset } => Some((register.0, *offset)),
            gimli::CfaRule::Expression(_) => None,
        };
        let mut ctx = Box::new(gimli::UnwindContext::new());
        if let Some(frame) = self.frame.as_ref() {
            let bases = gimli::BaseAddresses::default();
            if let Ok(row) = frame.unwind_info_for_address(
                &bases,
                &mut ctx,
                pc,
                gimli::DebugFrame::cie_from_offset,
            ) {
                return rule(row.cfa());
            }
        }
        let (eh, bases) = self.eh_frame.as_ref()?;
        let row = eh
            .unwind_info_for_address(bases, &mut ctx, pc, gimli::EhFrame::cie_from_offset)
            .ok()?;
        rule(row.cfa())
    }

    /// Parameters and locals in scope at `pc`, outermost scope first (so a
    /// later entry with the same name shadows an earlier one).
    pub(super) fn variables_at(&self, pc: u64) -> Result<Vec<Variable>> {
        for (_, unit) in &self.units {
            if let Some(vars) = self.unit_variables_at(unit, pc)? {
                return Ok(vars);
            }
        }
        Ok(Vec::new())
    }

    fn unit_variables_at(&self, unit: &gimli::Unit<R>, pc: u64) -> Result<Option<Vec<Variable>>> {
        let mut entries = unit.entries();
        let mut depth = 0isize;
        // Depths of the scopes (subprogram, blocks, inlined calls) that
        // contain `pc`, innermost last.
        let mut scopes: Vec<isize> = Vec::new();
        let mut frame_base: Option<Place> = None;
        let mut found = false;
        let mut vars = Vec::new();
        while let Some((delta, entry)) = entries.next_dfs()? {
            depth += delta;
            while scopes.last().is_some_and(|&d| depth <= d) {
                scopes.pop();
            }
            if found && scopes.is_empty() {
                break;
            }
            match entry.tag() {
                gimli::DW_TAG_subprogram
                | gimli::DW_TAG_lexical_block
                | gimli::DW_TAG_inlined_subroutine => {
                    let is_sub = entry.tag() == gimli::DW_TAG_subprogram;
                    if !is_sub && scopes.is_empty() {
                        continue;
                    }
                    if self.contains(unit, entry, pc)? {
                        if is_sub {
                            found = true;
                            frame_base = self.frame_base(unit, entry)?;
                        }
                        scopes.push(depth);
                    }
                }
                gimli::DW_TAG_formal_parameter | gimli::DW_TAG_variable => {
                    // Only direct children of a scope holding pc.
                    if scopes.last() != Some(&(depth - 1)) {
                        continue;
                    }
                    vars.push(self.variable(unit, entry, pc, frame_base.clone())?);
                }
                _ => {}
            }
        }
        Ok(found.then_some(vars))
    }

    fn contains(
        &self,
        unit: &gimli::Unit<R>,
        entry: &gimli::DebuggingInformationEntry<R>,
        pc: u64,
    ) -> Result<bool> {
        let mut ranges = self.dwarf.die_ranges(unit, entry)?;
        while let Some(r) = ranges.next()? {
            if pc >= r.begin && pc < r.end {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn frame_base(
        &self,
        unit: &gimli::Unit<R>,
        entry: &gimli::DebuggingInformationEntry<R>,
    ) -> Result<Option<Place>> {
        let Some(AttributeValue::Exprloc(expr)) = entry.attr_value(gimli::DW_AT_frame_base)? else {
            return Ok(None);
        };
        let mut ops = expr.operations(unit.encoding());
        Ok(match ops.next()? {
            Some(Operation::CallFrameCFA) => Some(Place::Cfa(0)),
            Some(Operation::Register { register }) => Some(Place::RegMem {
                reg: register.0,
                offset: 0,
            }),
            _ => None,
        })
    }

    /// The location expression of `entry` that holds at `pc`: its
    /// `DW_AT_location`, or the entry of its location list covering `pc`.
    fn location_at(
        &self,
        unit: &gimli::Unit<R>,
        entry: &gimli::DebuggingInformationEntry<R>,
        pc: u64,
    ) -> Result<Location> {
        Ok(match entry.attr_value(gimli::DW_AT_location)? {
            None => Location::None(String::from("optimized away")),
            Some(AttributeValue::Exprloc(expr)) => Location::Single(expr),
            Some(value) => match self.dwarf.attr_locations(unit, value)? {
                None => Location::None(String::from("location form not supported")),
                Some(mut list) => {
                    let mut at_pc = None;
                    while let Some(e) = list.next()? {
                        if pc >= e.range.begin && pc < e.range.end {
                            at_pc = Some(e.data);
                            break;
                        }
                    }
                    match at_pc {
                        Some(expr) => Location::Listed(expr),
                        None => Location::Gap,
                    }
                }
            },
        })
    }

    fn variable(
        &self,
        unit: &gimli::Unit<R>,
        entry: &gimli::DebuggingInformationEntry<R>,
        pc: u64,
        frame_base: Option<Place>,
    ) -> Result<Variable> {
        // An inlined copy names its variable through the abstract origin.
        let origin = match entry.attr_value(gimli::DW_AT_abstract_origin)? {
            Some(AttributeValue::UnitRef(o)) => Some(unit.entry(o)?),
            _ => None,
        };
        let described = origin.as_ref().unwrap_or(entry);
        let name = self
            .name(unit, described, gimli::DW_AT_name)?
            .unwrap_or_default();
        let type_ref = match described.attr_value(gimli::DW_AT_type)? {
            Some(AttributeValue::UnitRef(o)) => Some(unit_ref_to_global(unit, o)),
            Some(AttributeValue::DebugInfoRef(o)) => Some(o.0 as u64),
            _ => None,
        };
        let location = match const_value(entry)? {
            Some(bytes) => Ok(vec![PlacePiece {
                place: Place::Bytes(bytes),
                size: None,
            }]),
            None => match self.location_at(unit, entry, pc)? {
                Location::None(why) => Err(why),
                Location::Gap => Err(String::from("not available at this line")),
                Location::Single(expr) | Location::Listed(expr) => {
                    match evaluate(expr, unit.encoding(), frame_base, false) {
                        Evaluated::Pieces(p) => Ok(p),
                        Evaluated::Indirect => {
                            Err(String::from("location DW_OP_deref not supported"))
                        }
                        Evaluated::Unsupported(why) => Err(why),
                    }
                }
            },
        };
        Ok(Variable {
            name,
            type_ref,
            location,
        })
    }

    /// Where each parameter (DIEs `params` with `sizes` bytes, of the
    /// subprogram DIE `subprogram`) is at `pc`, the function's first
    /// instruction.
    pub(super) fn entry_places(
        &self,
        subprogram: u64,
        params: &[(Option<u64>, Option<u64>)],
        pc: u64,
    ) -> Result<Vec<AtEntry>> {
        let (u, local) = self.locate(subprogram)?;
        let unit = &self.units[u].1;
        let frame_base = self.frame_base(unit, &unit.entry(local)?)?;
        let mut out = Vec::with_capacity(params.len());
        for &(die, size) in params {
            let Some(die) = die else {
                out.push(AtEntry::OptimizedOut(String::from("no DWARF entry")));
                continue;
            };
            let (_, at) = self.locate(die)?;
            let entry = unit.entry(at)?;
            if let Some(bytes) = const_value(&entry)? {
                out.push(AtEntry::Pieces(vec![PlacePiece {
                    place: Place::Bytes(bytes),
                    size: None,
                }]));
                continue;
            }
            let (expr, listed) = match self.location_at(unit, &entry, pc)? {
                Location::Single(expr) => (expr, false),
                Location::Listed(expr) => (expr, true),
                // A list that starts after the entry: unoptimized code
                // describes arguments from where its prologue stores them.
                Location::Gap => {
                    out.push(AtEntry::Convention { indirect: false });
                    continue;
                }
                Location::None(why) => {
                    out.push(AtEntry::OptimizedOut(why));
                    continue;
                }
            };
            let evaluated = evaluate(expr, unit.encoding(), frame_base.clone(), true);
            out.push(match evaluated {
                Evaluated::Pieces(pieces) if covers(&pieces, size) => {
                    // A location list's entry for this address is exact;
                    // a single expression is only where the value lives
                    // once the prologue has run.
                    if listed || pieces.iter().all(|p| valid_at_entry(&p.place)) {
                        AtEntry::Pieces(pieces)
                    } else {
                        AtEntry::Convention { indirect: false }
                    }
                }
                Evaluated::Indirect if !listed => AtEntry::Convention { indirect: true },
                // Part of the value is not described at the entry. If a
                // later entry of its list has it whole, it is live, and
                // where the caller put it until the code moves it (LLVM
                // describes a value from its first move on); if not, the
                // missing part is unused and callers may not pass it.
                Evaluated::Pieces(_) | Evaluated::Unsupported(_)
                    if listed
                        && self.whole_elsewhere(unit, &entry, frame_base.clone(), size)? =>
                {
                    AtEntry::Convention { indirect: false }
                }
                Evaluated::Pieces(_) => {
                    AtEntry::OptimizedOut(String::from("part of the value is optimized away"))
                }
                Evaluated::Indirect => {
                    AtEntry::OptimizedOut(String::from("location DW_OP_deref not supported"))
                }
                Evaluated::Unsupported(why) => AtEntry::OptimizedOut(why),
            });
        }
        Ok(out)
    }

    /// Whether some entry of `entry`'s location list places the whole
    /// value (of `size` bytes) in registers or memory.
    fn whole_elsewhere(
        &self,
        unit: &gimli::Unit<R>,
        entry: &gimli::DebuggingInformationEntry<R>,
        frame_base: Option<Place>,
        size: Option<u64>,
    ) -> Result<bool> {
        let Some(value) = entry.attr_value(gimli::DW_AT_location)? else {
            return Ok(false);
        };
        let Some(mut list) = self.dwarf.attr_locations(unit, value)? else {
            return Ok(false);
        };
        while let Some(e) = list.next()? {
            if let Evaluated::Pieces(p) =
                evaluate(e.data, unit.encoding(), frame_base.clone(), false)
            {
                if covers(&p, size) && p.iter().all(|p| !matches!(p.place, Place::Bytes(_))) {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }
}

/// Whether `pieces` describe all `size` bytes of a value (a last piece
/// without a size takes the rest).
fn covers(pieces: &[PlacePiece], size: Option<u64>) -> bool {
    match (pieces.last().map(|p| p.size), size) {
        (Some(None), _) | (_, None) => true,
        (Some(Some(_)), Some(size)) => pieces.iter().filter_map(|p| p.size).sum::<u64>() >= size,
        (None, _) => false,
    }
}

/// Whether a place named by a single location expression (valid, the
/// compiler says, across the function) already holds the value at the
/// function's first instruction: registers and constants do, and so does
/// the caller's stack area (CFA plus a non-negative offset, where
/// stack-passed arguments are); the function's own frame (below the CFA,
/// or relative to RSP or RBP, which the prologue moves) does not yet.
fn valid_at_entry(place: &Place) -> bool {
    match place {
        Place::Reg(_) | Place::Bytes(_) => true,
        Place::Cfa(k) => *k >= 0,
        Place::RegMem { reg, .. } => !matches!(reg, 6 | 7),
    }
}

/// `DW_AT_const_value`: the variable's value itself, as bytes.
fn const_value(entry: &gimli::DebuggingInformationEntry<R>) -> Result<Option<Vec<u8>>> {
    Ok(match entry.attr_value(gimli::DW_AT_const_value)? {
        None => None,
        Some(AttributeValue::Block(b)) => Some(b.to_slice()?.into_owned()),
        Some(AttributeValue::Sdata(v)) => Some(v.to_le_bytes().to_vec()),
        Some(AttributeValue::Udata(v)) => Some(v.to_le_bytes().to_vec()),
        Some(AttributeValue::Data1(v)) => Some(vec![v]),
        Some(AttributeValue::Data2(v)) => Some(v.to_le_bytes().to_vec()),
        Some(AttributeValue::Data4(v)) => Some(v.to_le_bytes().to_vec()),
        Some(AttributeValue::Data8(v)) => Some(v.to_le_bytes().to_vec()),
        Some(_) => None,
    })
}

/// A variable's location attribute, as far as it holds at one PC.
enum Location {
    /// One expression for its whole scope.
    Single(gimli::Expression<R>),
    /// The entry of its location list covering the PC.
    Listed(gimli::Expression<R>),
    /// A location list with no entry for the PC.
    Gap,
    /// No location at all; why.
    None(String),
}

/// What a location expression comes to.
enum Evaluated {
    Pieces(Vec<PlacePiece>),
    /// Memory at an address held in the function's own frame
    /// (`DW_OP_fbreg k; DW_OP_deref`): a value passed by reference.
    Indirect,
    Unsupported(String),
}

/// A value on the expression stack, as far as it is known without
/// running the program.
#[derive(Debug, Clone, Copy)]
enum Sym {
    Const(u64),
    /// A register's value (DWARF number).
    RegVal(u16),
    /// An address: the CFA or a register's value plus an offset;
    /// `framed` when it came from the frame base.
    Addr {
        base: Option<u16>,
        offset: i64,
        framed: bool,
    },
}

/// Evaluates a location expression into pieces as far as it names places
/// and compile-time values (see the module comment); `at_entry` when the
/// probe is at the function's first instruction, where the entry value
/// of a register is that register.
fn evaluate(
    expr: gimli::Expression<R>,
    encoding: gimli::Encoding,
    frame_base: Option<Place>,
    at_entry: bool,
) -> Evaluated {
    let unsupported =
        |op: &dyn std::fmt::Debug| Evaluated::Unsupported(format!("location {op:?} not supported"));
    let mut out = Vec::new();
    let mut stack: Vec<Sym> = Vec::new();
    // A location description ended (a register, a stack value, implicit
    // bytes) and waits for its piece.
    let mut done: Option<Place> = None;
    let mut ops = expr.operations(encoding);
    loop {
        let op = match ops.next() {
            Ok(Some(op)) => op,
            Ok(None) => break,
            Err(e) => return Evaluated::Unsupported(format!("bad location expression: {e}")),
        };
        match op {
            Operation::Register { register } => done = Some(Place::Reg(register.0)),
            Operation::RegisterOffset {
                register,
                offset,
                base_type,
            } => stack.push(match base_type.0 {
                // DW_OP_regval_type: the register's value.
                0 => Sym::Addr {
                    base: Some(register.0),
                    offset,
                    framed: false,
                },
                _ => Sym::RegVal(register.0),
            }),
            Operation::FrameOffset { offset } => match &frame_base {
                Some(Place::Cfa(k)) => stack.push(Sym::Addr {
                    base: None,
                    offset: k + offset,
                    framed: true,
                }),
                Some(Place::RegMem { reg, offset: k }) => stack.push(Sym::Addr {
                    base: Some(*reg),
                    offset: k + offset,
                    framed: true,
                }),
                _ => return Evaluated::Unsupported(String::from("frame base not supported")),
            },
            Operation::CallFrameCFA => stack.push(Sym::Addr {
                base: None,
                offset: 0,
                framed: false,
            }),
            Operation::UnsignedConstant { value } => stack.push(Sym::Const(value)),
            Operation::SignedConstant { value } => stack.push(Sym::Const(value as u64)),
            Operation::PlusConstant { value } => match stack.pop() {
                Some(Sym::Const(c)) => stack.push(Sym::Const(c.wrapping_add(value))),
                Some(Sym::Addr {
                    base,
                    offset,
                    framed,
                }) => stack.push(Sym::Addr {
                    base,
                    offset: offset.wrapping_add(value as i64),
                    framed,
                }),
                _ => return unsupported(&op),
            },
            Operation::Plus
            | Operation::Minus
            | Operation::Mul
            | Operation::And
            | Operation::Or
            | Operation::Xor
            | Operation::Shl
            | Operation::Shr => {
                let (Some(Sym::Const(b)), Some(Sym::Const(a))) = (stack.pop(), stack.pop()) else {
                    return unsupported(&op);
                };
                stack.push(Sym::Const(match op {
                    Operation::Plus => a.wrapping_add(b),
                    Operation::Minus => a.wrapping_sub(b),
                    Operation::Mul => a.wrapping_mul(b),
                    Operation::And => a & b,
                    Operation::Or => a | b,
                    Operation::Xor => a ^ b,
                    Operation::Shl => a.checked_shl(b as u32).unwrap_or(0),
                    _ => a.checked_shr(b as u32).unwrap_or(0),
                }));
            }
            Operation::Neg | Operation::Not => {
                let Some(Sym::Const(a)) = stack.pop() else {
                    return unsupported(&op);
                };
                stack.push(Sym::Const(match op {
                    Operation::Neg => a.wrapping_neg(),
                    _ => !a,
                }));
            }
            Operation::EntryValue { ref expression } if at_entry => {
                // At the entry, a register's entry value is the register.
                let inner = gimli::Expression(expression.clone());
                let mut inner_ops = inner.operations(encoding);
                match (inner_ops.next(), inner_ops.next()) {
                    (Ok(Some(Operation::Register { register })), Ok(None))
                    | (
                        Ok(Some(Operation::RegisterOffset {
                            register,
                            offset: 0,
                            ..
                        })),
                        Ok(None),
                    ) => stack.push(Sym::RegVal(register.0)),
                    _ => return unsupported(&op),
                }
            }
            Operation::StackValue => match stack.pop() {
                Some(Sym::Const(c)) => done = Some(Place::Bytes(c.to_le_bytes().to_vec())),
                Some(Sym::RegVal(r))
                | Some(Sym::Addr {
                    base: Some(r),
                    offset: 0,
                    framed: false,
                }) => done = Some(Place::Reg(r)),
                _ => return unsupported(&op),
            },
            Operation::ImplicitValue { ref data } => match data.to_slice() {
                Ok(b) => done = Some(Place::Bytes(b.into_owned())),
                Err(_) => return unsupported(&op),
            },
            Operation::Deref { .. } => match stack.last() {
                Some(Sym::Addr { framed: true, .. }) if ops.next().ok().flatten().is_none() => {
                    return Evaluated::Indirect;
                }
                _ => return unsupported(&op),
            },
            Operation::Piece {
                size_in_bits,
                bit_offset: None,
            } if size_in_bits % 8 == 0 => {
                let place = match done.take() {
                    Some(p) => p,
                    None => match stack.pop() {
                        Some(sym) => match memory(sym) {
                            Some(p) => p,
                            None => return unsupported(&op),
                        },
                        None => {
                            return Evaluated::Unsupported(String::from(
                                "part of the value is optimized away",
                            ))
                        }
                    },
                };
                stack.clear();
                out.push(PlacePiece {
                    place,
                    size: Some(size_in_bits / 8),
                });
            }
            op => return unsupported(&op),
        }
    }
    let last = match done {
        Some(p) => Some(p),
        None => match stack.pop() {
            Some(sym) => match memory(sym) {
                Some(p) => Some(p),
                None => return Evaluated::Unsupported(String::from("location not supported")),
            },
            None => None,
        },
    };
    if let Some(place) = last {
        out.push(PlacePiece { place, size: None });
    }
    if out.is_empty() {
        return Evaluated::Unsupported(String::from("optimized away"));
    }
    Evaluated::Pieces(out)
}

/// The memory place an address on the stack names.
fn memory(sym: Sym) -> Option<Place> {
    match sym {
        Sym::Addr {
            base: None, offset, ..
        } => Some(Place::Cfa(offset)),
        Sym::Addr {
            base: Some(reg),
            offset,
            ..
        } => Some(Place::RegMem { reg, offset }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::same_file;

    #[test]
    fn file_names_match_by_path_suffix() {
        assert!(same_file("/src/seed/main.go", "/src/seed/main.go"));
        assert!(same_file("/src/seed/main.go", "seed/main.go"));
        assert!(same_file("main.go", "/home/u/seed/main.go"));
        assert!(!same_file("/src/seed/xmain.go", "main.go"));
        assert!(!same_file("/src/seed/main.go", "/src/other/main.go"));
    }
}
