//! The ptrace system calls the tracer is made of: requests, waiting,
//! registers (general and XMM), memory, a process's threads.

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::sys::uio::{process_vm_readv, process_vm_writev, RemoteIoVec};
use nix::unistd::Pid;

/// Issues a ptrace request whose address and data are plain integers.
pub(super) fn pt(
    request: libc::c_uint,
    tid: i32,
    addr: usize,
    data: usize,
) -> nix::Result<libc::c_long> {
    // SAFETY: every caller passes a request (CONT, SINGLESTEP, DETACH,
    // INTERRUPT, LISTEN, SEIZE, GETEVENTMSG into a local) whose `addr` and
    // `data` are integers or point to memory owned by the caller for the
    // duration of the call.
    let r = unsafe {
        libc::ptrace(
            request,
            tid,
            addr as *mut libc::c_void,
            data as *mut libc::c_void,
        )
    };
    if r == -1 {
        Err(Errno::last())
    } else {
        Ok(r)
    }
}

pub(super) fn cont(tid: i32, sig: i32) {
    // A thread can vanish (killed, exited) between its stop and this call;
    // its exit is reported by waitpid, so ESRCH is not an error here.
    let _ = pt(libc::PTRACE_CONT, tid, 0, sig as usize);
}

/// Blocks for the next wait status of `pid` (-1: any thread this thread
/// traces). `None` when interrupted by a signal. `__WNOTHREAD` keeps the
/// wait to this thread's own children and tracees: the DAP server runs a
/// backend per session on threads of one process, and a wait for "any"
/// must not take another session's program's stops or exit.
pub(super) fn wait(pid: i32) -> Result<Option<(i32, i32)>> {
    let mut status = 0;
    // SAFETY: waitpid writes only into `status`, a local integer.
    let r = unsafe { libc::waitpid(pid, &mut status, libc::__WALL | libc::__WNOTHREAD) };
    if r < 0 {
        let e = Errno::last();
        if e == Errno::EINTR {
            return Ok(None);
        }
        bail!("waitpid: {e}");
    }
    Ok(Some((r, status)))
}

pub(super) fn event_of(status: i32) -> i32 {
    (status >> 16) & 0xff
}

/// A stopped thread's `user_regs_struct`, field by field in its order; the
/// first 21 are also the kernel's `pt_regs` slots ([`Reg`]), the rest the
/// segment state, kept so registers are written back with one syscall.
pub(super) type Regs = [u64; 27];

pub(super) fn get_regs(tid: i32) -> Result<Regs> {
    let r = nix::sys::ptrace::getregs(Pid::from_raw(tid))
        .with_context(|| format!("reading registers of thread {tid}"))?;
    Ok([
        r.r15, r.r14, r.r13, r.r12, r.rbp, r.rbx, r.r11, r.r10, r.r9, r.r8, r.rax, r.rcx, r.rdx,
        r.rsi, r.rdi, r.orig_rax, r.rip, r.cs, r.eflags, r.rsp, r.ss, r.fs_base, r.gs_base, r.ds,
        r.es, r.fs, r.gs,
    ])
}

/// Writes back registers read by [`get_regs`] (and changed).
pub(super) fn set_regs(tid: i32, regs: &Regs) -> Result<()> {
    let [r15, r14, r13, r12, rbp, rbx, r11, r10, r9, r8, rax, rcx, rdx, rsi, rdi, orig_rax, rip, cs, eflags, rsp, ss, fs_base, gs_base, ds, es, fs, gs] =
        *regs;
    let r = libc::user_regs_struct {
        r15,
        r14,
        r13,
        r12,
        rbp,
        rbx,
        r11,
        r10,
        r9,
        r8,
        rax,
        rcx,
        rdx,
        rsi,
        rdi,
        orig_rax,
        rip,
        cs,
        eflags,
        rsp,
        ss,
        fs_base,
        gs_base,
        ds,
        es,
        fs,
        gs,
    };
    nix::sys::ptrace::setregs(Pid::from_raw(tid), r)
        .with_context(|| format!("writing registers of thread {tid}"))?;
    Ok(())
}

/// Low 8 bytes of each XMM register of a stopped thread.
pub(super) fn get_xmm(tid: i32) -> Option<[u64; 16]> {
    // SAFETY: user_fpregs_struct is plain old data; all-zero bytes are valid.
    let mut fp: libc::user_fpregs_struct = unsafe { std::mem::zeroed() };
    // SAFETY: PTRACE_GETFPREGS writes exactly one user_fpregs_struct at the
    // address given, which is `fp`, live and exclusively borrowed here.
    let r = unsafe {
        libc::ptrace(
            libc::PTRACE_GETFPREGS,
            tid,
            std::ptr::null_mut::<libc::c_void>(),
            &mut fp as *mut _ as *mut libc::c_void,
        )
    };
    if r == -1 {
        return None;
    }
    let mut out = [0u64; 16];
    for (n, slot) in out.iter_mut().enumerate() {
        let lo = fp.xmm_space[n * 4] as u64;
        let hi = fp.xmm_space[n * 4 + 1] as u64;
        *slot = lo | (hi << 32);
    }
    Some(out)
}

pub(super) fn read_memory(tid: i32, addr: u64, len: usize) -> Option<Vec<u8>> {
    if len == 0 {
        return Some(Vec::new());
    }
    let mut buf = vec![0u8; len];
    let remote = [RemoteIoVec {
        base: addr as usize,
        len,
    }];
    match process_vm_readv(
        Pid::from_raw(tid),
        &mut [std::io::IoSliceMut::new(&mut buf)],
        &remote,
    ) {
        Ok(0) | Err(_) => None,
        Ok(n) => {
            buf.truncate(n);
            Some(buf)
        }
    }
}

pub(super) fn write_memory(tid: i32, addr: u64, bytes: &[u8]) -> Result<()> {
    let remote = [RemoteIoVec {
        base: addr as usize,
        len: bytes.len(),
    }];
    let n = process_vm_writev(Pid::from_raw(tid), &[std::io::IoSlice::new(bytes)], &remote)?;
    if n != bytes.len() {
        bail!("short write to thread {tid}'s memory");
    }
    Ok(())
}

pub(super) fn tasks(pid: i32) -> Result<Vec<i32>> {
    let dir = format!("/proc/{pid}/task");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("no process {pid}"))? {
        if let Some(tid) = entry?.file_name().to_str().and_then(|s| s.parse().ok()) {
            out.push(tid);
        }
    }
    Ok(out)
}

/// Whether thread `tid` of process `leader` has a SIGTRAP pending, not yet
/// taken (its own pending set, `SigPnd` in its status).
pub(super) fn trap_pending(leader: i32, tid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{leader}/task/{tid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("SigPnd:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .is_some_and(|mask| mask & (1 << (libc::SIGTRAP - 1)) != 0)
}

/// Waits for one thread, retrying when a signal interrupts the wait.
pub(super) fn wait_retrying(tid: i32) -> Result<Option<(i32, i32)>> {
    for _ in 0..1000 {
        match wait(tid) {
            Ok(Some(s)) => return Ok(Some(s)),
            Ok(None) => continue,
            Err(_) => return Ok(None),
        }
    }
    Ok(None)
}
