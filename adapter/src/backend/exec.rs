//! The reference executor of capture recipes, used by the ptrace backend
//! (the eBPF program in `bpf/` implements the same semantics in the kernel):
//! the capture steps, the recipe's filter, its rate limits and the pairing
//! of calls with their returns.

use std::collections::{HashMap, HashSet};

use crate::plan::{
    Bucket, Capture, Filter, FilterOp, FrameRole, Len, Pairing, Recipe, Reg, FILTER_STACK,
};

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

/// The bytes of one hit's captures, in recipe order (`None`: unreadable).
pub type Captured = Vec<Option<Vec<u8>>>;

/// A call frame a filter admitted (see [`Pairing`]): key, thread (0 for
/// goroutines), goroutine, depth.
type Frame = (u32, u32, u64, u64);

/// The open frames of one traced process. Frames of calls that never
/// return (a panic unwinding past them) stay until a later call at the
/// same depth clears them, or until the set is full and is emptied.
#[derive(Debug, Default)]
pub struct Frames(HashSet<Frame>);

/// Most open frames kept (the eBPF side keeps as many, least recently
/// used first out).
pub const MAX_FRAMES: usize = 65536;

/// The rate limits' buckets of one traced process: one per probe, one
/// for all (see [`crate::plan::RateLimit`]).
#[derive(Debug, Default)]
pub struct Rates {
    probes: HashMap<u32, Bucket>,
    total: Bucket,
}

/// Why a hit was not reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// Its filter, or the return of a call that was not reported.
    Filtered,
    /// Over a rate limit.
    Limited,
}

/// Executes the recipe of `probe` for one hit of thread `tid` at `now`
/// (ns): its capture steps in order, its filter, its rate limits and its
/// pairing.
pub fn run(
    recipe: &Recipe,
    m: &mut dyn Machine,
    tid: u32,
    frames: &mut Frames,
    (probe, rates, now): (u32, &mut Rates, u64),
) -> Result<Captured, Rejected> {
    let frame = recipe.pairing.and_then(|p| frame_of(p, m, tid));
    if let (Some(p), Some(f)) = (recipe.pairing, frame) {
        if p.role == FrameRole::Close && !frames.0.remove(&f) {
            return Err(Rejected::Filtered);
        }
    }
    let mut out = Captured::with_capacity(recipe.captures.len());
    if let Some(filter) = &recipe.filter {
        capture(recipe, m, &mut out, filter.after as usize);
        if !admits(filter, &out) {
            if let Some(f) = frame {
                frames.0.remove(&f);
            }
            return Err(Rejected::Filtered);
        }
    }
    if let Some(rate) = recipe.rate {
        let own = rates.probes.entry(probe).or_default().take(rate.probe, now);
        if !own || !rates.total.take(rate.total, now) {
            if let Some(f) = frame {
                frames.0.remove(&f);
            }
            return Err(Rejected::Limited);
        }
    }
    if let (Some(p), Some(f)) = (recipe.pairing, frame) {
        if p.role == FrameRole::Open {
            if frames.0.len() >= MAX_FRAMES {
                frames.0.clear();
            }
            frames.0.insert(f);
        }
    }
    capture(recipe, m, &mut out, recipe.captures.len());
    Ok(out)
}

/// The frame a hit is in; `None` when its goroutine cannot be read (the
/// hit is then reported, unpaired, as without a filter).
fn frame_of(p: Pairing, m: &mut dyn Machine, tid: u32) -> Option<Frame> {
    let sp = m.reg(Reg::Rsp.slot());
    match p.g {
        None => Some((p.key, tid, 0, sp)),
        Some((reg, hi_at)) => {
            let g = m.reg(reg.slot());
            let hi = m.read(g.checked_add(u64::from(hi_at))?, 8)?;
            let hi = u64_at(&hi, 0)?;
            Some((p.key, 0, g, hi.wrapping_sub(sp)))
        }
    }
}

