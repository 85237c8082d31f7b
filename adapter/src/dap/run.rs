//! Running the program: the engine's trace on its own thread (the backend
//! and its `auto` fallback are the engine's), every hit the engine shows
//! sent as one `output` event with the structured event as `data`, the
//! program's stdout/stderr (read by the backend, handed over in order with
//! the hits) as `stdout`/`stderr` `output` events; `process`,
//! `breakpoint`, `exited` and `terminated` events as the run goes.

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
    if let Target::Launch(l) = &mut target {
        // The backend reads the program's stdout and stderr and hands
        // them to the sink in order with the hits.
        let null = std::fs::File::open("/dev/null").context("opening /dev/null")?;
        l.stdio = Some(Stdio {
            stdin: Arc::new(OwnedFd::from(null)),
        });
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
                partial: Default::default(),
            };
            let result = trace.run(&target, &mut sink, &thread_stop);
            sink.finish_output();
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

/// Sends what the trace shows to the client.
struct DapSink {
    out: Arc<Outgoing>,
    logpoints: Logpoints,
    program: String,
    attached: bool,
    started: bool,
    launched_pid: Arc<AtomicI32>,
    /// Per stream (stdout, stderr): the start of a UTF-8 character whose
    /// other bytes the program has not written yet.
    partial: [Vec<u8>; 2],
}

impl DapSink {
    /// The program's bytes as `output` events, one per line; a write that
    /// does not end its line is sent as it is, without waiting for the rest
    /// (which may come after trace lines).
    fn program_output(&mut self, category: &'static str, text: &[u8]) {
        for line in text.split_inclusive(|&b| b == b'\n') {
            self.out.output(OutputBody {
                category,
                output: String::from_utf8_lossy(line).into_owned(),
                source: None,
                line: None,
                data: None,
            });
        }
    }

    /// The program has ended: what is left of a cut character, as it is.
    fn finish_output(&mut self) {
        for (i, category) in ["stdout", "stderr"].into_iter().enumerate() {
            let rest = std::mem::take(&mut self.partial[i]);
            if !rest.is_empty() {
                self.program_output(category, &rest);
            }
        }
    }

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

    fn output(&mut self, fd: i32, bytes: &[u8]) {
        let (i, category) = if fd == 2 {
            (1, "stderr")
        } else {
            (0, "stdout")
        };
        let mut text = std::mem::take(&mut self.partial[i]);
        text.extend_from_slice(bytes);
        let whole = text.len() - cut_character(&text);
        self.partial[i] = text.split_off(whole);
        self.program_output(category, &text);
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

/// How many bytes at the end of `text` are the start of a UTF-8 character
/// cut short (at most 3), to be completed by the next write.
fn cut_character(text: &[u8]) -> usize {
    let from = text.len().saturating_sub(3);
    (from..text.len())
        .find(|&i| {
            text[i] >= 0xc0
                && matches!(std::str::from_utf8(&text[i..]), Err(e) if e.error_len().is_none() && e.valid_up_to() == 0)
        })
        .map_or(0, |i| text.len() - i)
}

#[cfg(test)]
mod tests {
    use super::cut_character;

    #[test]
    fn a_cut_character_waits_for_its_other_bytes() {
        assert_eq!(cut_character(b"abc\n"), 0);
        assert_eq!(cut_character("é".as_bytes()), 0);
        assert_eq!(cut_character(&"aé".as_bytes()[..2]), 1);
        assert_eq!(cut_character(&"a€".as_bytes()[..3]), 2);
        assert_eq!(cut_character(b"a\xff"), 0);
    }
}
