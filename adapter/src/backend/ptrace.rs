//! The ptrace backend: `int3` breakpoints, one tracer thread, every thread
//! of the process traced.
//!
//! A hit costs a trap, `PTRACE_GETREGS`, one `process_vm_readv` per memory
//! capture, and a resume. Stepping over the probed instruction is done by
//! emulating it where it is one of the few kinds probe sites use (conditional
//! jumps, jumps, calls, `ret`, `push`, no-ops): the breakpoint stays in place,
//! so any number of threads can hit it at once. Any other instruction is
//! stepped with every other thread stopped (`PTRACE_INTERRUPT`), the original
//! byte restored for exactly one single-step.
//!
//! Breakpoints are written through `/proc/PID/mem`. On detach every thread is
//! stopped, every original byte restored, a thread caught on a breakpoint is
//! moved back onto the original instruction, and pending signals are
//! delivered with `PTRACE_DETACH`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::sys::uio::{process_vm_readv, process_vm_writev, RemoteIoVec};
use nix::unistd::Pid;

use super::exec::{self, Machine};
use super::{launch, output, Backend, HitSink, Outcome, ProbeChanges, RawHit, StopHandle, Target};
use crate::plan::{condition_holds, Guard, Probe, Reg};

const INT3: u8 = 0xcc;

pub struct PtraceBackend;

impl Backend for PtraceBackend {
    fn run(
        &mut self,
        target: &Target,
        probes: &[Probe],
        sink: &mut dyn HitSink,
        stop: &StopHandle,
    ) -> Result<Outcome> {
        match target {
            // Attached: the tracer runs in a process of its own, which
            // outlives this one long enough to leave the program as it was
            // found (`tracer`).
            Target::Attach(pid) => super::tracer::run_attached(*pid, probes, sink, stop),
            // Launched: the program is this process's child and dies with
            // it (PTRACE_O_EXITKILL).
            Target::Launch(_) => run_here(target, probes, sink, stop),
        }
    }
}

/// Traces `target` from this process (for an attached one, the tracer
/// process's side of `tracer`).
pub(super) fn run_here(
    target: &Target,
    probes: &[Probe],
    sink: &mut dyn HitSink,
    stop: &StopHandle,
) -> Result<Outcome> {
    stop.set_waiter_to_current_thread();
    let (leader, attached, pipes) = match target {
        Target::Launch(l) => {
            let (leader, pipes) = start(l)?;
            // Probes in shared libraries need them mapped.
            if probes.iter().any(|p| p.library.is_some()) {
                if let Err(e) = run_to_entry(leader) {
                    let _ = nix::sys::signal::kill(
                        Pid::from_raw(leader),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                    let _ = wait(leader);
                    return Err(e);
                }
            }
            (leader, false, pipes)
        }
        Target::Attach(pid) => (attach(*pid)?, true, None),
    };
    let output = match pipes {
        Some(p) => Some(output::Watched::start(p, stop)?),
        None => None,
    };
    let mut tracer = Tracer::new(leader, attached, probes, sink)?;
    tracer.output = output;
    // On an error (or a panic) `Tracer`'s Drop detaches cleanly.
    let outcome = tracer.arm_and_run(stop);
    tracer.drain_output();
    tracer.sink.counted(tracer.hits, tracer.filtered);
    outcome
}

/// A byte-level breakpoint and the probes (ids) that share its address.
struct Breakpoint {
    original: u8,
    instruction: Vec<u8>,
    probes: Vec<u32>,
    /// Where a copy of the instruction sits for out-of-line stepping, and
    /// the padding bytes it replaced.
    scratch: Option<(u64, Vec<u8>)>,
}

struct Tracer<'a> {
    leader: i32,
    attached: bool,
    threads: HashSet<i32>,
    /// Threads auto-attached by a clone whose first stop has not been seen.
    fresh: HashSet<i32>,
    breakpoints: HashMap<u64, Breakpoint>,
    /// Addresses whose breakpoint was removed while the program ran: a
    /// thread that trapped there before the removal is sent back to the
    /// restored instruction instead of receiving a stray SIGTRAP.
    retired: HashSet<u64>,
    probes: HashMap<u32, Probe>,
    /// Calls admitted by their probe's filter, for pairing returns.
    frames: exec::Frames,
    /// The rate limits' buckets.
    rates: exec::Rates,
    /// Probe hits past their guards, and those not reported (see
    /// `HitSink::counted`).
    hits: u64,
    filtered: u64,
    sink: &'a mut dyn HitSink,
    /// Wait statuses collected while stopping threads, handled next.
    pending: VecDeque<(i32, i32)>,
    mem: File,
    /// Where each file with probes is loaded minus its link-time
    /// addresses: the executable (`None`) and shared libraries, read from
    /// `/proc/PID/maps` when a probe in it is first armed.
    biases: HashMap<Option<PathBuf>, u64>,
    stop_forwarded: bool,
    /// The launched program's stdout and stderr, when the face reads them
    /// (`Launch::stdio`): handed to the sink before each hit.
    output: Option<output::Watched>,
}

