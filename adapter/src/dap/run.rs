//! Running the program: the engine's trace on its own thread (the backend
//! and its `auto` fallback are the engine's), the program's stdout/stderr
//! piped into `output` events, every hit the engine shows sent as one
//! `output` event with the structured event as `data`; `process`,
//! `breakpoint`, `exited` and `terminated` events as the run goes.

use std::io::BufRead;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use serde_json::json;

use super::log;
use super::outgoing::Outgoing;
use super::protocol::{OutputBody, Source};
use super::session::{Logpoints, Program, Running};
use crate::trace::{Label, Outcome, Shown, Sink, Stdio, StopHandle, Target};

/// Starts the program's trace on its own thread.
pub fn start(out: Arc<Outgoing>, program: &Program, logpoints: Logpoints) -> Result<Running> {
    let mut target = program.target.clone();
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
    let stop = StopHandle::default();
    let thread_stop = stop.clone();
    let trace = program.trace.clone();
    let name = program.name.clone();
    let launched_pid = Arc::new(AtomicI32::new(0));
    let sink_pid = launched_pid.clone();
    let thread = std::thread::Builder::new()
        .name("backend".into())
        .spawn(move || {
            let mut sink = DapSink {
                out: out.clone(),
                logpoints,
                program: name,
                attached,
                started: false,
                launched_pid: sink_pid,
            };
            let result = trace.run(&target, &mut sink, &thread_stop);
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

/// Sends what the trace shows to the client.
struct DapSink {
    out: Arc<Outgoing>,
    logpoints: Logpoints,
    program: String,
    attached: bool,
    started: bool,
    launched_pid: Arc<AtomicI32>,
}

impl DapSink {
    /// A logprobe message as an `output` event of `category`, and in the log.
    fn say(&self, category: &'static str, message: &str) {
        log(message);
        self.out.output(OutputBody {
            category,
            output: format!("logprobe: {message}\n"),
            source: None,
            line: None,
            data: None,
        });
    }

    fn logpoint(&self, label: Label) -> Option<super::session::Logpoint> {
        self.logpoints.lock().ok()?.get(&label).cloned()
    }
}

impl Sink for DapSink {
    fn event(&mut self, shown: &Shown<'_>) {
        // A logpoint's hit links to the logpoint as the client named it; a
        // trace's to its function's declaration.
        let (source, line) = match shown.label.and_then(|l| self.logpoint(l)) {
            Some(lp) => (Some(lp.source), Some(lp.line)),
            None => (
                shown.event.file.as_deref().map(Source::from_path),
                shown.event.line,
            ),
        };
        self.out.output(OutputBody {
            category: "console",
            output: format!("{}\n", shown.text),
            source,
            line,
            data: serde_json::to_value(shown.event).ok(),
        });
    }

    /// Logprobe's own messages: an alarm the user should see.
    fn notice(&mut self, message: &str) {
        self.say("important", message);
    }

    /// `auto` falling back to ptrace: a console line (the user's own
    /// output view, as issue 5 asks), not an alarm.
    fn fallback(&mut self, message: &str) {
        self.say("console", message);
    }

    fn counted(&mut self, hits: u64, filtered: u64) {
        log(&format!(
            "{hits} probe hits, {filtered} not reported by the backend (conditions it checked)"
        ));
    }

    fn armed(&mut self, pid: i32, labels: &[Label]) {
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
        for &label in labels {
            let Some(lp) = self.logpoint(label) else {
                continue;
            };
            self.out.event(
                "breakpoint",
                Some(json!({
                    "reason": "changed",
                    "breakpoint": {
                        "id": label,
                        "verified": true,
                        "source": lp.source,
                        "line": lp.line,
                    }
                })),
            );
        }
    }
}
