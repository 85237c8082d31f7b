//! Running a trace: the backend chosen once (`auto`: eBPF where it loads
//! and its probes attach, else ptrace with a notice that says why), every
//! hit decoded, judged by its group and written as text, and everything a
//! face shows handed to its [`Sink`].

use std::path::Path;

use anyhow::Result;

use super::event::{decode, Event};
use super::group::{GroupId, Label};
use super::plain;
use super::render::{self, Durations};
use super::table::Trace;
use crate::backend::ebpf::{self, EbpfBackend};
use crate::backend::ptrace::PtraceBackend;
use crate::backend::{Backend, HitSink, Outcome, RawHit, StopHandle, Target};
use crate::config::{BackendChoice, TraceConfig};
use crate::plan::Probe;

/// The eBPF program, loading on another thread while the face reads the
/// executable and plans the probes (the kernel's verifier and the DWARF
/// reader then overlap); empty when the trace will not use eBPF.
#[derive(Default)]
pub struct Preload(Option<EbpfBackend>);

impl Preload {
    /// Starts loading the eBPF program now, for a trace of `program`, if
    /// `config` may use it.
    pub fn start(config: &TraceConfig, program: &Path) -> Preload {
        let may_use = config.backend != BackendChoice::Ptrace && !config.no_debug;
        Preload(may_use.then(|| EbpfBackend::preloading(ebpf_options(config), program)))
    }
}

/// The eBPF backend's options, from the resolved configuration.
fn ebpf_options(config: &TraceConfig) -> ebpf::Options {
    ebpf::Options {
        ringbuf_bytes: config.ebpf.ringbuf_bytes,
        entry_only: config.ebpf.entry_only,
        live_changes: config.ebpf.live_changes,
    }
}

/// A hit to show.
#[derive(Debug, Clone, Copy)]
pub struct Shown<'a> {
    pub group: GroupId,
    /// The group's label, if the face gave it one.
    pub label: Option<Label>,
    pub event: &'a Event,
    /// Its line: the log message, or the event's line in the trace's style
    /// (without the trailing newline).
    pub text: &'a str,
}

/// What a face does with what a trace produces.
pub trait Sink {
    /// A hit to show.
    fn event(&mut self, shown: &Shown<'_>);
    /// A one-line message for the user: a warning, a lost event count, a
    /// condition that cannot be evaluated.
    fn notice(&mut self, message: &str);
    /// `auto` chose ptrace, and why; an information, not an alarm.
    fn fallback(&mut self, message: &str) {
        self.notice(message);
    }
    /// The program `pid` runs; the groups labelled `labels` had their
    /// probes armed whole (each group once). Called after the initial
    /// probes are armed, before a launched program runs, and after each
    /// change.
    fn armed(&mut self, _pid: i32, _labels: &[Label]) {}
    /// The end of a batch of events: a sink may hold them back until then.
    fn flush(&mut self) {}
    /// At the end: how many probe hits there were, and how many of them
    /// the backend did not report (rejected by a probe's filter).
    fn counted(&mut self, _hits: u64, _filtered: u64) {}
    /// The launched program wrote `bytes` to its stdout (`fd` 1) or stderr
    /// (2), after the events given before and before those given after.
    /// Called only when the launch gave `Launch::stdio`.
    fn output(&mut self, fd: i32, bytes: &[u8]);
}

impl Trace {
    /// Runs `target` with every probe of the trace armed (and those added
    /// or removed meanwhile), until it ends or `stop` is requested.
    pub fn run(&self, target: &Target, sink: &mut dyn Sink, stop: &StopHandle) -> Result<Outcome> {
        if self.config.no_debug {
            return plain::run(target, sink, stop);
        }
        let probes = {
            let mut t = self.lock();
            t.running = Some(stop.clone());
            t.all_probes()
        };
        let mut hits = Hits {
            trace: self,
            sink,
            batched: false,
            durations: self.config.style.durations.then(Durations::default),
        };
        let limited_before = self.lock().limited;
        let outcome = hits.backend(target, &probes, stop);
        hits.sink.flush();
        let limited = {
            let mut t = self.lock();
            t.running = None;
            t.limited - limited_before
        };
        if limited > 0 {
            hits.sink.notice(&format!(
                "{limited} hits over the rate limit were not shown"
            ));
        }
        outcome
    }
}

/// The backends' sink: decodes, judges and writes hits for a face's sink.
struct Hits<'t, 's> {
    trace: &'t Trace,
    sink: &'s mut dyn Sink,
    /// Whether the backend reports hits in batches (eBPF) and says when a
    /// batch ends; else each hit is flushed on its own (ptrace, which
    /// holds the thread stopped meanwhile, so lines interleave exactly
    /// with the program's own output).
    batched: bool,
    durations: Option<Durations>,
}

impl Hits<'_, '_> {
    /// Runs the chosen backend; `auto` falls back to ptrace when eBPF
    /// cannot be used here, or cannot arm the probes before the program
    /// has run.
    fn backend(&mut self, target: &Target, probes: &[Probe], stop: &StopHandle) -> Result<Outcome> {
        let choice = self.trace.config.backend;
        if choice == BackendChoice::Ptrace {
            return PtraceBackend.run(target, probes, self, stop);
        }
        let mut ebpf = self.ebpf_backend();
        if choice == BackendChoice::Ebpf {
            self.batched = true;
            return ebpf.run(target, probes, self, stop);
        }
        if let Some(why) = ebpf::unavailable_reason(probes) {
            return self.ptrace_because(&why, target, probes, stop);
        }
        self.batched = true;
        match ebpf.run(target, probes, self, stop) {
            Err(e) => match e.downcast_ref::<ebpf::NotArmed>() {
                // Nothing was armed and the program has not run: ptrace can.
                Some(why) => {
                    let why = why.to_string();
                    self.ptrace_because(&why, target, probes, stop)
                }
                None => Err(e),
            },
            ok => ok,
        }
    }

