//! The kernel side's data layout: probes serialized into the
//! `struct lp_recipe` the BPF program executes, and the ring buffer's
//! records parsed back into hits and write marks.
//!
//! `bpf/probe.h` is the one definition of that layout. libbpf-cargo
//! generates a Rust type for each of its structures and enums from the
//! object's BTF (`skel::types`); this module fills and reads those types
//! and restates no offset, size or constant. What it owns is the mapping
//! between the planner's types (`plan::Capture`, `plan::Filter`, …) and the
//! kernel's, and the limits the kernel side sets on a recipe.

use anyhow::{bail, Result};

use super::skel::types::{
    lp_bucket, lp_cap_kind, lp_capture, lp_cmp, lp_counter, lp_event, lp_filter, lp_len_kind,
    lp_limit, lp_mark, lp_op, lp_op_kind, lp_pair, lp_pair_role, lp_recipe, lp_relay, lp_sigxmm,
    lp_write,
};
use crate::backend::RawHit;
use crate::plan::{Capture, CmpOp, Filter, FilterOp, FrameRole, Guard, Len, Pairing, Probe};

/// Most capture steps in one recipe.
pub const MAX_CAPS: usize = lp_limit::LP_MAX_CAPS.0 as usize;
/// Most bytes one capture step reads.
pub const MAX_CAP_LEN: u32 = lp_limit::LP_MAX_CAP_LEN.0;
/// Most bytes one hit captures in all.
pub const MAX_HIT_BYTES: u64 = lp_limit::LP_MAX_HIT_BYTES.0 as u64;
const UNREADABLE: u16 = lp_mark::LP_UNREADABLE.0 as u16;

/// Counter slots of the `counters` map.
pub const COUNT_HITS: u32 = lp_counter::LP_COUNT_HITS.0;
pub const COUNT_DROPS: u32 = lp_counter::LP_COUNT_DROPS.0;
pub const COUNT_FILTERED: u32 = lp_counter::LP_COUNT_FILTERED.0;
pub const COUNT_LIMITED: u32 = lp_counter::LP_COUNT_LIMITED.0;

/// A type shared with the kernel, viewed as bytes.
///
/// # Safety
///
/// Only for the `#[repr(C)]` types libbpf-cargo generates from BTF that
/// hold nothing but integers, arrays of them and other such types:
/// libbpf-cargo spells every gap between fields and at the end as an
/// explicit `__pad` array, so the value has no uninitialized padding
/// bytes, and every bit pattern is a valid value (enums are generated as
/// transparent integer newtypes, not Rust enums).
pub unsafe trait Plain: Copy {}

// SAFETY: each is a generated `#[repr(C)]` struct of integers, integer
// newtypes and arrays of those (see `bpf/probe.h`), as `Plain` requires.
unsafe impl Plain for lp_recipe {}
// SAFETY: as above.
unsafe impl Plain for lp_event {}
// SAFETY: as above.
unsafe impl Plain for lp_bucket {}
// SAFETY: as above.
unsafe impl Plain for lp_write {}
// SAFETY: as above.
unsafe impl Plain for lp_relay {}
// SAFETY: as above.
unsafe impl Plain for lp_sigxmm {}

/// The bytes of `v`, as the kernel reads them.
pub fn bytes_of<T: Plain>(v: &T) -> &[u8] {
    // SAFETY: `Plain` guarantees every byte of `T` is initialized; the
    // slice covers exactly `v` and borrows it.
    unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), std::mem::size_of::<T>()) }
}

/// A `T` read from the start of `data`, if it is long enough.
pub fn read<T: Plain>(data: &[u8]) -> Option<T> {
    if data.len() < std::mem::size_of::<T>() {
        return None;
    }
    // SAFETY: `data` holds at least `size_of::<T>()` bytes (checked
    // above); `read_unaligned` needs no alignment; `Plain` makes any bit
    // pattern a valid `T`.
    Some(unsafe { std::ptr::read_unaligned(data.as_ptr().cast::<T>()) })
}

