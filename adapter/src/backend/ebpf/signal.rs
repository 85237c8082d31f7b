//! XMM registers through a signal frame: `lp_sigtramp` on the traced
//! program's signal handlers, and the switch that lets the probes use it
//! (see `bpf/probe.bpf.c` and docs/architecture.md).
//!
//! It is attached the first time a probe that captures an XMM register is
//! armed, not before: most traces capture no floats, and each link costs
//! time to make and, above all, to remove (the kernel waits for a grace
//! period when a uprobe goes away). Then too the probes are told where, in
//! this kernel's `task_struct`, to see whether a thread handles SIGURG:
//! the offsets come from the kernel's BTF, read here rather than by CO-RE
//! at every load (parsing that BTF is most of a load's time otherwise).

use std::fs::File;
use std::path::Path;

use anyhow::{anyhow, Context, Result};
use libbpf_rs::btf::types::{Composite, MemberAttr, Struct};
use libbpf_rs::btf::{Btf, BtfType, HasSize};
use libbpf_rs::{Link, MapCore, MapFlags, UprobeMultiOpts};

use super::abi;
use super::sigurg::SigurgLib;
use super::skel::types::lp_sigxmm;
use super::skel::ProbeSkel;

/// Whether `lp_sigtramp` is attached in the traced process.
#[derive(Default)]
pub enum SignalXmm {
    #[default]
    Untried,
    /// Attached, and the probes told so.
    On(Link),
    /// The program has no such handler, or the kernel refused: XMM
    /// captures are unreadable.
    Off,
}

impl SignalXmm {
    /// Attaches `lp_sigtramp` to the signal handlers of the program at
    /// `path` (mapped by `pid`), or to the handler of the library it was
    /// given (`preload`), unless that was tried already, then tells the
    /// probes that XMM captures may go through a signal frame.
    pub fn enable(
        &mut self,
        skel: &ProbeSkel<'_>,
        pid: i32,
        path: &Path,
        preload: Option<&SigurgLib>,
    ) {
        if !matches!(self, SignalXmm::Untried) {
            return;
        }
        let attached = match preload {
            Some(p) => attach(skel, pid, &p.path(), vec![(p.handler(), 0)]),
            None => attach(skel, pid, path, sigtramp_sites(path)),
        };
        *self = match attached {
            Some(link) => SignalXmm::On(link),
            None => SignalXmm::Off,
        };
    }

    /// The link, to be dropped with the others.
    pub fn take_link(&mut self) -> Option<Link> {
        match std::mem::replace(self, SignalXmm::Off) {
            SignalXmm::On(link) => Some(link),
            _ => None,
        }
    }
}

/// Attaches `lp_sigtramp` at `sites` (file offset, cookie) of the file at
/// `path`.
fn attach(skel: &ProbeSkel<'_>, pid: i32, path: &Path, sites: Vec<(u64, u64)>) -> Option<Link> {
    if sites.is_empty() {
        return None;
    }
    let opts = UprobeMultiOpts {
        offsets: sites.iter().map(|&(offset, _)| offset as usize).collect(),
        cookies: sites.iter().map(|&(_, cookie)| cookie).collect(),
        ..Default::default()
    };
    let mut layout = task_layout().ok()?;
    let link = skel
        .progs
        .lp_sigtramp
        .attach_uprobe_multi_with_opts(pid, path, "", opts)
        .ok()?;
    layout.on = 1;
    skel.maps
        .sigxmm
        .update(&0u32.to_ne_bytes(), abi::bytes_of(&layout), MapFlags::ANY)
        .ok()?;
    Some(link)
}

