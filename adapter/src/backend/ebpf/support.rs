//! What the eBPF backend needs from this machine's kernel, asked of the
//! kernel directly: the `bpf` system call and the permission to use it,
//! ring buffers, `bpf_loop`, uprobe-multi links and raw tracepoints (and
//! the kernel's BTF, for floats read through a signal frame). `auto` makes the quick checks before it
//! chooses eBPF; `logprobe doctor` shows them all, with the full
//! [`self_test`] that loads and attaches logprobe's own program.
//!
//! None of this needs tracefs or debugfs: uprobes are attached by file
//! offset through uprobe-multi links, and the output relay uses the raw
//! `sys_enter`/`sys_exit` tracepoints, attached by name.

use std::mem::MaybeUninit;
use std::os::fd::{FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use libbpf_rs::libbpf_sys;
use libbpf_rs::{MapType, ProgramType, UprobeMultiOpts};

use super::load::{self, Sizes, Verified};

/// Where the kernel publishes its own BTF, which CO-RE relocations read.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// Why the `bpf` system call refused a trivial program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// EPERM/EACCES: not root, no CAP_BPF + CAP_PERFMON, or lockdown.
    Permission,
    /// ENOSYS: a kernel built without CONFIG_BPF_SYSCALL.
    NoBpf,
    /// Anything else (the errno).
    Other(i32),
}

/// Loads (and closes) a two-instruction uprobe program: whether the `bpf`
/// system call exists and this process may load tracing programs.
pub fn load_trivial() -> std::result::Result<(), Refusal> {
    trivial_program(None)
        .map(drop)
        .map_err(|errno| match errno {
            libc::EPERM | libc::EACCES => Refusal::Permission,
            libc::ENOSYS => Refusal::NoBpf,
            e => Refusal::Other(e),
        })
}

/// `r0 = 0; exit` as a uprobe program (for links of `attach_type` when
/// given); the errno when the kernel refuses it.
pub fn trivial_program(attach_type: Option<u32>) -> std::result::Result<OwnedFd, i32> {
    let insns = [
        libbpf_sys::bpf_insn {
            code: 0xb7,
            ..Default::default()
        },
        libbpf_sys::bpf_insn {
            code: 0x95,
            ..Default::default()
        },
    ];
    let mut opts = libbpf_sys::bpf_prog_load_opts {
        sz: std::mem::size_of::<libbpf_sys::bpf_prog_load_opts>() as _,
        expected_attach_type: attach_type.unwrap_or_default(),
        ..Default::default()
    };
    // SAFETY: `insns` is a valid array of two instructions and `opts` a
    // fully initialised bpf_prog_load_opts whose `sz` is its own size;
    // both outlive the call; the license is a NUL-terminated string
    // literal and a null name is allowed by bpf_prog_load.
    let fd = unsafe {
        libbpf_sys::bpf_prog_load(
            libbpf_sys::BPF_PROG_TYPE_KPROBE,
            std::ptr::null(),
            c"GPL".as_ptr(),
            insns.as_ptr(),
            insns.len() as _,
            &mut opts,
        )
    };
    if fd < 0 {
        return Err(-fd);
    }
    // SAFETY: bpf_prog_load returned a new descriptor that nothing else
    // owns; the OwnedFd closes it once.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub fn refusal_message(r: Refusal) -> String {
    match r {
        Refusal::Permission => {
            "no permission to load BPF programs (run as root, or grant CAP_BPF and CAP_PERFMON)"
                .into()
        }
        Refusal::NoBpf => "this kernel has no bpf system call (CONFIG_BPF_SYSCALL)".into(),
        Refusal::Other(e) => format!(
            "the kernel refused a trivial BPF program: {}",
            std::io::Error::from_raw_os_error(e)
        ),
    }
}

/// Whether the kernel has BPF ring buffers (5.8).
pub fn ring_buffers() -> Result<bool> {
    MapType::RingBuf
        .is_supported()
        .context("probing for ring buffers")
}

