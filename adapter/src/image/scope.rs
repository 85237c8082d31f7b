//! What the DWARF says about one instruction: which statement addresses a
//! source line has (the line table's `is_stmt` rows), which parameters and
//! locals are in scope at a PC and where each one lives there (location
//! expressions and lists), and the canonical frame address rule
//! (`.debug_frame`) that `DW_OP_call_frame_cfa` and Go's `fbreg` refer to.
//!
//! Only the simple location forms are read: a register (`DW_OP_regN`), memory
//! at the frame base or CFA plus a constant (`DW_OP_fbreg`,
//! `DW_OP_call_frame_cfa`), memory at a register plus a constant
//! (`DW_OP_bregN`), and `DW_OP_piece` sequences of those. Anything else is
//! reported as a reason the variable cannot be read, never guessed.

use std::collections::HashMap;

use anyhow::Result;
use gimli::{AttributeValue, Operation, UnwindSection};

use super::dwarf::{unit_ref_to_global, Dwarf, R};

/// Where one piece of a variable lives at a PC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// In a register (DWARF register number).
    Reg(u16),
    /// In memory at the canonical frame address plus `offset`.
    Cfa(i64),
    /// In memory at the value of a register (DWARF number) plus `offset`.
    RegMem { reg: u16, offset: i64 },
}

/// A piece of a variable: where it is and how many bytes it covers
/// (`None`: the whole variable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
        for (_, unit) in &self.units {
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
                            Some(f) => same_file(&self.file_path(unit, header, f)?, file),
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

    /// The CFA at `pc` as (DWARF register, offset), from `.debug_frame`.
    pub(super) fn cfa_at(&self, pc: u64) -> Option<(u16, i64)> {
        let frame = self.frame.as_ref()?;
        let bases = gimli::BaseAddresses::default();
        let mut ctx = Box::new(gimli::UnwindContext::new());
        let row = frame
            .unwind_info_for_address(&bases, &mut ctx, pc, gimli::DebugFrame::cie_from_offset)
            .ok()?;
        match row.cfa() {
            gimli::CfaRule::RegisterAndOffset { register, offset } => Some((register.0, *offset)),
            gimli::CfaRule::Expression(_) => None,
        }
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
                    vars.push(self.variable(unit, entry, pc, frame_base)?);
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
        let location = match entry.attr_value(gimli::DW_AT_location)? {
            None => Err(String::from("optimized away")),
            Some(AttributeValue::Exprloc(expr)) => pieces(expr, unit.encoding(), frame_base),
            Some(value) => match self.dwarf.attr_locations(unit, value)? {
                None => Err(String::from("location form not supported")),
                Some(mut list) => {
                    let mut at_pc = None;
                    while let Some(e) = list.next()? {
                        if pc >= e.range.begin && pc < e.range.end {
                            at_pc = Some(e.data);
                            break;
                        }
                    }
                    match at_pc {
                        Some(expr) => pieces(expr, unit.encoding(), frame_base),
                        None => Err(String::from("not available at this line")),
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
}

/// Reads a location expression made of the simple forms (see the module
/// comment) into pieces.
fn pieces(
    expr: gimli::Expression<R>,
    encoding: gimli::Encoding,
    frame_base: Option<Place>,
) -> std::result::Result<Vec<PlacePiece>, String> {
    let mut out = Vec::new();
    let mut current: Option<Place> = None;
    let mut ops = expr.operations(encoding);
    loop {
        let op = match ops.next() {
            Ok(Some(op)) => op,
            Ok(None) => break,
            Err(e) => return Err(format!("bad location expression: {e}")),
        };
        current = match (op, current) {
            (Operation::Register { register }, None) => Some(Place::Reg(register.0)),
            (Operation::CallFrameCFA, None) => Some(Place::Cfa(0)),
            (Operation::FrameOffset { offset }, None) => match frame_base {
                Some(Place::Cfa(k)) => Some(Place::Cfa(k + offset)),
                Some(Place::RegMem { reg, offset: k }) => Some(Place::RegMem {
                    reg,
                    offset: k + offset,
                }),
                _ => return Err(String::from("frame base not supported")),
            },
            (
                Operation::RegisterOffset {
                    register, offset, ..
                },
                None,
            ) => Some(Place::RegMem {
                reg: register.0,
                offset,
            }),
            (Operation::PlusConstant { value }, Some(Place::Cfa(k))) => {
                Some(Place::Cfa(k + value as i64))
            }
            (Operation::PlusConstant { value }, Some(Place::RegMem { reg, offset })) => {
                Some(Place::RegMem {
                    reg,
                    offset: offset + value as i64,
                })
            }
            (Operation::Piece { size_in_bits, .. }, place) => {
                let Some(place) = place else {
                    return Err(String::from("part of the value is optimized away"));
                };
                out.push(PlacePiece {
                    place,
                    size: Some(size_in_bits / 8),
                });
                None
            }
            (op, _) => return Err(format!("location {op:?} not supported")),
        };
    }
    if let Some(place) = current {
        out.push(PlacePiece { place, size: None });
    }
    if out.is_empty() {
        return Err(String::from("optimized away"));
    }
    Ok(out)
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
