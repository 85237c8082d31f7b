//! The eBPF backend: uprobes that run the capture recipes in the kernel,
//! so the traced program is never stopped.
//!
//! The kernel side is `bpf/probe.bpf.c`, compiled by `build.rs` into a
//! libbpf-rs skeleton. Each probe's recipe is serialized into the
//! `recipes` map (layout in `bpf/probe.h`, mirrored here) at a slot of
//! its own, and the uprobes are attached through uprobe-multi links, one
//! per batch of probes added together, each with its slot as cookie
//! (`Armed` says how probes come and go while the program runs). Hits
//! come back through a ring buffer that is drained on a short timer
//! (records are submitted without wake-ups, which makes a hit several
//! times cheaper). The kernel counts hits and lost records; the count of
//! lost ones is always reported, and seen + lost = hits is checked.
//!
//! XMM registers are not in a uprobe's registers: a hit that captures them
//! sends its thread SIGURG (Go's harmless preemption request) and is
//! completed from the signal frame the kernel saves, by a uprobe on the
//! program's signal handler (`enable_signal_xmm`); `sse` undoes what the
//! probed instruction did to them meanwhile. Without a SIGURG handler they
//! are reported unreadable (docs/architecture.md, "The eBPF backend").
//!
//! In launch mode the program's stdout/stderr are relayed (see
//! `relay`) so that its output and the trace lines interleave as under
//! ptrace, unless the caller gave the program descriptors of its own
//! (`Launch::stdio`, the DAP server's pipes), which it then reads itself.
//!
//! Launch mode forks the program stopped before `execve`, arms every
//! uprobe for that pid, then lets it run, so no early call is missed.
//! Attach mode arms the probes on a running process and, on a stop
//! request, removes them; the process is never stopped.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::mem::MaybeUninit;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{
    ErrorKind, Link, MapCore, MapFlags, RingBufferBuilder, UprobeMultiOpts, UprobeOpts,
};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use relay::Relay;

use super::{launch, Backend, HitSink, Outcome, RawHit, StopHandle, Target};
use crate::plan::{
    Capture, CmpOp, Filter, FilterOp, FrameRole, Guard, Len, Pairing, Probe, MAX_FILTER_BYTES,
    MAX_FILTER_OPS,
};

mod relay;
mod sse;

#[allow(
    clippy::all,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unused_imports,
    dead_code,
    non_camel_case_types
)]
mod skel {
    include!(concat!(env!("OUT_DIR"), "/probe.skel.rs"));
}
use skel::ProbeSkelBuilder;

// Mirrors of bpf/probe.h.
const MAX_CAPS: usize = 512;
const MAX_CAP_LEN: u32 = 32 * 1024;
/// Most bytes one hit may capture in all (the BPF side has room for more).
const MAX_HIT_BYTES: u64 = 64 * 1024;
const UNREADABLE: u16 = 0xffff;
const WRITE_MARK: u32 = 0xffff_ffff;
const NO_GUARD: u32 = 0xff;
const CAP_REG: u8 = 1;
const CAP_XMM: u8 = 2;
const CAP_STACK: u8 = 3;
const CAP_DEREF: u8 = 4;
const LEN_FIXED: u8 = 0;
const LEN_COUNTED: u8 = 1;
const LEN_SHIFTED: u8 = 2;
const COUNT_HITS: u32 = 0;
const COUNT_DROPS: u32 = 1;
const COUNT_FILTERED: u32 = 2;
const OP_LOAD: u8 = 1;
const OP_PUSH: u8 = 2;
const OP_CMP: u8 = 3;
const OP_PREFIX: u8 = 4;
const OP_AND: u8 = 5;
const OP_OR: u8 = 6;
const OP_NOT: u8 = 7;
const OP_SIGNED: u8 = 1;
const PAIR_OPEN: u8 = 1;
const PAIR_CLOSE: u8 = 2;
const NO_G: u8 = 0xff;
/// `sizeof(struct lp_capture)`.
const CAPTURE_SIZE: usize = 24;
/// `sizeof(struct lp_op)`.
const OP_SIZE: usize = 16;
/// `sizeof(struct lp_pair)`.
const PAIR_SIZE: usize = 8;
/// `sizeof(struct lp_filter)`.
const FILTER_SIZE: usize = 8 + MAX_FILTER_OPS * OP_SIZE + MAX_FILTER_BYTES;
/// `offsetof(struct lp_recipe, caps)`.
const CAPS_AT: usize = 8 + PAIR_SIZE + FILTER_SIZE;
/// `sizeof(struct lp_recipe)`.
const RECIPE_SIZE: usize = CAPS_AT + MAX_CAPS * CAPTURE_SIZE;
/// `sizeof(struct lp_event)`: the header before the captured bytes.
const EVENT_HEADER: usize = 24;

/// Recipe slots beyond the initial probes, for probes added while the
/// program runs (each slot is one `struct lp_recipe`, about 12 KiB).
const SPARE_SLOTS: u32 = 1024;

/// How often the ring buffer is drained.
const POLL_INTERVAL: Duration = Duration::from_millis(2);
/// Drains between two reads of the lost-records counter (about 100 ms).
const DROPS_EVERY: u32 = 50;

pub struct EbpfBackend;

/// Why eBPF cannot be used here, if it cannot: loads the program once
/// without attaching it. `auto` uses this to choose a backend.
pub fn unavailable_reason(probes: &[Probe]) -> Option<String> {
    for p in probes {
        if let Err(e) = serialize(p) {
            return Some(format!("{e:#}"));
        }
    }
    let mut object = MaybeUninit::uninit();
    let loaded = load(&mut object, 1).map(drop);
    loaded.err().map(|e| format!("{e:#}"))
}

