//! Hardware execute breakpoints, for the probes a uprobe would lose an
//! XMM register in.
//!
//! A uprobe's handler runs before its instruction, but the kernel
//! single-steps that instruction before the thread gets back to user
//! space and the signal frame that holds the XMM registers is built
//! (`signal`, `bpf/probe.bpf.c`). When the instruction overwrites an XMM
//! register the recipe reads (a frameless function whose first
//! instruction is `MULSD X0, X0`: `return x * x`), that value is gone by
//! then. An x86 execute breakpoint (a debug register, through a perf
//! event of type `PERF_TYPE_BREAKPOINT`) fires before its instruction
//! runs; the event runs `lp_breakpoint`, which takes the hit as a uprobe
//! would and sends the same signal, delivered before the instruction. The
//! registers in the frame are then those at the probe.
//!
//! The events are per thread: on a launched program, one on the program
//! before its `execve` (enabled by it), inherited by every thread it
//! creates; on a running one, one on each of its threads, each inherited
//! by the threads that thread creates. A thread has four debug registers,
//! so at most [`MAX`] probes are armed this way; the rest, and those
//! whose run-time address is not known yet (a position-independent
//! program before it runs), keep their uprobe.
//!
//! Go may preempt the goroutine in that signal (its handler then makes it
//! call `asyncPreempt`, which returns to the instruction, breakpoint and
//! all): `lp_preempt`, a uprobe on `runtime.asyncPreempt`, tells the
//! second firing from a new call.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use libbpf_rs::{Link, MapCore, MapFlags};

use super::addresses;
use super::skel::ProbeSkel;
use crate::plan::Probe;

/// Probes armed by hardware breakpoints at once (`LP_MAX_BREAKPOINTS`:
/// x86's four debug registers).
pub const MAX: usize = 4;

/// The prefix of `struct perf_event_attr` a breakpoint needs
/// (`PERF_ATTR_SIZE_VER1`, 72 bytes); the kernel takes the rest as zero.
#[repr(C)]
#[derive(Default)]
struct PerfEventAttr {
    kind: u32,
    size: u32,
    config: u64,
    sample_period: u64,
    sample_type: u64,
    read_format: u64,
    /// The attribute bits (`disabled`, `inherit`, ...), bit 0 first.
    flags: u64,
    wakeup_events: u32,
    bp_type: u32,
    bp_addr: u64,
    bp_len: u64,
}

const PERF_TYPE_BREAKPOINT: u32 = 5;
const HW_BREAKPOINT_X: u32 = 4;
const ATTR_DISABLED: u64 = 1 << 0;
const ATTR_INHERIT: u64 = 1 << 1;
const ATTR_EXCLUDE_KERNEL: u64 = 1 << 5;
const ATTR_EXCLUDE_HV: u64 = 1 << 6;
const ATTR_ENABLE_ON_EXEC: u64 = 1 << 12;
/// `PERF_FLAG_FD_CLOEXEC`.
const FD_CLOEXEC: libc::c_ulong = 1 << 3;

/// One armed probe: its slot, its run-time address, its events' links
/// (a link owns its event's descriptor).
struct Armed {
    slot: u32,
    address: u64,
    links: Vec<Link>,
}

/// The probes of one process armed by hardware breakpoints.
#[derive(Default)]
pub struct Breakpoints {
    armed: Vec<Armed>,
    preempt: Preempt,
}

#[derive(Default)]
enum Preempt {
    #[default]
    Untried,
    On(Link),
    Off,
}

impl Breakpoints {
    /// Whether the probe in `slot` is armed here.
    pub fn has(&self, slot: u32) -> bool {
        self.armed.iter().any(|a| a.slot == slot)
    }

    /// Arms `probe` (in `slot`) by a hardware breakpoint in process `pid`
    /// running the executable at `path`, before its `execve` when
    /// `before_exec`. An error when there is no debug register left, the
    /// address is not known yet or the kernel refuses: the caller arms a
    /// uprobe instead.
    pub fn arm(
        &mut self,
        skel: &ProbeSkel<'_>,
        (pid, path, before_exec): (i32, &Path, bool),
        slot: u32,
        probe: &Probe,
    ) -> Result<()> {
        if self.armed.len() >= MAX {
            bail!("the {MAX} debug registers are taken");
        }
        let address = match before_exec {
            true if !position_dependent(path)? => {
                bail!("a position-independent program's addresses are not known before it runs")
            }
            true => probe.address,
            false => run_time_address(pid, path, probe.file_offset)?,
        };
        skel.maps
            .breakpoints
            .update(&address.to_ne_bytes(), &slot.to_ne_bytes(), MapFlags::ANY)
            .context("storing a breakpoint's probe")?;
        let links = match before_exec {
            true => open(skel, pid, address, ATTR_DISABLED | ATTR_ENABLE_ON_EXEC).map(|l| vec![l]),
            false => every_thread(skel, pid, address),
        };
        let links = match links {
            Ok(l) => l,
            Err(e) => {
                let _ = skel.maps.breakpoints.delete(&address.to_ne_bytes());
                return Err(e);
            }
        };
        self.armed.push(Armed {
            slot,
            address,
            links,
        });
        self.watch_preemption(skel, pid, path);
        Ok(())
    }

    /// Removes the breakpoint of `slot`, if it has one; its hits already
    /// made are in the ring. The map entry goes with [`Self::forget`].
    pub fn disarm(&mut self, slot: u32) {
        for a in self.armed.iter_mut().filter(|a| a.slot == slot) {
            a.links.clear();
        }
    }

