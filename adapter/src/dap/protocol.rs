//! The DAP messages logprobe reads and writes, as serde types.
//!
//! Field names follow `debugAdapterProtocol.json` exactly (camelCase); every
//! optional field is left out when unset, never written as `null`. Requests
//! are read in two steps: the envelope ([`Request`]) with its arguments as
//! raw JSON, then the arguments of the one command being handled, typed, so
//! a malformed argument fails that request alone. The custom requests
//! `traceFunctions` and `functions` are documented in docs/protocol.md.

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use anyhow::Result;

use crate::config::{BackendChoice, Options};
use crate::trace::Volume;

/// Any incoming message; only requests are acted on.
#[derive(Debug, Deserialize)]
pub struct Incoming {
    pub seq: i64,
    #[serde(rename = "type")]
    pub kind: String,
    pub command: Option<String>,
    pub arguments: Option<Json>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Response<'a> {
    pub seq: i64,
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(rename = "request_seq")]
    pub request_seq: i64,
    pub success: bool,
    pub command: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<Json>,
}

/// Why a request failed: the stable `id` of the `Message` in an error
/// response's `body.error` (listed in docs/protocol.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorId {
    /// A body that is JSON with a `seq` and a `command` but no valid request.
    Malformed = 1,
    /// A request other than `initialize` or `disconnect` before `initialize`.
    BeforeInitialize = 2,
    /// A command logprobe does not handle.
    Unsupported = 3,
    /// Arguments missing or of the wrong type for the command.
    InvalidArguments = 4,
    /// A valid request that could not be carried out (the message says why).
    Failed = 5,
}

/// A request's failure: an [`ErrorId`] and the message shown to the user.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    pub id: ErrorId,
    pub message: String,
}

impl Failure {
    pub fn new(id: ErrorId, message: impl Into<String>) -> Failure {
        Failure {
            id,
            message: message.into(),
        }
    }

    /// The body of the error response: `{"error": Message}`. The message is
    /// the `format` itself; `{name}` in it has no variable to stand for, so
    /// clients show it as it is.
    pub fn body(&self) -> Json {
        serde_json::json!({
            "error": { "id": self.id as i64, "format": self.message }
        })
    }
}

#[derive(Debug, Serialize)]
pub struct Event<'a> {
    pub seq: i64,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub event: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<Json>,
}

/// `Capabilities` (only the fields logprobe sets).
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Capabilities {
    pub supports_configuration_done_request: bool,
    pub supports_conditional_breakpoints: bool,
    pub supports_hit_conditional_breakpoints: bool,
    pub supports_log_points: bool,
    pub supports_terminate_request: bool,
    pub support_terminate_debuggee: bool,
    pub supports_function_breakpoints: bool,
    pub supports_evaluate_for_hovers: bool,
    pub supports_step_back: bool,
    pub supports_set_variable: bool,
    pub supports_restart_request: bool,
    pub supports_exception_info_request: bool,
    pub supports_data_breakpoints: bool,
    pub supports_single_thread_execution_requests: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Source {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

impl Source {
    pub fn from_path(path: &str) -> Source {
        Source {
            name: path.rsplit('/').next().map(str::to_string),
            path: Some(path.to_string()),
        }
    }
}

/// `launch` arguments (logprobe's own; mirrored by the extension's package.json).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LaunchArguments {
    /// The executable; empty when `package` names what to build instead.
    #[serde(default)]
    pub program: String,
    /// A Go package to build (`.`, `./cmd/x`, an import path; relative to
    /// `cwd`) and launch instead of `program`; the binary is removed when
    /// the session ends.
    pub package: Option<String>,
    /// Build the package's test binary (`go test -c`; `package` defaults to
    /// `.`), `args` its flags (`-test.run`, `TestFoo`).
    #[serde(default)]
    pub test: bool,
    /// Build the package without `-gcflags=all=-N -l`.
    #[serde(default)]
    pub optimized: bool,
    /// More flags for building the package, as a shell splits them (as
    /// Delve's `buildFlags`).
    pub build_flags: Option<String>,
    #[serde(default)]
    pub args: Vec<String>,
    pub cwd: Option<String>,
    #[serde(default)]
    pub env: std::collections::BTreeMap<String, String>,
    #[serde(flatten)]
    pub common: CommonArguments,
}

/// `attach` arguments.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttachArguments {
    pub pid: i32,
    #[serde(flatten)]
    pub common: CommonArguments,
}

