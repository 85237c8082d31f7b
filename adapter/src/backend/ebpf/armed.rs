//! The probes armed in one process: which recipe slot each uses, and the
//! uprobe-multi links that arm them, one per batch of probes added
//! together (the initial probes, then each `ProbeChanges` that adds).
//!
//! Probe ids grow for the whole session, so the `recipes` map is indexed
//! by slot instead: a fixed number of them, each reused once its probe is
//! removed, with the slot as the attach cookie. Removing a probe rebuilds
//! only the links of batches that lose a probe: the old link goes first
//! (a new one next to it would report every hit twice), so a call to one
//! of that batch's surviving probes in the short gap before the new link
//! is armed is missed, and a return whose entry fell in the gap is shown
//! without it. Batches that lose nothing keep their link.
//!
//! Arming never loads or verifies anything: a recipe is data written into
//! the map, and a link names the program loaded at the start.
//!
//! A probe whose instruction would overwrite an XMM register its recipe
//! reads before the signal frame saves it is armed by a hardware
//! breakpoint instead of a uprobe where one is left (`breakpoint`).

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use libbpf_rs::{ErrorKind, Link, MapCore, MapFlags, UprobeMultiOpts};

use super::breakpoint::Breakpoints;
use super::load::not_armed_here;
use super::signal::SignalXmm;
use super::sigurg::SigurgLib;
use super::skel::ProbeSkel;
use super::{abi, sse};
use crate::backend::RawHit;
use crate::plan::{Capture, Probe, ProbeKind};

pub struct Armed {
    pub pid: i32,
    path: PathBuf,
    /// Arm entry probes only (the benchmark's switch).
    entry_only: bool,
    /// Slot -> probe id; `None` for a free slot.
    slots: Vec<Option<u32>>,
    /// Slot -> the XMM captures its probed instruction changed before the
    /// signal frame saved them (see `sse`).
    xmm_fixes: Vec<Vec<(usize, sse::Effect)>>,
    /// Slot -> for a probe with a rate limit, the hits over it its bucket
    /// had counted when last read.
    limited: Vec<Option<u64>>,
    /// Slot -> the hits its bucket had counted as lost when last read.
    lost: Vec<u64>,
    free: Vec<u32>,
    batches: Vec<Batch>,
    signal: SignalXmm,
    /// The SIGURG handler library the launched program was given.
    preload: Option<SigurgLib>,
    breakpoints: Breakpoints,
    /// The process runs its executable (not held before its `execve`).
    running: bool,
}

struct Batch {
    /// (slot, probe), in plan order.
    probes: Vec<(u32, Probe)>,
    /// Per file the probes are in (the executable, libraries): the
    /// uprobe-multi link of its probes, and that of its uretprobes.
    links: Vec<Link>,
}

/// Probes whose links were dropped by [`Armed::unlink`]: their slots are
/// freed and the survivors relinked by [`Armed::relink`], after a drain.
pub struct Unlinked {
    freed: Vec<u32>,
    batches: Vec<usize>,
}

impl Armed {
    /// The probes of process `pid`, which runs the executable at `path`
    /// unless it is held before its `execve` (not `running`).
    pub fn new(capacity: u32, pid: i32, path: PathBuf, entry_only: bool, running: bool) -> Armed {
        Armed {
            pid,
            path,
            entry_only,
            slots: vec![None; capacity as usize],
            xmm_fixes: vec![Vec::new(); capacity as usize],
            limited: vec![None; capacity as usize],
            lost: vec![0; capacity as usize],
            free: (0..capacity).rev().collect(),
            batches: Vec::new(),
            signal: SignalXmm::default(),
            preload: None,
            breakpoints: Breakpoints::default(),
            running,
        }
    }

    /// The launched program was given the SIGURG handler library.
    pub fn preloaded(&mut self, preload: Option<SigurgLib>) {
        self.preload = preload;
    }

    /// The launched process was let run its executable.
    pub fn started(&mut self) {
        self.running = true;
    }

    /// The probe id a hit's cookie (slot) stands for.
    pub fn probe_of(&self, slot: u32) -> Option<u32> {
        self.slots.get(slot as usize).copied().flatten()
    }