/// Issues a ptrace request whose address and data are plain integers.
fn pt(request: libc::c_uint, tid: i32, addr: usize, data: usize) -> nix::Result<libc::c_long> {
    // SAFETY: every caller passes a request (CONT, SINGLESTEP, DETACH,
    // INTERRUPT, LISTEN, SEIZE, GETEVENTMSG into a local) whose `addr` and
    // `data` are integers or point to memory owned by the caller for the
    // duration of the call.
    let r = unsafe {
        libc::ptrace(
            request,
            tid,
            addr as *mut libc::c_void,
            data as *mut libc::c_void,
        )
    };
    if r == -1 {
        Err(Errno::last())
    } else {
        Ok(r)
    }
}

fn cont(tid: i32, sig: i32) {
    // A thread can vanish (killed, exited) between its stop and this call;
    // its exit is reported by waitpid, so ESRCH is not an error here.
    let _ = pt(libc::PTRACE_CONT, tid, 0, sig as usize);
}

/// Blocks for the next wait status of `pid` (-1: any thread this thread
/// traces). `None` when interrupted by a signal. `__WNOTHREAD` keeps the
/// wait to this thread's own children and tracees: the DAP server runs a
/// backend per session on threads of one process, and a wait for "any"
/// must not take another session's program's stops or exit.
fn wait(pid: i32) -> Result<Option<(i32, i32)>> {
    let mut status = 0;
    // SAFETY: waitpid writes only into `status`, a local integer.
    let r = unsafe { libc::waitpid(pid, &mut status, libc::__WALL | libc::__WNOTHREAD) };
    if r < 0 {
        let e = Errno::last();
        if e == Errno::EINTR {
            return Ok(None);
        }
        bail!("waitpid: {e}");
    }
    Ok(Some((r, status)))
}

fn event_of(status: i32) -> i32 {
    (status >> 16) & 0xff
}

/// A stopped thread's `user_regs_struct`, field by field in its order; the
/// first 21 are also the kernel's `pt_regs` slots ([`Reg`]), the rest the
/// segment state, kept so registers are written back with one syscall.
type Regs = [u64; 27];

fn get_regs(tid: i32) -> Result<Regs> {
    let r = nix::sys::ptrace::getregs(Pid::from_raw(tid))
        .with_context(|| format!("reading registers of thread {tid}"))?;
    Ok([
        r.r15, r.r14, r.r13, r.r12, r.rbp, r.rbx, r.r11, r.r10, r.r9, r.r8, r.rax, r.rcx, r.rdx,
        r.rsi, r.rdi, r.orig_rax, r.rip, r.cs, r.eflags, r.rsp, r.ss, r.fs_base, r.gs_base, r.ds,
        r.es, r.fs, r.gs,
    ])
}

/// Writes back registers read by [`get_regs`] (and changed).
fn set_regs(tid: i32, regs: &Regs) -> Result<()> {
    let [r15, r14, r13, r12, rbp, rbx, r11, r10, r9, r8, rax, rcx, rdx, rsi, rdi, orig_rax, rip, cs, eflags, rsp, ss, fs_base, gs_base, ds, es, fs, gs] =
        *regs;
    let r = libc::user_regs_struct {
        r15,
        r14,
        r13,
        r12,
        rbp,
        rbx,
        r11,
        r10,
        r9,
        r8,
        rax,
        rcx,
        rdx,
        rsi,
        rdi,
        orig_rax,
        rip,
        cs,
        eflags,
        rsp,
        ss,
        fs_base,
        gs_base,
        ds,
        es,
        fs,
        gs,
    };
    nix::sys::ptrace::setregs(Pid::from_raw(tid), r)
        .with_context(|| format!("writing registers of thread {tid}"))?;
    Ok(())
}

/// Low 8 bytes of each XMM register of a stopped thread.
fn get_xmm(tid: i32) -> Option<[u64; 16]> {
    // SAFETY: user_fpregs_struct is plain old data; all-zero bytes are valid.
    let mut fp: libc::user_fpregs_struct = unsafe { std::mem::zeroed() };
    // SAFETY: PTRACE_GETFPREGS writes exactly one user_fpregs_struct at the
    // address given, which is `fp`, live and exclusively borrowed here.
    let r = unsafe {
        libc::ptrace(
            libc::PTRACE_GETFPREGS,
            tid,
            std::ptr::null_mut::<libc::c_void>(),
            &mut fp as *mut _ as *mut libc::c_void,
        )
    };
    if r == -1 {
        return None;
    }
    let mut out = [0u64; 16];
    for (n, slot) in out.iter_mut().enumerate() {
        let lo = fp.xmm_space[n * 4] as u64;
        let hi = fp.xmm_space[n * 4 + 1] as u64;
        *slot = lo | (hi << 32);
    }
    Some(out)
}

