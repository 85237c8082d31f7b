//! Running the program: the backend (eBPF, ptrace, or `auto`: eBPF where it
//! loads and attaches, else ptrace with a notice) on its own thread, the
//! program's stdout/stderr piped into `output` events, every hit decoded, filtered by
//! its group's condition and hit condition, and sent as one `output` event
//! with the structured event as `data`; `process`, `breakpoint`, `exited`
//! and `terminated` events as the run goes.

use std::io::BufRead;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};
use serde_json::json;

use super::log;
use super::protocol::{OutputBody, Source};
use super::session::{GroupKind, Outgoing, Running, Table};
use crate::backend::ebpf::{self, EbpfBackend};
use crate::backend::ptrace::PtraceBackend;
use crate::backend::{Backend, HitSink, Outcome, RawHit, Stdio, StopHandle, Target};
use crate::plan::{Probe, ProbeKind};
use crate::trace::{self, EventKind, Style};

/// Fails for a backend name that is not one of `ebpf`, `ptrace`, `auto`.
pub fn check_backend(name: &str) -> Result<()> {
    match name {
        "ebpf" | "ptrace" | "auto" => Ok(()),
        other => bail!("unknown backend '{other}' (use 'ebpf', 'ptrace' or 'auto')"),
    }
}

/// The eBPF backend's options in a session: probes come and go while the
/// program runs.
fn live_ebpf_options() -> ebpf::Options {
    ebpf::Options {
        live_changes: true,
        ..ebpf::Options::from_env()
    }
}

/// Runs the named backend; `auto` runs eBPF where it loads and its probes
/// attach, else ptrace, with a one-line notice that says why.
fn run_backend(
    name: &str,
    target: &Target,
    probes: &[Probe],
    sink: &mut Sink,
    stop: &StopHandle,
) -> Result<Outcome> {
    match name {
        "ptrace" => PtraceBackend.run(target, probes, sink, stop),
        "ebpf" => EbpfBackend::new(live_ebpf_options()).run(target, probes, sink, stop),
        "auto" => {
            if let Some(why) = ebpf::unavailable_reason(probes) {
                sink.fallback(&format!("using ptrace: eBPF is unavailable: {why}"));
                return PtraceBackend.run(target, probes, sink, stop);
            }
            match EbpfBackend::new(live_ebpf_options()).run(target, probes, sink, stop) {
                // Nothing was armed and the program has not run: ptrace can.
                Err(e) if e.downcast_ref::<ebpf::NotArmed>().is_some() => {
                    sink.fallback(&format!("using ptrace: eBPF is unavailable: {e:#}"));
                    PtraceBackend.run(target, probes, sink, stop)
                }
                other => other,
            }
        }
        other => bail!("unknown backend '{other}'"),
    }
}

/// Starts the backend thread with every probe of the table armed.
pub fn start(
    out: Arc<Outgoing>,
    table: Arc<Mutex<Table>>,
    target: &Target,
    backend: &str,
    program: &str,
) -> Result<Running> {
    let mut target = target.clone();
    let mut readers = Vec::new();
    if let Target::Launch(l) = &mut target {
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let null = std::fs::File::open("/dev/null").context("opening /dev/null")?;
        l.stdio = Some(Stdio {
            stdin: Arc::new(OwnedFd::from(null)),
            stdout: Arc::new(out_w),
            stderr: Arc::new(err_w),
        });
        readers.push(forward(out.clone(), out_r, "stdout"));
        readers.push(forward(out.clone(), err_r, "stderr"));
    }
    let attached = matches!(target, Target::Attach(_));
    let probes: Vec<_> = {
        let t = table
            .lock()
            .map_err(|_| anyhow::anyhow!("probe table poisoned"))?;
        let mut p: Vec<_> = t.probes.values().map(|(_, p)| p.clone()).collect();
        p.sort_by_key(|p| p.id);
        p
    };
    let stop = StopHandle::default();
    check_backend(backend)?;
    let backend = backend.to_string();
    let thread_stop = stop.clone();
    let program = program.to_string();
    let launched_pid = Arc::new(AtomicI32::new(0));
    let sink_pid = launched_pid.clone();
    let thread = std::thread::Builder::new()
        .name("backend".into())
        .spawn(move || {
            let mut sink = Sink {
                out: out.clone(),
                table,
                program,
                attached,
                started: false,
                launched_pid: sink_pid,
            };
            let result = run_backend(&backend, &target, &probes, &mut sink, &thread_stop);
            // Our copies of the pipes' write ends close here, so the readers
            // see the end of the program's output.
            drop(target);
            for r in readers {
                let _ = r.join();
            }
            match result {
                Ok(Outcome::Detached) => {}
                Ok(outcome) => {
                    out.event("exited", Some(json!({ "exitCode": outcome.exit_code() })))
                }
                Err(e) => {
                    log(&format!("the backend failed: {e:#}"));
                    out.output(OutputBody {
                        category: "important",
                        output: format!("logprobe: {e:#}\n"),
                        source: None,
                        line: None,
                        data: None,
                    });
                }
            }
            out.event("terminated", None);
        })
        .context("starting the backend thread")?;
    Ok(Running {
        stop,
        thread,
        launched_pid,
    })
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("creating a pipe")
}