    /// The hits over a rate limit of each rate-limited probe since the
    /// last call, as (probe id, count), read from the slots' buckets.
    pub fn newly_limited(&mut self, skel: &ProbeSkel<'_>) -> Result<Vec<(u32, u64)>> {
        let mut out = Vec::new();
        for (slot, seen) in self.limited.iter_mut().enumerate() {
            let (Some(before), Some(Some(id))) = (*seen, self.slots.get(slot)) else {
                continue;
            };
            let now = bucket_count(skel, slot, abi::limited_of)?.unwrap_or(before);
            if now > before {
                out.push((*id, now - before));
                *seen = Some(now);
            }
        }
        Ok(out)
    }

    /// The hits lost since the last call, as (probe id, count), read from
    /// the buckets of the slots in use.
    pub fn newly_lost(&mut self, skel: &ProbeSkel<'_>) -> Result<Vec<(u32, u64)>> {
        let mut out = Vec::new();
        for (slot, seen) in self.lost.iter_mut().enumerate() {
            let Some(Some(id)) = self.slots.get(slot) else {
                continue;
            };
            let now = bucket_count(skel, slot, abi::lost_of)?.unwrap_or(*seen);
            if now > *seen {
                out.push((*id, now - *seen));
                *seen = now;
            }
        }
        Ok(out)
    }

    /// Undoes, in a hit on `slot`, what the probed instruction did to its
    /// XMM captures before they were saved: a widened float32 is narrowed
    /// back, a lost one is unreadable.
    pub fn fix_xmm(&self, slot: u32, hit: &mut RawHit) {
        let Some(fixes) = self.xmm_fixes.get(slot as usize) else {
            return;
        };
        for &(i, effect) in fixes {
            if let Some(c) = hit.captures.get_mut(i) {
                *c = match effect {
                    sse::Effect::Widened => c.as_deref().and_then(sse::narrow),
                    sse::Effect::Lost => None,
                };
            }
        }
    }

    /// Stores the recipes of `probes` and arms them with one link; returns
    /// their ids. On failure nothing of the batch stays.
    pub fn add(&mut self, skel: &ProbeSkel<'_>, probes: Vec<Probe>) -> Result<Vec<u32>> {
        if probes.is_empty() {
            return Ok(Vec::new());
        }
        if probes.len() > self.free.len() {
            bail!(
                "cannot arm {} more probes: the eBPF backend has room for {} probes at a time",
                probes.len(),
                self.slots.len()
            );
        }
        let xmm = |p: &Probe| {
            p.recipe
                .captures
                .iter()
                .any(|c| matches!(c, Capture::Xmm(_)))
        };
        if probes.iter().any(xmm) {
            self.signal
                .enable(skel, self.pid, &self.path, self.preload.as_ref());
        }
        let mut batch = Batch {
            probes: Vec::with_capacity(probes.len()),
            links: Vec::new(),
        };
        for p in probes {
            let Some(slot) = self.free.pop() else {
                break; // counted above
            };
            self.slots[slot as usize] = Some(p.id);
            self.limited[slot as usize] = p.recipe.rate.map(|_| 0);
            self.lost[slot as usize] = 0;
            self.xmm_fixes[slot as usize] = p
                .recipe
                .captures
                .iter()
                .enumerate()
                .filter_map(|(i, c)| match c {
                    Capture::Xmm(n) => sse::effect(&p.instruction, *n).map(|e| (i, e)),
                    _ => None,
                })
                .collect();
            batch.probes.push((slot, p));
        }
        let stored = batch.probes.iter().try_for_each(|(slot, p)| {
            let recipe = abi::recipe(p)?;
            let key = slot.to_ne_bytes();
            // A reused slot's bucket starts full again, counting from 0.
            skel.maps
                .buckets
                .update(&key, abi::bytes_of(&abi::fresh_bucket()), MapFlags::ANY)
                .context("resetting a rate limit's bucket in the kernel")?;
            skel.maps
                .recipes
                .update(&key, abi::bytes_of(&*recipe), MapFlags::ANY)
                .context("storing a capture recipe in the kernel")
        });
        if stored.is_ok() {
            self.use_breakpoints(skel, &batch.probes);
        }
        let linked = stored.and_then(|()| self.link(skel, &batch.probes));
        match linked {
            Ok(l) => batch.links = l,
            Err(e) => {
                for (slot, _) in &batch.probes {
                    self.breakpoints.disarm(*slot);
                    self.breakpoints.forget(skel, *slot);
                    self.slots[*slot as usize] = None;
                    self.free.push(*slot);
                }
                return Err(e);
            }
        }
        let ids = batch.probes.iter().map(|(_, p)| p.id).collect();
        self.batches.push(batch);
        Ok(ids)
    }

