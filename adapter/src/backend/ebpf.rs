//! The eBPF backend: uprobes that run the capture recipes in the kernel,
//! so the traced program is never stopped.
//!
//! The kernel side is `bpf/probe.bpf.c`, compiled by `build.rs` into a
//! libbpf-rs skeleton, loaded once per run (`load`: the verifier takes a
//! few milliseconds) and never again: probes added later are data. Each
//! probe's recipe is serialized (`abi`, through the types generated from
//! `bpf/probe.h`) into the `recipes` map at a slot of its own, and the
//! uprobes are attached through uprobe-multi links, one per batch of
//! probes added together, each with its slot as cookie (`armed`). Hits
//! come back through a ring buffer that is drained on a short timer
//! (records are submitted without wake-ups, which makes a hit several
//! times cheaper). The kernel counts hits, lost records and those a
//! filter or a rate limit left out (rate limits per slot too, read back
//! as each probe's `HitSink::limited`); the count of lost ones is always
//! reported, and seen + lost + filtered + limited = hits is checked.
//! Nothing needs tracefs or debugfs (`support`).
//!
//! XMM registers are not in a uprobe's registers: a hit that captures them
//! sends its thread SIGURG (Go's harmless preemption request) and is
//! completed from the signal frame the kernel saves, by a uprobe on the
//! program's signal handler (`signal`); `sse` undoes what the probed
//! instruction did to them meanwhile, and a probe whose instruction would
//! lose one is armed by a hardware breakpoint instead (`breakpoint`).
//! Without a SIGURG handler they are reported unreadable
//! (docs/architecture.md, "The eBPF backend").
//!
//! In launch mode the program's stdout/stderr are relayed (see
//! `relay`) so that its output and the trace lines interleave as under
//! ptrace: to logprobe's own stdout/stderr, or, when the caller gave
//! `Launch::stdio` (the DAP server), to the sink's `output`.
//!
//! Launch mode forks the program stopped before `execve`, arms every
//! uprobe for that pid, then lets it run, so no early call is missed.
//! Attach mode arms the probes on a running process and, on a stop
//! request, removes them; the process is never stopped.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use libbpf_rs::{Link, MapCore, MapFlags, RingBuffer, RingBufferBuilder};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use abi::Item;
use armed::Armed;
use relay::Relay;

use super::{launch, Backend, HitSink, Outcome, StopHandle, Target};
use crate::plan::{Capture, Probe};

mod abi;
pub(crate) mod addresses;
mod armed;
mod breakpoint;
mod load;
mod sigurg;

use sigurg::SigurgLib;
mod relay;
mod signal;
mod sse;
pub mod support;
mod warmup;

pub use load::{unavailable_reason, NotArmed, Verified};

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
use skel::ProbeSkel;

/// Recipe slots beyond the initial probes, for probes added while the
/// program runs (each slot is one `struct lp_recipe`, about 12 KiB), when
/// [`Options::live_changes`] says they may be.
const SPARE_SLOTS: u32 = 1024;

/// How often the ring buffer is drained.
const POLL_INTERVAL: Duration = Duration::from_millis(2);
/// Drains between two reads of the lost-records counter (about 100 ms).
const DROPS_EVERY: u32 = 50;

/// Settings of the eBPF backend, resolved by the caller before the run.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Bytes of the ring buffer (a power-of-two multiple of the page
    /// size; small ones let tests overflow it); `None`: 16 MiB.
    pub ringbuf_bytes: Option<u32>,
    /// Arm entry probes only (for the benchmark: the entry probe's cost
    /// alone).
    pub entry_only: bool,
    /// Probes may be added while the program runs (the DAP server): the
    /// maps keep room for them. Otherwise (the command line) they are
    /// sized for the probes given to `run`, which loads faster.
    pub live_changes: bool,
}

#[derive(Default)]
pub struct EbpfBackend {
    options: Options,
    preload: Option<load::Preload>,
}