/// A probe's guard and recipe as the kernel reads them, or why the eBPF
/// backend cannot run it.
pub fn recipe(p: &Probe) -> Result<Box<lp_recipe>> {
    let caps = &p.recipe.captures;
    if caps.len() > MAX_CAPS {
        bail!(
            "a probe needs {} capture steps; the eBPF backend takes at most {MAX_CAPS}",
            caps.len()
        );
    }
    let mut r = Box::<lp_recipe>::default();
    r.ncaps = caps.len() as u32;
    r.guard_cc = match p.guard {
        Some(Guard::UnlessJumpTaken { cc }) => u32::from(cc & 0xf),
        None => lp_mark::LP_NO_GUARD.0,
    };
    r.pair = pairing(p.recipe.pairing);
    if let Some(rate) = p.recipe.rate {
        r.rate = rate.probe;
        r.total_rate = rate.total;
    }
    if let Some(at) = p.returns_at {
        r.ret_delta = p
            .address
            .checked_sub(at.address)
            .and_then(|d| u32::try_from(d).ok())
            .ok_or_else(|| {
                anyhow::anyhow!("a RET at {:#x} before its function's entry", p.address)
            })?;
    }
    r.filter = filter(p.recipe.filter.as_ref())?;
    let mut total: u64 = 0;
    for (slot, c) in r.caps.iter_mut().zip(caps) {
        let (most, cap) = capture(c);
        if most > MAX_CAP_LEN {
            bail!("a capture of {most} bytes exceeds the eBPF backend's {MAX_CAP_LEN}-byte limit");
        }
        total += u64::from(most);
        *slot = cap;
    }
    if total > MAX_HIT_BYTES {
        bail!(
            "a probe captures up to {total} bytes; the eBPF backend takes at most {MAX_HIT_BYTES}"
        );
    }
    Ok(r)
}

/// One capture step, and the most bytes it reads.
fn capture(c: &Capture) -> (u32, lp_capture) {
    let mut cap = lp_capture::default();
    let most = match *c {
        Capture::Reg(r) => {
            cap.kind = lp_cap_kind::LP_CAP_REG;
            cap.reg = r.slot() as u8;
            8
        }
        Capture::Xmm(n) => {
            cap.kind = lp_cap_kind::LP_CAP_XMM;
            cap.reg = n;
            0
        }
        Capture::Stack { offset, len } => {
            cap.kind = lp_cap_kind::LP_CAP_STACK;
            cap.add = offset;
            cap.len = len;
            len
        }
        Capture::Frames { cfa, offset, count } => {
            cap.kind = lp_cap_kind::LP_CAP_FRAMES;
            cap.reg = cfa.slot() as u8;
            cap.add = offset;
            cap.len = u32::from(count);
            8 * u32::from(count)
        }
        Capture::Deref {
            base,
            offset,
            add,
            len,
        } => {
            cap.kind = lp_cap_kind::LP_CAP_DEREF;
            cap.base = base;
            cap.offset = offset;
            cap.add = add;
            match len {
                Len::Fixed(n) => {
                    cap.len_kind = lp_len_kind::LP_LEN_FIXED;
                    cap.len = n;
                    n
                }
                Len::Counted {
                    capture,
                    offset,
                    scale,
                    max,
                }
                | Len::Shifted {
                    capture,
                    offset,
                    scale,
                    max,
                } => {
                    cap.len_kind = match len {
                        Len::Shifted { .. } => lp_len_kind::LP_LEN_SHIFTED,
                        _ => lp_len_kind::LP_LEN_COUNTED,
                    };
                    cap.len = scale;
                    cap.count_capture = capture;
                    cap.count_offset = offset;
                    cap.max = max;
                    max
                }
            }
        }
    };
    (most, cap)
}

fn pairing(p: Option<Pairing>) -> lp_pair {
    let Some(p) = p else {
        return lp_pair::default();
    };
    let (g_reg, hi_at) = match p.g {
        Some((r, at)) => (r.slot() as u8, at),
        None => (lp_mark::LP_NO_G.0 as u8, 0),
    };
    lp_pair {
        role: match p.role {
            FrameRole::Open => lp_pair_role::LP_PAIR_OPEN,
            FrameRole::Close => lp_pair_role::LP_PAIR_CLOSE,
        },
        g_reg,
        hi_at,
        key: p.key,
    }
}

/// A recipe's filter (all zero: none).
fn filter(f: Option<&Filter>) -> Result<lp_filter> {
    let mut out = lp_filter::default();
    let Some(f) = f else { return Ok(out) };
    if f.ops.len() > out.ops.len() || f.bytes.len() > out.bytes.len() {
        bail!(
            "a filter of {} ops and {} bytes exceeds the eBPF backend's {} and {}",
            f.ops.len(),
            f.bytes.len(),
            out.ops.len(),
            out.bytes.len()
        );
    }
    out.nops = f.ops.len() as u32;
    out.after = u32::from(f.after);
    for (slot, op) in out.ops.iter_mut().zip(&f.ops) {
        *slot = filter_op(op);
    }
    out.bytes[..f.bytes.len()].copy_from_slice(&f.bytes);
    Ok(out)
}

