//! Choosing the instructions to probe: a function's instructions
//! (capstone), its `RET`s, the instruction at a line probe's address, and
//! the never-executed padding after a function where a copy of the entry
//! instruction can be stepped out of line. Which instruction is a
//! function's entry probe is its convention's choice (`lang`).

use anyhow::{anyhow, Result};
use capstone::arch::x86::{ArchMode, ArchSyntax};
use capstone::arch::{BuildsCapstone, BuildsCapstoneSyntax};
use capstone::Capstone;

use super::Guard;
use crate::image::{FuncId, Function, Image};

/// An instruction chosen as a probe site.
#[derive(Debug, Clone)]
pub struct Site {
    pub address: u64,
    pub guard: Option<Guard>,
    /// The original bytes of the instruction.
    pub instruction: Vec<u8>,
    /// Padding where a copy of the instruction can be single-stepped.
    pub scratch: Option<u64>,
}

/// A decoded instruction: address, mnemonic, operands, bytes.
pub type Insn = (u64, String, String, Vec<u8>);

/// An x86-64 disassembler (Intel syntax, which the site choices match).
pub fn disassembler() -> Result<Capstone> {
    Capstone::new()
        .x86()
        .mode(ArchMode::Mode64)
        .syntax(ArchSyntax::Intel)
        .build()
        .map_err(|e| anyhow!("initialising capstone: {e}"))
}

/// Every instruction of `func`.
pub fn instructions(cs: &Capstone, image: &Image, func: &Function) -> Result<Vec<Insn>> {
    let code = image
        .code(func)
        .ok_or_else(|| anyhow!("{}: code is not in the file", func.name))?;
    decode(cs, code, func.low).map_err(|e| anyhow!("{}: {e}", func.name))
}

/// The instructions of `code`, which starts at `address`, up to the first
/// one that does not decode.
pub fn decode(cs: &Capstone, code: &[u8], address: u64) -> Result<Vec<Insn>> {
    let decoded = cs
        .disasm_all(code, address)
        .map_err(|e| anyhow!("cannot disassemble: {e}"))?;
    Ok(decoded
        .iter()
        .map(|i| {
            (
                i.address(),
                i.mnemonic().unwrap_or("").to_string(),
                i.op_str().unwrap_or("").to_string(),
                i.bytes().to_vec(),
            )
        })
        .collect())
}

/// The entry site of function `id`: `chosen`, or its first instruction,
/// with the instruction's bytes and padding to step a copy in.
pub fn entry(image: &Image, id: FuncId, insns: &[Insn], chosen: Option<Site>) -> Site {
    let mut site = chosen.unwrap_or(Site {
        address: image.functions[id].low,
        guard: None,
        instruction: Vec::new(),
        scratch: None,
    });
    if let Some(insn) = insns.iter().find(|i| i.0 == site.address) {
        site.instruction = insn.3.clone();
        site.scratch = scratch_after(image, id, insn);
    }
    site
}

/// Every `RET` of a function.
pub fn returns(insns: &[Insn]) -> Vec<Site> {
    insns
        .iter()
        .filter(|i| i.1 == "ret")
        .map(|i| Site {
            address: i.0,
            guard: None,
            instruction: i.3.clone(),
            scratch: None,
        })
        .collect()
}

/// Whether a function at `[low, high)` leaves only through its `RET`s:
/// it has one, and no jump that may leave it (a tail call: a jump to an
/// address outside it, or through a register or memory, which may be a
/// jump table or not).
pub fn exits_only_by_ret(insns: &[Insn], low: u64, high: u64) -> bool {
    let leaves = |i: &Insn| {
        if !i.1.starts_with('j') {
            return false;
        }
        let target =
            i.2.strip_prefix("0x")
                .and_then(|t| u64::from_str_radix(t, 16).ok());
        target.is_none_or(|t| t < low || t >= high)
    };
    insns.iter().any(|i| i.1 == "ret") && !insns.iter().any(leaves)
}

/// The instruction at `address` inside function `id` (a line probe).
pub fn at(cs: &Capstone, image: &Image, id: FuncId, address: u64) -> Result<Site> {
    let func = &image.functions[id];
    let code = image
        .code(func)
        .ok_or_else(|| anyhow!("{}: code is not in the file", func.name))?;
    let start = address
        .checked_sub(func.low)
        .filter(|&o| (o as usize) < code.len())
        .ok_or_else(|| anyhow!("{address:#x} is outside {}", func.name))?;
    let decoded = cs
        .disasm_count(&code[start as usize..], address, 1)
        .map_err(|e| anyhow!("{}: cannot disassemble: {e}", func.name))?;
    let instruction = decoded
        .iter()
        .next()
        .map(|i| i.bytes().to_vec())
        .ok_or_else(|| anyhow!("no instruction at {address:#x}"))?;
    Ok(Site {
        address,
        guard: None,
        instruction,
        scratch: None,
    })
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
