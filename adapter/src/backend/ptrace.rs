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
use std::path::PathBuf;

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::unistd::Pid;

use super::exec::{self, Machine};
use super::{output, Backend, HitSink, Outcome, ProbeChanges, RawHit, StopHandle, Target};
use crate::plan::{condition_holds, Guard, Probe, Reg};

mod emulate;
mod process;
mod sys;

use emulate::emulate;
use process::{attach, load_bias, run_to_entry, start};
use sys::{
    cont, event_of, get_regs, get_xmm, pt, read_memory, set_regs, tasks, trap_pending, wait,
    wait_retrying, Regs,
};

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