    /// Arms by hardware breakpoints the probes of `probes` whose
    /// instruction loses an XMM register their recipe reads, while debug
    /// registers are left; their XMM captures then need no fixing.
    fn use_breakpoints(&mut self, skel: &ProbeSkel<'_>, probes: &[(u32, Probe)]) {
        let target = (self.pid, self.path.as_path(), !self.running);
        for (slot, p) in probes {
            let fixes = &self.xmm_fixes[*slot as usize];
            // Breakpoints are placed by the executable's mapping only.
            if p.library.is_some() {
                continue;
            }
            if !fixes.iter().any(|(_, e)| *e == sse::Effect::Lost) {
                continue;
            }
            if self.breakpoints.arm(skel, target, *slot, p).is_ok() {
                self.xmm_fixes[*slot as usize].clear();
            }
        }
    }

    /// Drops the links of the batches holding any of `ids`, and those
    /// probes from their batches. Their slots still name them until
    /// [`Armed::relink`], so hits already in the ring are read right.
    pub fn unlink(&mut self, ids: &[u32]) -> Unlinked {
        let mut out = Unlinked {
            freed: Vec::new(),
            batches: Vec::new(),
        };
        for (i, b) in self.batches.iter_mut().enumerate() {
            let before = b.probes.len();
            let breakpoints = &mut self.breakpoints;
            b.probes.retain(|(slot, p)| {
                let keep = !ids.contains(&p.id);
                if !keep {
                    breakpoints.disarm(*slot);
                    out.freed.push(*slot);
                }
                keep
            });
            if b.probes.len() != before {
                // Dropping a link waits for its running handlers.
                b.links.clear();
                out.batches.push(i);
            }
        }
        out
    }

    /// Frees the slots [`Armed::unlink`] took and arms the batches' other
    /// probes again (a batch left empty goes away).
    pub fn relink(&mut self, skel: &ProbeSkel<'_>, u: Unlinked) -> Result<()> {
        for slot in u.freed {
            self.breakpoints.forget(skel, slot);
            self.slots[slot as usize] = None;
            self.free.push(slot);
        }
        let mut result = Ok(());
        for &i in &u.batches {
            let probes = std::mem::take(&mut self.batches[i].probes);
            match self.link(skel, &probes) {
                Ok(l) => {
                    self.batches[i].links = l;
                    self.batches[i].probes = probes;
                }
                Err(e) => {
                    // Those probes stay unarmed; say so once.
                    for (slot, _) in probes {
                        self.slots[slot as usize] = None;
                        self.free.push(slot);
                    }
                    result = Err(e.context("cannot arm the remaining probes again"));
                }
            }
        }
        self.batches.retain(|b| !b.probes.is_empty());
        result
    }

    /// Disarms every probe (the slots stay, for the last drain). Each link
    /// removed makes the kernel wait for a grace period, so they are
    /// dropped side by side, and the waits overlap.
    pub fn unlink_all(&mut self) {
        let mut links: Vec<Link> = self
            .batches
            .iter_mut()
            .flat_map(|b| std::mem::take(&mut b.links))
            .collect();
        links.extend(self.signal.take_link());
        links.extend(self.breakpoints.take_links());
        if links.len() < 2 {
            return;
        }
        std::thread::scope(|s| {
            for link in links {
                s.spawn(move || drop(link));
            }
        });
    }

