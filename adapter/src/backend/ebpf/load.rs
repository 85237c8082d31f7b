//! Loading the BPF object, once per run: open the skeleton, size its maps,
//! load it (the kernel's verifier runs here), possibly on another thread
//! while the caller reads the executable ([`Preload`]); the quick checks
//! `auto` makes before it chooses eBPF; the errors that let `auto` fall
//! back to ptrace; and the verifier's own figures, for `logprobe doctor`
//! and the benchmark.
//!
//! What the kernel side needs from the machine is probed in `support`;
//! this module only loads.

use std::mem::MaybeUninit;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{anyhow, Result};
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::ErrorKind;

use super::skel::{ProbeSkel, ProbeSkelBuilder};
use super::{abi, support};
use crate::plan::Probe;

/// What the maps are sized for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    /// Recipe slots: the most probes armed at once.
    pub slots: u32,
    /// Bytes of the ring buffer (a power-of-two multiple of the page
    /// size); `None`: the program's own (16 MiB).
    pub ringbuf_bytes: Option<u32>,
    /// Whether probes may capture XMM registers: room for hits waiting for
    /// a signal frame (17 MiB of `pending`) and `lp_sigtramp` loaded, else
    /// one slot and no `lp_sigtramp`.
    pub xmm: bool,
    /// Whether probes may pair calls with returns: room for 65536 open
    /// frames, else one.
    pub pairing: bool,
    /// Whether returns may be seen through uretprobes: `lp_return`
    /// loaded (a Go program's never are).
    pub returns: bool,
}

impl Sizes {
    /// Maps with room for anything (the doctor's test load).
    pub fn full(slots: u32) -> Sizes {
        Sizes {
            slots,
            ringbuf_bytes: None,
            xmm: true,
            pairing: true,
            returns: true,
        }
    }

    /// Whether maps of these sizes serve a run that wants `wanted`.
    fn serve(&self, wanted: &Sizes) -> bool {
        self.slots >= wanted.slots
            && self.ringbuf_bytes == wanted.ringbuf_bytes
            && (self.xmm || !wanted.xmm)
            && (self.pairing || !wanted.pairing)
            && (self.returns || !wanted.returns)
    }
}

/// A loaded skeleton that owns its object's storage, so that it can be
/// made on one thread and used on another.
pub struct Loaded {
    pub skel: ProbeSkel<'static>,
    sizes: Sizes,
}

// SAFETY: a skeleton is a set of handles into the one libbpf `bpf_object`
// it owns (the maps, programs and links of that object, and the storage
// of the object itself, which libbpf-rs declares `Send` as `Object`):
// libbpf keeps no per-thread state for them. `Loaded` moves the whole
// skeleton at once, from the thread that loaded it to the one that runs
// the trace, and is never shared, so no handle is used from two threads.
unsafe impl Send for Loaded {}

/// Loads the object into storage of its own. The storage is the 8 bytes
/// of an `OpenObject` handle, leaked on purpose (the skeleton still closes
/// the object when it is dropped): a process loads once per trace, or
/// once per DAP session.
pub fn load_owned(sizes: Sizes) -> Result<Loaded> {
    let object: &'static mut MaybeUninit<libbpf_rs::OpenObject> =
        Box::leak(Box::new(MaybeUninit::uninit()));
    Ok(Loaded {
        skel: load(object, sizes)?,
        sizes,
    })
}

/// The object being loaded on another thread, started before the probes
/// are known (the caller then reads the executable and plans, which takes
/// about as long as the load): the maps are sized for common traces, and
/// a run that needs more loads again.
pub struct Preload(JoinHandle<Result<Loaded>>);

impl Preload {
    /// What a preload sizes the maps for: up to 256 probes (3 MiB of
    /// recipes), no XMM captures, no pairing of calls with returns, and
    /// returns through uretprobes unless `program` is a Go program.
    const SIZES: Sizes = Sizes {
        slots: 256,
        ringbuf_bytes: None,
        xmm: false,
        pairing: false,
        returns: true,
    };

    /// Starts loading for a trace of `program`.
    pub fn start(ringbuf_bytes: Option<u32>, program: PathBuf) -> Preload {
        Preload(std::thread::spawn(move || {
            let sizes = Sizes {
                ringbuf_bytes,
                returns: !is_go(&program),
                ..Preload::SIZES
            };
            load_owned(sizes)
        }))
    }

