//! `setBreakpoints`: logpoints become probes on the first statement of
//! their line that capture the variables in scope there. A breakpoint
//! without a log message is refused (`verified: false`): logprobe never
//! stops the program.
//!
//! A logpoint is answered `verified: false` ("pending") and becomes
//! verified through a `breakpoint` event once the backend reports its
//! probes armed; one that cannot be planned stays unverified with the reason.

use anyhow::{anyhow, Result};
use serde_json::{json, Value as Json};

use super::protocol::{Breakpoint, SetBreakpointsArguments, Source, SourceBreakpoint};
use super::session::{Group, GroupKind, Session};
use super::traces::decorate;
use crate::expr;
use crate::image::Image;
use crate::plan::Probe;
use crate::plan::{PlanOptions, Planner};

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
        let table = self.table.clone();
        let image = match &table {
            Some(t) => Some(
                t.lock()
                    .map_err(|_| anyhow!("probe table poisoned"))?
                    .image
                    .clone(),
            ),
            None => None,
        };
        let mut answers = Vec::new();
        let mut groups = Vec::new();
        for bp in wanted {
            let id = self.next_breakpoint;
            self.next_breakpoint += 1;
            let mut answer = Breakpoint {
                id: Some(id),
                verified: false,
                message: None,
                source: Some(args.source.clone()),
                line: Some(bp.line),
            };
            let planned = match (&bp.log_message, &image) {
                (None, _) => Err(anyhow!(
                    "logprobe traces without stopping: add a log message to make this a logpoint"
                )),
                (Some(_), None) => Err(anyhow!(
                    "no program yet: logpoints are set after 'launch' or 'attach'"
                )),
                (Some(_), Some(image)) => self.plan_logpoint(image, &path, &bp, id, &args.source),
            };
            match planned {
                Ok(g) => {
                    answer.message = Some(String::from(if self.running.is_some() {
                        "arming"
                    } else {
                        "pending: armed when the program starts"
                    }));
                    groups.push(g);
                }
                Err(e) => answer.message = Some(format!("{e:#}")),
            }
            answers.push(answer);
        }
        if table.is_some() {
            let old = self.logpoints.remove(&path).unwrap_or_default();
            let ids = self.replace(&old, groups)?;
            self.logpoints.insert(path, ids);
        }
        Ok(Some(json!({ "breakpoints": answers })))
    }

    fn plan_logpoint(
        &self,
        image: &Image,
        path: &str,
        bp: &SourceBreakpoint,
        id: i64,
        source: &Source,
    ) -> Result<(Group, Vec<Probe>)> {
        let sites = image.line_addresses(path, bp.line)?;
        if sites.is_empty() {
            return Err(anyhow!("no code at {path}:{}", bp.line));
        }
        let mut group = Group::new(
            GroupKind::Logpoint {
                breakpoint: id,
                reported: false,
            },
            Default::default(),
        );
        decorate(
            &mut group,
            bp.condition.as_deref(),
            bp.hit_condition.as_deref(),
            bp.log_message.as_deref(),
        )?;
        // Values behind pointers are captured when the probe fires.
        let mut paths = Vec::new();
        for e in group
            .condition
            .iter()
            .chain(group.message.iter().flat_map(|m| m.exprs()))
        {
            expr::paths(e, &mut paths);
        }
        let limits = self.config.as_ref().map(|c| c.limits).unwrap_or_default();
        let mut planner = Planner::new(image, PlanOptions::with_env(limits))?;
        let mut probes = Vec::new();
        for (func, addr) in sites {
            let vars = image.variables_at(addr)?;
            probes.push(planner.plan_line(func, addr, &vars, &paths, group.condition.as_ref())?);
        }
        group.decoding = crate::trace::Decoding::of(&planner);
        group.source = Some(source.clone());
        group.line = Some(bp.line);
        Ok((group, probes))
    }
}