/// Options shared by launch and attach: the extension's package.json
/// `configurationAttributes` besides the program (and VS Code's own
/// `noDebug`). Each is honoured; a value of the wrong type or an unknown
/// backend fails the request with the reason.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommonArguments {
    /// `auto` (default: eBPF, else ptrace with a notice), `ebpf` or `ptrace`.
    pub backend: Option<BackendChoice>,
    /// Function regexes traced from the start.
    #[serde(default)]
    pub trace: Vec<String>,
    /// Longest string shown, in bytes.
    pub max_string_len: Option<u32>,
    /// Most elements of a slice, array or map shown.
    pub max_array_values: Option<u32>,
    /// Levels of pointers (and slice, map, interface contents) followed.
    pub max_depth: Option<u32>,
    /// Hits per second each function of a trace, and each logpoint line,
    /// may show; 0: no limit.
    pub rate_limit: Option<u32>,
    /// Hits per second all of them together may show; 0: no limit.
    pub total_rate_limit: Option<u32>,
    /// Frames of the call stack each hit carries (`--stack N`): in the
    /// output event's text and its `data.stack`.
    pub stack: Option<u32>,
    /// "Run Without Debugging": the program runs with no probes.
    #[serde(default)]
    pub no_debug: bool,
    /// `all` (default), `sample` or `summary`: which hits become console lines.
    pub console_volume: Option<String>,
    /// `sample`: lines per trace and second.
    pub console_lines_per_second: Option<u64>,
    /// Milliseconds between two `logprobe/hits` events; 0: none.
    pub hits_interval: Option<u64>,
}

impl CommonArguments {
    /// The options given, for `config::TraceConfig::resolve`.
    pub fn options(&self) -> Result<Options> {
        let volume = match &self.console_volume {
            Some(v) => Some(Volume::parse(v, self.console_lines_per_second)?),
            None => None,
        };
        Ok(Options {
            backend: self.backend,
            max_string_len: self.max_string_len,
            max_array_values: self.max_array_values,
            max_depth: self.max_depth,
            rate_limit: self.rate_limit,
            total_rate_limit: self.total_rate_limit,
            stack: self.stack,
            style: Default::default(),
            no_debug: self.no_debug,
            volume,
            live_changes: true,
        })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DisconnectArguments {
    pub terminate_debuggee: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetBreakpointsArguments {
    pub source: Source,
    pub breakpoints: Option<Vec<SourceBreakpoint>>,
    /// Deprecated form: lines only.
    pub lines: Option<Vec<u64>>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceBreakpoint {
    pub line: u64,
    pub column: Option<u64>,
    pub condition: Option<String>,
    pub hit_condition: Option<String>,
    pub log_message: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Breakpoint {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    pub verified: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// Why it is not verified: `pending` (armed later) or `failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

/// `traceFunctions` arguments (custom).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TraceFunctionsArguments {
    pub functions: Vec<TraceEntry>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TraceEntry {
    /// Functions whose names match this regular expression…
    pub regex: Option<String>,
    /// …or the function around this position (LSP, 0-based line).
    pub position: Option<lsp_types::TextDocumentPositionParams>,
    pub condition: Option<String>,
    pub hit_condition: Option<String>,
    pub log_message: Option<String>,
    /// Levels of callees traced too (`--follow-calls N`).
    #[serde(default)]
    pub follow_calls: u32,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TraceResult {
    pub verified: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub functions: Vec<FunctionInfo>,
    /// The trace's id in `logprobe/hits` and `setTraceState`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionInfo {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
}

/// `functions` arguments (custom).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionsArguments {
    /// An executable to list instead of the session's program (so a picker
    /// works before `launch`).
    pub program: Option<String>,
    pub filter: Option<String>,
    pub limit: Option<usize>,
}

/// `output` event body.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutputBody {
    pub category: &'static str,
    pub output: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Json>,
}

/// `setTraceState` arguments (custom).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetTraceStateArguments {
    pub traces: Vec<TraceState>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TraceState {
    pub id: String,
    /// `active`, `paused` or `removed`.
    pub state: String,
}

/// `setConsoleVolume` arguments (custom).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetConsoleVolumeArguments {
    /// `all`, `sample` or `summary`.
    pub volume: String,
    pub lines_per_second: Option<u64>,
}

/// `snapshot` arguments (custom).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotArguments {
    pub id: String,
    /// For a trace of several functions: which one.
    pub function: Option<String>,
}

/// The arguments of the requests about one thread: `stackTrace`,
/// `continue`, `next`, `stepIn`, `stepOut`, `pause`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadArguments {
    #[serde(default)]
    pub thread_id: i64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScopesArguments {
    pub frame_id: i64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VariablesArguments {
    pub variables_reference: i64,
}