fn load(
    object: &mut MaybeUninit<libbpf_rs::OpenObject>,
    entries: u32,
) -> Result<skel::ProbeSkel<'_>> {
    // libbpf's own multi-line diagnostics would bury the one line that
    // says what is wrong; its errors reach us as return codes.
    libbpf_rs::set_print(None);
    let mut open = ProbeSkelBuilder::default()
        .open(object)
        .map_err(|e| load_error(&e))?;
    open.maps
        .recipes
        .set_max_entries(entries.max(1))
        .map_err(|e| load_error(&e))?;
    let cpus = libbpf_rs::num_possible_cpus().map_err(|e| load_error(&e))?;
    open.maps
        .scratch
        .set_max_entries(cpus as u32)
        .map_err(|e| load_error(&e))?;
    // For tests of the loss accounting: a ring buffer small enough to
    // overflow (bytes, a power-of-two multiple of the page size).
    if let Some(bytes) = std::env::var("LOGPROBE_EBPF_RINGBUF_BYTES")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
    {
        open.maps
            .events
            .set_max_entries(bytes)
            .map_err(|e| load_error(&e))?;
    }
    open.load().map_err(|e| load_error(&e))
}

/// The probes could not be armed, and the program has not run any of its
/// own code: `auto` may still fall back to ptrace.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NotArmed(pub String);

fn not_armed(e: anyhow::Error) -> anyhow::Error {
    anyhow::Error::new(NotArmed(format!("{e:#}")))
}

fn load_error(e: &libbpf_rs::Error) -> anyhow::Error {
    not_armed(match e.kind() {
        ErrorKind::PermissionDenied => anyhow!(
            "no permission to load BPF programs (run as root, or grant CAP_BPF and CAP_PERFMON)"
        ),
        _ => anyhow!("the kernel refused logprobe's BPF program: {e}"),
    })
}

/// Serializes a probe's guard and recipe as a `struct lp_recipe`.
fn serialize(p: &Probe) -> Result<Vec<u8>> {
    let caps = &p.recipe.captures;
    if caps.len() > MAX_CAPS {
        bail!(
            "a probe needs {} capture steps; the eBPF backend takes at most {MAX_CAPS}",
            caps.len()
        );
    }
    let mut out = Vec::with_capacity(RECIPE_SIZE);
    out.extend_from_slice(&(caps.len() as u32).to_le_bytes());
    let guard = match p.guard {
        Some(Guard::UnlessJumpTaken { cc }) => u32::from(cc & 0xf),
        None => NO_GUARD,
    };
    out.extend_from_slice(&guard.to_le_bytes());
    out.extend_from_slice(&serialize_pairing(p.recipe.pairing));
    out.extend_from_slice(&serialize_filter(p.recipe.filter.as_ref())?);
    let mut total: u64 = 0;
    for c in caps {
        let mut b = [0u8; CAPTURE_SIZE];
        let (most, kind) = match *c {
            Capture::Reg(r) => {
                b[1] = r.slot() as u8;
                (8, CAP_REG)
            }
            Capture::Xmm(n) => {
                b[1] = n;
                (0, CAP_XMM)
            }
            Capture::Stack { offset, len } => {
                b[8..12].copy_from_slice(&offset.to_le_bytes());
                b[12..16].copy_from_slice(&len.to_le_bytes());
                (len, CAP_STACK)
            }
            Capture::Deref {
                base,
                offset,
                add,
                len,
            } => {
                b[4..6].copy_from_slice(&base.to_le_bytes());
                b[6..8].copy_from_slice(&offset.to_le_bytes());
                b[8..12].copy_from_slice(&add.to_le_bytes());
                let most = match len {
                    Len::Fixed(n) => {
                        b[2] = LEN_FIXED;
                        b[12..16].copy_from_slice(&n.to_le_bytes());
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
                        b[2] = match len {
                            Len::Shifted { .. } => LEN_SHIFTED,
                            _ => LEN_COUNTED,
                        };
                        b[12..16].copy_from_slice(&scale.to_le_bytes());
                        b[16..18].copy_from_slice(&capture.to_le_bytes());
                        b[18..20].copy_from_slice(&offset.to_le_bytes());
                        b[20..24].copy_from_slice(&max.to_le_bytes());
                        max
                    }
                };
                (most, CAP_DEREF)
            }
        };
        if most > MAX_CAP_LEN {
            bail!("a capture of {most} bytes exceeds the eBPF backend's {MAX_CAP_LEN}-byte limit");
        }
        b[0] = kind;
        total += u64::from(most);
        out.extend_from_slice(&b);
    }
    if total > MAX_HIT_BYTES {
        bail!(
            "a probe captures up to {total} bytes; the eBPF backend takes at most {MAX_HIT_BYTES}"
        );
    }
    out.resize(RECIPE_SIZE, 0);
    Ok(out)
}

/// A `struct lp_pair`.
fn serialize_pairing(p: Option<Pairing>) -> [u8; PAIR_SIZE] {
    let mut b = [0u8; PAIR_SIZE];
    let Some(p) = p else { return b };
    b[0] = match p.role {
        FrameRole::Open => PAIR_OPEN,
        FrameRole::Close => PAIR_CLOSE,
    };
    let (reg, hi_at) = p.g.map(|(r, at)| (r.slot() as u8, at)).unwrap_or((NO_G, 0));
    b[1] = reg;
    b[2..4].copy_from_slice(&hi_at.to_le_bytes());
    b[4..8].copy_from_slice(&p.key.to_le_bytes());
    b
}

