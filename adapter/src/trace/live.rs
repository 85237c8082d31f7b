//! What a face asks of a trace while its program runs, besides adding and
//! removing groups: the groups' live figures (`report`), the end of each
//! second under a console volume other than `all` (`end_second`),
//! pausing and resuming a group (its probes out of the program and back),
//! the console volume itself, and a copy of a group's latest hit
//! (`latest`) for a face to show as a snapshot.

use anyhow::{bail, Result};
use serde_json::Value as Json;

use super::figures::{Figures, Kind};
use super::group::{Group, GroupId, Label};
use super::render;
use super::table::Trace;
use super::volume::{Quote, Volume};
use crate::backend::ProbeChanges;
use crate::image::Lang;
use crate::value::NamedValue;

/// The figures that changed since the last report.
pub struct Report {
    /// Each changed group's entry (docs/protocol.md's `logprobe/hits`,
    /// without the face's `id`).
    pub groups: Vec<(GroupId, Option<Label>, Json)>,
    /// Groups removed since the last report.
    pub removed: Vec<(GroupId, Option<Label>)>,
    /// Hits the backend lost, all groups together.
    pub dropped: u64,
    /// Hits over a rate limit, all groups together.
    pub limited: u64,
}

/// The line that ends a group's second (console volume `sample` or
/// `summary`), and where the group is.
pub struct SecondEnd {
    pub group: GroupId,
    pub label: Option<Label>,
    pub text: String,
    pub omitted: u64,
    pub hits: u64,
    pub file: Option<String>,
    pub line: Option<u64>,
}

/// A copy of a group's latest hit: where it was and its values by scope.
pub struct LatestHit {
    /// The function (a trace's) or the log message (a logpoint's).
    pub name: String,
    pub file: Option<String>,
    pub line: Option<u64>,
    pub lang: Lang,
    /// `Arguments` and `Results` of a trace's latest call and return, or
    /// a logpoint's `Variables`.
    pub scopes: Vec<(String, Vec<NamedValue>)>,
}

impl Trace {
    pub fn volume(&self) -> Volume {
        self.lock().volume
    }

    /// Changes which shown hits become lines, from the next hit on.
    pub fn set_volume(&self, volume: Volume) {
        self.lock().volume = volume;
    }

    /// Whether every probe of group `gid` was reported armed.
    pub fn is_armed(&self, gid: GroupId) -> bool {
        self.lock().groups.get(&gid).is_some_and(|g| g.reported)
    }

    /// Whether group `gid` is paused; `None` if there is no such group.
    pub fn is_paused(&self, gid: GroupId) -> Option<bool> {
        self.lock().groups.get(&gid).map(|g| g.paused.is_some())
    }

    /// Takes a group's probes out of the program (and out of what a
    /// backend started later arms); its figures stay.
    pub fn pause(&self, gid: GroupId) -> Result<()> {
        let mut guard = self.lock();
        let t = &mut *guard;
        let Some(mut group) = t.groups.remove(&gid) else {
            bail!("no group {gid}");
        };
        if group.paused.is_none() {
            let probes = t.take_probes(&mut group);
            let remove: Vec<u32> = probes.iter().map(|p| p.id).collect();
            group.paused = Some(probes);
            group.figures.set_paused(true);
            if let Some(stop) = &t.running {
                if !remove.is_empty() {
                    stop.change_probes(ProbeChanges {
                        add: Vec::new(),
                        remove,
                    });
                }
            }
        }
        t.groups.insert(gid, group);
        Ok(())
    }

    /// Puts a paused group's probes back, under new ids.
    pub fn resume(&self, gid: GroupId) -> Result<()> {
        let mut guard = self.lock();
        let t = &mut *guard;
        let Some(mut group) = t.groups.remove(&gid) else {
            bail!("no group {gid}");
        };
        if let Some(probes) = group.paused.take() {
            let add = t.insert(gid, &mut group, probes);
            group.figures.set_paused(false);
            if let Some(stop) = &t.running {
                if !add.is_empty() {
                    stop.change_probes(ProbeChanges {
                        add,
                        remove: Vec::new(),
                    });
                }
            }
        }
        t.groups.insert(gid, group);
        Ok(())
    }

    /// The backend lost `total` hits so far, all groups together.
    pub(super) fn set_dropped(&self, total: u64) {
        self.lock().dropped = total;
    }

    /// What changed since the last report, rates as of now.
    pub fn report_now(&self) -> Report {
        self.report(crate::backend::monotonic_ns())
    }