/// Where, in the running kernel's structures, the probes read whether a
/// thread handles SIGURG (see `struct lp_sigxmm` in `bpf/probe.h`).
fn task_layout() -> Result<lp_sigxmm> {
    let btf = Btf::from_vmlinux().context("reading the kernel's BTF")?;
    let strukt = |name: &str| -> Result<Composite<'_>> {
        btf.type_by_name::<Struct<'_>>(name)
            .map(Composite::from)
            .ok_or_else(|| anyhow!("the kernel's BTF has no struct {name}"))
    };
    let task = strukt("task_struct")?;
    let sighand = strukt("sighand_struct")?;
    let k_sigaction = strukt("k_sigaction")?;
    let sigaction = strukt("sigaction")?;
    let handler = offset_of(&btf, &sighand, "action")?
        + (libc::SIGURG as u32 - 1) * k_sigaction.size() as u32
        + offset_of(&btf, &k_sigaction, "sa")?
        + offset_of(&btf, &sigaction, "sa_handler")?;
    Ok(lp_sigxmm {
        on: 0,
        sighand: offset_of(&btf, &task, "sighand")?,
        sigurg_handler: handler,
        blocked: offset_of(&btf, &task, "blocked")?,
    })
}

/// The byte offset of member `name` of `c`, looking into anonymous
/// structs and unions as C does.
fn offset_of(btf: &Btf<'_>, c: &Composite<'_>, name: &str) -> Result<u32> {
    fn find(btf: &Btf<'_>, c: &Composite<'_>, name: &str) -> Option<u32> {
        c.iter().find_map(|m| {
            let MemberAttr::Normal { offset } = m.attr else {
                return None;
            };
            match m.name {
                Some(n) if n == name => Some(offset / 8),
                None => {
                    let t = btf
                        .type_by_id::<BtfType<'_>>(m.ty)?
                        .skip_mods_and_typedefs();
                    let inner = Composite::try_from(t).ok()?;
                    Some(offset / 8 + find(btf, &inner, name)?)
                }
                _ => None,
            }
        })
    }
    find(btf, c, name).ok_or_else(|| anyhow!("the kernel's BTF has no member {name}"))
}

/// Where `lp_sigtramp` goes in the ELF file at `path`: (file offset,
/// attach cookie) for each of Go's signal handlers (named with or without
/// the `.abi0` suffix, by Go version). Go's `runtime.sigtramp` moves its
/// arguments DI, SI, DX to AX, BX, CX and calls `runtime.sigtrampgo`; that
/// CALL, which the kernel emulates, is the site when those exact
/// instructions are found (cookie: its distance from the entry, shifted,
/// with bit 0 set); otherwise the entry (cookie 0), which the kernel
/// single-steps. Reads only the symbol table and the handlers' code.
fn sigtramp_sites(path: &Path) -> Vec<(u64, u64)> {
    use object::{Object, ObjectSymbol, ReadRef};
    const HANDLERS: [&str; 4] = [
        "runtime.sigtramp",
        "runtime.sigtramp.abi0",
        "runtime.cgoSigtramp",
        "runtime.cgoSigtramp.abi0",
    ];
    // mov %rdi,%rax; mov %rsi,%rbx; mov %rdx,%rcx; call rel32
    const TO_SIGTRAMPGO: [u8; 10] = [0x48, 0x89, 0xf8, 0x48, 0x89, 0xf3, 0x48, 0x89, 0xd1, 0xe8];
    let Ok(f) = File::open(path) else {
        return Vec::new();
    };
    let data = object::ReadCache::new(f);
    let Ok(file) = object::File::parse(&data) else {
        return Vec::new();
    };
    let file_offset = |addr: u64| super::addresses::file_offset(&file, addr);
    file.symbols()
        .filter(|s| s.name().is_ok_and(|n| HANDLERS.contains(&n)))
        .filter_map(|s| {
            let entry = file_offset(s.address())?;
            let is_sigtramp = s.name().is_ok_and(|n| n.starts_with("runtime.sigtramp"));
            let code = is_sigtramp
                .then(|| data.read_bytes_at(entry, s.size()).ok())
                .flatten();
            let call = code.and_then(|code| {
                code.windows(TO_SIGTRAMPGO.len())
                    .position(|w| w == TO_SIGTRAMPGO)
                    .map(|k| k as u64 + 9)
            });
            Some(match call {
                Some(d) => (entry + d, (d << 1) | 1),
                None => (entry, 0),
            })
        })
        .collect()
}