/// A `struct lp_filter` (all zero: no filter).
fn serialize_filter(f: Option<&Filter>) -> Result<Vec<u8>> {
    let mut out = vec![0u8; FILTER_SIZE];
    let Some(f) = f else { return Ok(out) };
    if f.ops.len() > MAX_FILTER_OPS || f.bytes.len() > MAX_FILTER_BYTES {
        bail!(
            "a filter of {} ops and {} bytes exceeds the eBPF backend's {MAX_FILTER_OPS} and {MAX_FILTER_BYTES}",
            f.ops.len(),
            f.bytes.len()
        );
    }
    out[0..4].copy_from_slice(&(f.ops.len() as u32).to_le_bytes());
    out[4..8].copy_from_slice(&u32::from(f.after).to_le_bytes());
    for (k, op) in f.ops.iter().enumerate() {
        let b = &mut out[8 + k * OP_SIZE..8 + (k + 1) * OP_SIZE];
        let signed = |s: bool| if s { OP_SIGNED } else { 0 };
        match *op {
            FilterOp::Load {
                capture,
                at,
                size,
                signed: s,
            } => {
                b[0] = OP_LOAD;
                b[1] = size;
                b[2] = signed(s);
                b[4..6].copy_from_slice(&capture.to_le_bytes());
                b[6..8].copy_from_slice(&at.to_le_bytes());
            }
            FilterOp::Push(v) => {
                b[0] = OP_PUSH;
                b[8..16].copy_from_slice(&v.to_le_bytes());
            }
            FilterOp::Cmp { op, signed: s } => {
                b[0] = OP_CMP;
                b[1] = match op {
                    CmpOp::Eq => 0,
                    CmpOp::Ne => 1,
                    CmpOp::Lt => 2,
                    CmpOp::Le => 3,
                    CmpOp::Gt => 4,
                    CmpOp::Ge => 5,
                };
                b[2] = signed(s);
            }
            FilterOp::Prefix { capture, at, len } => {
                b[0] = OP_PREFIX;
                b[1] = len;
                b[4..6].copy_from_slice(&capture.to_le_bytes());
                b[6..8].copy_from_slice(&u16::from(at).to_le_bytes());
            }
            FilterOp::And => b[0] = OP_AND,
            FilterOp::Or => b[0] = OP_OR,
            FilterOp::Not => b[0] = OP_NOT,
        }
    }
    let bytes = 8 + MAX_FILTER_OPS * OP_SIZE;
    out[bytes..bytes + f.bytes.len()].copy_from_slice(&f.bytes);
    Ok(out)
}

/// One ring buffer record.
enum Item {
    Hit(RawHit),
    /// The launched program wrote `bytes` bytes to its (relayed) `fd`.
    Write {
        fd: u32,
        bytes: u64,
    },
}

fn parse_item(data: &[u8]) -> Option<Item> {
    let first = u32::from_ne_bytes(data.get(..4)?.try_into().ok()?);
    if first == WRITE_MARK {
        // struct lp_write
        let fd = u32::from_ne_bytes(data.get(4..8)?.try_into().ok()?);
        let bytes = u64::from_ne_bytes(data.get(8..16)?.try_into().ok()?);
        return Some(Item::Write { fd, bytes });
    }
    parse_event(data).map(Item::Hit)
}

/// Marks the launched program's writes to the relayed descriptors
/// (`fds`, a bit mask) in the ring buffer.
fn relay_writes(skel: &skel::ProbeSkel<'_>, pid: i32, fds: u32) -> Result<Vec<Link>> {
    if fds == 0 {
        return Ok(Vec::new());
    }
    let mut value = Vec::with_capacity(8);
    value.extend_from_slice(&(pid as u32).to_ne_bytes());
    value.extend_from_slice(&fds.to_ne_bytes());
    skel.maps
        .relay
        .update(&0u32.to_ne_bytes(), &value, MapFlags::ANY)
        .context("configuring the output relay")?;
    let enter = skel.progs.lp_enter_write.attach().map_err(|e| {
        not_armed(anyhow!(
            "cannot attach to the write system call's tracepoint: {e}"
        ))
    })?;
    let exit = skel.progs.lp_exit_write.attach().map_err(|e| {
        not_armed(anyhow!(
            "cannot attach to the write system call's tracepoint: {e}"
        ))
    })?;
    Ok(vec![enter, exit])
}

/// Decodes one ring buffer record: a `struct lp_event`, the captured
/// bytes, then one `u16` length per capture.
fn parse_event(data: &[u8]) -> Option<RawHit> {
    let u32_at = |o: usize| -> Option<u32> {
        Some(u32::from_ne_bytes(data.get(o..o + 4)?.try_into().ok()?))
    };
    let probe = u32_at(0)?;
    let pid = u32_at(4)? as i32;
    let tid = u32_at(8)? as i32;
    let ncaps = u32_at(12)? as usize;
    if ncaps > MAX_CAPS {
        return None;
    }
    let time_ns = u64::from_ne_bytes(data.get(16..24)?.try_into().ok()?);
    let lens_at = data.len().checked_sub(2 * ncaps)?;
    if lens_at < EVENT_HEADER {
        return None;
    }
    let bytes = &data[EVENT_HEADER..lens_at];
    let mut at = 0;
    let mut captures = Vec::with_capacity(ncaps);
    for i in 0..ncaps {
        let o = lens_at + 2 * i;
        let len = u16::from_ne_bytes(data.get(o..o + 2)?.try_into().ok()?);
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
        probe,
        pid,
        tid,
        time_ns,
        captures,
    })
}

