//! Preparing a request: its condition, hit condition and message parsed,
//! what it selects found, and its probes planned with the condition
//! compiled into their filters; a function that cannot be probed is set
//! aside with the reason, and a request that yields no probe is an error
//! that says why.

use std::collections::{BTreeSet, HashSet};
use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, bail, Result};

use super::event::Decoding;
use super::figures::{Covered, Figures};
use super::group::{Group, Label};
use super::request::{Request, Select};
use super::select;
use crate::config::TraceConfig;
use crate::expr::{self, HitCondition, Template};
use crate::image::{FuncId, Image};
use crate::plan::{Planner, Probe, ProbeKind};

/// The probes of one request, planned and ready to be added to a
/// [`Trace`](super::Trace).
pub struct Prepared {
    /// The functions probed (a logpoint's: those with code at its line).
    pub functions: Vec<FuncId>,
    /// Functions selected that cannot be probed: `name: why`.
    pub skipped: Vec<String>,
    /// What following calls could not do statically, or does by nesting
    /// (`--follow-calls`): one line each.
    pub notes: Vec<String>,
    pub(super) group: Group,
    pub(super) probes: Vec<Probe>,
}

impl Prepared {
    /// With a face's own name, which the group's events and arming are
    /// reported with.
    pub fn labelled(mut self, label: Label) -> Prepared {
        self.group.label = Some(label);
        self
    }

    /// The shared library the probes are in; `None`: the executable.
    pub fn library(&self) -> Option<&Arc<Image>> {
        self.group.decoding.library.as_ref()
    }

    /// The same probes in shared library `image`, at `path` (its real
    /// path, how the kernel names its mapping).
    pub(super) fn in_library(mut self, path: &Path, image: Arc<Image>) -> Prepared {
        for p in &mut self.probes {
            p.library = Some(path.to_path_buf());
        }
        self.group.decoding.library = Some(image);
        self
    }

    /// The probes, numbered from 0 in plan order.
    pub fn probes(&self) -> &[Probe] {
        &self.probes
    }
}

/// What lists and summaries call a group of functions: the function, when
/// one is probed, else the regex it was chosen by.
fn label(image: &Image, select: &Select, functions: &[FuncId]) -> String {
    match (functions, select) {
        ([one], _) => image.functions[*one].name.clone(),
        (_, Select::Functions(re)) => format!("/{re}/"),
        (_, Select::Around { file, line } | Select::Line { file, line }) => {
            format!("{file}:{line}")
        }
    }
}

/// Fails when a logpoint's message or condition names a variable that is
/// in scope at none of the line's addresses (DWARF says which are).
fn unknown_variables(
    names: &[String],
    in_scope: &BTreeSet<String>,
    file: &str,
    line: u64,
) -> Result<()> {
    let unknown: Vec<&str> = names
        .iter()
        .filter(|n| !in_scope.contains(*n))
        .map(String::as_str)
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    let known = if in_scope.is_empty() {
        String::from("none is")
    } else {
        let list: Vec<&str> = in_scope.iter().map(String::as_str).collect();
        format!("in scope: {}", list.join(", "))
    };
    let noun = if unknown.len() == 1 {
        "variable"
    } else {
        "variables"
    };
    bail!(
        "no {noun} {} in scope at {file}:{line} ({known})",
        unknown.join(", ")
    )
}

pub(super) fn prepare(image: &Image, config: &TraceConfig, req: &Request) -> Result<Prepared> {
    let condition = match &req.condition {
        Some(c) => Some(expr::parse(c).map_err(|e| anyhow!("condition {c:?}: {e:#}"))?),
        None => None,
    };
    let hit_condition = match &req.hit_condition {
        Some(h) => Some(HitCondition::parse(h)?),
        None => None,
    };
    let message = req.message.as_deref().map(Template::parse);
    let mut planner = Planner::new(image, config.plan)?;
    let mut probes = Vec::new();
    let mut functions = Vec::new();
    let mut skipped = Vec::new();
    let mut notes = Vec::new();
    let mut roots = None;
    let at = match &req.select {
        Select::Line { file, line } => {
            // A logpoint is checked when it is set: what it cannot show
            // makes it fail now rather than print an error at every hit.
            if let Some((text, why)) = message.as_ref().and_then(Template::bad) {
                bail!("log message {{{text}}}: {why}");
            }
            let sites = image.line_addresses(file, *line)?;
            if sites.is_empty() {
                bail!("no code at {file}:{line}");
            }
            // Values behind pointers are captured when the probe fires.
            let mut paths = Vec::new();
            for e in condition
                .iter()
                .chain(message.iter().flat_map(|m| m.exprs()))
            {
                expr::paths(e, &mut paths);
            }
            let mut names = Vec::new();
            for e in condition
                .iter()
                .chain(message.iter().flat_map(|m| m.exprs()))
            {
                expr::variables(e, &mut names);
            }
            let mut in_scope = BTreeSet::new();
            for (func, addr) in sites {
                let vars = image.variables_at(addr)?;
                in_scope.extend(vars.iter().map(|v| v.name.clone()));
                probes.push(planner.plan_line(func, addr, &vars, &paths, condition.as_ref())?);
                functions.push(func);
            }
            unknown_variables(&names, &in_scope, file, *line)?;
            Some((file.clone(), *line))
        }
        Select::Functions(_) | Select::Around { .. } => {
            let mut found = select::functions(image, &req.select)?;
            if req.follow_calls > 0 {
                let followed = select::follow(image, &found, req.follow_calls)?;
                roots = Some(found.iter().copied().collect::<HashSet<FuncId>>());
                notes = followed.notes;
                found.extend(followed.callees);
            }
            for &f in &found {
                // With followed calls the condition is the roots': a
                // callee is shown inside a root's call that passed it.
                let condition = match &roots {
                    Some(r) if !r.contains(&f) => None,
                    _ => condition.as_ref(),
                };
                match planner.plan_function(f, condition, req.returns) {
                    Ok(p) => {
                        probes.extend(p);
                        functions.push(f);
                    }
                    Err(e) => skipped.push(format!("{}: {e:#}", image.functions[f].name)),
                }
            }
            if probes.is_empty() {
                bail!(
                    "none of the {} matching functions can be probed: {}",
                    found.len(),
                    skipped.join("; ")
                );
            }
            None
        }
    };
    let decoding = Decoding::of(&planner);
    let now = crate::backend::monotonic_ns();
    let figures = match (&at, &req.message) {
        (Some((file, line)), message) => Figures::logpoint(
            message.clone().unwrap_or_else(|| format!("{file}:{line}")),
            file.clone(),
            *line,
            now,
        ),
        (None, _) => {
            let covered = functions
                .iter()
                .map(|&f| {
                    let func = &image.functions[f];
                    Covered {
                        func: f,
                        name: func.name.clone(),
                        file: func.file.clone(),
                        line: func.line,
                    }
                })
                .collect();
            Figures::trace(label(image, &req.select, &functions), covered, now)
        }
    };
    let returns: Vec<u64> = probes
        .iter()
        .filter(|p| p.kind == ProbeKind::Return)
        .map(|p| p.address)
        .collect();
    // Without a line for its returns a trace still runs; they are only
    // placed at no line in the figures.
    let return_lines = image.lines_at(&returns).unwrap_or_default();
    let group = Group::new(
        decoding,
        condition,
        hit_condition,
        message,
        at,
        figures,
        return_lines,
    )
    .following(roots);
    Ok(Prepared {
        functions,
        skipped,
        notes,
        group,
        probes,
    })
}
