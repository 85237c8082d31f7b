//! The trace engine, one for both faces: `logprobe trace` (`cli`) and
//! `logprobe dap` (`dap`) parse their input, call these functions, and
//! print or send what comes back; neither reaches past them into the
//! backends or the decoder.
//!
//! * A [`Request`] says what to probe (functions by regex, the function
//!   around a source position, a source line) and what to show of each
//!   hit (a condition, a hit condition, a log message, returns or not).
//! * [`Trace::prepare`] turns it into a [`Prepared`] group: functions
//!   selected (`select`), probes planned with the condition compiled into
//!   their filters, decoding state. [`Trace::replace`] adds and removes
//!   groups, in the running program too.
//! * [`Trace::run`] runs the program (launched or attached, a [`Target`])
//!   under the backend the [`TraceConfig`](crate::config::TraceConfig)
//!   chose, falling back from `auto` in one place, and hands every hit it
//!   shows to a face's [`Sink`]: decoded (`event`), judged by its group's
//!   condition and hit condition (`group`), written as a line (`render`).
//!   With `noDebug` the program runs without probes (`plain`).

mod event;
mod figures;
mod group;
mod library;
mod live;
mod plain;
mod prepare;
mod render;
mod request;
mod run;
mod select;
mod table;
mod volume;

pub use event::{Event, EventKind, NamedValue, Stack, StackFrame};
pub use figures::{cut, show};
pub use group::{GroupId, Label};
pub(crate) use library::needed;
pub use live::{LatestHit, Report, SecondEnd};
pub use prepare::Prepared;
pub use render::format_duration;
pub use request::{Request, Select};
pub use run::{Preload, Shown, Sink};
pub use select::{compile_pattern, list};
pub use table::Trace;
pub use volume::Volume;

/// The decoded value tree events carry, for a face that presents it.
pub use crate::value::Value;

/// What the faces need of the backends' vocabulary: the program to run,
/// how it ended, and the handle that stops it.
pub use crate::backend::launch::resolve_program;
pub use crate::backend::{Launch, Outcome, Stdio, StopHandle, Target};