impl Backend for EbpfBackend {
    fn run(
        &mut self,
        target: &Target,
        probes: &[Probe],
        sink: &mut dyn HitSink,
        stop: &StopHandle,
    ) -> Result<Outcome> {
        stop.set_waiter_to_current_thread();
        for p in probes {
            serialize(p)?;
        }
        let capacity = (probes.len() as u32).saturating_add(SPARE_SLOTS);
        let mut object = MaybeUninit::uninit();
        let skel = load(&mut object, capacity)?;

        let hits: Rc<RefCell<VecDeque<Item>>> = Rc::default();
        let malformed = Rc::new(RefCell::new(0u64));
        let mut builder = RingBufferBuilder::new();
        {
            let hits = hits.clone();
            let malformed = malformed.clone();
            builder
                .add(&skel.maps.events, move |data: &[u8]| {
                    match parse_item(data) {
                        Some(item) => hits.borrow_mut().push_back(item),
                        None => *malformed.borrow_mut() += 1,
                    }
                    0
                })
                .context("setting up the ring buffer")?;
        }
        let ring = builder.build().context("setting up the ring buffer")?;
        // Hits name their probe by slot; `slots` turns that back into the
        // probe id. A hit on a slot freed since is counted but not shown
        // (cannot happen: slots are freed only after a drain, see
        // `Armed::remove`).
        // The kernel's count of lost records is read every DROPS_EVERY
        // drains and told the sink when it grew, so a face can show it
        // while the program runs.
        let drops = std::cell::Cell::new((0u32, 0u64));
        let drain = |sink: &mut dyn HitSink, relay: &mut Relay, armed: &Armed| -> Result<u64> {
            let (drains, told) = drops.get();
            if drains + 1 >= DROPS_EVERY {
                let total = counter(&skel, COUNT_DROPS).unwrap_or(told);
                if total > told {
                    sink.dropped(total);
                }
                drops.set((0, total));
            } else {
                drops.set((drains + 1, told));
            }
            ring.consume().context("reading the ring buffer")?;
            let mut n = 0;
            loop {
                let next = hits.borrow_mut().pop_front();
                match next {
                    None => break,
                    Some(Item::Hit(mut h)) => {
                        n += 1;
                        if let Some(id) = armed.probe_of(h.probe) {
                            armed.fix_xmm(h.probe, &mut h);
                            h.probe = id;
                            sink.hit(h);
                        }
                    }
                    Some(Item::Write { fd, bytes }) => {
                        sink.flush();
                        relay.claim(fd, bytes);
                    }
                }
            }
            sink.flush();
            relay.end_cycle();
            Ok(n)
        };
        // Applies the queued probe changes (after draining what the removed
        // probes reported), then tells the sink which probes it armed.
        let apply = |sink: &mut dyn HitSink,
                     relay: &mut Relay,
                     armed: &mut Armed,
                     seen: &mut u64|
         -> Result<()> {
            let changes = stop.take_changes();
            if changes.is_empty() || stop.requested() {
                return Ok(());
            }
            let mut added = Vec::new();
            for change in changes {
                if !change.remove.is_empty() {
                    let pending = armed.unlink(&change.remove);
                    // The removed probes' links are gone, and with them any
                    // handler still running: what they reported is in the
                    // ring now, and is read while their slots still name them.
                    *seen += drain(sink, relay, armed)?;
                    if let Err(e) = armed.relink(&skel, pending) {
                        sink.notice(&format!("{e:#}"));
                    }
                }
                let mut batch = Vec::new();
                for p in change.add {
                    match serialize(&p) {
                        Ok(_) => batch.push(p),
                        Err(e) => sink.notice(&format!("cannot arm probe {}: {e:#}", p.id)),
                    }
                }
                match armed.add(&skel, batch) {
                    Ok(ids) => added.extend(ids),
                    Err(e) => sink.notice(&format!("{e:#}")),
                }
            }
            sink.armed(armed.pid, &added);
            Ok(())
        };
        let mut relay = Relay::default();

        let mut seen = 0u64;
        let outcome = match target {
            Target::Launch(l) => {
                let program = launch::resolve_program(&l.program)?;
                // With stdio given (the DAP server's pipes) the caller reads
                // the program's output itself; otherwise it is relayed.
                let child = if l.stdio.is_some() {
                    launch::spawn_stopped(l)?
                } else {
                    let (diverted, saved) = Relay::divert()?;
                    let child = launch::spawn_stopped(l);
                    Relay::restore(saved);
                    let child = child?;
                    relay = diverted;
                    child
                };
                let _signal_xmm = enable_signal_xmm(&skel, child.as_raw(), &program);
                let mut armed = Armed::new(capacity, child.as_raw(), program);
                let ready = armed
                    .add(&skel, probes.to_vec())
                    .and_then(|_| relay_writes(&skel, child.as_raw(), relay.fds()));
                let write_links = match ready {
                    Ok(links) => links,
                    Err(e) => {
                        let _ = kill(child, Signal::SIGKILL);
                        let _ = nix::sys::wait::waitpid(child, None);
                        return Err(e);
                    }
                };
                let ids: Vec<u32> = probes.iter().map(|p| p.id).collect();
                sink.armed(child.as_raw(), &ids);
                let _ = kill(child, Signal::SIGCONT);
                let mut forwarded = false;
                let mut run = || -> Result<Outcome> {
                    loop {
                        seen += drain(sink, &mut relay, &armed)?;
                        if let Some(o) = reap(child)? {
                            return Ok(o);
                        }
                        apply(sink, &mut relay, &mut armed, &mut seen)?;
                        if stop.requested() && !forwarded {
                            forwarded = true;
                            let _ = kill(child, Signal::SIGTERM);
                        }
                        std::thread::sleep(POLL_INTERVAL);
                    }
                };
                let outcome = match run() {
                    Ok(o) => o,
                    Err(e) => {
                        // Leave nothing behind: the program was ours.
                        let _ = kill(child, Signal::SIGKILL);
                        let _ = nix::sys::wait::waitpid(child, None);
                        return Err(e);
                    }
                };
                armed.unlink_all();
                drop(write_links);
                seen += drain(sink, &mut relay, &armed)?;
                relay.finish();
                outcome
            }
            Target::Attach(pid) => {
                let pid = *pid;
                let exe = check_attachable(pid)?;
                let _signal_xmm = enable_signal_xmm(&skel, pid, &exe);
                let mut armed = Armed::new(capacity, pid, exe);
                armed.add(&skel, probes.to_vec())?;
                let ids: Vec<u32> = probes.iter().map(|p| p.id).collect();
                sink.armed(pid, &ids);
                let mut gone = false;
                while !stop.requested() {
                    seen += drain(sink, &mut relay, &armed)?;
                    if !alive(pid) {
                        gone = true;
                        break;
                    }
                    apply(sink, &mut relay, &mut armed, &mut seen)?;
                    std::thread::sleep(POLL_INTERVAL);
                }
                armed.unlink_all();
                seen += drain(sink, &mut relay, &armed)?;
                if gone {
                    report_losses(&skel, seen, *malformed.borrow(), sink);
                    bail!("process {pid} exited during the trace");
                }
                Outcome::Detached
            }
        };
        report_losses(&skel, seen, *malformed.borrow(), sink);
        Ok(outcome)
    }
}