    /// Arms one batch of probes in the process's mappings of the files
    /// they are in (a uprobe names a file by its inode, so a library's
    /// probes are armed before it is mapped): per file, one uprobe-multi
    /// link (no perf event per probe), each offset with its slot as
    /// cookie; and one uretprobe-multi link for the return probes that a
    /// uretprobe on their function's entry stands for (one per function:
    /// the first of its return probes, whose slot every return then
    /// reports; the others stay unlinked).
    fn link(&self, skel: &ProbeSkel<'_>, probes: &[(u32, Probe)]) -> Result<Vec<Link>> {
        let wanted = |p: &Probe| !self.entry_only || p.kind == ProbeKind::Entry;
        let mut entries_seen: Vec<(Option<&Path>, u64)> = Vec::new();
        let mut returns: Vec<(u32, u64, &Probe)> = Vec::new();
        for (slot, p) in probes.iter().filter(|(_, p)| wanted(p)) {
            if let Some(at) = p.returns_at {
                let key = (p.library.as_deref(), at.file_offset);
                if !entries_seen.contains(&key) {
                    entries_seen.push(key);
                    returns.push((*slot, at.file_offset, p));
                }
            }
        }
        // Probes sharing an instruction (a frameless function whose first
        // instruction is its RET: entry and return) must run in plan
        // order. The kernel runs the consumers of one uprobe newest first,
        // so they are registered in reverse. Entry, return and line probes
        // all take the same path: the kind matters only to the decoder.
        let armed: Vec<(u32, u64, &Probe)> = probes
            .iter()
            .rev()
            .filter(|(_, p)| wanted(p) && p.returns_at.is_none())
            .filter(|(slot, _)| !self.breakpoints.has(*slot))
            .map(|(slot, p)| (*slot, p.file_offset, p))
            .collect();
        let mut files: Vec<Option<&Path>> = armed
            .iter()
            .chain(&returns)
            .map(|(_, _, p)| p.library.as_deref())
            .collect();
        files.sort_unstable();
        files.dedup();
        let mut links = Vec::new();
        for file in files {
            let path = file.unwrap_or(&self.path);
            for (sites, prog, retprobe) in [
                (&armed, &skel.progs.lp_probe, false),
                (&returns, &skel.progs.lp_return, true),
            ] {
                let these: Vec<&(u32, u64, &Probe)> = sites
                    .iter()
                    .filter(|(_, _, p)| p.library.as_deref() == file)
                    .collect();
                let Some((_, _, first)) = these.first() else {
                    continue;
                };
                let opts = UprobeMultiOpts {
                    offsets: these.iter().map(|(_, at, _)| *at as usize).collect(),
                    cookies: these.iter().map(|(slot, _, _)| u64::from(*slot)).collect(),
                    retprobe,
                    ..Default::default()
                };
                let link = prog
                    .attach_uprobe_multi_with_opts(self.pid, path, "", opts)
                    .map_err(|e| attach_error(&e, path, first))?;
                links.push(link);
            }
        }
        Ok(links)
    }
}

/// One count of slot `slot`'s bucket, as `field` reads it from the
/// `buckets` map.
fn bucket_count(
    skel: &ProbeSkel<'_>,
    slot: usize,
    field: fn(&[u8]) -> Option<u64>,
) -> Result<Option<u64>> {
    let bucket = skel
        .maps
        .buckets
        .lookup(&(slot as u32).to_ne_bytes(), MapFlags::ANY)
        .context("reading a probe's counts in the kernel")?;
    Ok(bucket.as_deref().and_then(field))
}

fn attach_error(e: &libbpf_rs::Error, path: &Path, p: &Probe) -> anyhow::Error {
    not_armed_here(match e.kind() {
        ErrorKind::PermissionDenied => {
            anyhow!("no permission to attach uprobes (run as root, or grant CAP_PERFMON)")
        }
        ErrorKind::Unsupported => {
            anyhow!("this kernel cannot attach uprobe-multi links (Linux 6.6 or later with CONFIG_UPROBES is needed)")
        }
        _ => anyhow!(
            "cannot attach uprobes to {} (first at offset {:#x}): {e}",
            path.display(),
            p.file_offset
        ),
    })
}
