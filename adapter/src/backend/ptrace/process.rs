//! Getting hold of the program: launching it under trace (and running it
//! to its entry point when libraries must be mapped first), attaching to a
//! running one thread by thread, and where a file is loaded in it.

use std::collections::HashSet;
use std::os::unix::fs::FileExt;
use std::path::Path;

use anyhow::{bail, Context, Result};
use nix::errno::Errno;

use super::sys::{cont, event_of, get_regs, pt, set_regs, tasks, wait};
use super::INT3;
use crate::backend::{launch, output};
use crate::plan::Reg;

/// Starts the program under trace and returns at its first instruction
/// after `execve`, every option set; with `Launch::stdio`, also the pipes
/// its stdout and stderr write into.
pub(super) fn start(l: &crate::backend::Launch) -> Result<(i32, Option<Vec<output::Pipe>>)> {
    let (pipes, ends) = match &l.stdio {
        Some(_) => {
            let (pipes, ends) = output::open()?;
            (Some(pipes), Some(ends))
        }
        None => (None, None),
    };
    // Our copies of the write ends close when this returns.
    let pid = launch::spawn_stopped(l, ends.as_ref(), &launch::Extras::default())?;
    let options = libc::PTRACE_O_TRACECLONE | libc::PTRACE_O_TRACEEXEC | libc::PTRACE_O_EXITKILL;
    if let Err(e) = pt(libc::PTRACE_SEIZE, pid.as_raw(), 0, options as usize) {
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        let _ = wait(pid.as_raw());
        bail!("cannot trace the program: {e} (ptrace needs root or CAP_SYS_PTRACE)");
    }
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT);
    loop {
        let Some((_, status)) = wait(pid.as_raw())? else {
            continue;
        };
        if libc::WIFEXITED(status) {
            let code = libc::WEXITSTATUS(status);
            bail!(
                "{}: could not be executed (exit status {code})",
                l.program.display()
            );
        }
        if libc::WIFSIGNALED(status) {
            bail!(
                "{}: killed by signal {} before it started",
                l.program.display(),
                libc::WTERMSIG(status)
            );
        }
        if !libc::WIFSTOPPED(status) {
            continue;
        }
        match event_of(status) {
            libc::PTRACE_EVENT_EXEC => return Ok((pid.as_raw(), pipes)),
            0 => {
                let sig = libc::WSTOPSIG(status);
                let deliver = if sig == libc::SIGCONT || sig == libc::SIGSTOP {
                    0
                } else {
                    sig
                };
                cont(pid.as_raw(), deliver);
            }
            _ => cont(pid.as_raw(), 0),
        }
    }
}

/// `AT_ENTRY` in the auxiliary vector: the executable's entry point.
pub(super) const AT_ENTRY: u64 = 9;

/// Lets a launched program, stopped at its first instruction after
/// `execve` (the loader's), run to its executable's entry point, where the
/// loader has mapped the shared libraries it needs (`DT_NEEDED`) and none
/// of the program's own code has run: a temporary `int3` at `AT_ENTRY`
/// (from `/proc/PID/auxv`), removed when the program stops there.
pub(super) fn run_to_entry(pid: i32) -> Result<()> {
    let auxv = std::fs::read(format!("/proc/{pid}/auxv"))
        .with_context(|| format!("reading the auxiliary vector of process {pid}"))?;
    let word = |b: &[u8]| {
        let mut x = [0u8; 8];
        x.copy_from_slice(b);
        u64::from_le_bytes(x)
    };
    let entry = auxv
        .chunks_exact(16)
        .find(|c| word(&c[..8]) == AT_ENTRY)
        .map(|c| word(&c[8..]))
        .with_context(|| format!("process {pid} has no entry point in its auxiliary vector"))?;
    let mem = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("/proc/{pid}/mem"))
        .with_context(|| format!("opening the memory of process {pid}"))?;
    let mut original = [0u8; 1];
    mem.read_exact_at(&mut original, entry)
        .with_context(|| format!("reading the entry point at {entry:#x}"))?;
    mem.write_all_at(&[INT3], entry)
        .with_context(|| format!("writing a breakpoint at the entry point {entry:#x}"))?;
    cont(pid, 0);
    loop {
        let Some((_, status)) = wait(pid)? else {
            continue;
        };
        if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
            bail!("the program ended before its entry point");
        }
        if !libc::WIFSTOPPED(status) {
            continue;
        }
        let sig = libc::WSTOPSIG(status);
        match event_of(status) {
            0 if sig == libc::SIGTRAP => {
                let mut regs = get_regs(pid)?;
                if regs[Reg::Rip.slot()] == entry + 1 {
                    mem.write_all_at(&original, entry)
                        .with_context(|| format!("restoring the entry point at {entry:#x}"))?;
                    regs[Reg::Rip.slot()] = entry;
                    return set_regs(pid, &regs);
                }
                cont(pid, sig);
            }
            0 => cont(pid, sig),
            _ => cont(pid, 0),
        }
    }
}