    /// The preloaded eBPF backend, or a new one.
    fn ebpf_backend(&self) -> EbpfBackend {
        let preloaded = match self.trace.preload.lock() {
            Ok(mut p) => p.0.take(),
            Err(_) => None,
        };
        preloaded.unwrap_or_else(|| EbpfBackend::new(ebpf_options(&self.trace.config)))
    }

    fn ptrace_because(
        &mut self,
        why: &str,
        target: &Target,
        probes: &[Probe],
        stop: &StopHandle,
    ) -> Result<Outcome> {
        self.sink
            .fallback(&format!("using ptrace: eBPF is unavailable: {why}"));
        self.batched = false;
        PtraceBackend.run(target, probes, self, stop)
    }
}

impl HitSink for Hits<'_, '_> {
    fn hit(&mut self, hit: RawHit) {
        let ((gid, label), (kind, func, address), event, mut verdict, unknown) = {
            let mut guard = self.trace.lock();
            let t = &mut *guard;
            let volume = t.volume;
            let Some((gid, probe)) = t.probes.get(&hit.probe) else {
                return; // a probe removed a moment ago
            };
            let Some(group) = t.groups.get_mut(gid) else {
                return;
            };
            let mut event = decode(&self.trace.image, &mut group.decoding, probe, &hit);
            let who = event.goroutine.unwrap_or(hit.tid as u64 | 1 << 63);
            let verdict = group.judge((probe.kind, probe.func), &mut event, who, volume);
            // Without DWARF values are unknown.
            let unknown = !group.decoding.described(&self.trace.image);
            (
                (*gid, group.label),
                (probe.kind, probe.func, probe.address),
                event,
                verdict,
                unknown,
            )
        };
        if let Some(w) = verdict.warning.take() {
            self.sink.notice(&w);
        }
        if verdict.show {
            let style = self.trace.config.style;
            let text = match verdict.message.take() {
                Some(m) => render::message(&event, style, m),
                None => {
                    let duration = self.durations.as_mut().and_then(|d| d.observe(&event));
                    render::line(&event, style, unknown, duration)
                }
            };
            self.sink.event(&Shown {
                group: gid,
                label,
                event: &event,
                text: &text,
            });
            if !self.batched {
                self.sink.flush();
            }
        }
        // The figures keep the event: moved, after it was shown.
        if verdict.passed {
            if let Some(group) = self.trace.lock().groups.get_mut(&gid) {
                group.record(kind, func, address, event, &verdict);
            }
        }
    }

    fn dropped(&mut self, total: u64) {
        self.trace.set_dropped(total);
    }

    fn limited(&mut self, probe: u32, count: u64) {
        let mut guard = self.trace.lock();
        let t = &mut *guard;
        t.limited += count;
        if let Some(group) = t
            .probes
            .get(&probe)
            .and_then(|(gid, _)| t.groups.get_mut(gid))
        {
            group.figures.add_limited(count);
        }
    }

    fn lost(&mut self, probe: u32, count: u64) {
        let mut guard = self.trace.lock();
        let t = &mut *guard;
        if let Some(group) = t
            .probes
            .get(&probe)
            .and_then(|(gid, _)| t.groups.get_mut(gid))
        {
            group.figures.add_dropped(count);
        }
    }

    fn notice(&mut self, message: &str) {
        self.sink.notice(message);
    }

    fn armed(&mut self, pid: i32, ids: &[u32]) {
        let labels = self.trace.lock().arm(ids);
        self.sink.armed(pid, &labels);
    }

    fn flush(&mut self) {
        self.sink.flush();
    }

    fn counted(&mut self, hits: u64, filtered: u64) {
        self.sink.counted(hits, filtered);
    }

    fn output(&mut self, fd: i32, bytes: &[u8]) {
        // The events before it go first.
        self.sink.flush();
        self.sink.output(fd, bytes);
    }
}