/// Runs `filter` over the captures taken so far: `false` only when it
/// decides the hit is rejected.
pub fn admits(filter: &Filter, caps: &[Option<Vec<u8>>]) -> bool {
    let mut stack = [0u64; FILTER_STACK];
    let mut depth = 0usize;
    for op in &filter.ops {
        let (pops, value) = match *op {
            FilterOp::Load {
                capture,
                at,
                size,
                signed,
            } => {
                // As in the kernel: only 1 to 8 bytes, all captured.
                let Some(bytes) = caps
                    .get(capture as usize)
                    .and_then(|c| c.as_deref())
                    .and_then(|c| c.get(at as usize..at as usize + size as usize))
                    .filter(|b| (1..=8).contains(&b.len()))
                else {
                    return true;
                };
                let mut buf = [0u8; 8];
                buf[..bytes.len()].copy_from_slice(bytes);
                let v = u64::from_le_bytes(buf);
                let bits = 8 * u32::from(size);
                let v = match (signed, bits) {
                    (_, 64) => v,
                    (true, b) => (((v << (64 - b)) as i64) >> (64 - b)) as u64,
                    (false, _) => v,
                };
                (0, v)
            }
            FilterOp::Push(v) => (0, v),
            FilterOp::Prefix { capture, at, len } => {
                let Some(c) = caps.get(capture as usize).and_then(|c| c.as_deref()) else {
                    return true;
                };
                let want = filter.bytes.get(at as usize..at as usize + len as usize);
                (0, u64::from(want.is_some_and(|w| c.starts_with(w))))
            }
            FilterOp::Cmp { op, signed } => {
                if depth < 2 {
                    return true;
                }
                (
                    2,
                    u64::from(op.holds(stack[depth - 2], stack[depth - 1], signed)),
                )
            }
            FilterOp::And | FilterOp::Or => {
                if depth < 2 {
                    return true;
                }
                let (a, b) = (stack[depth - 2] != 0, stack[depth - 1] != 0);
                let v = match op {
                    FilterOp::And => a && b,
                    _ => a || b,
                };
                (2, u64::from(v))
            }
            FilterOp::Not => {
                if depth < 1 {
                    return true;
                }
                (1, u64::from(stack[depth - 1] == 0))
            }
        };
        depth -= pops;
        if depth >= FILTER_STACK {
            return true;
        }
        stack[depth] = value;
        depth += 1;
    }
    depth != 1 || stack[0] != 0
}

/// Takes the captures of `recipe` after those in `out`, up to `until`.
fn capture(recipe: &Recipe, m: &mut dyn Machine, out: &mut Captured, until: usize) {
    let until = until.min(recipe.captures.len());
    while out.len() < until {
        let c = &recipe.captures[out.len()];
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
                // The bytes of an earlier capture, if it was read.
                let of = |c: u16| out.get(c as usize).and_then(|b| b.as_deref());
                let ptr = of(base).and_then(|b| u64_at(b, offset as usize));
                let n = match len {
                    Len::Fixed(n) => Some(n as u64),
                    Len::Counted {
                        capture,
                        offset,
                        scale,
                        max,
                    } => of(capture)
                        .and_then(|b| u64_at(b, offset as usize))
                        .filter(|&c| (c as i64) >= 0)
                        .map(|c| c.saturating_mul(scale as u64).min(max as u64)),
                    Len::Shifted {
                        capture,
                        offset,
                        scale,
                        max,
                    } => of(capture)
                        .and_then(|b| b.get(offset as usize))
                        .map(|&n| ((1u64 << n.min(31)) * scale as u64).min(max as u64)),
                };
                match (ptr, n) {
                    (Some(0), _) | (None, _) | (_, None) => None,
                    (Some(_), Some(0)) => Some(Vec::new()),
                    (Some(p), Some(n)) => m.read(p.wrapping_add(add as i64 as u64), n as usize),
                }
            }
            Capture::Frames { cfa, offset, count } => Some(frames(m, cfa, offset, count)),
        };
        out.push(got);
    }
}

