//! Stepping over a probed instruction without executing it: the few kinds
//! probe sites use (conditional jumps, jumps, calls, `ret`, `push`, no-ops)
//! are carried out on the saved registers, so the breakpoint stays in place.

use anyhow::Result;

use super::sys::{read_memory, write_memory, Regs};
use crate::plan::{condition_holds, Reg};

/// Executes the probed instruction on the saved registers, if it is one of
/// the kinds probe sites use. Returns false for anything else.
pub(super) fn emulate(tid: i32, insn: &[u8], addr: u64, regs: &mut Regs) -> Result<bool> {
    let next = addr + insn.len() as u64;
    let rel8 = |b: u8| next.wrapping_add(b as i8 as i64 as u64);
    let rel32 = |b: &[u8]| -> u64 {
        let mut x = [0u8; 4];
        x.copy_from_slice(&b[..4]);
        next.wrapping_add(i32::from_le_bytes(x) as i64 as u64)
    };
    let flags = regs[Reg::Eflags.slot()];
    let rsp = Reg::Rsp.slot();
    let push = |regs: &mut Regs, value: u64| -> Result<()> {
        let sp = regs[rsp] - 8;
        write_memory(tid, sp, &value.to_le_bytes())?;
        regs[rsp] = sp;
        Ok(())
    };
    // x86 register numbers (ModRM order) to pt_regs slots.
    const GPR: [Reg; 8] = [
        Reg::Rax,
        Reg::Rcx,
        Reg::Rdx,
        Reg::Rbx,
        Reg::Rsp,
        Reg::Rbp,
        Reg::Rsi,
        Reg::Rdi,
    ];
    const GPR_EXT: [Reg; 8] = [
        Reg::R8,
        Reg::R9,
        Reg::R10,
        Reg::R11,
        Reg::R12,
        Reg::R13,
        Reg::R14,
        Reg::R15,
    ];
    let target = match insn {
        [0xc3] => {
            let Some(ret) = read_memory(tid, regs[rsp], 8).filter(|b| b.len() == 8) else {
                return Ok(false);
            };
            let mut b = [0u8; 8];
            b.copy_from_slice(&ret);
            regs[rsp] += 8;
            u64::from_le_bytes(b)
        }
        [op @ 0x70..=0x7f, d] => {
            if condition_holds(op & 0xf, flags) {
                rel8(*d)
            } else {
                next
            }
        }
        [0x0f, op @ 0x80..=0x8f, rest @ ..] if rest.len() == 4 => {
            if condition_holds(op & 0xf, flags) {
                rel32(rest)
            } else {
                next
            }
        }
        [0xeb, d] => rel8(*d),
        [0xe9, rest @ ..] if rest.len() == 4 => rel32(rest),
        [0xe8, rest @ ..] if rest.len() == 4 => {
            push(regs, next)?;
            rel32(rest)
        }
        [op @ 0x50..=0x57] if *op != 0x54 => {
            let v = regs[GPR[(op - 0x50) as usize].slot()];
            push(regs, v)?;
            next
        }
        [0x41, op @ 0x50..=0x57] => {
            let v = regs[GPR_EXT[(op - 0x50) as usize].slot()];
            push(regs, v)?;
            next
        }
        [0x90] | [0xf3, 0x0f, 0x1e, 0xfa] | [0x0f, 0x1f, ..] | [0x66, 0x0f, 0x1f, ..] => next,
        _ => return Ok(false),
    };
    regs[Reg::Rip.slot()] = target;
    Ok(true)
}