fn read_memory(tid: i32, addr: u64, len: usize) -> Option<Vec<u8>> {
    if len == 0 {
        return Some(Vec::new());
    }
    let mut buf = vec![0u8; len];
    let remote = [RemoteIoVec {
        base: addr as usize,
        len,
    }];
    match process_vm_readv(
        Pid::from_raw(tid),
        &mut [std::io::IoSliceMut::new(&mut buf)],
        &remote,
    ) {
        Ok(0) | Err(_) => None,
        Ok(n) => {
            buf.truncate(n);
            Some(buf)
        }
    }
}

fn write_memory(tid: i32, addr: u64, bytes: &[u8]) -> Result<()> {
    let remote = [RemoteIoVec {
        base: addr as usize,
        len: bytes.len(),
    }];
    let n = process_vm_writev(Pid::from_raw(tid), &[std::io::IoSlice::new(bytes)], &remote)?;
    if n != bytes.len() {
        bail!("short write to thread {tid}'s memory");
    }
    Ok(())
}

struct Stopped<'t> {
    tid: i32,
    regs: &'t Regs,
    xmm: Option<Option<[u64; 16]>>,
}

impl Machine for Stopped<'_> {
    fn reg(&self, slot: usize) -> u64 {
        self.regs[slot]
    }
    fn xmm(&mut self, n: u8) -> Option<u64> {
        let tid = self.tid;
        let regs = self.xmm.get_or_insert_with(|| get_xmm(tid));
        regs.as_ref().and_then(|r| r.get(n as usize).copied())
    }
    fn read(&mut self, addr: u64, len: usize) -> Option<Vec<u8>> {
        read_memory(self.tid, addr, len)
    }
}

/// Starts the program under trace and returns at its first instruction
/// after `execve`, every option set; with `Launch::stdio`, also the pipes
/// its stdout and stderr write into.
fn start(l: &super::Launch) -> Result<(i32, Option<Vec<output::Pipe>>)> {
    let (pipes, ends) = match &l.stdio {
        Some(_) => {
            let (pipes, ends) = output::open()?;
            (Some(pipes), Some(ends))
        }
        None => (None, None),
    };
    // Our copies of the write ends close when this returns.
    let pid = launch::spawn_stopped(l, ends.as_ref(), &launch::Extras::default())?;
    let options = libc::PTRACE_O_TRACECLONE | libc::PTRACE_O_TRACEEXEC | libc::PTRACE_O_EXITKILL;
    if let Err(e) = pt(libc::PTRACE_SEIZE, pid.as_raw(), 0, options as usize) {
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        let _ = wait(pid.as_raw());
        bail!("cannot trace the program: {e} (ptrace needs root or CAP_SYS_PTRACE)");
    }
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT);
    loop {
        let Some((_, status)) = wait(pid.as_raw())? else {
            continue;
        };
        if libc::WIFEXITED(status) {
            let code = libc::WEXITSTATUS(status);
            bail!(
                "{}: could not be executed (exit status {code})",
                l.program.display()
            );
        }
        if libc::WIFSIGNALED(status) {
            bail!(
                "{}: killed by signal {} before it started",
                l.program.display(),
                libc::WTERMSIG(status)
            );
        }
        if !libc::WIFSTOPPED(status) {
            continue;
        }
        match event_of(status) {
            libc::PTRACE_EVENT_EXEC => return Ok((pid.as_raw(), pipes)),
            0 => {
                let sig = libc::WSTOPSIG(status);
                let deliver = if sig == libc::SIGCONT || sig == libc::SIGSTOP {
                    0
                } else {
                    sig
                };
                cont(pid.as_raw(), deliver);
            }
            _ => cont(pid.as_raw(), 0),
        }
    }
}

/// `AT_ENTRY` in the auxiliary vector: the executable's entry point.
const AT_ENTRY: u64 = 9;

