//! A group: the probes of one request (a function trace, a logpoint),
//! with what decides whether and how each hit is shown: the condition,
//! the hit condition and its count, the console volume's window, the log
//! message, and which calls were shown, so that a return is shown exactly
//! when its call was; and the group's live figures (`figures`), which
//! count every hit whose condition held, shown or not.

use std::collections::{HashMap, HashSet};

use super::event::{Decoding, Event, EventKind};
use super::figures::Figures;
use super::volume::{Volume, Window};
use crate::expr::{self, Expr, HitCondition, Template};
use crate::image::FuncId;
use crate::plan::{Probe, ProbeKind};

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
    /// The probes' ids in the trace (none while paused).
    pub(super) probe_ids: Vec<u32>,
    /// The probes taken out of the program while the group is paused.
    pub(super) paused: Option<Vec<Probe>>,
    /// The source line of each return probe, by its address.
    pub(super) return_lines: HashMap<u64, u64>,
    /// Hits that passed the condition.
    hits: u64,
    /// Per goroutine (or thread), the calls not returned yet.
    open_calls: HashMap<u64, Vec<OpenCall>>,
    /// A condition that failed to evaluate was reported already.
    warned: bool,
    /// Its probes were reported armed.
    pub(super) reported: bool,
    pub(super) label: Option<Label>,
    pub(super) figures: Figures,
    /// What the console volume let through in the current second.
    pub(super) window: Window,
    /// With `--follow-calls`: the functions selected, whose calls start a
    /// tree; a callee's call is shown only inside one, indented by depth.
    roots: Option<HashSet<FuncId>>,
}

/// A call not returned yet.
#[derive(Debug, Clone, Copy)]
struct OpenCall {
    shown: bool,
    /// Its condition held.
    passed: bool,
    time_ns: u64,
}

/// What becomes of one hit.
pub(super) struct Verdict {
    pub(super) show: bool,
    /// The condition held (for a return: its call's), so the figures count it.
    pub(super) passed: bool,
    /// A return's time since its call, when the call was seen.
    pub(super) duration: Option<u64>,
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
        figures: Figures,
        return_lines: HashMap<u64, u64>,
    ) -> Group {
        Group {
            decoding,
            condition,
            hit_condition,
            message,
            at,
            probe_ids: Vec::new(),
            paused: None,
            return_lines,
            hits: 0,
            open_calls: HashMap::new(),
            warned: false,
            reported: false,
            label: None,
            figures,
            window: Window::default(),
            roots: None,
        }
    }

    /// Follows calls from `roots` (see [`Group::roots`]).
    pub(super) fn following(mut self, roots: Option<HashSet<FuncId>>) -> Group {
        self.roots = roots;
        self
    }

    /// The call depth of a call of `func` on `who` (1 for a root called
    /// outside any tree), or `None` when it is a callee called outside
    /// every tree; without `--follow-calls`, `Some(0)`.
    fn depth(&self, func: FuncId, who: u64) -> Option<u32> {
        let Some(roots) = &self.roots else {
            return Some(0);
        };
        let open = self
            .open_calls
            .get(&who)
            .map_or(0, |v| v.iter().filter(|o| o.shown).count()) as u32;
        (open > 0 || roots.contains(&func)).then_some(open + 1)
    }

    /// Decides whether the hit of a `kind` probe that decoded to `event`
    /// is shown, the console's `volume` allowing. `who` names its
    /// goroutine or thread, to pair returns with calls.
    pub(super) fn judge(
        &mut self,
        (kind, func): (ProbeKind, FuncId),
        event: &mut Event,
        who: u64,
        volume: Volume,
    ) -> Verdict {
        if let (EventKind::Line, Some((file, line))) = (event.kind, &self.at) {
            event.file = Some(file.clone());
            event.line = Some(*line);
        }
        let mut warning = None;
        let passed;
        let mut duration = None;
        let show = match kind {
            ProbeKind::Entry | ProbeKind::Line => {
                // With followed calls, the conditions are the roots':
                // a callee is shown inside a root's call that passed them.
                let root = self.roots.as_ref().is_none_or(|r| r.contains(&func));
                let passes = match self.condition.as_ref().filter(|_| root) {
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
                passed = passes;
                let depth = self.depth(func, who);
                event.depth = depth.filter(|&d| d > 0);
                let show = passes
                    && depth.is_some()
                    && (!root || {
                        self.hits += 1;
                        self.hit_condition.is_none_or(|h| h.holds(self.hits))
                    })
                    && self.window.admit(volume);
                if kind == ProbeKind::Entry {
                    self.open_calls.entry(who).or_default().push(OpenCall {
                        shown: show,
                        passed,
                        time_ns: event.time_ns,
                    });
                }
                show
            }
            ProbeKind::Return => {
                let opened = self.open_calls.get_mut(&who).and_then(|v| v.pop());
                if self.roots.is_some() {
                    event.depth = self
                        .depth(func, who)
                        .filter(|_| opened.is_some_and(|o| o.shown));
                }
                let filtered = self.condition.is_some() || self.hit_condition.is_some();
                passed = opened.map_or(!filtered, |o| o.passed);
                duration = opened
                    .filter(|o| o.passed)
                    .map(|o| event.time_ns.saturating_sub(o.time_ns));
                let shown = opened.map_or(!filtered, |o| o.shown);
                // A log message replaces the call line; returns are not shown.
                shown && self.message.is_none()
            }
        };
        let message = match (&self.message, show) {
            (Some(m), true) => Some(super::render::template(m, event)),
            _ => None,
        };
        Verdict {
            show,
            passed,
            duration,
            message,
            warning,
        }
    }

    /// Counts a judged hit in the figures, keeping its event as the
    /// latest of its kind: a call of `func`, a return from the probe at
    /// `address`, or a logpoint's line.
    pub(super) fn record(
        &mut self,
        kind: ProbeKind,
        func: FuncId,
        address: u64,
        event: Event,
        verdict: &Verdict,
    ) {
        if !verdict.passed {
            return;
        }
        match kind {
            ProbeKind::Entry => self.figures.call(func, event),
            ProbeKind::Return => {
                let line = self.return_lines.get(&address).copied();
                self.figures.ret(func, event, line, verdict.duration);
            }
            ProbeKind::Line => self.figures.line(event),
        }
        if verdict.show && kind != ProbeKind::Return {
            self.figures.count_shown();
        }
    }
}
