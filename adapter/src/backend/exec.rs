//! The reference executor of capture recipes, used by the ptrace backend
//! (the eBPF program in `bpf/` implements the same semantics in the kernel).

use crate::plan::{Capture, Len, Recipe};

/// Register file of the stopped thread, in `pt_regs` slot order.
pub type Regs = [u64; 21];

/// Where the executor gets what a capture asks for.
pub trait Machine {
    fn reg(&self, slot: usize) -> u64;
    /// Low 8 bytes of XMM register `n`, if readable.
    fn xmm(&mut self, n: u8) -> Option<u64>;
    /// Up to `len` bytes at `addr`; `None` if nothing there is readable.
    fn read(&mut self, addr: u64, len: usize) -> Option<Vec<u8>>;
}

fn u64_at(bytes: &[u8], offset: usize) -> Option<u64> {
    let b = bytes.get(offset..offset + 8)?;
    let mut buf = [0u8; 8];
    buf.copy_from_slice(b);
    Some(u64::from_le_bytes(buf))
}

/// Executes every capture step of `recipe` in order.
pub fn run(recipe: &Recipe, m: &mut dyn Machine) -> Vec<Option<Vec<u8>>> {
    let mut out: Vec<Option<Vec<u8>>> = Vec::with_capacity(recipe.captures.len());
    for c in &recipe.captures {
        let got = match *c {
            Capture::Reg(r) => Some(m.reg(r.slot()).to_le_bytes().to_vec()),
            Capture::Xmm(n) => m.xmm(n).map(|v| v.to_le_bytes().to_vec()),
            Capture::Stack { offset, len } => {
                let sp = m.reg(crate::plan::Reg::Rsp.slot());
                m.read(sp.wrapping_add(offset as i64 as u64), len as usize)
            }
            Capture::Deref {
                base,
                offset,
                add,
                len,
            } => {
                let ptr = out
                    .get(base as usize)
                    .and_then(|b| b.as_deref())
                    .and_then(|b| u64_at(b, offset as usize));
                let n = match len {
                    Len::Fixed(n) => Some(n as u64),
                    Len::Counted {
                        capture,
                        offset,
                        scale,
                        max,
                    } => out
                        .get(capture as usize)
                        .and_then(|b| b.as_deref())
                        .and_then(|b| u64_at(b, offset as usize))
                        .filter(|&c| (c as i64) >= 0)
                        .map(|c| c.saturating_mul(scale as u64).min(max as u64)),
                };
                match (ptr, n) {
                    (Some(0), _) | (None, _) | (_, None) => None,
                    (Some(_), Some(0)) => Some(Vec::new()),
                    (Some(p), Some(n)) => m.read(p.wrapping_add(add as i64 as u64), n as usize),
                }
            }
        };
        out.push(got);
    }
    out
}
