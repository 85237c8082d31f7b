//! One DAP session: its state (messages go out through [`Outgoing`]), and the single
//! `match` that dispatches every request, standard and custom.
//!
//! A request that fails gets an error response and the session goes on;
//! only the end of the client's stream or `disconnect` ends it. The probes
//! of every trace entry and logpoint live in the program's engine
//! [`Trace`], shared with the backend thread (see `run`), in groups, so
//! that a `setBreakpoints` or `traceFunctions` replaces its own groups and
//! nothing else.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, Result};
use serde::de::DeserializeOwned;
use serde_json::Value as Json;

use super::log;
use super::outgoing::Outgoing;
use super::protocol::{
    ErrorId, Failure, FunctionInfo, Incoming, Source, SourceBreakpoint, TraceEntry,
};
use crate::trace::{GroupId, Label, Prepared, StopHandle, Target, Trace};

/// A logpoint as the client set it, by its breakpoint id (the label of
/// its group in the trace).
#[derive(Debug, Clone)]
pub struct Logpoint {
    pub source: Source,
    pub line: u64,
}

/// Logpoints by breakpoint id, shared with the backend thread, which
/// reports them verified and sends their hits with their source.
pub type Logpoints = Arc<Mutex<HashMap<Label, Logpoint>>>;

/// A `traceFunctions` entry being traced: its group, and the functions it
/// matched, kept so that the same entry sent again keeps its group.
pub struct TracedEntry {
    pub entry: TraceEntry,
    pub group: GroupId,
    pub functions: Vec<FunctionInfo>,
}

/// A logpoint being traced: kept so that the same logpoint sent again
/// (same line, condition, hit condition, message) keeps its group and id.
pub struct SetLogpoint {
    pub breakpoint: SourceBreakpoint,
    pub group: GroupId,
    pub label: Label,
}

/// The program a launch or attach chose, and its trace.
pub struct Program {
    pub target: Target,
    pub trace: Trace,
    /// The executable's path, as the `process` event names it.
    pub name: String,
    /// The binary built from a Go package (DAP `package`), removed when
    /// the session (and with it this) goes.
    pub built: Option<crate::gobuild::Built>,
}

/// A backend running on its thread.
pub struct Running {
    pub stop: StopHandle,
    pub thread: std::thread::JoinHandle<()>,
    /// The launched program's pid once known (0 before; always 0 after attach).
    pub launched_pid: Arc<std::sync::atomic::AtomicI32>,
}

pub struct Session {
    pub out: Arc<Outgoing>,
    pub initialized: bool,
    pub program: Option<Program>,
    /// Logpoints per source path.
    pub logpoint_groups: HashMap<String, Vec<SetLogpoint>>,
    pub logpoints: Logpoints,
    /// `traceFunctions` entries, and the groups of the launch's `trace` list.
    pub traces: Vec<TracedEntry>,
    pub launch_traces: Vec<GroupId>,
    pub running: Option<Running>,
    /// The thread sending `logprobe/hits` and ending console seconds.
    pub live: Option<super::live::Live>,
    /// Milliseconds between two `logprobe/hits` events (0: none).
    pub hits_interval: u64,
    /// The latest hit the client asked to see, as a thread.
    pub snapshot: Option<super::snapshot::Snapshot>,
    pub configured: bool,
    pub next_breakpoint: i64,
    ended: bool,
    /// Events to send after the current response.
    after: Vec<(&'static str, Option<Json>)>,
}

impl Session {
    pub fn new(out: Arc<Outgoing>) -> Session {
        Session {
            out,
            initialized: false,
            program: None,
            logpoint_groups: HashMap::new(),
            logpoints: Arc::default(),
            traces: Vec::new(),
            launch_traces: Vec::new(),
            running: None,
            live: None,
            hits_interval: super::live::DEFAULT_INTERVAL_MS,
            snapshot: None,
            configured: false,
            next_breakpoint: 1,
            ended: false,
            after: Vec::new(),
        }
    }

    pub fn ended(&self) -> bool {
        self.ended
    }

    pub fn end(&mut self) {
        self.ended = true;
    }

    /// Queues an event to go out right after the response being built.
    pub fn then_send(&mut self, event: &'static str, body: Option<Json>) {
        self.after.push((event, body));
    }