fn filter_op(op: &FilterOp) -> lp_op {
    let mut o = lp_op::default();
    match *op {
        FilterOp::Load {
            capture,
            at,
            size,
            signed,
        } => {
            o.kind = lp_op_kind::LP_OP_LOAD;
            o.size = size;
            o.is_signed = u8::from(signed);
            o.capture = capture;
            o.at = at;
        }
        FilterOp::Push(v) => {
            o.kind = lp_op_kind::LP_OP_PUSH;
            o.value = v;
        }
        FilterOp::Cmp { op, signed } => {
            o.kind = lp_op_kind::LP_OP_CMP;
            o.cmp = match op {
                CmpOp::Eq => lp_cmp::LP_CMP_EQ,
                CmpOp::Ne => lp_cmp::LP_CMP_NE,
                CmpOp::Lt => lp_cmp::LP_CMP_LT,
                CmpOp::Le => lp_cmp::LP_CMP_LE,
                CmpOp::Gt => lp_cmp::LP_CMP_GT,
                CmpOp::Ge => lp_cmp::LP_CMP_GE,
            };
            o.is_signed = u8::from(signed);
        }
        FilterOp::Prefix { capture, at, len } => {
            o.kind = lp_op_kind::LP_OP_PREFIX;
            o.size = len;
            o.capture = capture;
            o.at = u16::from(at);
        }
        FilterOp::And => o.kind = lp_op_kind::LP_OP_AND,
        FilterOp::Or => o.kind = lp_op_kind::LP_OP_OR,
        FilterOp::Not => o.kind = lp_op_kind::LP_OP_NOT,
    }
    o
}

/// Which process's writes to which of its descriptors 1 and 2 (`fds`, bit
/// n for fd n) the relay's tracepoints mark.
pub fn relay(pid: i32, fds: u32) -> lp_relay {
    lp_relay {
        tgid: pid as u32,
        fds,
    }
}

/// The token bucket a recipe slot starts with: full, nothing limited.
pub fn fresh_bucket() -> lp_bucket {
    lp_bucket::default()
}

/// The hits over a rate limit a slot's bucket (as read from the
/// `buckets` map) counted.
pub fn limited_of(bucket: &[u8]) -> Option<u64> {
    read::<lp_bucket>(bucket).map(|b| b.limited)
}

/// The hits a slot's bucket counted as lost (a full ring buffer).
pub fn lost_of(bucket: &[u8]) -> Option<u64> {
    read::<lp_bucket>(bucket).map(|b| b.lost)
}

/// One ring buffer record.
pub enum Item {
    /// A probe hit; `probe` is still the slot (the attach cookie).
    Hit(RawHit),
    /// The launched program wrote `bytes` bytes to its (relayed) `fd`.
    Write { fd: u32, bytes: u64 },
}

pub fn parse_item(data: &[u8]) -> Option<Item> {
    match read::<lp_write>(data) {
        Some(w) if w.mark == lp_mark::LP_WRITE_MARK.0 => Some(Item::Write {
            fd: w.fd,
            bytes: w.bytes,
        }),
        _ => parse_event(data).map(Item::Hit),
    }
}