/// Attaches `lp_sigtramp` to the program's signal handlers (Go's
/// `runtime.sigtramp`, and `runtime.cgoSigtramp` in programs with cgo, in
/// `path`, mapped by `pid`) and tells the probes that XMM captures may go
/// through a signal frame (see `bpf/probe.bpf.c`). Empty when the program
/// has no such handler or the kernel refuses: XMM captures are then
/// unreadable.
fn enable_signal_xmm(skel: &skel::ProbeSkel<'_>, pid: i32, path: &Path) -> Vec<Link> {
    let links: Vec<Link> = sigtramp_sites(path)
        .into_iter()
        .filter_map(|(offset, cookie)| {
            let opts = UprobeOpts {
                cookie,
                ..Default::default()
            };
            skel.progs
                .lp_sigtramp
                .attach_uprobe_with_opts(pid, path, offset as usize, opts)
                .ok()
        })
        .collect();
    let enabled = !links.is_empty()
        && skel
            .maps
            .sigxmm
            .update(&0u32.to_ne_bytes(), &1u32.to_ne_bytes(), MapFlags::ANY)
            .is_ok();
    if enabled {
        links
    } else {
        Vec::new()
    }
}

/// Where `lp_sigtramp` goes in the ELF file at `path`: (file offset,
/// attach cookie) for each of Go's signal handlers (named with or without
/// the `.abi0` suffix, by Go version). Go's `runtime.sigtramp` moves its
/// arguments DI, SI, DX to AX, BX, CX and calls `runtime.sigtrampgo`; that
/// CALL, which the kernel emulates, is the site when those exact
/// instructions are found (cookie: its distance from the entry, shifted,
/// with bit 0 set); otherwise the entry (cookie 0), which the kernel
/// single-steps.
fn sigtramp_sites(path: &Path) -> Vec<(u64, u64)> {
    use object::{Object, ObjectSegment, ObjectSymbol};
    const HANDLERS: [&str; 4] = [
        "runtime.sigtramp",
        "runtime.sigtramp.abi0",
        "runtime.cgoSigtramp",
        "runtime.cgoSigtramp.abi0",
    ];
    // mov %rdi,%rax; mov %rsi,%rbx; mov %rdx,%rcx; call rel32
    const TO_SIGTRAMPGO: [u8; 10] = [0x48, 0x89, 0xf8, 0x48, 0x89, 0xf3, 0x48, 0x89, 0xd1, 0xe8];
    let Ok(data) = std::fs::read(path) else {
        return Vec::new();
    };
    let Ok(file) = object::File::parse(&*data) else {
        return Vec::new();
    };
    let file_offset = |addr: u64| {
        file.segments().find_map(|seg| {
            let (offset, size) = seg.file_range();
            let start = seg.address();
            (addr >= start && addr < start + size).then(|| addr - start + offset)
        })
    };
    file.symbols()
        .filter(|s| s.name().is_ok_and(|n| HANDLERS.contains(&n)))
        .filter_map(|s| {
            let entry = file_offset(s.address())?;
            let is_sigtramp = s.name().is_ok_and(|n| n.starts_with("runtime.sigtramp"));
            let code = data.get(entry as usize..(entry + s.size()) as usize);
            let call = code.filter(|_| is_sigtramp).and_then(|code| {
                code.windows(TO_SIGTRAMPGO.len())
                    .position(|w| w == TO_SIGTRAMPGO)
                    .map(|k| k as u64 + 9)
            });
            Some(match call {
                Some(d) => (entry + d, (d << 1) | 1),
                None => (entry, 0),
            })
        })
        .collect()
}