    /// The preloaded object, if it loaded and serves `wanted`.
    pub fn take(self, wanted: &Sizes) -> Option<Loaded> {
        let loaded = self.0.join().ok()?.ok()?;
        loaded.sizes.serve(wanted).then_some(loaded)
    }
}

/// The probes could not be armed, and the program has not run any of its
/// own code: `auto` may still fall back to ptrace.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NotArmed(pub String);

/// A [`NotArmed`] for a reason that lies in this machine (the kernel, the
/// privileges), which `logprobe doctor` explains: the message says so.
pub fn not_armed_here(e: anyhow::Error) -> anyhow::Error {
    anyhow::Error::new(NotArmed(format!(
        "{e:#}; `logprobe doctor` shows what eBPF needs here"
    )))
}

fn load_error(e: &libbpf_rs::Error) -> anyhow::Error {
    // EACCES is also the verifier's answer to a program it rejects: only
    // when a trivial program is refused too is it the permission.
    let denied = e.kind() == ErrorKind::PermissionDenied && support::load_trivial().is_err();
    not_armed_here(if denied {
        anyhow!(
            "no permission to load BPF programs (run as root, or grant CAP_BPF and CAP_PERFMON)"
        )
    } else {
        anyhow!("the kernel refused logprobe's BPF program: {e}")
    })
}

/// Opens, sizes and loads logprobe's BPF object into `object`.
pub fn load(
    object: &mut MaybeUninit<libbpf_rs::OpenObject>,
    sizes: Sizes,
) -> Result<ProbeSkel<'_>> {
    // libbpf's own multi-line diagnostics would bury the one line that
    // says what is wrong; its errors reach us as return codes.
    libbpf_rs::set_print(None);
    open_and_load(object, sizes, false)
}

fn open_and_load(
    object: &mut MaybeUninit<libbpf_rs::OpenObject>,
    sizes: Sizes,
    log_stats: bool,
) -> Result<ProbeSkel<'_>> {
    let mut open = ProbeSkelBuilder::default()
        .open(object)
        .map_err(|e| load_error(&e))?;
    open.maps
        .recipes
        .set_max_entries(sizes.slots.max(1))
        .map_err(|e| load_error(&e))?;
    open.maps
        .buckets
        .set_max_entries(sizes.slots.max(1))
        .map_err(|e| load_error(&e))?;
    let cpus = libbpf_rs::num_possible_cpus().map_err(|e| load_error(&e))?;
    open.maps
        .scratch
        .set_max_entries(cpus as u32)
        .map_err(|e| load_error(&e))?;
    // Each map is allocated and zeroed when the object loads: the large
    // ones that this run will not use take one entry.
    if !sizes.xmm {
        open.maps
            .pending
            .set_max_entries(1)
            .map_err(|e| load_error(&e))?;
        // Not even verified: nothing will attach it (see `signal`).
        open.progs.lp_sigtramp.set_autoload(false);
        open.progs.lp_breakpoint.set_autoload(false);
        open.progs.lp_preempt.set_autoload(false);
    }
    if !sizes.returns {
        // Go's returns are probes on RET (see `plan::site`).
        open.progs.lp_return.set_autoload(false);
    }
    if !sizes.pairing {
        open.maps
            .frames
            .set_max_entries(1)
            .map_err(|e| load_error(&e))?;
    }
    if let Some(bytes) = sizes.ringbuf_bytes {
        open.maps
            .events
            .set_max_entries(bytes)
            .map_err(|e| load_error(&e))?;
    }
    if log_stats {
        // BPF_LOG_STATS: the verifier reports its time and the
        // instructions it processed, and nothing else.
        open.progs.lp_probe.set_log_level(4);
        open.progs.lp_return.set_log_level(4);
        open.progs.lp_sigtramp.set_log_level(4);
        open.progs.lp_breakpoint.set_log_level(4);
        open.progs.lp_preempt.set_log_level(4);
        open.progs.lp_enter_write.set_log_level(4);
        open.progs.lp_exit_write.set_log_level(4);
    }
    open.load().map_err(|e| load_error(&e))
}