    /// Handles one request: exactly one response, then any queued events.
    pub fn handle(&mut self, req: Incoming) {
        let command = req.command.clone().unwrap_or_default();
        let result = self.dispatch(&command, &req);
        if let Err(e) = &result {
            log(&format!("{command} failed: {e:#}"));
        }
        let result = result.map_err(|e| {
            let id = e
                .downcast_ref::<Failure>()
                .map_or(ErrorId::Failed, |f| f.id);
            Failure::new(id, format!("{e:#}"))
        });
        self.out.respond(req.seq, &command, result);
        for (event, body) in std::mem::take(&mut self.after) {
            self.out.event(event, body);
        }
    }

    fn dispatch(&mut self, command: &str, req: &Incoming) -> Result<Option<Json>> {
        if command != "initialize" && !self.initialized && command != "disconnect" {
            bail!(Failure::new(
                ErrorId::BeforeInitialize,
                format!("'{command}' before 'initialize'")
            ));
        }
        match command {
            "initialize" => self.initialize(),
            "launch" => self.launch(arguments(req)?),
            "attach" => self.attach(arguments(req)?),
            "configurationDone" => self.configuration_done(),
            "setBreakpoints" => self.set_breakpoints(arguments(req)?),
            "setExceptionBreakpoints" => Ok(Some(serde_json::json!({ "breakpoints": [] }))),
            "traceFunctions" => self.trace_functions(arguments(req)?),
            "functions" => self.functions(arguments(req)?),
            "threads" => self.threads(),
            "setTraceState" => self.set_trace_state(arguments(req)?),
            "setConsoleVolume" => self.set_console_volume(arguments(req)?),
            "snapshot" => self.snapshot(arguments(req)?),
            "stackTrace" => self.stack_trace(arguments(req)?),
            "scopes" => self.scopes(arguments(req)?),
            "variables" => self.variables(arguments(req)?),
            "continue" => self.resume_thread(arguments(req)?),
            "next" | "stepIn" | "stepOut" => self.step(arguments(req)?),
            "pause" => self.pause(arguments(req)?),
            "disconnect" => self.disconnect(arguments(req)?),
            "terminate" => self.terminate(),
            "" => bail!(Failure::new(
                ErrorId::Malformed,
                "request without a command"
            )),
            other => bail!(Failure::new(
                ErrorId::Unsupported,
                format!("unsupported request '{other}': logprobe traces without stopping")
            )),
        }
    }

    /// The program's trace, once a program was chosen.
    pub fn trace(&self) -> Result<&Trace> {
        self.program
            .as_ref()
            .map(|p| &p.trace)
            .ok_or_else(|| anyhow!("no program yet: send 'launch' or 'attach' first"))
    }

    /// Replaces groups `old` by `new` in the trace (and the running
    /// program). Returns the new group ids.
    pub fn replace(&mut self, old: &[GroupId], new: Vec<Prepared>) -> Result<Vec<GroupId>> {
        Ok(self.trace()?.replace(old, new))
    }

    /// Stops the backend (detaching or ending the program) and waits for it.
    pub fn stop_backend(&mut self) {
        if let Some(r) = self.running.take() {
            r.stop.request();
            // A launched program that ignores SIGTERM is killed after a grace
            // period, so a disconnect always ends; it is logprobe's own child.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
            while !r.thread.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            let pid = r.launched_pid.load(Ordering::SeqCst);
            if !r.thread.is_finished() && pid > 0 {
                log(&format!("program {pid} ignored SIGTERM; killing it"));
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            if r.thread.join().is_err() {
                log("the backend thread panicked");
            }
        }
    }

    /// The client went away: leave nothing behind.
    pub fn shutdown(&mut self) {
        self.stop_backend();
        if let Some(live) = self.live.take() {
            live.stop();
        }
    }
}

/// The typed arguments of a request; malformed ones fail that request.
fn arguments<T: DeserializeOwned>(req: &Incoming) -> Result<T> {
    let args = match &req.arguments {
        None | Some(Json::Null) => Json::Object(Default::default()),
        Some(v) => v.clone(),
    };
    serde_json::from_value(args).map_err(|e| {
        anyhow!(Failure::new(
            ErrorId::InvalidArguments,
            format!(
                "invalid arguments for '{}': {e}",
                req.command.as_deref().unwrap_or("")
            )
        ))
    })
}