/// Reports lost records, and any mismatch between what the kernel counted
/// and what arrived.
fn report_losses(skel: &skel::ProbeSkel<'_>, seen: u64, malformed: u64, sink: &mut dyn HitSink) {
    let counters = (
        counter(skel, COUNT_HITS),
        counter(skel, COUNT_DROPS),
        counter(skel, COUNT_FILTERED),
    );
    let (hits, drops, filtered) = match counters {
        (Ok(h), Ok(d), Ok(f)) => (h, d, f),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            sink.notice(&format!("cannot read the kernel's hit counters: {e:#}"));
            return;
        }
    };
    if drops > 0 {
        sink.notice(&format!("{drops} events dropped"));
    }
    if malformed > 0 {
        sink.notice(&format!("{malformed} malformed events ignored"));
    }
    if seen + drops + malformed + filtered != hits {
        sink.notice(&format!(
            "the kernel counted {hits} probe hits but {seen} events arrived, {drops} were dropped and {filtered} filtered"
        ));
    }
    sink.counted(hits, filtered);
}

/// The sum over CPUs of one counter.
fn counter(skel: &skel::ProbeSkel<'_>, slot: u32) -> Result<u64> {
    let values = skel
        .maps
        .counters
        .lookup_percpu(&slot.to_ne_bytes(), MapFlags::ANY)?
        .unwrap_or_default();
    Ok(values
        .iter()
        .filter_map(|v| v.get(..8).and_then(|b| b.try_into().ok()))
        .map(u64::from_ne_bytes)
        .sum())
}

/// The probes armed in one process: which recipe slot each uses, and the
/// uprobe-multi links that arm them, one per batch of probes added
/// together (the initial probes, then each [`ProbeChanges`] that adds).
///
/// Probe ids grow for the whole session, so the `recipes` map is indexed
/// by slot instead: a fixed number of them, each reused once its probe is
/// removed, with the slot as the attach cookie. Removing a probe rebuilds
/// only the links of batches that lose a probe: the old link goes first
/// (a new one next to it would report every hit twice), so a call to one
/// of that batch's surviving probes in the short gap before the new link
/// is armed is missed, and a return whose entry fell in the gap is shown
/// without it. Batches that lose nothing keep their link.
///
/// [`ProbeChanges`]: super::ProbeChanges
struct Armed {
    pid: i32,
    path: PathBuf,
    /// Slot -> probe id; `None` for a free slot.
    slots: Vec<Option<u32>>,
    /// Slot -> the XMM captures its probed instruction changed before the
    /// signal frame saved them (see `sse`).
    xmm_fixes: Vec<Vec<(usize, sse::Effect)>>,
    free: Vec<u32>,
    batches: Vec<Batch>,
}

struct Batch {
    /// (slot, probe), in plan order.
    probes: Vec<(u32, Probe)>,
    link: Option<Link>,
}

/// Probes whose links were dropped by [`Armed::unlink`]: their slots are
/// freed and the survivors relinked by [`Armed::relink`], after a drain.
struct Unlinked {
    freed: Vec<u32>,
    batches: Vec<usize>,
}

impl Armed {
    fn new(capacity: u32, pid: i32, path: PathBuf) -> Armed {
        Armed {
            pid,
            path,
            slots: vec![None; capacity as usize],
            xmm_fixes: vec![Vec::new(); capacity as usize],
            free: (0..capacity).rev().collect(),
            batches: Vec::new(),
        }
    }

    /// The probe id a hit's cookie (slot) stands for.
    fn probe_of(&self, slot: u32) -> Option<u32> {
        self.slots.get(slot as usize).copied().flatten()
    }

    /// Undoes, in a hit on `slot`, what the probed instruction did to its
    /// XMM captures before they were saved: a widened float32 is narrowed
    /// back, a lost one is unreadable.
    fn fix_xmm(&self, slot: u32, hit: &mut RawHit) {
        let Some(fixes) = self.xmm_fixes.get(slot as usize) else {
            return;
        };
        for &(i, effect) in fixes {
            if let Some(c) = hit.captures.get_mut(i) {
                *c = match effect {
                    sse::Effect::Widened => c.as_deref().and_then(sse::narrow),
                    sse::Effect::Lost => None,
                };
            }
        }
    }

