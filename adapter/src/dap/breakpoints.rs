//! `setBreakpoints`: logpoints become line requests to the engine (a probe
//! on the first statement of their line that captures the variables in
//! scope there). A breakpoint without a log message is refused
//! (`verified: false`): logprobe never stops the program.
//!
//! A logpoint is answered `verified: false` ("pending") and becomes
//! verified through a `breakpoint` event once the backend reports its
//! probes armed; one that cannot be planned stays unverified with the reason.

use anyhow::{anyhow, Result};
use serde_json::{json, Value as Json};

use super::protocol::{Breakpoint, SetBreakpointsArguments, SourceBreakpoint};
use super::session::{Logpoint, Session, SetLogpoint};
use crate::trace::{Label, Request};

impl Session {
    pub(super) fn set_breakpoints(
        &mut self,
        args: SetBreakpointsArguments,
    ) -> Result<Option<Json>> {
        let path = args
            .source
            .path
            .clone()
            .or_else(|| args.source.name.clone())
            .ok_or_else(|| anyhow!("the source has neither 'path' nor 'name'"))?;
        let wanted: Vec<SourceBreakpoint> = match (args.breakpoints, args.lines) {
            (Some(b), _) => b,
            (None, Some(lines)) => lines
                .into_iter()
                .map(|line| SourceBreakpoint {
                    line,
                    column: None,
                    condition: None,
                    hit_condition: None,
                    log_message: None,
                })
                .collect(),
            (None, None) => Vec::new(),
        };
        let mut old: Vec<Option<SetLogpoint>> = self
            .logpoint_groups
            .remove(&path)
            .unwrap_or_default()
            .into_iter()
            .map(Some)
            .collect();
        let mut answers = Vec::new();
        let mut groups = Vec::new();
        // Per logpoint kept or planned: the old one, or (index among the
        // groups added, the breakpoint, its label).
        let mut set: Vec<Result<SetLogpoint, (usize, SourceBreakpoint, Label)>> = Vec::new();
        for bp in wanted {
            let same = old
                .iter_mut()
                .find(|o| o.as_ref().is_some_and(|o| o.breakpoint == bp))
                .and_then(Option::take);
            if let (Some(same), Some(p)) = (same, &self.program) {
                // The same logpoint again: its probes, id and count stay.
                let armed = p.trace.is_armed(same.group);
                answers.push(Breakpoint {
                    id: Some(same.label as i64),
                    verified: armed,
                    message: (!armed).then(|| String::from(self.pending_message())),
                    source: Some(args.source.clone()),
                    line: Some(bp.line),
                    reason: (!armed).then_some("pending"),
                });
                set.push(Ok(same));
                continue;
            }
            let id = self.next_breakpoint;
            self.next_breakpoint += 1;
            let mut answer = Breakpoint {
                id: Some(id),
                verified: false,
                message: None,
                source: Some(args.source.clone()),
                line: Some(bp.line),
                reason: Some("failed"),
            };
            let label = id as Label;
            let planned = match (&bp.log_message, &self.program) {
                (None, _) => Err(anyhow!(
                    "logprobe traces without stopping: add a log message to make this a logpoint"
                )),
                (Some(_), None) => Err(anyhow!(
                    "no program yet: logpoints are set after 'launch' or 'attach'"
                )),
                (Some(_), Some(p)) if p.trace.config().no_debug => Err(anyhow!(
                    "not armed: the session runs without debugging (noDebug)"
                )),
                (Some(message), Some(p)) => p
                    .trace
                    .prepare(
                        &Request::line(&path, bp.line)
                            .condition(bp.condition.as_deref())
                            .hit_condition(bp.hit_condition.as_deref())
                            .message(Some(message)),
                    )
                    .map(|g| g.labelled(label)),
            };
            match planned {
                Ok(g) => {
                    answer.message = Some(String::from(self.pending_message()));
                    answer.reason = Some("pending");
                    groups.push(g);
                    if let Ok(mut l) = self.logpoints.lock() {
                        l.insert(
                            label,
                            Logpoint {
                                source: args.source.clone(),
                                line: bp.line,
                            },
                        );
                    }
                    set.push(Err((groups.len() - 1, bp, label)));
                }
                Err(e) => answer.message = Some(format!("{e:#}")),
            }
            answers.push(answer);
        }
        if self.program.is_some() {
            let gone: Vec<SetLogpoint> = old.into_iter().flatten().collect();
            if let Ok(mut l) = self.logpoints.lock() {
                for g in &gone {
                    l.remove(&g.label);
                }
            }
            let gone: Vec<_> = gone.into_iter().map(|g| g.group).collect();
            let ids = self.replace(&gone, groups)?;
            let list = set
                .into_iter()
                .filter_map(|s| match s {
                    Ok(same) => Some(same),
                    Err((k, breakpoint, label)) => ids.get(k).map(|&group| SetLogpoint {
                        breakpoint,
                        group,
                        label,
                    }),
                })
                .collect();
            self.logpoint_groups.insert(path, list);
        }
        Ok(Some(json!({ "breakpoints": answers })))
    }
}

impl Session {
    /// What an unverified logpoint waits for.
    fn pending_message(&self) -> &'static str {
        if self.running.is_some() {
            "arming"
        } else {
            "pending: armed when the program starts"
        }
    }
}