/// Lets a launched program, stopped at its first instruction after
/// `execve` (the loader's), run to its executable's entry point, where the
/// loader has mapped the shared libraries it needs (`DT_NEEDED`) and none
/// of the program's own code has run: a temporary `int3` at `AT_ENTRY`
/// (from `/proc/PID/auxv`), removed when the program stops there.
fn run_to_entry(pid: i32) -> Result<()> {
    let auxv = std::fs::read(format!("/proc/{pid}/auxv"))
        .with_context(|| format!("reading the auxiliary vector of process {pid}"))?;
    let word = |b: &[u8]| {
        let mut x = [0u8; 8];
        x.copy_from_slice(b);
        u64::from_le_bytes(x)
    };
    let entry = auxv
        .chunks_exact(16)
        .find(|c| word(&c[..8]) == AT_ENTRY)
        .map(|c| word(&c[8..]))
        .with_context(|| format!("process {pid} has no entry point in its auxiliary vector"))?;
    let mem = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("/proc/{pid}/mem"))
        .with_context(|| format!("opening the memory of process {pid}"))?;
    let mut original = [0u8; 1];
    mem.read_exact_at(&mut original, entry)
        .with_context(|| format!("reading the entry point at {entry:#x}"))?;
    mem.write_all_at(&[INT3], entry)
        .with_context(|| format!("writing a breakpoint at the entry point {entry:#x}"))?;
    cont(pid, 0);
    loop {
        let Some((_, status)) = wait(pid)? else {
            continue;
        };
        if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
            bail!("the program ended before its entry point");
        }
        if !libc::WIFSTOPPED(status) {
            continue;
        }
        let sig = libc::WSTOPSIG(status);
        match event_of(status) {
            0 if sig == libc::SIGTRAP => {
                let mut regs = get_regs(pid)?;
                if regs[Reg::Rip.slot()] == entry + 1 {
                    mem.write_all_at(&original, entry)
                        .with_context(|| format!("restoring the entry point at {entry:#x}"))?;
                    regs[Reg::Rip.slot()] = entry;
                    return set_regs(pid, &regs);
                }
                cont(pid, sig);
            }
            0 => cont(pid, sig),
            _ => cont(pid, 0),
        }
    }
}

fn tasks(pid: i32) -> Result<Vec<i32>> {
    let dir = format!("/proc/{pid}/task");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("no process {pid}"))? {
        if let Some(tid) = entry?.file_name().to_str().and_then(|s| s.parse().ok()) {
            out.push(tid);
        }
    }
    Ok(out)
}

/// Seizes every thread of a running process, without stopping it.
fn attach(pid: i32) -> Result<i32> {
    if pid <= 0 {
        bail!("{pid} is not a process id");
    }
    if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
        bail!("no process with pid {pid}");
    }
    if pid == std::process::id() as i32 {
        bail!("logprobe cannot trace itself");
    }
    let mut seized = HashSet::new();
    loop {
        let mut new = false;
        for tid in tasks(pid)? {
            if seized.contains(&tid) {
                continue;
            }
            match pt(
                libc::PTRACE_SEIZE,
                tid,
                0,
                libc::PTRACE_O_TRACECLONE as usize,
            ) {
                Ok(_) => {}
                Err(Errno::ESRCH) => continue,
                Err(Errno::EPERM) => {
                    detach_quietly(&seized);
                    bail!(
                        "cannot trace pid {pid}: operation not permitted (run as root, or check /proc/sys/kernel/yama/ptrace_scope and whether a debugger is already attached)"
                    )
                }
                Err(e) => {
                    detach_quietly(&seized);
                    bail!("cannot trace pid {pid}: {e}")
                }
            }
            seized.insert(tid);
            new = true;
        }
        if !new {
            break;
        }
    }
    Ok(pid)
}

fn detach_quietly(tids: &HashSet<i32>) {
    for &t in tids {
        let _ = pt(libc::PTRACE_DETACH, t, 0, 0);
    }
}

impl<'a> Tracer<'a> {
    fn new(
        leader: i32,
        attached: bool,
        probes: &[Probe],
        sink: &'a mut dyn HitSink,
    ) -> Result<Self> {
        let mem = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(format!("/proc/{leader}/mem"))
            .with_context(|| format!("opening the memory of process {leader}"))?;
        let threads: HashSet<i32> = if attached {
            tasks(leader)?.into_iter().collect()
        } else {
            [leader].into()
        };
        let bias = load_bias(leader, None)?;
        Ok(Tracer {
            leader,
            attached,
            threads,
            fresh: HashSet::new(),
            breakpoints: HashMap::new(),
            retired: HashSet::new(),
            probes: probes.iter().map(|p| (p.id, p.clone())).collect(),
            frames: exec::Frames::default(),
            rates: exec::Rates::default(),
            hits: 0,
            filtered: 0,
            sink,
            pending: VecDeque::new(),
            mem,
            biases: [(None, bias)].into(),
            stop_forwarded: false,
            output: None,
        })
    }