impl EbpfBackend {
    pub fn new(options: Options) -> EbpfBackend {
        EbpfBackend {
            options,
            preload: None,
        }
    }

    /// Starts loading the BPF program on another thread now, so that the
    /// kernel verifies it while the caller reads the executable and plans
    /// the probes of a trace of `program`; `run` takes it (or loads again
    /// if its maps are too small for the probes, or it lacks a program
    /// they need).
    pub fn preloading(options: Options, program: &Path) -> EbpfBackend {
        let preload = load::Preload::start(options.ringbuf_bytes, program.to_path_buf());
        warmup::start();
        EbpfBackend {
            options,
            preload: Some(preload),
        }
    }
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
            abi::recipe(p)?;
        }
        let live = self.options.live_changes;
        let spare = if live { SPARE_SLOTS } else { 0 };
        let capacity = (probes.len() as u32).saturating_add(spare);
        let sizes = load::Sizes {
            slots: capacity,
            ringbuf_bytes: self.options.ringbuf_bytes,
            xmm: live
                || probes.iter().any(|p| {
                    p.recipe
                        .captures
                        .iter()
                        .any(|c| matches!(c, Capture::Xmm(_)))
                }),
            pairing: live || probes.iter().any(|p| p.recipe.pairing.is_some()),
            returns: live || probes.iter().any(|p| p.returns_at.is_some()),
        };
        let loaded = match self.preload.take() {
            Some(preload) => match preload.take(&sizes) {
                Some(loaded) => loaded,
                None => load::load_owned(sizes)?,
            },
            None => {
                // The kernel's first wait to arm, beside the verifier's.
                warmup::start();
                load::load_owned(sizes)?
            }
        };
        let mut run = Run::new(&loaded.skel, stop)?;
        let outcome = match target {
            Target::Launch(l) => {
                let program = launch::resolve_program(&l.program)?;
                // A C, C++ or Rust program gets a SIGURG handler, so that
                // its floats can be read as a Go program's are.
                let preload = if sigurg::wanted(&program) {
                    Some(SigurgLib::create()?)
                } else {
                    None
                };
                // A position-independent program's run-time addresses,
                // which hardware breakpoints need, are known only once
                // it is mapped: such a program is armed when the library
                // stops it there, before its own code runs.
                let at_start = preload.is_some()
                    && sizes.xmm
                    && !breakpoint::position_dependent(&program).unwrap_or(true);
                let extras = match &preload {
                    Some(p) => launch::Extras {
                        env: p.env(launch::launch_env(l, "LD_PRELOAD"), at_start),
                        keep_fd: Some(p.fd()),
                    },
                    None => launch::Extras::default(),
                };
                // With stdio given (the DAP server) the output goes to the
                // sink; otherwise to logprobe's own stdout and stderr.
                let child = if l.stdio.is_some() {
                    let (captured, ends) = Relay::capture()?;
                    run.relay = captured;
                    // Our copies of the write ends close once it runs.
                    launch::spawn_stopped(l, Some(&ends), &extras)?
                } else {
                    let (diverted, saved) = Relay::divert()?;
                    let child = launch::spawn_stopped(l, None, &extras);
                    Relay::restore(saved);
                    let child = child?;
                    run.relay = diverted;
                    child
                };
                let mut armed = Armed::new(
                    capacity,
                    child.as_raw(),
                    program,
                    self.options.entry_only,
                    false,
                );
                armed.preloaded(preload);
                run.launched(child, armed, probes, sink, at_start)?
            }
            Target::Attach(pid) => {
                let exe = check_attachable(*pid)?;
                let armed = Armed::new(capacity, *pid, exe, self.options.entry_only, true);
                run.attached(armed, probes, sink)?
            }
        };
        run.report_losses(sink);
        Ok(outcome)
    }
}

