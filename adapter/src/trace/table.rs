//! A [`Trace`]: every probe group of one program, shared between the face
//! that adds and removes groups (a DAP session's requests, the command
//! line once) and the thread the backend runs on, which decodes hits
//! against it. Probe ids are unique for the whole trace and never reused;
//! while a backend runs, a change is sent to it as [`ProbeChanges`].

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use anyhow::Result;

use super::group::{Group, GroupId, Label};
use super::library;
use super::prepare::{self, Prepared};
use super::request::{Request, Select};
use super::run::Preload;
use super::volume::Volume;
use crate::backend::{ProbeChanges, StopHandle};
use crate::config::TraceConfig;
use crate::image::Image;
use crate::plan::Probe;

/// The probe groups of one program, and its configuration. Cheap to
/// clone: clones share the groups.
#[derive(Clone)]
pub struct Trace {
    pub(super) image: Arc<Image>,
    pub(super) config: TraceConfig,
    table: Arc<Mutex<Table>>,
    /// The eBPF program being loaded since before the image was read, for
    /// the first run to take.
    pub(super) preload: Arc<Mutex<Preload>>,
    /// The shared libraries requests named, opened once, by real path.
    libraries: Arc<Mutex<HashMap<PathBuf, Arc<Image>>>>,
    /// The process attached to, whose mappings name its libraries.
    pid: Option<i32>,
}

pub(super) struct Table {
    pub(super) groups: HashMap<GroupId, Group>,
    /// Probe id → (group, probe).
    pub(super) probes: HashMap<u32, (GroupId, Probe)>,
    /// Probe ids the backend reported armed.
    pub(super) armed: HashSet<u32>,
    next_probe: u32,
    next_group: GroupId,
    /// The running backend, which takes probe changes.
    pub(super) running: Option<StopHandle>,
    /// Which shown hits become lines.
    pub(super) volume: Volume,
    /// Groups removed since the last report, with their labels.
    pub(super) removed: Vec<(GroupId, Option<Label>)>,
    /// Hits the backend lost before they could be read, all groups
    /// together, as it last reported.
    pub(super) dropped: u64,
    /// Hits over a rate limit, all groups together.
    pub(super) limited: u64,
}

impl Trace {
    pub fn new(image: Arc<Image>, config: TraceConfig) -> Trace {
        Trace {
            image,
            config,
            table: Arc::new(Mutex::new(Table {
                groups: HashMap::new(),
                probes: HashMap::new(),
                armed: HashSet::new(),
                next_probe: 0,
                next_group: 1,
                running: None,
                volume: config.volume,
                removed: Vec::new(),
                dropped: 0,
                limited: 0,
            })),
            preload: Arc::default(),
            libraries: Arc::default(),
            pid: None,
        }
    }

    /// The trace of running process `pid`: a library a request names is
    /// looked for among the files it has mapped first.
    pub fn attached_to(mut self, pid: i32) -> Trace {
        self.pid = Some(pid);
        self
    }

    /// The trace, with `preload` for its run to take.
    pub fn preloaded(self, preload: Preload) -> Trace {
        if let Ok(mut p) = self.preload.lock() {
            *p = preload;
        }
        self
    }

    pub fn image(&self) -> &Arc<Image> {
        &self.image
    }

    pub fn config(&self) -> &TraceConfig {
        &self.config
    }

    /// The table, whatever a thread that panicked while holding it left:
    /// its parts stay consistent on their own.
    pub(super) fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Plans `req` against this trace's program and configuration; a
    /// pattern `LIB:REGEX` against shared library `LIB`
    /// ([`library::split`]).
    pub fn prepare(&self, req: &Request) -> Result<Prepared> {
        if let Select::Functions(pattern) = &req.select {
            if let (Some(name), regex) = library::split(pattern) {
                let path = library::resolve(name, &self.image.path, self.pid)?;
                let image = self.library(&path)?;
                let req = Request {
                    select: Select::Functions(regex.to_string()),
                    ..req.clone()
                };
                let prepared = prepare::prepare(&image, &self.config, &req)?;
                return Ok(prepared.in_library(&path, image));
            }
        }
        prepare::prepare(&self.image, &self.config, req)
    }