/// Why eBPF cannot be used here for `probes`, if it cannot. `auto` asks
/// this before it chooses a backend; it costs well under a millisecond
/// (the recipes are checked against the kernel side's limits, and the
/// kernel is asked for what the program needs; nothing is verified: the
/// run loads the program once, and a failure there still falls back).
pub fn unavailable_reason(probes: &[Probe]) -> Option<String> {
    for p in probes {
        if let Err(e) = abi::recipe(p) {
            return Some(format!("{e:#}"));
        }
    }
    support::quick_check()
        .err()
        .map(|e| format!("{:#}", not_armed_here(e)))
}

/// The verifier's figures for one program.
#[derive(Debug, Clone)]
pub struct Verified {
    pub program: String,
    /// The verifier's own count of its time.
    pub time: Duration,
    /// Instructions it processed (each path through the program counts).
    pub insns: u64,
}

/// Loads the object with the verifier's statistics on (which makes the
/// load itself slower: time a plain [`load`] for that) and returns the
/// verifier's figures for each program.
pub fn verifier_stats() -> Result<Vec<Verified>> {
    static LOG: Mutex<String> = Mutex::new(String::new());
    fn collect(_: libbpf_rs::PrintLevel, msg: String) {
        if let Ok(mut log) = LOG.lock() {
            log.push_str(&msg);
        }
    }
    if let Ok(mut log) = LOG.lock() {
        log.clear();
    }
    let previous = libbpf_rs::set_print(Some((libbpf_rs::PrintLevel::Debug, collect)));
    let mut object = MaybeUninit::uninit();
    let loaded = open_and_load(&mut object, Sizes::full(1), true).map(drop);
    libbpf_rs::set_print(previous);
    loaded?;
    let log = LOG.lock().map(|l| l.clone()).unwrap_or_default();
    Ok(parse_stats(&log))
}

/// Reads libbpf's debug log of a load at BPF_LOG_STATS: for each program,
/// `prog 'NAME': -- BEGIN PROG LOAD LOG --`, then the verifier's
/// `verification time N usec` and `processed N insns`.
fn parse_stats(log: &str) -> Vec<Verified> {
    let mut out: Vec<Verified> = Vec::new();
    for line in log.lines() {
        if let Some(rest) = line.split("prog '").nth(1) {
            if line.contains("BEGIN PROG LOAD LOG") {
                if let Some((name, _)) = rest.split_once('\'') {
                    out.push(Verified {
                        program: name.to_string(),
                        time: Duration::ZERO,
                        insns: 0,
                    });
                }
            }
            continue;
        }
        let Some(last) = out.last_mut() else { continue };
        let number_after = |key: &str| -> Option<u64> {
            line.split(key)
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        };
        if let Some(us) = number_after("verification time ") {
            last.time = Duration::from_micros(us);
        }
        if let Some(n) = number_after("processed ") {
            last.insns = n;
        }
    }
    out
}

/// Whether the ELF file at `path` is a Go program, from its section
/// names alone (read through a cache, so only the headers are read):
/// false when it cannot be read.
fn is_go(path: &Path) -> bool {
    use object::{Object, ObjectSection};
    let Ok(file) = std::fs::File::open(path) else {
        return false;
    };
    let cache = object::ReadCache::new(file);
    let Ok(elf) = object::File::parse(&cache) else {
        return false;
    };
    let go = elf
        .sections()
        .any(|s| matches!(s.name(), Ok(".gopclntab" | ".go.buildinfo")));
    go
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifier_statistics_are_read_from_libbpfs_log() {
        let log = "libbpf: prog 'lp_probe': added 499 insns from sub-prog 'x'\n\
                   libbpf: prog 'lp_probe': -- BEGIN PROG LOAD LOG --\n\
                   verification time 7890 usec\n\
                   stack depth 128+0\n\
                   processed 8497 insns (limit 1000000) max_states_per_insn 10\n\
                   -- END PROG LOAD LOG --\n\
                   libbpf: prog 'lp_sigtramp': -- BEGIN PROG LOAD LOG --\n\
                   verification time 1551 usec\n\
                   processed 1819 insns (limit 1000000)\n";
        let s = parse_stats(log);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].program, "lp_probe");
        assert_eq!((s[0].time, s[0].insns), (Duration::from_micros(7890), 8497));
        assert_eq!(s[1].program, "lp_sigtramp");
        assert_eq!((s[1].time, s[1].insns), (Duration::from_micros(1551), 1819));
    }
}
