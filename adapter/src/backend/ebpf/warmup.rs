//! Paying, while the executable is read, the wait the kernel makes the
//! first uprobe registration after a quiet spell.
//!
//! Registering a uprobe takes the kernel's `dup_mmap_sem` for writing, a
//! per-CPU semaphore whose first writer after a quiet spell waits for an
//! RCU grace period (`rcu_sync_enter`); writers within about a grace
//! period of the last one pass at once. Here that wait is 8–20 ms, and
//! without a warm-up it lies between reading the executable and letting
//! the launched program run. So when the eBPF backend starts loading, a
//! thread of this module registers one uprobe that never fires (on an
//! anonymous memory file nothing maps, for this process only) and removes
//! it at once: the wait happens beside the DWARF reader, and the removal
//! (which takes the semaphore again, keeping the way open for the run's
//! own probes) waits for its own grace periods on that thread, long before
//! the run ends. docs/benchmarks.md ("Start-up") has the figures, and what
//! keeping the uprobe until the run ends costs instead.
//!
//! Nothing depends on it: if the kernel refuses any step, or the probes
//! are linked long after, arming takes as long as it would have.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use libbpf_rs::libbpf_sys;
use nix::sys::memfd::{memfd_create, MemFdCreateFlag};

/// Registers and removes the warm-up uprobe on a thread of its own.
pub fn start() {
    std::thread::spawn(|| drop(register()));
}

/// The warm-up uprobe's link (with what it is made of, closed after it).
struct Registered {
    _link: OwnedFd,
    _program: OwnedFd,
    _file: OwnedFd,
}

/// `None` when the kernel refused a step.
fn register() -> Option<Registered> {
    let file = memfd_create(c"logprobe-warmup", MemFdCreateFlag::MFD_CLOEXEC).ok()?;
    // One page of `ret`: the offset must be inside the file; the bytes are
    // never run (nothing maps the file).
    nix::unistd::write(&file, &[0xc3u8; 4096]).ok()?;
    let program = super::support::trivial_program(Some(libbpf_sys::BPF_TRACE_UPROBE_MULTI)).ok()?;
    let path = CString::new(format!("/proc/self/fd/{}", file.as_raw_fd())).ok()?;
    let offsets: [libc::c_ulong; 1] = [0];
    let mut opts = libbpf_sys::bpf_link_create_opts {
        sz: std::mem::size_of::<libbpf_sys::bpf_link_create_opts>() as _,
        ..Default::default()
    };
    opts.__bindgen_anon_1.uprobe_multi =
        libbpf_sys::bpf_link_create_opts__bindgen_ty_1__bindgen_ty_3 {
            path: path.as_ptr(),
            offsets: offsets.as_ptr(),
            cnt: 1,
            pid: std::process::id(),
            ..Default::default()
        };
    // SAFETY: `program` is a BPF program descriptor we own; `opts` is a
    // fully initialised bpf_link_create_opts whose `sz` is its own size,
    // and the path and the offsets array (one element, `cnt` = 1) it
    // points to outlive the call (the kernel copies them); null
    // ref_ctr_offsets and cookies are allowed.
    let link = unsafe {
        libbpf_sys::bpf_link_create(
            program.as_raw_fd(),
            0,
            libbpf_sys::BPF_TRACE_UPROBE_MULTI,
            &opts,
        )
    };
    if link < 0 {
        return None;
    }
    Some(Registered {
        // SAFETY: bpf_link_create returned a new descriptor nothing else
        // owns.
        _link: unsafe { OwnedFd::from_raw_fd(link) },
        _program: program,
        _file: file,
    })
}
