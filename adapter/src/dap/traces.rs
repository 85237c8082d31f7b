//! The custom requests `traceFunctions` (replace the set of traced
//! functions, chosen by regex or by a cursor position) and `functions`
//! (traceable functions for a picker). See docs/protocol.md.

use anyhow::{anyhow, bail, Result};
use serde_json::{json, Value as Json};

use super::protocol::{
    FunctionInfo, FunctionsArguments, Source, TraceEntry, TraceFunctionsArguments, TraceResult,
};
use super::session::{Group, GroupKind, Session};
use crate::expr::{self, HitCondition, Template};
use crate::image::{FuncId, Image};
use crate::plan::Probe;
use crate::plan::{PlanOptions, Planner};
use crate::trace;

/// A group with its probes, ready for the table.
pub(super) type Planned = (Group, Vec<Probe>);

fn info(image: &Image, id: FuncId) -> FunctionInfo {
    let f = &image.functions[id];
    FunctionInfo {
        name: f.name.clone(),
        source: f.file.as_deref().map(Source::from_path),
        line: f.line,
    }
}

impl Session {
    /// Plans one trace entry: its group, probes, and the functions matched.
    pub(super) fn plan_trace(
        &self,
        image: &Image,
        entry: &TraceEntry,
    ) -> Result<(Planned, Vec<FunctionInfo>)> {
        let functions: Vec<FuncId> = match (&entry.regex, &entry.position) {
            (Some(re), None) => {
                let compiled = trace::compile_pattern(re)?;
                let found = trace::select(image, &compiled);
                if found.is_empty() {
                    let near = trace::suggestions(image, re);
                    if near.is_empty() {
                        bail!("no function matches '{re}'");
                    }
                    bail!("no function matches '{re}'; similar: {}", near.join(", "));
                }
                found
            }
            (None, Some(pos)) => {
                let path = pos
                    .text_document
                    .uri
                    .to_file_path()
                    .map_err(|_| anyhow!("{} is not a file URI", pos.text_document.uri))?;
                let path = path.display().to_string();
                // LSP lines are 0-based, DWARF lines 1-based.
                let line = pos.position.line as u64 + 1;
                match image.function_around(&path, line)? {
                    Some(f) if trace::traceable(image, f) => vec![f],
                    _ => bail!("no traceable function around {path}:{line}"),
                }
            }
            _ => bail!("give exactly one of 'regex' and 'position'"),
        };
        let mut group = Group::new(GroupKind::Trace, Default::default());
        decorate(
            &mut group,
            entry.condition.as_deref(),
            entry.hit_condition.as_deref(),
            entry.log_message.as_deref(),
        )?;
        // A log message replaces the call line and no return is shown:
        // return probes would cost every call for nothing.
        let returns = group.message.is_none();
        let limits = self.config.as_ref().map(|c| c.limits).unwrap_or_default();
        let mut planner = Planner::new(image, PlanOptions::with_env(limits))?;
        let mut probes = Vec::new();
        let mut matched = Vec::new();
        let mut failures = Vec::new();
        for f in functions {
            match planner.plan_function(f, group.condition.as_ref(), returns) {
                Ok(p) => {
                    probes.extend(p);
                    matched.push(info(image, f));
                }
                Err(e) => failures.push(format!("{}: {e:#}", image.functions[f].name)),
            }
        }
        if probes.is_empty() {
            bail!("cannot trace: {}", failures.join("; "));
        }
        group.decoding = trace::Decoding::of(&planner);
        Ok(((group, probes), matched))
    }

    pub(super) fn trace_functions(
        &mut self,
        args: TraceFunctionsArguments,
    ) -> Result<Option<Json>> {
        let table = self.table()?;
        let image = table
            .lock()
            .map_err(|_| anyhow!("probe table poisoned"))?
            .image
            .clone();
        let mut results = Vec::new();
        let mut groups = Vec::new();
        for entry in &args.functions {
            match self.plan_trace(&image, entry) {
                Ok((group, functions)) => {
                    groups.push(group);
                    results.push(TraceResult {
                        verified: true,
                        message: None,
                        functions,
                    });
                }
                Err(e) => results.push(TraceResult {
                    verified: false,
                    message: Some(format!("{e:#}")),
                    functions: Vec::new(),
                }),
            }
        }
        let old = std::mem::take(&mut self.traces);
        self.traces = self.replace(&old, groups)?;
        Ok(Some(json!({ "functions": results })))
    }

    pub(super) fn functions(&mut self, args: FunctionsArguments) -> Result<Option<Json>> {
        let image = match &args.program {
            Some(p) => {
                let path = crate::backend::launch::resolve_program(std::path::Path::new(p))?;
                std::sync::Arc::new(Image::open(&path)?)
            }
            None => self
                .table()?
                .lock()
                .map_err(|_| anyhow!("probe table poisoned"))?
                .image
                .clone(),
        };
        let re = trace::compile_pattern(args.filter.as_deref().unwrap_or(""))?;
        let mut list: Vec<FunctionInfo> = trace::select(&image, &re)
            .into_iter()
            .map(|f| info(&image, f))
            .collect();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        let total = list.len();
        list.truncate(args.limit.unwrap_or(1000));
        Ok(Some(json!({ "functions": list, "total": total })))
    }
}

/// Sets a group's condition, hit condition and log message.
pub(super) fn decorate(
    group: &mut Group,
    condition: Option<&str>,
    hit_condition: Option<&str>,
    log_message: Option<&str>,
) -> Result<()> {
    if let Some(c) = condition.filter(|c| !c.trim().is_empty()) {
        group.condition = Some(expr::parse(c).map_err(|e| anyhow!("condition {c:?}: {e:#}"))?);
    }
    if let Some(h) = hit_condition.filter(|h| !h.trim().is_empty()) {
        group.hit_condition = Some(HitCondition::parse(h)?);
    }
    if let Some(m) = log_message {
        group.message = Some(Template::parse(m));
    }
    Ok(())
}