    /// Stores the recipes of `probes` and arms them with one link; returns
    /// their ids. On failure nothing of the batch stays.
    fn add(&mut self, skel: &skel::ProbeSkel<'_>, probes: Vec<Probe>) -> Result<Vec<u32>> {
        if probes.is_empty() {
            return Ok(Vec::new());
        }
        if probes.len() > self.free.len() {
            bail!(
                "cannot arm {} more probes: the eBPF backend has room for {} probes at a time",
                probes.len(),
                self.slots.len()
            );
        }
        let mut batch = Batch {
            probes: Vec::with_capacity(probes.len()),
            link: None,
        };
        for p in probes {
            let Some(slot) = self.free.pop() else {
                break; // counted above
            };
            self.slots[slot as usize] = Some(p.id);
            self.xmm_fixes[slot as usize] = p
                .recipe
                .captures
                .iter()
                .enumerate()
                .filter_map(|(i, c)| match c {
                    Capture::Xmm(n) => sse::effect(&p.instruction, *n).map(|e| (i, e)),
                    _ => None,
                })
                .collect();
            batch.probes.push((slot, p));
        }
        let stored = batch.probes.iter().try_for_each(|(slot, p)| {
            skel.maps
                .recipes
                .update(&slot.to_ne_bytes(), &serialize(p)?, MapFlags::ANY)
                .context("storing a capture recipe in the kernel")
        });
        let linked = stored.and_then(|()| link(skel, self.pid, &self.path, &batch.probes));
        match linked {
            Ok(l) => batch.link = l,
            Err(e) => {
                for (slot, _) in &batch.probes {
                    self.slots[*slot as usize] = None;
                    self.free.push(*slot);
                }
                return Err(e);
            }
        }
        let ids = batch.probes.iter().map(|(_, p)| p.id).collect();
        self.batches.push(batch);
        Ok(ids)
    }

    /// Drops the links of the batches holding any of `ids`, and those
    /// probes from their batches. Their slots still name them until
    /// [`Armed::relink`], so hits already in the ring are read right.
    fn unlink(&mut self, ids: &[u32]) -> Unlinked {
        let mut out = Unlinked {
            freed: Vec::new(),
            batches: Vec::new(),
        };
        for (i, b) in self.batches.iter_mut().enumerate() {
            let before = b.probes.len();
            b.probes.retain(|(slot, p)| {
                let keep = !ids.contains(&p.id);
                if !keep {
                    out.freed.push(*slot);
                }
                keep
            });
            if b.probes.len() != before {
                // Dropping a link waits for its running handlers.
                b.link = None;
                out.batches.push(i);
            }
        }
        out
    }

    /// Frees the slots [`Armed::unlink`] took and arms the batches' other
    /// probes again (a batch left empty goes away).
    fn relink(&mut self, skel: &skel::ProbeSkel<'_>, u: Unlinked) -> Result<()> {
        for slot in u.freed {
            self.slots[slot as usize] = None;
            self.free.push(slot);
        }
        let mut result = Ok(());
        for &i in &u.batches {
            let b = &mut self.batches[i];
            match link(skel, self.pid, &self.path, &b.probes) {
                Ok(l) => b.link = l,
                Err(e) => {
                    // Those probes stay unarmed; say so once.
                    for (slot, _) in b.probes.drain(..) {
                        self.slots[slot as usize] = None;
                        self.free.push(slot);
                    }
                    result = Err(e.context("cannot arm the remaining probes again"));
                }
            }
        }
        self.batches.retain(|b| !b.probes.is_empty());
        result
    }

    /// Disarms every probe (the slots stay, for the last drain).
    fn unlink_all(&mut self) {
        for b in &mut self.batches {
            b.link = None;
        }
    }
}

/// Arms one batch of probes in `pid`'s mapping of `path`: one uprobe-multi
/// link (no perf event per probe), each offset with its slot as cookie.
fn link(
    skel: &skel::ProbeSkel<'_>,
    pid: i32,
    path: &Path,
    probes: &[(u32, Probe)],
) -> Result<Option<Link>> {
    // For the benchmark only: the cost of entry probes alone.
    let entry_only = std::env::var_os("LOGPROBE_BENCH_ENTRY_ONLY").is_some_and(|v| v == "1");
    // Probes sharing an instruction (a frameless function whose first
    // instruction is its RET: entry and return) must run in plan order.
    // The kernel runs the consumers of one uprobe newest first, so they
    // are registered in reverse. Entry, return and line probes all take
    // the same path: the kind matters only to the decoder.
    let armed: Vec<&(u32, Probe)> = probes
        .iter()
        .rev()
        .filter(|(_, p)| !entry_only || p.kind == crate::plan::ProbeKind::Entry)
        .collect();
    let Some((_, first)) = armed.first() else {
        return Ok(None);
    };
    let opts = UprobeMultiOpts {
        offsets: armed.iter().map(|(_, p)| p.file_offset as usize).collect(),
        cookies: armed.iter().map(|(slot, _)| u64::from(*slot)).collect(),
        ..Default::default()
    };
    let link = skel
        .progs
        .lp_probe
        .attach_uprobe_multi_with_opts(pid, path, "", opts)
        .map_err(|e| attach_error(&e, path, first))?;
    Ok(Some(link))
}

fn attach_error(e: &libbpf_rs::Error, path: &Path, p: &Probe) -> anyhow::Error {
    not_armed(match e.kind() {
        ErrorKind::PermissionDenied => {
            anyhow!("no permission to attach uprobes (run as root, or grant CAP_PERFMON)")
        }
        _ if !Path::new("/sys/bus/event_source/devices/uprobe").exists() => {
            anyhow!("this kernel has no uprobes (CONFIG_UPROBES, CONFIG_UPROBE_EVENTS)")
        }
        _ => anyhow!(
            "cannot attach uprobes to {} (first at offset {:#x}): {e}",
            path.display(),
            p.file_offset
        ),
    })
}

/// The exit of our launched child, if it has ended.
fn reap(child: Pid) -> Result<Option<Outcome>> {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    match waitpid(child, Some(WaitPidFlag::WNOHANG)) {
        Ok(WaitStatus::Exited(_, code)) => Ok(Some(Outcome::Exited(code))),
        Ok(WaitStatus::Signaled(_, sig, _)) => Ok(Some(Outcome::Signaled(sig as i32))),
        Ok(_) => Ok(None),
        Err(nix::errno::Errno::EINTR) => Ok(None),
        Err(e) => Err(anyhow!("waiting for the program: {e}")),
    }
}