    /// What changed since the last report; rates as of `now`
    /// (CLOCK_MONOTONIC ns).
    pub fn report(&self, now: u64) -> Report {
        let mut guard = self.lock();
        let t = &mut *guard;
        let mut groups = Vec::new();
        for (&gid, group) in t.groups.iter_mut() {
            let Group {
                figures, message, ..
            } = group;
            let message = message.as_ref();
            let render = |e: &super::Event| match message {
                Some(m) => render::template(m, e),
                None => String::new(),
            };
            if let Some(entry) = figures.report(now, &render) {
                groups.push((gid, group.label, entry));
            }
        }
        groups.sort_by_key(|(gid, _, _)| *gid);
        Report {
            groups,
            removed: std::mem::take(&mut t.removed),
            dropped: t.dropped,
            limited: t.limited,
        }
    }

    /// Ends the current second of every group: the lines the console
    /// volume has to say (what `sample` left out, `summary`'s counts).
    pub fn end_second(&self) -> Vec<SecondEnd> {
        let style = self.config.style;
        let mut guard = self.lock();
        let t = &mut *guard;
        let volume = t.volume;
        let mut out = Vec::new();
        for (&gid, group) in t.groups.iter_mut() {
            let Group {
                window,
                figures,
                message,
                label,
                decoding,
                ..
            } = group;
            let unknown = !decoding.described(&self.image);
            let quote = || quote(figures, message.as_ref(), style, unknown);
            if let Some(closed) = window.close(volume, quote) {
                out.push(SecondEnd {
                    group: gid,
                    label: *label,
                    text: closed.text,
                    omitted: closed.omitted,
                    hits: closed.hits,
                    file: figures.file.clone(),
                    line: figures.line,
                });
            }
        }
        out.sort_by_key(|e| e.group);
        out
    }

    /// The group hit last (by its latest call or logpoint hit), if any was.
    pub fn last_hit(&self) -> Option<(GroupId, Option<Label>)> {
        let t = self.lock();
        t.groups
            .iter()
            .filter_map(|(&gid, g)| Some((g.figures.newest()?.event.time_ns, gid, g.label)))
            .max_by_key(|(time, _, _)| *time)
            .map(|(_, gid, label)| (gid, label))
    }

    /// A copy of group `gid`'s latest hit (of `function`, for a trace of
    /// several; else the one called last); `None` before its first hit.
    pub fn latest(&self, gid: GroupId, function: Option<&str>) -> Option<LatestHit> {
        let t = self.lock();
        let figures = &t.groups.get(&gid)?.figures;
        match figures.kind {
            Kind::Logpoint => {
                let hit = figures.latest.as_ref()?;
                Some(LatestHit {
                    name: figures.label.clone(),
                    file: figures.file.clone(),
                    line: figures.line,
                    lang: hit.event.lang,
                    scopes: vec![("Variables".into(), hit.event.values.clone())],
                })
            }
            Kind::Trace => {
                let f = match function {
                    Some(name) => figures.functions.iter().find(|f| f.name == name)?,
                    None => figures
                        .functions
                        .iter()
                        .filter(|f| f.call.is_some())
                        .max_by_key(|f| f.call.as_ref().map(|c| c.event.time_ns))?,
                };
                let call = f.call.as_ref()?;
                let mut scopes = vec![("Arguments".into(), call.event.values.clone())];
                if let Some(ret) = &f.ret {
                    scopes.push(("Results".into(), ret.event.values.clone()));
                }
                Some(LatestHit {
                    name: f.name.clone(),
                    file: f.file.clone(),
                    line: f.line,
                    lang: call.event.lang,
                    scopes,
                })
            }
        }
    }
}

/// What a group's end-of-second line says about it.
fn quote(
    figures: &Figures,
    message: Option<&crate::expr::Template>,
    style: crate::config::Style,
    unknown: bool,
) -> Quote {
    let timed = match figures.functions.as_slice() {
        [one] => one
            .durations
            .quantile(0.5)
            .zip(one.durations.quantile(0.99)),
        _ => None,
    };
    let max = figures.functions.first().map(|f| f.durations.max());
    let latest = figures.newest().map(|l| match message {
        Some(m) => render::template(m, &l.event),
        None => render::line(&l.event, style, unknown, None),
    });
    Quote {
        label: figures.label.clone(),
        noun: match figures.kind {
            Kind::Trace => "call",
            Kind::Logpoint => "hit",
        },
        total: figures.hits,
        durations: timed.map(|(p50, p99)| (p50, p99, max.unwrap_or(p99))),
        latest,
    }
}
