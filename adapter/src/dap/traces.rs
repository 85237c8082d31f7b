//! The custom requests `traceFunctions` (replace the set of traced
//! functions, chosen by regex or by a cursor position) and `functions`
//! (traceable functions for a picker). See docs/protocol.md.

use anyhow::{anyhow, bail, Result};
use serde_json::{json, Value as Json};

use super::live::trace_id;
use super::protocol::{
    FunctionInfo, FunctionsArguments, Source, TraceEntry, TraceFunctionsArguments, TraceResult,
};
use super::session::{Session, TracedEntry};
use crate::image::{FuncId, Image};
use crate::trace::{self, GroupId, Prepared, Request, Trace};

fn info(image: &Image, id: FuncId) -> FunctionInfo {
    let f = &image.functions[id];
    FunctionInfo {
        name: f.name.clone(),
        source: f.file.as_deref().map(Source::from_path),
        line: f.line,
    }
}

/// The engine's request for one trace entry.
fn request(entry: &TraceEntry) -> Result<Request> {
    let request = match (&entry.regex, &entry.position) {
        (Some(re), None) => Request::functions(re),
        (None, Some(pos)) => {
            let path = pos
                .text_document
                .uri
                .to_file_path()
                .map_err(|_| anyhow!("{} is not a file URI", pos.text_document.uri))?;
            // LSP lines are 0-based, DWARF lines 1-based.
            Request::around(path.display().to_string(), pos.position.line as u64 + 1)
        }
        _ => bail!("give exactly one of 'regex' and 'position'"),
    };
    Ok(request
        .condition(entry.condition.as_deref())
        .hit_condition(entry.hit_condition.as_deref())
        .message(entry.log_message.as_deref())
        .follow_calls(entry.follow_calls))
}

/// Plans one trace entry: its group, and the functions it probes.
fn plan(trace: &Trace, entry: &TraceEntry) -> Result<(Prepared, Vec<FunctionInfo>)> {
    if trace.config().no_debug {
        bail!("not traced: the session runs without debugging (noDebug)");
    }
    let prepared = trace.prepare(&request(entry)?)?;
    let image = prepared.library().unwrap_or(trace.image());
    let functions = prepared.functions.iter().map(|&f| info(image, f)).collect();
    Ok((prepared, functions))
}

/// What became of one entry of a `traceFunctions` request.
enum Outcome {
    /// Equal to an entry already traced: its group stays.
    Kept(TracedEntry),
    /// Planned anew: the index of its group among those added.
    Planned(usize, TraceEntry, Vec<FunctionInfo>),
    Failed,
}

impl Session {
    /// Replaces the traced entries by `args.functions`. An entry equal to
    /// one already traced keeps its group (its probes, id, figures and
    /// state); the others are planned, and the groups of entries no longer
    /// sent are removed.
    pub(super) fn trace_functions(
        &mut self,
        args: TraceFunctionsArguments,
    ) -> Result<Option<Json>> {
        let trace = self.trace()?.clone();
        let mut old: Vec<Option<TracedEntry>> = std::mem::take(&mut self.traces)
            .into_iter()
            .map(Some)
            .collect();
        let mut results = Vec::new();
        let mut outcomes = Vec::new();
        let mut groups = Vec::new();
        for entry in &args.functions {
            let same = old
                .iter_mut()
                .find(|o| o.as_ref().is_some_and(|o| o.entry == *entry))
                .and_then(Option::take);
            let (result, outcome) = match same {
                Some(same) => (
                    TraceResult {
                        verified: true,
                        message: None,
                        functions: same.functions.clone(),
                        id: Some(trace_id(same.group)),
                    },
                    Outcome::Kept(same),
                ),
                None => match plan(&trace, entry) {
                    Ok((group, functions)) => {
                        // What following calls could not do statically.
                        let notes = group.notes.join("\n");
                        groups.push(group);
                        (
                            TraceResult {
                                verified: true,
                                message: (!notes.is_empty()).then_some(notes),
                                functions: functions.clone(),
                                id: None,
                            },
                            Outcome::Planned(groups.len() - 1, entry.clone(), functions),
                        )
                    }
                    Err(e) => (
                        TraceResult {
                            verified: false,
                            message: Some(format!("{e:#}")),
                            functions: Vec::new(),
                            id: None,
                        },
                        Outcome::Failed,
                    ),
                },
            };
            results.push(result);
            outcomes.push(outcome);
        }
        let gone: Vec<GroupId> = old.into_iter().flatten().map(|o| o.group).collect();
        let ids = self.replace(&gone, groups)?;
        for (result, outcome) in results.iter_mut().zip(outcomes) {
            match outcome {
                Outcome::Kept(traced) => self.traces.push(traced),
                Outcome::Planned(k, entry, functions) => {
                    let Some(&group) = ids.get(k) else { continue };
                    result.id = Some(trace_id(group));
                    self.traces.push(TracedEntry {
                        entry,
                        group,
                        functions,
                    });
                }
                Outcome::Failed => {}
            }
        }
        Ok(Some(json!({ "functions": results })))
    }

    pub(super) fn functions(&mut self, args: FunctionsArguments) -> Result<Option<Json>> {
        let image = match &args.program {
            Some(p) => {
                let path = trace::resolve_program(std::path::Path::new(p))?;
                std::sync::Arc::new(Image::open(&path)?)
            }
            None => self.trace()?.image().clone(),
        };
        let mut list: Vec<FunctionInfo> =
            trace::list(&image, args.filter.as_deref().unwrap_or(""))?
                .into_iter()
                .map(|f| info(&image, f))
                .collect();
        let total = list.len();
        list.truncate(args.limit.unwrap_or(1000));
        Ok(Some(json!({ "functions": list, "total": total })))
    }
}