fn alive(pid: i32) -> bool {
    // A zombie has no mappings left to probe: it counts as gone.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => false,
    }
}

/// The executable of a process that may be probed, or why not.
fn check_attachable(pid: i32) -> Result<PathBuf> {
    if pid <= 0 {
        bail!("{pid} is not a process id");
    }
    if pid == std::process::id() as i32 {
        bail!("logprobe cannot trace itself");
    }
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|_| anyhow!("no process with pid {pid}"))?;
    let tracer = status
        .lines()
        .find_map(|l| l.strip_prefix("TracerPid:"))
        .and_then(|v| v.trim().parse::<i32>().ok())
        .unwrap_or(0);
    if tracer != 0 {
        // Its breakpoints and our uprobes would both be int3s at the same
        // addresses, each hiding the other's.
        bail!("cannot attach to pid {pid}: it is being traced by pid {tracer} (a debugger or another logprobe)");
    }
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .with_context(|| format!("cannot attach to pid {pid}: its executable is not visible"))
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
            guard: Some(Guard::UnlessJumpTaken { cc: 6 }),
            instruction: Vec::new(),
            scratch: None,
            recipe: Recipe {
                captures,
                ..Recipe::default()
            },
        }
    }

    #[test]
    fn recipes_serialize_in_the_kernel_layout() {
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
        ]);
        let b = serialize(&p).expect("serializes");
        assert_eq!(b.len(), RECIPE_SIZE);
        assert_eq!(&b[0..8], &[2, 0, 0, 0, 6, 0, 0, 0]);
        assert_eq!(&b[CAPS_AT..CAPS_AT + 2], &[CAP_REG, Reg::R14 as u8]);
        let d = &b[CAPS_AT + CAPTURE_SIZE..CAPS_AT + 2 * CAPTURE_SIZE];
        assert_eq!(d[0], CAP_DEREF);
        assert_eq!(d[2], LEN_COUNTED);
        assert_eq!(i32::from_le_bytes(d[8..12].try_into().expect("4")), 152);
        assert_eq!(u16::from_le_bytes(d[18..20].try_into().expect("2")), 8);
        assert_eq!(u32::from_le_bytes(d[20..24].try_into().expect("4")), 64);
    }

    #[test]
    fn filters_and_pairings_serialize_in_the_kernel_layout() {
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
        let b = serialize(&p).expect("serializes");
        assert_eq!(&b[8..16], &[PAIR_OPEN, Reg::R14 as u8, 8, 0, 9, 0, 0, 0]);
        let f = &b[16..16 + FILTER_SIZE];
        assert_eq!(&f[0..8], &[5, 0, 0, 0, 2, 0, 0, 0]);
        let op = |k: usize| &f[8 + k * OP_SIZE..8 + (k + 1) * OP_SIZE];
        assert_eq!(&op(0)[0..8], &[OP_LOAD, 4, OP_SIGNED, 0, 1, 0, 0, 0]);
        assert_eq!(op(1)[0], OP_PUSH);
        assert_eq!(&op(1)[8..16], &[0xff; 8]);
        assert_eq!(&op(2)[0..3], &[OP_CMP, 5, OP_SIGNED]);
        assert_eq!(&op(3)[0..8], &[OP_PREFIX, 3, 0, 0, 0, 0, 2, 0]);
        assert_eq!(op(4)[0], OP_OR);
        let bytes = 8 + MAX_FILTER_OPS * OP_SIZE;
        assert_eq!(&f[bytes..bytes + 5], b"..abc");
        p.recipe.filter.as_mut().expect("filter").ops = vec![FilterOp::Not; MAX_FILTER_OPS + 1];
        assert!(serialize(&p).is_err());
    }

    #[test]
    fn oversized_recipes_are_refused() {
        let big = probe(vec![Capture::Stack {
            offset: 8,
            len: MAX_CAP_LEN + 1,
        }]);
        assert!(serialize(&big).is_err());
        let many = probe(vec![Capture::Reg(Reg::Rax); MAX_CAPS + 1]);
        assert!(serialize(&many).is_err());
    }

    #[test]
    fn events_parse_with_unreadable_captures() {
        let mut e = vec![0u8; EVENT_HEADER];
        e[0..4].copy_from_slice(&7u32.to_ne_bytes());
        e[4..8].copy_from_slice(&100u32.to_ne_bytes());
        e[8..12].copy_from_slice(&101u32.to_ne_bytes());
        e[12..16].copy_from_slice(&3u32.to_ne_bytes());
        e[16..24].copy_from_slice(&5u64.to_ne_bytes());
        e.extend_from_slice(&[0xaa, 0xbb, 0xcc]);
        for len in [2u16, UNREADABLE, 1] {
            e.extend_from_slice(&len.to_ne_bytes());
        }
        let h = parse_event(&e).expect("parses");
        assert_eq!((h.probe, h.pid, h.tid, h.time_ns), (7, 100, 101, 5));
        assert_eq!(
            h.captures,
            vec![Some(vec![0xaa, 0xbb]), None, Some(vec![0xcc])]
        );
        // Lengths that do not add up to the bytes present are refused.
        let mut short = e.clone();
        short.remove(EVENT_HEADER);
        assert!(parse_event(&short).is_none());
    }
}