/// One run of the loaded program: the ring buffer and what it delivered.
struct Run<'a> {
    skel: &'a ProbeSkel<'static>,
    stop: &'a StopHandle,
    ring: RingBuffer<'a>,
    /// Records read from the ring, not yet handed on.
    items: Rc<RefCell<VecDeque<Item>>>,
    malformed: Rc<Cell<u64>>,
    relay: Relay,
    /// Hits handed on.
    seen: u64,
    /// Drains since the lost-records counter was last read, and what it
    /// said then: the sink is told when it grows, about every 100 ms, so a
    /// face can show it while the program runs.
    drains: u32,
    dropped: u64,
    /// The kernel's count of hits over a rate limit when the slots'
    /// counts were last read.
    limited: u64,
}

impl<'a> Run<'a> {
    fn new(skel: &'a ProbeSkel<'static>, stop: &'a StopHandle) -> Result<Run<'a>> {
        let items: Rc<RefCell<VecDeque<Item>>> = Rc::default();
        let malformed = Rc::new(Cell::new(0u64));
        let mut builder = RingBufferBuilder::new();
        {
            let items = items.clone();
            let malformed = malformed.clone();
            builder
                .add(&skel.maps.events, move |data: &[u8]| {
                    match abi::parse_item(data) {
                        Some(item) => items.borrow_mut().push_back(item),
                        None => malformed.set(malformed.get() + 1),
                    }
                    0
                })
                .context("setting up the ring buffer")?;
        }
        let ring = builder.build().context("setting up the ring buffer")?;
        Ok(Run {
            skel,
            stop,
            ring,
            items,
            malformed,
            relay: Relay::default(),
            seen: 0,
            drains: 0,
            dropped: 0,
            limited: 0,
        })
    }

    /// Arms `probes` in the stopped `child` (`at_start`: once the child,
    /// let run, stops itself again with its executable mapped), lets it
    /// run to its end (or until a stop request, which is forwarded as
    /// SIGTERM).
    fn launched(
        &mut self,
        child: Pid,
        mut armed: Armed,
        probes: &[Probe],
        sink: &mut dyn HitSink,
        at_start: bool,
    ) -> Result<Outcome> {
        let ready = match at_start {
            false => armed
                .add(self.skel, probes.to_vec())
                .and_then(|_| self.relay_writes(child.as_raw())),
            true => self.relay_writes(child.as_raw()).and_then(|links| {
                started(child)?;
                armed.started();
                armed.add(self.skel, probes.to_vec())?;
                Ok(links)
            }),
        };
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
        armed.started();
        let mut forwarded = false;
        let mut run = || -> Result<Outcome> {
            loop {
                self.drain(sink, &mut armed)?;
                if let Some(o) = reap(child)? {
                    return Ok(o);
                }
                self.apply_changes(sink, &mut armed)?;
                if self.stop.requested() && !forwarded {
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
        // The program is gone: nothing more can hit. What it reported is
        // read before the links go (their removal waits for the kernel).
        self.drain(sink, &mut armed)?;
        self.report_limited(sink, &mut armed);
        self.report_lost(sink, &mut armed);
        self.relay.finish(sink);
        drop(write_links);
        armed.unlink_all();
        Ok(outcome)
    }

    /// Arms `probes` in the running process and reads its hits until a
    /// stop request (then the probes are removed and it goes on running)
    /// or its end (an error).
    fn attached(
        &mut self,
        mut armed: Armed,
        probes: &[Probe],
        sink: &mut dyn HitSink,
    ) -> Result<Outcome> {
        let pid = armed.pid;
        armed.add(self.skel, probes.to_vec())?;
        let ids: Vec<u32> = probes.iter().map(|p| p.id).collect();
        sink.armed(pid, &ids);
        let mut gone = false;
        while !self.stop.requested() {
            self.drain(sink, &mut armed)?;
            if !alive(pid) {
                gone = true;
                break;
            }
            self.apply_changes(sink, &mut armed)?;
            std::thread::sleep(POLL_INTERVAL);
        }
        armed.unlink_all();
        self.drain(sink, &mut armed)?;
        self.report_limited(sink, &mut armed);
        self.report_lost(sink, &mut armed);
        if gone {
            self.report_losses(sink);
            bail!("process {pid} exited during the trace");
        }
        Ok(Outcome::Detached)
    }

    /// Hands on everything in the ring. Hits name their probe by slot;
    /// `armed` turns that back into the probe id (a hit on a slot freed
    /// since cannot happen: slots are freed only after a drain, see
    /// `Armed::relink`).
    fn drain(&mut self, sink: &mut dyn HitSink, armed: &mut Armed) -> Result<()> {
        self.drains += 1;
        if self.drains >= DROPS_EVERY {
            self.drains = 0;
            let total = self.counter(abi::COUNT_DROPS).unwrap_or(self.dropped);
            if total > self.dropped {
                self.dropped = total;
                sink.dropped(total);
                self.report_lost(sink, armed);
            }
            self.report_limited(sink, armed);
        }
        self.ring.consume().context("reading the ring buffer")?;
        loop {
            let next = self.items.borrow_mut().pop_front();
            match next {
                None => break,
                Some(Item::Hit(mut h)) => {
                    self.seen += 1;
                    if let Some(id) = armed.probe_of(h.probe) {
                        armed.fix_xmm(h.probe, &mut h);
                        h.probe = id;
                        sink.hit(h);
                    }
                }
                Some(Item::Write { fd, bytes }) => {
                    sink.flush();
                    self.relay.claim(fd, bytes, sink);
                }
            }
        }
        sink.flush();
        self.relay.end_cycle(sink);
        Ok(())
    }

    /// Applies the queued probe changes (after draining what the removed
    /// probes reported), then tells the sink which probes it armed.
    fn apply_changes(&mut self, sink: &mut dyn HitSink, armed: &mut Armed) -> Result<()> {
        let changes = self.stop.take_changes();
        if changes.is_empty() || self.stop.requested() {
            return Ok(());
        }
        let mut added = Vec::new();
        for change in changes {
            if !change.remove.is_empty() {
                let pending = armed.unlink(&change.remove);
                // The removed probes' links are gone, and with them any
                // handler still running: what they reported is in the
                // ring now, and is read while their slots still name them
                // (and so are the hits their rate limits left out).
                self.drain(sink, armed)?;
                self.report_limited(sink, armed);
                self.report_lost(sink, armed);
                if let Err(e) = armed.relink(self.skel, pending) {
                    sink.notice(&format!("{e:#}"));
                }
            }
            let mut batch = Vec::new();
            for p in change.add {
                match abi::recipe(&p) {
                    Ok(_) => batch.push(p),
                    Err(e) => sink.notice(&format!("cannot arm probe {}: {e:#}", p.id)),
                }
            }
            match armed.add(self.skel, batch) {
                Ok(ids) => added.extend(ids),
                Err(e) => sink.notice(&format!("{e:#}")),
            }
        }
        sink.armed(armed.pid, &added);
        Ok(())
    }

    /// Marks the launched program's writes to the relayed descriptors in
    /// the ring buffer, through the raw system call tracepoints.
    fn relay_writes(&self, pid: i32) -> Result<Vec<Link>> {
        let fds = self.relay.fds();
        if fds == 0 {
            return Ok(Vec::new());
        }
        self.skel
            .maps
            .relay
            .update(
                &0u32.to_ne_bytes(),
                abi::bytes_of(&abi::relay(pid, fds)),
                MapFlags::ANY,
            )
            .context("configuring the output relay")?;
        let progs = &self.skel.progs;
        [
            (&progs.lp_enter_write, "sys_enter"),
            (&progs.lp_exit_write, "sys_exit"),
        ]
        .into_iter()
        .map(|(prog, tracepoint)| {
            prog.attach_raw_tracepoint(tracepoint).map_err(|e| {
                load::not_armed_here(anyhow!(
                    "cannot attach to the raw tracepoint {tracepoint} (to relay the program's output): {e}"
                ))
            })
        })
        .collect()
    }

    /// Tells the sink of the hits rate limits left out since it last
    /// did, per probe. The slots' counts are read only when the kernel's
    /// total of them grew (each slot's is counted before the total).
    fn report_limited(&mut self, sink: &mut dyn HitSink, armed: &mut Armed) {
        let total = self.counter(abi::COUNT_LIMITED).unwrap_or(self.limited);
        if total <= self.limited {
            return;
        }
        match armed.newly_limited(self.skel) {
            Ok(counts) => {
                self.limited = total;
                for (probe, count) in counts {
                    sink.limited(probe, count);
                }
            }
            Err(e) => sink.notice(&format!("{e:#}")),
        }
    }

    /// Tells the sink of the hits lost since it last did, per probe, once
    /// any were (the kernel counts each in its slot after the total, so a
    /// read between the two is made up by the next).
    fn report_lost(&mut self, sink: &mut dyn HitSink, armed: &mut Armed) {
        let total = self.counter(abi::COUNT_DROPS).unwrap_or(self.dropped);
        if total == 0 {
            return;
        }
        match armed.newly_lost(self.skel) {
            Ok(counts) => {
                for (probe, count) in counts {
                    sink.lost(probe, count);
                }
            }
            Err(e) => sink.notice(&format!("{e:#}")),
        }
    }

    /// Reports lost records, and any mismatch between what the kernel
    /// counted and what arrived.
    fn report_losses(&self, sink: &mut dyn HitSink) {
        let counters = (
            self.counter(abi::COUNT_HITS),
            self.counter(abi::COUNT_DROPS),
            self.counter(abi::COUNT_FILTERED),
            self.counter(abi::COUNT_LIMITED),
        );
        let (hits, drops, filtered, limited) = match counters {
            (Ok(h), Ok(d), Ok(f), Ok(l)) => (h, d, f, l),
            (Err(e), _, _, _) | (_, Err(e), _, _) | (_, _, Err(e), _) | (_, _, _, Err(e)) => {
                sink.notice(&format!("cannot read the kernel's hit counters: {e:#}"));
                return;
            }
        };
        let malformed = self.malformed.get();
        if drops > 0 {
            sink.dropped(drops);
            sink.notice(&format!("{drops} events dropped"));
        }
        if malformed > 0 {
            sink.notice(&format!("{malformed} malformed events ignored"));
        }
        if self.seen + drops + malformed + filtered + limited != hits {
            sink.notice(&format!(
                "the kernel counted {hits} probe hits but {} events arrived, {drops} were dropped, {filtered} filtered and {limited} over a rate limit",
                self.seen
            ));
        }
        sink.counted(hits, filtered);
    }

    /// The sum over CPUs of one counter.
    fn counter(&self, slot: u32) -> Result<u64> {
        let values = self
            .skel
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

/// Lets the `child`, held before its `execve`, run until it stops itself
/// (SIGSTOP) with its executable mapped.
fn started(child: Pid) -> Result<()> {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    kill(child, Signal::SIGCONT).context("continuing the program")?;
    loop {
        match waitpid(child, Some(WaitPidFlag::WUNTRACED)) {
            Ok(WaitStatus::Stopped(_, Signal::SIGSTOP)) => return Ok(()),
            Ok(WaitStatus::Stopped(..)) => {
                kill(child, Signal::SIGCONT).context("continuing the program")?
            }
            Ok(WaitStatus::Exited(_, code)) => {
                bail!("the program exited with status {code} before it started")
            }
            Ok(WaitStatus::Signaled(_, sig, _)) => {
                bail!("the program was killed by {sig} before it started")
            }
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => bail!("waiting for the program to start: {e}"),
        }
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
