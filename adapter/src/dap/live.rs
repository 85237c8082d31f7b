//! While the program runs: the `logprobe/hits` event, at most every
//! `hitsInterval` milliseconds, with the figures of the traces and
//! logpoints that changed; the console volume's end-of-second lines; and
//! the custom requests `setTraceState` (pause, resume, remove) and
//! `setConsoleVolume` (docs/protocol.md).
//!
//! One thread per session ticks; the engine counts, this module only asks
//! it what changed and sends that. A trace's id is `t` and its group's
//! number, a logpoint's `b` and its breakpoint id.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use serde_json::{json, Value as Json};

use super::log;
use super::outgoing::Outgoing;
use super::protocol::{OutputBody, SetConsoleVolumeArguments, SetTraceStateArguments, Source};
use super::session::Session;
use crate::trace::{GroupId, Label, Trace, Volume};

/// The event's name.
pub const HITS_EVENT: &str = "logprobe/hits";
/// Milliseconds between two events when the client names none: none are
/// sent, so a client that does not know the event is not sent it.
pub const DEFAULT_INTERVAL_MS: u64 = 0;
/// The shortest interval a client may ask for.
pub const MIN_INTERVAL_MS: u64 = 100;
/// How often the ticking thread wakes to see what is due.
const NAP: Duration = Duration::from_millis(50);

/// The id of a trace's group.
pub fn trace_id(group: GroupId) -> String {
    format!("t{group}")
}

/// The id of a group as the protocol names it.
pub fn id_of(group: GroupId, label: Option<Label>) -> String {
    match label {
        Some(l) => format!("b{l}"),
        None => trace_id(group),
    }
}

/// The session's ticking thread.
pub struct Live {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl Live {
    /// Starts ticking for `trace`: an event every `interval_ms` (none if
    /// 0) and the console volume's lines at the end of every second.
    pub fn start(out: Arc<Outgoing>, trace: Trace, interval_ms: u64) -> Result<Live> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let interval = Duration::from_millis(interval_ms);
        let thread = std::thread::Builder::new()
            .name("live".into())
            .spawn(move || {
                let mut second = Instant::now();
                let mut reported = Instant::now();
                while !stopping.load(Ordering::SeqCst) {
                    // Short naps, so that stopping never waits for a long interval.
                    std::thread::sleep(NAP);
                    // Nothing is reported while the client's queue is over
                    // budget: the changes add up in the engine meanwhile.
                    if interval_ms > 0 && reported.elapsed() >= interval && !out.congested() {
                        reported = Instant::now();
                        send_report(&out, &trace);
                    }
                    if second.elapsed() >= Duration::from_secs(1) {
                        second = Instant::now();
                        end_second(&out, &trace);
                    }
                }
                // What changed since the last tick, so the final counts
                // are the true ones.
                if interval_ms > 0 {
                    send_report(&out, &trace);
                }
            })
            .map_err(|e| anyhow!("starting the live figures thread: {e}"))?;
        Ok(Live { stop, thread })
    }

    /// Stops ticking, after one last event.
    pub fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        if self.thread.join().is_err() {
            log("the live figures thread panicked");
        }
    }
}

/// One `logprobe/hits` event, if anything changed.
fn send_report(out: &Outgoing, trace: &Trace) {
    let report = trace.report_now();
    if report.groups.is_empty() && report.removed.is_empty() {
        return;
    }
    let traces: Vec<Json> = report
        .groups
        .into_iter()
        .map(|(group, label, mut entry)| {
            entry["id"] = json!(id_of(group, label));
            if let Some(l) = label {
                entry["breakpointId"] = json!(l);
            }
            entry
        })
        .collect();
    let removed: Vec<String> = report
        .removed
        .into_iter()
        .map(|(group, label)| id_of(group, label))
        .collect();
    let mut body = json!({
        "traces": traces,
        "dropped": report.dropped,
        "limited": report.limited,
        "notSent": out.not_sent(),
    });
    if !removed.is_empty() {
        body["removed"] = json!(removed);
    }
    out.event(HITS_EVENT, Some(body));
}

/// The console volume's lines for the second that ended.
fn end_second(out: &Outgoing, trace: &Trace) {
    for end in trace.end_second() {
        out.output(OutputBody {
            category: "console",
            output: format!("{}\n", end.text),
            source: end.file.as_deref().map(Source::from_path),
            line: end.line,
            data: Some(json!({
                "kind": "omitted",
                "trace": id_of(end.group, end.label),
                "omitted": end.omitted,
                "hits": end.hits,
            })),
        });
    }
}

impl Session {
    /// The group a protocol id names.
    pub(super) fn group_id(&self, id: &str) -> Result<GroupId> {
        let number = |rest: &str| rest.parse::<u64>().ok();
        let found = match (id.get(..1), id.get(1..).and_then(number)) {
            (Some("t"), Some(g)) => self
                .traces
                .iter()
                .map(|t| t.group)
                .chain(self.launch_traces.iter().copied())
                .find(|&x| x == g),
            (Some("b"), Some(label)) => self
                .logpoint_groups
                .values()
                .flatten()
                .find(|l| l.label == label)
                .map(|l| l.group),
            _ => None,
        };
        found.ok_or_else(|| anyhow!("no trace '{id}'"))
    }

    /// Removes the trace or logpoint `id` names, as if the client had
    /// sent its list without it.
    fn remove_trace(&mut self, id: &str, group: GroupId) -> Result<()> {
        self.traces.retain(|t| t.group != group);
        self.launch_traces.retain(|&g| g != group);
        let mut labels = Vec::new();
        for list in self.logpoint_groups.values_mut() {
            list.retain(|l| {
                let keep = l.group != group;
                if !keep {
                    labels.push(l.label);
                }
                keep
            });
        }
        if let Ok(mut l) = self.logpoints.lock() {
            for label in labels {
                l.remove(&label);
            }
        }
        self.replace(&[group], Vec::new())?;
        log(&format!("{id} removed"));
        Ok(())
    }

    pub(super) fn set_trace_state(&mut self, args: SetTraceStateArguments) -> Result<Option<Json>> {
        let mut answers = Vec::new();
        for wanted in args.traces {
            let result = match self.group_id(&wanted.id) {
                Err(e) => Err(e),
                Ok(group) => match wanted.state.as_str() {
                    "paused" => self.trace()?.pause(group).map(|_| "paused"),
                    "active" => self.trace()?.resume(group).map(|_| "active"),
                    "removed" => self.remove_trace(&wanted.id, group).map(|_| "removed"),
                    other => Err(anyhow!(
                        "unknown state '{other}' (use 'active', 'paused' or 'removed')"
                    )),
                },
            };
            answers.push(match result {
                Ok(state) => json!({ "id": wanted.id, "state": state }),
                Err(e) => json!({ "id": wanted.id, "message": format!("{e:#}") }),
            });
        }
        Ok(Some(json!({ "traces": answers })))
    }

    pub(super) fn set_console_volume(
        &mut self,
        args: SetConsoleVolumeArguments,
    ) -> Result<Option<Json>> {
        let volume = Volume::parse(&args.volume, args.lines_per_second)?;
        self.trace()?.set_volume(volume);
        Ok(None)
    }

    /// Starts the live figures once the program runs.
    pub(super) fn start_live(&mut self) -> Result<()> {
        let trace = self.trace()?.clone();
        self.live = Some(Live::start(self.out.clone(), trace, self.hits_interval)?);
        Ok(())
    }
}
