//! A group: the probes of one request (a function trace, a logpoint),
//! with what decides whether and how each hit is shown: the condition,
//! the hit condition and its count, the log message, and which calls were
//! shown, so that a return is shown exactly when its call was.

use std::collections::HashMap;

use super::event::{Decoding, Event, EventKind};
use crate::expr::template::Context;
use crate::expr::{self, Expr, HitCondition, Template};
use crate::plan::ProbeKind;
use crate::value::Notation;

/// Names a group within a [`Trace`](super::Trace).
pub type GroupId = u64;

/// A face's own name for a group (the DAP server's: a logpoint's
/// breakpoint id), reported back with the group's events and when its
/// probes are armed.
pub type Label = u64;

pub(super) struct Group {
    /// The types the probes' value slots refer to, for decoding.
    pub(super) decoding: Decoding,
    pub(super) condition: Option<Expr>,
    pub(super) hit_condition: Option<HitCondition>,
    pub(super) message: Option<Template>,
    /// A logpoint's position as it was asked for: its events carry it.
    pub(super) at: Option<(String, u64)>,
    /// The probes' ids in the trace.
    pub(super) probe_ids: Vec<u32>,
    /// Hits that passed the condition.
    hits: u64,
    /// Per goroutine (or thread), whether each open call was shown.
    open_calls: HashMap<u64, Vec<bool>>,
    /// A condition that failed to evaluate was reported already.
    warned: bool,
    /// Its probes were reported armed.
    pub(super) reported: bool,
    pub(super) label: Option<Label>,
}

/// What becomes of one hit.
pub(super) struct Verdict {
    pub(super) show: bool,
    /// The log message's text, when shown and there is one.
    pub(super) message: Option<String>,
    /// Why the condition could not be evaluated, the first time.
    pub(super) warning: Option<String>,
}

impl Group {
    pub(super) fn new(
        decoding: Decoding,
        condition: Option<Expr>,
        hit_condition: Option<HitCondition>,
        message: Option<Template>,
        at: Option<(String, u64)>,
    ) -> Group {
        Group {
            decoding,
            condition,
            hit_condition,
            message,
            at,
            probe_ids: Vec::new(),
            hits: 0,
            open_calls: HashMap::new(),
            warned: false,
            reported: false,
            label: None,
        }
    }

    /// Decides whether the hit of a `kind` probe that decoded to `event`
    /// is shown. `who` names its goroutine or thread, to pair returns with
    /// calls.
    pub(super) fn judge(&mut self, kind: ProbeKind, event: &mut Event, who: u64) -> Verdict {
        if let (EventKind::Line, Some((file, line))) = (event.kind, &self.at) {
            event.file = Some(file.clone());
            event.line = Some(*line);
        }
        let mut warning = None;
        let show = match kind {
            ProbeKind::Entry | ProbeKind::Line => {
                let passes = match &self.condition {
                    None => true,
                    Some(c) => match expr::holds(c, &event.values) {
                        Ok(b) => b,
                        Err(e) => {
                            if !self.warned {
                                self.warned = true;
                                warning = Some(format!(
                                    "condition cannot be evaluated at {}: {e:#}",
                                    event.function
                                ));
                            }
                            false
                        }
                    },
                };
                let show = passes && {
                    self.hits += 1;
                    self.hit_condition.is_none_or(|h| h.holds(self.hits))
                };
                if kind == ProbeKind::Entry {
                    self.open_calls.entry(who).or_default().push(show);
                }
                show
            }
            ProbeKind::Return => {
                let opened = self.open_calls.get_mut(&who).and_then(|v| v.pop());
                let filtered = self.condition.is_some() || self.hit_condition.is_some();
                let shown = opened.unwrap_or(!filtered);
                // A log message replaces the call line; returns are not shown.
                shown && self.message.is_none()
            }
        };
        let message = match (&self.message, show) {
            (Some(m), true) => Some(m.render(
                &Context {
                    function: &event.function,
                    goroutine: event.goroutine,
                    thread: event.thread,
                    notation: Notation::of(event.lang),
                },
                &event.values,
            )),
            _ => None,
        };
        Verdict {
            show,
            message,
            warning,
        }
    }
}