/// Seizes every thread of a running process, without stopping it.
pub(super) fn attach(pid: i32) -> Result<i32> {
    if pid <= 0 {
        bail!("{pid} is not a process id");
    }
    if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
        bail!("no process with pid {pid}");
    }
    if pid == std::process::id() as i32 {
        bail!("logprobe cannot trace itself");
    }
    let mut seized = HashSet::new();
    loop {
        let mut new = false;
        for tid in tasks(pid)? {
            if seized.contains(&tid) {
                continue;
            }
            match pt(
                libc::PTRACE_SEIZE,
                tid,
                0,
                libc::PTRACE_O_TRACECLONE as usize,
            ) {
                Ok(_) => {}
                Err(Errno::ESRCH) => continue,
                Err(Errno::EPERM) => {
                    detach_quietly(&seized);
                    bail!(
                        "cannot trace pid {pid}: operation not permitted (run as root, or check /proc/sys/kernel/yama/ptrace_scope and whether a debugger is already attached)"
                    )
                }
                Err(e) => {
                    detach_quietly(&seized);
                    bail!("cannot trace pid {pid}: {e}")
                }
            }
            seized.insert(tid);
            new = true;
        }
        if !new {
            break;
        }
    }
    Ok(pid)
}

pub(super) fn detach_quietly(tids: &HashSet<i32>) {
    for &t in tids {
        let _ = pt(libc::PTRACE_DETACH, t, 0, 0);
    }
}

/// The difference between where a file is mapped in process `pid` and
/// its ELF addresses: the executable's (`None`; 0 when it is not
/// position-independent) or a shared library's (by its real path). The
/// start of the mapping of file offset 0 minus the link-time address of
/// the segment there (0 for most PIEs and libraries, 0x400000 for Go's).
pub(super) fn load_bias(pid: i32, library: Option<&Path>) -> Result<u64> {
    use object::{Object, ObjectKind, ObjectSegment};
    let path = match library {
        Some(l) => l.to_path_buf(),
        None => std::fs::read_link(format!("/proc/{pid}/exe"))
            .with_context(|| format!("no process {pid}"))?,
    };
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps"))?;
    let data = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let file =
        object::File::parse(&*data).with_context(|| format!("{} is not ELF", path.display()))?;
    if file.kind() != ObjectKind::Dynamic {
        return Ok(0);
    }
    let linked = file
        .segments()
        .find(|s| s.file_range().0 == 0)
        .map_or(0, |s| s.address() & !0xfff);
    let name = path.to_string_lossy();
    let start = crate::backend::ebpf::addresses::mappings(&maps)
        .find(|m| m.path == name && m.offset == 0)
        .map(|m| m.start);
    match (start, library) {
        (Some(s), _) => Ok(s.wrapping_sub(linked)),
        (None, Some(_)) => bail!(
            "{} is not loaded in process {pid} (yet): its functions cannot be probed",
            path.display()
        ),
        (None, None) => bail!(
            "cannot find where {} is mapped in process {pid}",
            path.display()
        ),
    }
}