/// The return addresses of [`Capture::Frames`]: the one below the CFA,
/// then the frame pointer chain's, 8 bytes each (the eBPF program's
/// `lp_frames` walks the same way).
fn frames(m: &mut dyn Machine, cfa: crate::plan::Reg, offset: i32, count: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 * usize::from(count));
    if count == 0 {
        return out;
    }
    let sp = m.reg(crate::plan::Reg::Rsp.slot());
    let cfa = m.reg(cfa.slot()).wrapping_add(offset as i64 as u64);
    let Some(ret) = m.read(cfa.wrapping_sub(8), 8).and_then(|b| u64_at(&b, 0)) else {
        return out;
    };
    out.extend_from_slice(&ret.to_le_bytes());
    let mut fp = m.reg(crate::plan::Reg::Rbp.slot());
    // RBP inside the probed function's own frame: its caller's is saved there.
    if fp >= sp && fp < cfa {
        match m.read(fp, 8).and_then(|b| u64_at(&b, 0)) {
            Some(next) => fp = next,
            None => return out,
        }
    }
    let mut floor = cfa.wrapping_sub(8);
    while out.len() < 8 * usize::from(count) {
        if fp <= floor || !fp.is_multiple_of(8) {
            break;
        }
        let Some(pair) = m.read(fp, 16) else { break };
        let (Some(next), Some(ret)) = (u64_at(&pair, 0), u64_at(&pair, 8)) else {
            break;
        };
        if ret == 0 {
            break;
        }
        out.extend_from_slice(&ret.to_le_bytes());
        floor = fp;
        fp = next;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::CmpOp;

    fn load(capture: u16, size: u8, signed: bool) -> FilterOp {
        FilterOp::Load {
            capture,
            at: 0,
            size,
            signed,
        }
    }

    fn filter(ops: Vec<FilterOp>, bytes: &[u8]) -> Filter {
        Filter {
            ops,
            bytes: bytes.to_vec(),
            after: 2,
        }
    }

    #[test]
    fn filters_compare_sign_extended_integers() {
        // An int8 of -8 in a register's low byte.
        let caps = vec![Some(0xf8u64.to_le_bytes().to_vec()), None];
        let cmp = |op, signed| FilterOp::Cmp { op, signed };
        let minus_eight = filter(
            vec![
                load(0, 1, true),
                FilterOp::Push(-8i64 as u64),
                cmp(CmpOp::Eq, true),
            ],
            b"",
        );
        assert!(admits(&minus_eight, &caps));
        let below_zero = filter(
            vec![load(0, 1, true), FilterOp::Push(0), cmp(CmpOp::Lt, true)],
            b"",
        );
        assert!(admits(&below_zero, &caps));
        // Unsigned, the same byte is 248.
        let unsigned = filter(
            vec![load(0, 1, false), FilterOp::Push(0), cmp(CmpOp::Lt, false)],
            b"",
        );
        assert!(!admits(&unsigned, &caps));
    }

    #[test]
    fn filters_admit_what_they_cannot_read() {
        let caps = vec![Some(vec![1, 0, 0, 0, 0, 0, 0, 0]), None];
        let never = |capture| {
            filter(
                vec![
                    load(capture, 8, false),
                    FilterOp::Push(7),
                    FilterOp::Cmp {
                        op: CmpOp::Eq,
                        signed: false,
                    },
                ],
                b"",
            )
        };
        assert!(!admits(&never(0), &caps));
        // Capture 1 is unreadable, capture 2 was never taken.
        assert!(admits(&never(1), &caps));
        assert!(admits(&never(2), &caps));
        // A malformed program (stack underflow) admits too.
        assert!(admits(&filter(vec![FilterOp::And], b""), &caps));
    }

    #[test]
    fn prefixes_compare_captured_bytes() {
        let caps = vec![Some(b"gopher".to_vec()), Some(b"go".to_vec())];
        let prefix = |capture, len| FilterOp::Prefix {
            capture,
            at: 1,
            len,
        };
        assert!(admits(&filter(vec![prefix(0, 2)], b"xgo"), &caps));
        assert!(admits(&filter(vec![prefix(1, 2)], b"xgo"), &caps));
        // Shorter than the constant: not equal, decided.
        assert!(!admits(&filter(vec![prefix(1, 3)], b"xgop"), &caps));
        assert!(!admits(
            &filter(vec![prefix(0, 2), FilterOp::Not], b"xgo"),
            &caps
        ));
    }
}

#[cfg(test)]
mod shifted {
    use super::*;
    use crate::plan::Reg;

    /// Memory of 64 bytes at 0x1000 and registers that point there.
    struct Fake;

    impl Machine for Fake {
        fn reg(&self, slot: usize) -> u64 {
            if slot == Reg::Rax.slot() {
                0x1000
            } else {
                // B = 2 in the low byte.
                2
            }
        }
        fn xmm(&mut self, _: u8) -> Option<u64> {
            None
        }
        fn read(&mut self, addr: u64, len: usize) -> Option<Vec<u8>> {
            let end = 0x1040u64;
            (addr >= 0x1000 && addr < end).then(|| vec![7; len.min((end - addr) as usize)])
        }
    }

    #[test]
    fn shifted_lengths_read_one_bucket_per_power_of_two() {
        let deref = |max| Capture::Deref {
            base: 0,
            offset: 0,
            add: 0,
            len: Len::Shifted {
                capture: 1,
                offset: 0,
                scale: 8,
                max,
            },
        };
        for (max, want) in [(64, 32), (16, 16)] {
            let recipe = Recipe {
                captures: vec![Capture::Reg(Reg::Rax), Capture::Reg(Reg::Rbx), deref(max)],
                ..Recipe::default()
            };
            let rates = (0, &mut Rates::default(), 0);
            let got = run(&recipe, &mut Fake, 1, &mut Frames::default(), rates).expect("reported");
            assert_eq!(got[2].as_ref().map(Vec::len), Some(want), "max {max}");
        }
    }
}