    /// Forgets the breakpoint of `slot` once its hits are read.
    pub fn forget(&mut self, skel: &ProbeSkel<'_>, slot: u32) {
        self.armed.retain(|a| {
            if a.slot == slot {
                let _ = skel.maps.breakpoints.delete(&a.address.to_ne_bytes());
            }
            a.slot != slot
        });
    }

    /// Every link, to be dropped with the others.
    pub fn take_links(&mut self) -> Vec<Link> {
        let mut links: Vec<Link> = self
            .armed
            .iter_mut()
            .flat_map(|a| std::mem::take(&mut a.links))
            .collect();
        if let Preempt::On(l) = std::mem::replace(&mut self.preempt, Preempt::Off) {
            links.push(l);
        }
        links
    }

    /// Attaches `lp_preempt` to Go's `asyncPreempt`, once.
    fn watch_preemption(&mut self, skel: &ProbeSkel<'_>, pid: i32, path: &Path) {
        if !matches!(self.preempt, Preempt::Untried) {
            return;
        }
        let link = async_preempt_offset(path).and_then(|offset| {
            skel.progs
                .lp_preempt
                .attach_uprobe(false, pid, path, offset as usize)
                .ok()
        });
        self.preempt = match link {
            Some(l) => Preempt::On(l),
            None => Preempt::Off,
        };
    }
}

/// Opens a breakpoint on the instruction at `address` in thread `tid`,
/// inherited by the threads it creates, and attaches `lp_breakpoint`.
fn open(skel: &ProbeSkel<'_>, tid: i32, address: u64, flags: u64) -> Result<Link> {
    let attr = PerfEventAttr {
        kind: PERF_TYPE_BREAKPOINT,
        size: std::mem::size_of::<PerfEventAttr>() as u32,
        sample_period: 1,
        flags: flags | ATTR_INHERIT | ATTR_EXCLUDE_KERNEL | ATTR_EXCLUDE_HV,
        bp_type: HW_BREAKPOINT_X,
        bp_addr: address,
        bp_len: std::mem::size_of::<libc::c_long>() as u64,
        ..Default::default()
    };
    // SAFETY: perf_event_open reads `attr.size` bytes from a valid,
    // initialised `PerfEventAttr` that outlives the call, and returns a new
    // descriptor or -1; the other arguments are plain integers.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            &attr as *const PerfEventAttr,
            tid,
            -1,
            -1,
            FD_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("cannot set a hardware breakpoint in thread {tid}"));
    }
    let fd = fd as i32;
    match skel.progs.lp_breakpoint.attach_perf_event(fd) {
        // The link owns the descriptor from now on.
        Ok(link) => Ok(link),
        Err(e) => {
            // SAFETY: `fd` is the descriptor just opened above, owned here
            // and by nothing else since the attach failed.
            unsafe { libc::close(fd) };
            Err(anyhow!("cannot attach to a hardware breakpoint: {e}"))
        }
    }
}

/// A breakpoint in each thread of the running process `pid`, until a pass
/// over its threads finds none new (a thread created meanwhile by one that
/// has the breakpoint inherits it).
fn every_thread(skel: &ProbeSkel<'_>, pid: i32, address: u64) -> Result<Vec<Link>> {
    let mut done: Vec<i32> = Vec::new();
    let mut links = Vec::new();
    loop {
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
            .with_context(|| format!("listing the threads of {pid}"))?;
        let new: Vec<i32> = tasks
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .filter(|t| !done.contains(t))
            .collect();
        if new.is_empty() {
            return Ok(links);
        }
        for tid in new {
            done.push(tid);
            match open(skel, tid, address, 0) {
                Ok(l) => links.push(l),
                // A thread that ended meanwhile.
                Err(_) if !Path::new(&format!("/proc/{pid}/task/{tid}")).exists() => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// Whether the executable at `path` is loaded at its link-time addresses
/// (`ET_EXEC`), so that a probe's address is its run-time one.
pub fn position_dependent(path: &Path) -> Result<bool> {
    let mut header = [0u8; 18];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut header))
        .with_context(|| format!("reading {}", path.display()))?;
    Ok(u16::from_le_bytes([header[16], header[17]]) == 2)
}

/// The run-time address of the byte at `file_offset` of `path` in process
/// `pid`, from its mappings (which name files by their absolute path).
fn run_time_address(pid: i32, path: &Path, file_offset: u64) -> Result<u64> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .with_context(|| format!("reading the mappings of {pid}"))?;
    let absolute = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let name = absolute.to_string_lossy();
    let found = addresses::mappings(&maps)
        .find(|m| {
            m.path == name && file_offset >= m.offset && file_offset < m.offset + (m.end - m.start)
        })
        .map(|m| m.start + (file_offset - m.offset));
    found.ok_or_else(|| {
        anyhow!(
            "offset {file_offset:#x} of {} is not mapped in {pid}",
            path.display()
        )
    })
}

/// The file offset of Go's `runtime.asyncPreempt` (named with or without
/// `.abi0`, by Go version) in the executable at `path`.
fn async_preempt_offset(path: &Path) -> Option<u64> {
    use object::{Object, ObjectSymbol};
    let data = std::fs::read(path).ok()?;
    let file = object::File::parse(&*data).ok()?;
    let sym = file.symbols().find(|s| {
        s.name()
            .is_ok_and(|n| n == "runtime.asyncPreempt" || n == "runtime.asyncPreempt.abi0")
    })?;
    addresses::file_offset(&file, sym.address())
}