/// Whether uprobe programs may call `bpf_loop` (5.17).
pub fn bpf_loop() -> Result<bool> {
    ProgramType::Kprobe
        .is_helper_supported(libbpf_sys::BPF_FUNC_loop)
        .context("probing for bpf_loop")
}

/// The checks `auto` makes before it chooses eBPF: well under a
/// millisecond, and no verification of logprobe's program. (The kernel's
/// BTF is not needed to load it: without it only floats in XMM registers
/// are unreadable.)
pub fn quick_check() -> Result<()> {
    load_trivial().map_err(|r| anyhow!(refusal_message(r)))?;
    if !ring_buffers()? {
        bail!("this kernel has no BPF ring buffers (Linux 5.8 or later is needed)");
    }
    if !bpf_loop()? {
        bail!("this kernel has no bpf_loop (Linux 5.17 or later is needed)");
    }
    Ok(())
}

/// What loading and attaching logprobe's own program showed.
pub struct SelfTest {
    /// Opening and loading the object as a run does (wall clock), and
    /// the verifier's figures for each program; or why it failed.
    pub load: Result<(Duration, Vec<Verified>)>,
    /// A uprobe-multi link on a function of logprobe's own executable.
    pub uprobe_multi: Result<()>,
    /// The output relay's raw `sys_enter` tracepoint.
    pub raw_tracepoint: Result<()>,
}

/// Loads logprobe's program as a run does, attaches `lp_probe` through a
/// uprobe-multi link to a function of this very executable that is never
/// called while attached, and the relay's program to the raw `sys_enter`
/// tracepoint (for this process only: the relay map names no process, so
/// it does nothing), then detaches both.
pub fn self_test() -> SelfTest {
    let stats = load::verifier_stats();
    let mut object = MaybeUninit::uninit();
    let start = Instant::now();
    let skel = load::load(&mut object, Sizes::full(1));
    let took = start.elapsed();
    let (uprobe_multi, raw_tracepoint) = match &skel {
        Ok(skel) => (
            attach_to_self(skel),
            skel.progs
                .lp_enter_write
                .attach_raw_tracepoint("sys_enter")
                .map(drop)
                .map_err(|e| anyhow!("attaching to the raw tracepoint sys_enter: {e}")),
        ),
        Err(e) => {
            let why = || anyhow!("not tried: the program did not load ({e:#})");
            (Err(why()), Err(why()))
        }
    };
    SelfTest {
        load: stats.map(|s| (took, s)),
        uprobe_multi,
        raw_tracepoint,
    }
}

/// Target of the uprobe-multi test: never called while the probe is
/// attached, so the probe never fires.
#[inline(never)]
fn uprobe_target() -> u64 {
    std::hint::black_box(42)
}

/// Attaches `lp_probe` to [`uprobe_target`], found through its run-time
/// address in this process's mappings (no symbol table needed).
fn attach_to_self(skel: &super::skel::ProbeSkel<'_>) -> Result<()> {
    let address = std::hint::black_box(uprobe_target as fn() -> u64) as usize as u64;
    let maps = std::fs::read_to_string("/proc/self/maps").context("reading /proc/self/maps")?;
    let (path, offset) = super::addresses::mappings(&maps)
        .find(|m| address >= m.start && address < m.end && !m.path.is_empty())
        .map(|m| (m.path.to_string(), address - m.start + m.offset))
        .ok_or_else(|| anyhow!("logprobe's own code is not in a file mapping"))?;
    let opts = UprobeMultiOpts {
        offsets: vec![offset as usize],
        cookies: vec![0],
        ..Default::default()
    };
    skel.progs
        .lp_probe
        .attach_uprobe_multi_with_opts(std::process::id() as i32, &path, "", opts)
        .map(drop)
        .map_err(|e| anyhow!("attaching a uprobe-multi link: {e}"))
}