    /// The image of the shared library at `path`, read once.
    fn library(&self, path: &Path) -> Result<Arc<Image>> {
        let mut libraries = self
            .libraries
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(image) = libraries.get(path) {
            return Ok(image.clone());
        }
        let image = Arc::new(Image::open(path)?);
        libraries.insert(path.to_path_buf(), image.clone());
        Ok(image)
    }

    /// Adds one prepared group; returns its id.
    pub fn add(&self, group: Prepared) -> GroupId {
        let ids = self.replace(&[], vec![group]);
        ids.first().copied().unwrap_or_default()
    }

    /// Replaces groups `old` by `new`, in the running program too when a
    /// backend runs. Returns the new groups' ids, in order.
    pub fn replace(&self, old: &[GroupId], new: Vec<Prepared>) -> Vec<GroupId> {
        let mut t = self.lock();
        let remove = t.remove(old);
        let mut add = Vec::new();
        let mut ids = Vec::with_capacity(new.len());
        for prepared in new {
            let (gid, probes) = t.add(prepared);
            ids.push(gid);
            add.extend(probes);
        }
        if let Some(stop) = &t.running {
            if !add.is_empty() || !remove.is_empty() {
                stop.change_probes(ProbeChanges { add, remove });
            }
        }
        ids
    }
}

impl Table {
    /// Adds a group with its probes, giving them trace-unique ids (and
    /// their frame pairings the renumbered entry's). Returns the group id
    /// and the renumbered probes.
    fn add(&mut self, prepared: Prepared) -> (GroupId, Vec<Probe>) {
        let Prepared {
            mut group, probes, ..
        } = prepared;
        let gid = self.next_group;
        self.next_group += 1;
        let out = self.insert(gid, &mut group, probes);
        self.groups.insert(gid, group);
        (gid, out)
    }

    /// Gives `probes` trace-unique ids (and their frame pairings the
    /// renumbered entry's) and files them under `gid`; returns them.
    pub(super) fn insert(
        &mut self,
        gid: GroupId,
        group: &mut Group,
        probes: Vec<Probe>,
    ) -> Vec<Probe> {
        let renumbered: HashMap<u32, u32> = probes
            .iter()
            .enumerate()
            .map(|(i, p)| (p.id, self.next_probe + i as u32))
            .collect();
        self.next_probe += probes.len() as u32;
        let mut out = Vec::with_capacity(probes.len());
        for mut p in probes {
            p.id = renumbered.get(&p.id).copied().unwrap_or(p.id);
            if let Some(pairing) = &mut p.recipe.pairing {
                pairing.key = renumbered.get(&pairing.key).copied().unwrap_or(pairing.key);
            }
            group.probe_ids.push(p.id);
            self.probes.insert(p.id, (gid, p.clone()));
            out.push(p);
        }
        out
    }

    /// Takes a group's probes out of the table; returns them, ids kept.
    pub(super) fn take_probes(&mut self, group: &mut Group) -> Vec<Probe> {
        let mut taken = Vec::new();
        for id in std::mem::take(&mut group.probe_ids) {
            self.armed.remove(&id);
            if let Some((_, p)) = self.probes.remove(&id) {
                taken.push(p);
            }
        }
        taken
    }

    /// Removes groups; returns the ids of their probes.
    fn remove(&mut self, groups: &[GroupId]) -> Vec<u32> {
        let mut ids = Vec::new();
        for g in groups {
            if let Some(group) = self.groups.remove(g) {
                self.removed.push((*g, group.label));
                for id in group.probe_ids {
                    self.probes.remove(&id);
                    self.armed.remove(&id);
                    ids.push(id);
                }
            }
        }
        ids
    }

    /// Every probe, in id order: what a backend starts with.
    pub(super) fn all_probes(&self) -> Vec<Probe> {
        let mut p: Vec<Probe> = self.probes.values().map(|(_, p)| p.clone()).collect();
        p.sort_by_key(|p| p.id);
        p
    }

    /// Records probes `ids` armed; returns the labels of the groups now
    /// armed whole, each once.
    pub(super) fn arm(&mut self, ids: &[u32]) -> Vec<Label> {
        self.armed.extend(ids.iter().copied());
        let mut whole = Vec::new();
        for group in self.groups.values_mut() {
            if !group.reported && group.probe_ids.iter().all(|id| self.armed.contains(id)) {
                group.reported = true;
                whole.extend(group.label);
            }
        }
        whole.sort_unstable();
        whole
    }
}