    /// Writes the breakpoint for probe `id` (already in `self.probes`).
    fn insert(&mut self, id: u32) -> Result<()> {
        let Some(p) = self.probes.get(&id) else {
            return Ok(());
        };
        let bias = match self.biases.get(&p.library) {
            Some(b) => *b,
            None => {
                let b = load_bias(self.leader, p.library.as_deref())?;
                self.biases.insert(p.library.clone(), b);
                b
            }
        };
        let Some(p) = self.probes.get(&id) else {
            return Ok(());
        };
        let addr = p.address + bias;
        if let Some(bp) = self.breakpoints.get_mut(&addr) {
            bp.probes.push(id);
            return Ok(());
        }
        let mut original = [0u8; 1];
        self.mem
            .read_exact_at(&mut original, addr)
            .with_context(|| format!("reading code at {addr:#x}"))?;
        let scratch = match p.scratch {
            Some(at) if !p.instruction.is_empty() => {
                let at = at + bias;
                let mut padding = vec![0u8; p.instruction.len()];
                self.mem.read_exact_at(&mut padding, at)?;
                self.mem
                    .write_all_at(&p.instruction, at)
                    .with_context(|| format!("writing a step-out-of-line copy at {at:#x}"))?;
                Some((at, padding))
            }
            _ => None,
        };
        let instruction = p.instruction.clone();
        self.mem
            .write_all_at(&[INT3], addr)
            .with_context(|| format!("writing a breakpoint at {addr:#x}"))?;
        self.breakpoints.insert(
            addr,
            Breakpoint {
                original: original[0],
                instruction,
                probes: vec![id],
                scratch,
            },
        );
        self.retired.remove(&addr);
        Ok(())
    }

    /// Removes probe `id`, and its breakpoint when no other probe shares it.
    fn remove(&mut self, id: u32) -> Result<()> {
        let Some(p) = self.probes.remove(&id) else {
            return Ok(());
        };
        let Some(bias) = self.biases.get(&p.library) else {
            return Ok(()); // never armed
        };
        let addr = p.address + bias;
        let Some(bp) = self.breakpoints.get_mut(&addr) else {
            return Ok(());
        };
        bp.probes.retain(|&q| q != id);
        if bp.probes.is_empty() {
            let original = bp.original;
            let scratch = bp.scratch.take();
            self.breakpoints.remove(&addr);
            self.mem
                .write_all_at(&[original], addr)
                .with_context(|| format!("restoring the code at {addr:#x}"))?;
            // A thread may still be stepping the copy only while this thread
            // holds every thread stopped, which it does here.
            if let Some((at, padding)) = scratch {
                self.mem
                    .write_all_at(&padding, at)
                    .with_context(|| format!("restoring the padding at {at:#x}"))?;
            }
            self.retired.insert(addr);
        }
        Ok(())
    }

    /// Applies queued probe changes with every thread stopped, so no thread
    /// runs over a half-written instruction.
    fn apply_changes(&mut self, changes: Vec<ProbeChanges>) -> Result<()> {
        let stopped = self.stop_others(None)?;
        let mut armed = Vec::new();
        let mut result = Ok(());
        for change in changes {
            for id in change.remove {
                if let Err(e) = self.remove(id) {
                    result = Err(e);
                }
            }
            for p in change.add {
                let id = p.id;
                self.probes.insert(id, p);
                match self.insert(id) {
                    Ok(()) => armed.push(id),
                    Err(e) => {
                        self.probes.remove(&id);
                        self.sink.notice(&format!("cannot arm probe {id}: {e:#}"));
                    }
                }
            }
        }
        for t in stopped {
            cont(t, 0);
        }
        self.sink.armed(self.leader, &armed);
        result
    }