/// Sends each line the program writes to `fd` as an `output` event.
fn forward(out: Arc<Outgoing>, fd: OwnedFd, category: &'static str) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut r = std::io::BufReader::new(std::fs::File::from(fd));
        let mut line = Vec::new();
        loop {
            line.clear();
            match r.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => out.output(OutputBody {
                    category,
                    output: String::from_utf8_lossy(&line).into_owned(),
                    source: None,
                    line: None,
                    data: None,
                }),
            }
        }
    })
}

struct Sink {
    out: Arc<Outgoing>,
    table: Arc<Mutex<Table>>,
    program: String,
    attached: bool,
    started: bool,
    launched_pid: Arc<AtomicI32>,
}

impl Sink {
    /// `auto` falling back to ptrace: a console line (the user's own
    /// output view, as issue 5 asks), not an alarm.
    fn fallback(&mut self, message: &str) {
        log(message);
        self.out.output(OutputBody {
            category: "console",
            output: format!("logprobe: {message}\n"),
            source: None,
            line: None,
            data: None,
        });
    }
}

impl HitSink for Sink {
    fn hit(&mut self, hit: RawHit) {
        let Ok(mut t) = self.table.lock() else {
            return;
        };
        let image = t.image.clone();
        let Some((gid, probe)) = t.probes.get(&hit.probe).map(|(g, p)| (*g, p.clone())) else {
            return; // a probe removed a moment ago
        };
        let Some(group) = t.groups.get_mut(&gid) else {
            return;
        };
        let mut event = trace::decode(&image, &mut group.decoding, &probe, &hit);
        let who = event.goroutine.unwrap_or(hit.tid as u64 | 1 << 63);
        let mut warning = None;
        let show = match probe.kind {
            ProbeKind::Entry | ProbeKind::Line => {
                let passes = match &group.condition {
                    None => true,
                    Some(c) => match super::expr::holds(c, &event.values) {
                        Ok(b) => b,
                        Err(e) => {
                            if !group.warned {
                                group.warned = true;
                                warning = Some(format!(
                                    "logprobe: condition cannot be evaluated at {}: {e:#}\n",
                                    event.function
                                ));
                            }
                            false
                        }
                    },
                };
                let show = passes && {
                    group.hits += 1;
                    group.hit_condition.is_none_or(|h| h.holds(group.hits))
                };
                if probe.kind == ProbeKind::Entry {
                    group.open_calls.entry(who).or_default().push(show);
                }
                show
            }
            ProbeKind::Return => {
                let opened = group.open_calls.get_mut(&who).and_then(|v| v.pop());
                let filtered = group.condition.is_some() || group.hit_condition.is_some();
                let shown = opened.unwrap_or(!filtered);
                // A log message replaces the call line; returns are not shown.
                shown && group.message.is_none()
            }
        };
        let mut output = None;
        if show {
            let (source, line) = match (&group.kind, &group.source) {
                (GroupKind::Logpoint { .. }, Some(s)) => (Some(s.clone()), group.line),
                _ => (event.file.as_deref().map(Source::from_path), event.line),
            };
            if event.kind == EventKind::Line {
                event.file = source.as_ref().and_then(|s| s.path.clone());
                event.line = line;
            }
            let text = match &group.message {
                Some(m) => m.render(&event),
                None => trace::render(
                    &event,
                    Style {
                        timestamps: false,
                        unknown_values: !image.has_dwarf,
                    },
                ),
            };
            output = Some(OutputBody {
                category: "console",
                output: format!("{text}\n"),
                source,
                line,
                data: serde_json::to_value(&event).ok(),
            });
        }
        drop(t);
        if let Some(w) = warning {
            self.out.output(OutputBody {
                category: "important",
                output: w,
                source: None,
                line: None,
                data: None,
            });
        }
        if let Some(o) = output {
            self.out.output(o);
        }
    }

    fn counted(&mut self, hits: u64, filtered: u64) {
        log(&format!(
            "{hits} probe hits, {filtered} not reported by the backend (conditions it checked)"
        ));
    }

    fn notice(&mut self, message: &str) {
        log(message);
        self.out.output(OutputBody {
            category: "important",
            output: format!("logprobe: {message}\n"),
            source: None,
            line: None,
            data: None,
        });
    }

    fn armed(&mut self, pid: i32, ids: &[u32]) {
        if !self.started {
            self.started = true;
            if !self.attached {
                self.launched_pid.store(pid, Ordering::SeqCst);
            }
            self.out.event(
                "process",
                Some(json!({
                    "name": self.program,
                    "systemProcessId": pid,
                    "isLocalProcess": true,
                    "startMethod": if self.attached { "attach" } else { "launch" },
                })),
            );
        }
        let mut events = Vec::new();
        if let Ok(mut t) = self.table.lock() {
            t.armed.extend(ids.iter().copied());
            let t = &mut *t;
            for group in t.groups.values_mut() {
                let GroupKind::Logpoint {
                    breakpoint,
                    reported,
                } = &mut group.kind
                else {
                    continue;
                };
                if *reported || !group.probe_ids.iter().all(|id| t.armed.contains(id)) {
                    continue;
                }
                *reported = true;
                events.push(json!({
                    "reason": "changed",
                    "breakpoint": {
                        "id": *breakpoint,
                        "verified": true,
                        "source": group.source,
                        "line": group.line,
                    }
                }));
            }
        }
        for e in events {
            self.out.event("breakpoint", Some(e));
        }
    }
}