/// Decodes one hit: a `struct lp_event`, the captured bytes, then one
/// `u16` length per capture. `None` when the lengths do not add up.
fn parse_event(data: &[u8]) -> Option<RawHit> {
    let ev = read::<lp_event>(data)?;
    let ncaps = ev.ncaps as usize;
    if ncaps > MAX_CAPS {
        return None;
    }
    let header = std::mem::size_of::<lp_event>();
    let lens_at = data.len().checked_sub(2 * ncaps)?;
    if lens_at < header {
        return None;
    }
    let bytes = &data[header..lens_at];
    let mut at = 0;
    let mut captures = Vec::with_capacity(ncaps);
    for len in data[lens_at..].chunks_exact(2) {
        let len = u16::from_ne_bytes([len[0], len[1]]);
        if len == UNREADABLE {
            captures.push(None);
        } else {
            captures.push(Some(bytes.get(at..at + len as usize)?.to_vec()));
            at += len as usize;
        }
    }
    if at != bytes.len() {
        return None;
    }
    Some(RawHit {
        probe: ev.probe,
        pid: ev.pid as i32,
        tid: ev.tid as i32,
        time_ns: ev.time_ns,
        captures,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{ProbeKind, Recipe, Reg};

    fn probe(captures: Vec<Capture>) -> Probe {
        Probe {
            id: 3,
            func: 0,
            kind: ProbeKind::Entry,
            address: 0,
            file_offset: 0,
            library: None,
            guard: Some(Guard::UnlessJumpTaken { cc: 6 }),
            instruction: Vec::new(),
            scratch: None,
            returns_at: None,
            recipe: Recipe {
                captures,
                ..Recipe::default()
            },
        }
    }

    /// The planner's limits are the kernel side's: a recipe the planner
    /// builds always fits, and nothing the kernel could take is refused.
    #[test]
    fn the_planners_limits_are_the_kernels() {
        let r = lp_recipe::default();
        assert_eq!(crate::plan::MAX_CAPTURES, MAX_CAPS);
        assert_eq!(r.caps.len(), MAX_CAPS);
        assert_eq!(crate::plan::MAX_READ, MAX_CAP_LEN);
        assert_eq!(u64::from(crate::plan::MAX_RECIPE_BYTES), MAX_HIT_BYTES);
        assert_eq!(crate::plan::MAX_FILTER_OPS, r.filter.ops.len());
        assert_eq!(crate::plan::MAX_FILTER_BYTES, r.filter.bytes.len());
        assert_eq!(
            crate::backend::exec::MAX_FRAMES,
            lp_limit::LP_MAX_FRAMES.0 as usize
        );
        // Every step's read, at most MAX_CAP_LEN, fits after a full hit.
        assert!(u64::from(lp_limit::LP_DATA_SIZE.0) >= MAX_HIT_BYTES + u64::from(MAX_CAP_LEN));
    }

    #[test]
    fn recipes_fill_the_kernels_fields() {
        let p = probe(vec![
            Capture::Reg(Reg::R14),
            Capture::Deref {
                base: 0,
                offset: 0,
                add: 152,
                len: Len::Counted {
                    capture: 0,
                    offset: 8,
                    scale: 1,
                    max: 64,
                },
            },
            Capture::Stack { offset: 8, len: 16 },
            Capture::Xmm(2),
        ]);
        let r = recipe(&p).expect("serializes");
        assert_eq!((r.ncaps, r.guard_cc), (4, 6));
        assert_eq!(r.caps[0].kind, lp_cap_kind::LP_CAP_REG);
        assert_eq!(r.caps[0].reg, Reg::R14 as u8);
        let d = r.caps[1];
        assert_eq!(
            (d.kind, d.len_kind),
            (lp_cap_kind::LP_CAP_DEREF, lp_len_kind::LP_LEN_COUNTED)
        );
        assert_eq!((d.base, d.offset, d.add), (0, 0, 152));
        assert_eq!(
            (d.len, d.count_capture, d.count_offset, d.max),
            (1, 0, 8, 64)
        );
        assert_eq!(
            (r.caps[2].kind, r.caps[2].add, r.caps[2].len),
            (lp_cap_kind::LP_CAP_STACK, 8, 16)
        );
        assert_eq!(
            (r.caps[3].kind, r.caps[3].reg),
            (lp_cap_kind::LP_CAP_XMM, 2)
        );
        assert_eq!(
            r.caps[4].kind,
            lp_cap_kind::LP_CAP_NONE,
            "unused steps stay empty"
        );
        assert_eq!(r.pair.role, lp_pair_role::LP_PAIR_NONE);
        assert_eq!(r.filter.nops, 0);
        assert_eq!(bytes_of(&*r).len(), std::mem::size_of::<lp_recipe>());
        let mut unguarded = p.clone();
        unguarded.guard = None;
        assert_eq!(
            recipe(&unguarded).expect("serializes").guard_cc,
            lp_mark::LP_NO_GUARD.0
        );
    }

    #[test]
    fn filters_and_pairings_fill_the_kernels_fields() {
        let mut p = probe(vec![Capture::Reg(Reg::Rax), Capture::Reg(Reg::Rbx)]);
        p.recipe.filter = Some(Filter {
            ops: vec![
                FilterOp::Load {
                    capture: 1,
                    at: 0,
                    size: 4,
                    signed: true,
                },
                FilterOp::Push(u64::MAX),
                FilterOp::Cmp {
                    op: CmpOp::Ge,
                    signed: true,
                },
                FilterOp::Prefix {
                    capture: 0,
                    at: 2,
                    len: 3,
                },
                FilterOp::Or,
            ],
            bytes: b"..abc".to_vec(),
            after: 2,
        });
        p.recipe.pairing = Some(Pairing {
            role: FrameRole::Open,
            key: 9,
            g: Some((Reg::R14, 8)),
        });
        let r = recipe(&p).expect("serializes");
        assert_eq!(r.pair.role, lp_pair_role::LP_PAIR_OPEN);
        assert_eq!(
            (r.pair.g_reg, r.pair.hi_at, r.pair.key),
            (Reg::R14 as u8, 8, 9)
        );
        let f = &r.filter;
        assert_eq!((f.nops, f.after), (5, 2));
        let load = f.ops[0];
        assert_eq!(load.kind, lp_op_kind::LP_OP_LOAD);
        assert_eq!(
            (load.size, load.is_signed, load.capture, load.at),
            (4, 1, 1, 0)
        );
        assert_eq!(
            (f.ops[1].kind, f.ops[1].value),
            (lp_op_kind::LP_OP_PUSH, u64::MAX)
        );
        assert_eq!(
            (f.ops[2].kind, f.ops[2].cmp, f.ops[2].is_signed),
            (lp_op_kind::LP_OP_CMP, lp_cmp::LP_CMP_GE, 1)
        );
        let prefix = f.ops[3];
        assert_eq!(
            (prefix.kind, prefix.size, prefix.capture, prefix.at),
            (lp_op_kind::LP_OP_PREFIX, 3, 0, 2)
        );
        assert_eq!(f.ops[4].kind, lp_op_kind::LP_OP_OR);
        assert_eq!(&f.bytes[..5], b"..abc");
        let no_g = Pairing {
            role: FrameRole::Close,
            key: 1,
            g: None,
        };
        p.recipe.pairing = Some(no_g);
        let r = recipe(&p).expect("serializes");
        assert_eq!(r.pair.role, lp_pair_role::LP_PAIR_CLOSE);
        assert_eq!(u32::from(r.pair.g_reg), lp_mark::LP_NO_G.0);
        p.recipe.filter.as_mut().expect("filter").ops =
            vec![FilterOp::Not; crate::plan::MAX_FILTER_OPS + 1];
        assert!(recipe(&p).is_err());
    }

    #[test]
    fn oversized_recipes_are_refused() {
        let big = probe(vec![Capture::Stack {
            offset: 8,
            len: MAX_CAP_LEN + 1,
        }]);
        assert!(recipe(&big).is_err());
        let many = probe(vec![Capture::Reg(Reg::Rax); MAX_CAPS + 1]);
        assert!(recipe(&many).is_err());
        let total = (MAX_HIT_BYTES / u64::from(MAX_CAP_LEN) + 1) as usize;
        let too_much = probe(vec![
            Capture::Stack {
                offset: 8,
                len: MAX_CAP_LEN
            };
            total
        ]);
        assert!(recipe(&too_much).is_err());
    }

    fn record(ev: lp_event, bytes: &[u8], lens: &[u16]) -> Vec<u8> {
        let mut e = bytes_of(&ev).to_vec();
        e.extend_from_slice(bytes);
        for len in lens {
            e.extend_from_slice(&len.to_ne_bytes());
        }
        e
    }

    #[test]
    fn events_parse_with_unreadable_captures() {
        let ev = lp_event {
            probe: 7,
            pid: 100,
            tid: 101,
            ncaps: 3,
            time_ns: 5,
        };
        let e = record(ev, &[0xaa, 0xbb, 0xcc], &[2, UNREADABLE, 1]);
        let Some(Item::Hit(h)) = parse_item(&e) else {
            panic!("not a hit")
        };
        assert_eq!((h.probe, h.pid, h.tid, h.time_ns), (7, 100, 101, 5));
        assert_eq!(
            h.captures,
            vec![Some(vec![0xaa, 0xbb]), None, Some(vec![0xcc])]
        );
        // Lengths that do not add up to the bytes present are refused.
        let short = record(ev, &[0xaa, 0xbb], &[2, UNREADABLE, 1]);
        assert!(parse_item(&short).is_none());
        assert!(parse_item(&e[..10]).is_none());
    }

    #[test]
    fn write_marks_parse() {
        let w = lp_write {
            mark: lp_mark::LP_WRITE_MARK.0,
            fd: 2,
            bytes: 17,
        };
        let Some(Item::Write { fd, bytes }) = parse_item(bytes_of(&w)) else {
            panic!("not a write mark")
        };
        assert_eq!((fd, bytes), (2, 17));
    }
}