    fn arm_and_run(&mut self, stop: &StopHandle) -> Result<Outcome> {
        let mut ids: Vec<u32> = self.probes.keys().copied().collect();
        ids.sort_unstable();
        for &id in &ids {
            self.insert(id)?;
        }
        self.sink.armed(self.leader, &ids);
        if !self.attached {
            cont(self.leader, 0);
        }
        loop {
            self.drain_output();
            let changes = stop.take_changes();
            if !changes.is_empty() && !stop.requested() {
                self.apply_changes(changes)?;
            }
            if stop.requested() {
                if self.attached {
                    self.detach_all()?;
                    return Ok(Outcome::Detached);
                }
                if !self.stop_forwarded {
                    self.stop_forwarded = true;
                    let _ = nix::sys::signal::kill(
                        Pid::from_raw(self.leader),
                        nix::sys::signal::Signal::SIGTERM,
                    );
                }
            }
            let next = match self.pending.pop_front() {
                Some(p) => Some(p),
                None => match wait(-1) {
                    Ok(n) => n,
                    Err(e) if self.threads.is_empty() => return Err(e),
                    Err(e) => return Err(e),
                },
            };
            let Some((tid, status)) = next else { continue };
            match self.handle(tid, status) {
                Ok(Some(outcome)) => return Ok(outcome),
                Ok(None) => {}
                // The thread vanished while it was being handled (the
                // process is exiting, or it was killed): waitpid reports
                // its end next.
                Err(e) if e.downcast_ref::<Errno>() == Some(&Errno::ESRCH) => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn handle(&mut self, tid: i32, status: i32) -> Result<Option<Outcome>> {
        if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
            self.threads.remove(&tid);
            if tid == self.leader {
                // The process is gone, and its code with it.
                self.breakpoints.clear();
                return Ok(Some(if libc::WIFEXITED(status) {
                    Outcome::Exited(libc::WEXITSTATUS(status))
                } else {
                    Outcome::Signaled(libc::WTERMSIG(status))
                }));
            }
            return Ok(None);
        }
        if !libc::WIFSTOPPED(status) {
            return Ok(None);
        }
        if self.threads.insert(tid) {
            self.fresh.insert(tid);
        }
        let sig = libc::WSTOPSIG(status);
        match event_of(status) {
            0 => {}
            libc::PTRACE_EVENT_CLONE => {
                self.note_clone(tid);
                cont(tid, 0);
                return Ok(None);
            }
            libc::PTRACE_EVENT_STOP => {
                let group_stop = matches!(
                    sig,
                    libc::SIGSTOP | libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU
                );
                if self.fresh.remove(&tid) || !group_stop {
                    cont(tid, 0);
                } else {
                    // Keep the program's own job-control stop in force.
                    let _ = pt(libc::PTRACE_LISTEN, tid, 0, 0);
                }
                return Ok(None);
            }
            _ => {
                cont(tid, 0);
                return Ok(None);
            }
        }
        self.fresh.remove(&tid);
        if sig == libc::SIGTRAP {
            let regs = get_regs(tid)?;
            let addr = regs[Reg::Rip.slot()].wrapping_sub(1);
            if self.breakpoints.contains_key(&addr) {
                self.on_breakpoint(tid, addr, regs)?;
                return Ok(None);
            }
            if self.retired.contains(&addr) {
                let mut regs = regs;
                regs[Reg::Rip.slot()] = addr;
                set_regs(tid, &regs)?;
                cont(tid, 0);
                return Ok(None);
            }
        }
        cont(tid, sig);
        Ok(None)
    }

    /// Hands the program's output written so far to the sink (when the
    /// face reads it), so that it comes before the hit being reported.
    fn drain_output(&mut self) {
        if let Some(o) = &mut self.output {
            o.drain(&mut *self.sink);
        }
    }

    /// Records the thread a `PTRACE_EVENT_CLONE` stop of `tid` created.
    fn note_clone(&mut self, tid: i32) {
        let mut new: libc::c_ulong = 0;
        if pt(
            libc::PTRACE_GETEVENTMSG,
            tid,
            0,
            &mut new as *mut libc::c_ulong as usize,
        )
        .is_ok()
        {
            let new = new as i32;
            if self.threads.insert(new) {
                self.fresh.insert(new);
            }
        }
    }

    fn on_breakpoint(&mut self, tid: i32, addr: u64, mut regs: Regs) -> Result<()> {
        regs[Reg::Rip.slot()] = addr;
        self.drain_output();
        let time_ns = super::monotonic_ns();
        let (instruction, probes, scratch) = match self.breakpoints.get(&addr) {
            Some(bp) => (
                bp.instruction.clone(),
                bp.probes.clone(),
                bp.scratch.as_ref().map(|s| s.0),
            ),
            None => return Ok(()),
        };
        for id in probes {
            let Some(probe) = self.probes.get(&id) else {
                continue;
            };
            if let Some(Guard::UnlessJumpTaken { cc }) = probe.guard {
                if condition_holds(cc, regs[Reg::Eflags.slot()]) {
                    continue;
                }
            }
            let mut m = Stopped {
                tid,
                regs: &regs,
                xmm: None,
            };
            self.hits += 1;
            let rates = (probe.id, &mut self.rates, time_ns);
            let captures =
                match exec::run(&probe.recipe, &mut m, tid as u32, &mut self.frames, rates) {
                    Ok(c) => c,
                    Err(exec::Rejected::Filtered) => {
                        self.filtered += 1;
                        continue;
                    }
                    Err(exec::Rejected::Limited) => {
                        self.sink.limited(probe.id, 1);
                        continue;
                    }
                };
            self.sink.hit(RawHit {
                probe: probe.id,
                pid: self.leader,
                tid,
                time_ns,
                captures,
            });
        }
        if emulate(tid, &instruction, addr, &mut regs)? {
            set_regs(tid, &regs)?;
            cont(tid, 0);
            Ok(())
        } else if let Some(scratch) = scratch {
            self.step_out_of_line(tid, addr, scratch, instruction.len() as u64, &mut regs)
        } else {
            self.step_over_with_others_stopped(tid, addr, &regs)
        }
    }

    /// Stops every running thread but `except`; returns those that stopped
    /// for our interrupt (others' stops are queued in `pending`).
    fn stop_others(&mut self, except: Option<i32>) -> Result<Vec<i32>> {
        let queued: HashSet<i32> = self.pending.iter().map(|p| p.0).collect();
        let targets: Vec<i32> = self
            .threads
            .iter()
            .copied()
            .filter(|t| Some(*t) != except && !queued.contains(t))
            .collect();
        let mut interrupted = Vec::new();
        for &t in &targets {
            if pt(libc::PTRACE_INTERRUPT, t, 0, 0).is_ok() {
                interrupted.push(t);
            }
        }
        let mut stopped = Vec::new();
        for t in interrupted {
            let Some((_, status)) = wait_retrying(t)? else {
                continue;
            };
            if libc::WIFSTOPPED(status) && event_of(status) == libc::PTRACE_EVENT_STOP {
                self.fresh.remove(&t);
                stopped.push(t);
            } else {
                self.pending.push_back((t, status));
            }
        }
        Ok(stopped)
    }

    fn step_over_with_others_stopped(&mut self, tid: i32, addr: u64, regs: &Regs) -> Result<()> {
        let stopped = self.stop_others(Some(tid))?;
        let original = self
            .breakpoints
            .get(&addr)
            .map(|b| b.original)
            .unwrap_or(INT3);
        self.mem.write_all_at(&[original], addr)?;
        set_regs(tid, regs)?;
        let step = self.single_step(tid, addr);
        self.mem.write_all_at(&[INT3], addr)?;
        for t in stopped {
            cont(t, 0);
        }
        if let Some(deferred) = step? {
            cont(tid, deferred);
        }
        Ok(())
    }

    /// Runs the copy of the probed instruction at `scratch` (see
    /// `Probe::scratch`) and resumes after the original one. Other threads
    /// keep running and keep hitting the breakpoint, which stays in place.
    fn step_out_of_line(
        &mut self,
        tid: i32,
        addr: u64,
        scratch: u64,
        len: u64,
        regs: &mut Regs,
    ) -> Result<()> {
        regs[Reg::Rip.slot()] = scratch;
        set_regs(tid, regs)?;
        let Some(deferred) = self.single_step(tid, scratch)? else {
            return Ok(());
        };
        let mut after = get_regs(tid)?;
        if after[Reg::Rip.slot()] == scratch + len {
            after[Reg::Rip.slot()] = addr + len;
            set_regs(tid, &after)?;
        }
        cont(tid, deferred);
        Ok(())
    }

    /// Single-steps `tid` until it has left `addr`. Returns the signal to
    /// deliver when resuming it (one that arrived meanwhile), or `None` if the
    /// thread is gone.
    fn single_step(&mut self, tid: i32, addr: u64) -> Result<Option<i32>> {
        let mut deferred = 0;
        loop {
            if pt(libc::PTRACE_SINGLESTEP, tid, 0, 0).is_err() {
                return Ok(None);
            }
            let Some((_, status)) = wait_retrying(tid)? else {
                return Ok(None);
            };
            if !libc::WIFSTOPPED(status) {
                self.pending.push_back((tid, status));
                return Ok(None);
            }
            let sig = libc::WSTOPSIG(status);
            match event_of(status) {
                0 if sig != libc::SIGTRAP => {
                    // A signal arrived first: deliver it after the step.
                    deferred = sig;
                    continue;
                }
                // An interrupt left pending from an earlier stop of this
                // thread: the instruction has not run yet.
                libc::PTRACE_EVENT_STOP => continue,
                libc::PTRACE_EVENT_CLONE => self.note_clone(tid),
                _ => {}
            }
            match get_regs(tid) {
                Ok(r) if r[Reg::Rip.slot()] == addr => continue,
                _ => return Ok(Some(deferred)),
            }
        }
    }

    /// Stops the process, removes every breakpoint, and lets it go.
    fn detach_all(&mut self) -> Result<()> {
        let _ = self.stop_others(None)?;
        let mut signals: HashMap<i32, i32> = HashMap::new();
        let mut gone = HashSet::new();
        while let Some((tid, status)) = self.pending.pop_front() {
            self.settle(tid, status, &mut signals, &mut gone)?;
        }
        // A thread interrupted just as it ran into an `int3` reports the
        // interrupt first and still has the SIGTRAP pending: detached so,
        // it would die of it. It takes the signal now, under the tracer.
        let threads: Vec<i32> = self.threads.iter().copied().collect();
        for t in threads {
            for _ in 0..4 {
                if gone.contains(&t) || signals.contains_key(&t) || !trap_pending(self.leader, t) {
                    break;
                }
                cont(t, 0);
                match wait_retrying(t)? {
                    Some((_, status)) => self.settle(t, status, &mut signals, &mut gone)?,
                    None => break,
                }
            }
        }
        self.restore_code();
        for &t in &self.threads {
            if gone.contains(&t) {
                continue;
            }
            let sig = signals.get(&t).copied().unwrap_or(0);
            let _ = pt(libc::PTRACE_DETACH, t, 0, sig as usize);
        }
        Ok(())
    }

    /// While detaching: a stopped thread caught on a breakpoint is moved
    /// back onto the original instruction (its SIGTRAP dropped); any other
    /// signal it stopped for is kept in `signals` to deliver on detach.
    fn settle(
        &mut self,
        tid: i32,
        status: i32,
        signals: &mut HashMap<i32, i32>,
        gone: &mut HashSet<i32>,
    ) -> Result<()> {
        if !libc::WIFSTOPPED(status) {
            gone.insert(tid);
            return Ok(());
        }
        let sig = libc::WSTOPSIG(status);
        if event_of(status) != 0 {
            return Ok(());
        }
        if sig == libc::SIGTRAP {
            if let Ok(mut regs) = get_regs(tid) {
                let addr = regs[Reg::Rip.slot()].wrapping_sub(1);
                if self.breakpoints.contains_key(&addr) || self.retired.contains(&addr) {
                    // Caught on a breakpoint: run the original instruction again.
                    regs[Reg::Rip.slot()] = addr;
                    set_regs(tid, &regs)?;
                    return Ok(());
                }
            }
        }
        signals.insert(tid, sig);
        Ok(())
    }

    fn restore_code(&mut self) {
        for (addr, bp) in self.breakpoints.drain() {
            if let Some((at, padding)) = &bp.scratch {
                if let Err(e) = self.mem.write_all_at(padding, *at) {
                    self.sink
                        .notice(&format!("could not restore the padding at {at:#x}: {e}"));
                }
            }
            if let Err(e) = self.mem.write_all_at(&[bp.original], addr) {
                self.sink
                    .notice(&format!("could not restore the code at {addr:#x}: {e}"));
            }
        }
    }
}

impl Drop for Tracer<'_> {
    /// Never leave an attached process with breakpoints in it, whatever
    /// ended the trace (an error, a panic). A launched program dies with
    /// logprobe (PTRACE_O_EXITKILL).
    fn drop(&mut self) {
        if self.attached && !self.breakpoints.is_empty() {
            if let Err(e) = self.detach_all() {
                self.sink
                    .notice(&format!("detaching after an error failed: {e:#}"));
            }
        }
    }
}

/// Whether thread `tid` of process `leader` has a SIGTRAP pending, not yet
/// taken (its own pending set, `SigPnd` in its status).
fn trap_pending(leader: i32, tid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{leader}/task/{tid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("SigPnd:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .is_some_and(|mask| mask & (1 << (libc::SIGTRAP - 1)) != 0)
}

/// Waits for one thread, retrying when a signal interrupts the wait.
fn wait_retrying(tid: i32) -> Result<Option<(i32, i32)>> {
    for _ in 0..1000 {
        match wait(tid) {
            Ok(Some(s)) => return Ok(Some(s)),
            Ok(None) => continue,
            Err(_) => return Ok(None),
        }
    }
    Ok(None)
}

/// The difference between where a file is mapped in process `pid` and
/// its ELF addresses: the executable's (`None`; 0 when it is not
/// position-independent) or a shared library's (by its real path). The
/// start of the mapping of file offset 0 minus the link-time address of
/// the segment there (0 for most PIEs and libraries, 0x400000 for Go's).
fn load_bias(pid: i32, library: Option<&Path>) -> Result<u64> {
    use object::{Object, ObjectKind, ObjectSegment};
    let path = match library {
        Some(l) => l.to_path_buf(),
        None => std::fs::read_link(format!("/proc/{pid}/exe"))
            .with_context(|| format!("no process {pid}"))?,
    };
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps"))?;
    let data = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let file =
        object::File::parse(&*data).with_context(|| format!("{} is not ELF", path.display()))?;
    if file.kind() != ObjectKind::Dynamic {
        return Ok(0);
    }
    let linked = file
        .segments()
        .find(|s| s.file_range().0 == 0)
        .map_or(0, |s| s.address() & !0xfff);
    let name = path.to_string_lossy();
    let start = super::ebpf::addresses::mappings(&maps)
        .find(|m| m.path == name && m.offset == 0)
        .map(|m| m.start);
    match (start, library) {
        (Some(s), _) => Ok(s.wrapping_sub(linked)),
        (None, Some(_)) => bail!(
            "{} is not loaded in process {pid} (yet): its functions cannot be probed",
            path.display()
        ),
        (None, None) => bail!(
            "cannot find where {} is mapped in process {pid}",
            path.display()
        ),
    }
}

/// Executes the probed instruction on the saved registers, if it is one of
/// the kinds probe sites use. Returns false for anything else.
fn emulate(tid: i32, insn: &[u8], addr: u64, regs: &mut Regs) -> Result<bool> {
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
