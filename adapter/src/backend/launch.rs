//! Starting a program held at its first instruction's doorstep: the child
//! stops itself (SIGSTOP) after `fork` and before `execve`, so a backend can
//! attach (ptrace) or arm uprobes (eBPF) before any of the program runs.

use std::ffi::{CString, OsString};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use nix::sys::signal::Signal;
use nix::unistd::{ForkResult, Pid};

use super::Launch;

/// Finds `program` the way a shell does: a path with a slash as is, else
/// the first executable file of that name on PATH.
pub fn resolve_program(program: &Path) -> Result<PathBuf> {
    let has_slash = program.as_os_str().as_bytes().contains(&b'/');
    let candidate = if has_slash {
        program.to_path_buf()
    } else {
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
            .ok_or_else(|| anyhow!("{}: program not found on PATH", program.display()))?
    };
    let meta =
        std::fs::metadata(&candidate).map_err(|e| anyhow!("{}: {e}", candidate.display()))?;
    if !meta.is_file() {
        bail!("{} is not a regular file", candidate.display());
    }
    use std::os::unix::fs::PermissionsExt;
    if meta.permissions().mode() & 0o111 == 0 {
        bail!("{} is not executable (chmod +x it)", candidate.display());
    }
    Ok(candidate)
}

fn cstring(bytes: &[u8]) -> Result<CString> {
    CString::new(bytes).map_err(|_| anyhow!("argument contains a NUL byte"))
}

/// What a backend adds to the programs it launches.
#[derive(Debug, Default)]
pub struct Extras {
    /// Environment variables, over the launch's and logprobe's own.
    pub env: Vec<(String, String)>,
    /// A descriptor (opened close-on-exec) the program keeps across
    /// `execve`.
    pub keep_fd: Option<RawFd>,
}

/// The value of `name` in the environment `launch` gives its program.
pub fn launch_env(launch: &Launch, name: &str) -> Option<OsString> {
    match launch.env.iter().find(|(k, _)| k == name) {
        Some((_, v)) => Some(v.into()),
        None => std::env::var_os(name),
    }
}

/// Forks a child that stops itself before executing `launch.program`, and
/// waits until it is stopped. The caller continues it with SIGCONT. With
/// `launch.stdio`, `output` are the write ends that become the child's
/// stdout and stderr (see `output::open`); `extras` are the backend's own.
pub fn spawn_stopped(
    launch: &Launch,
    output: Option<&[OwnedFd; 2]>,
    extras: &Extras,
) -> Result<Pid> {
    let program = resolve_program(&launch.program)?;
    let path = cstring(program.as_os_str().as_bytes())?;
    let mut argv = vec![cstring(launch.program.as_os_str().as_bytes())?];
    for a in &launch.args {
        argv.push(cstring(a.as_bytes())?);
    }
    let given: Vec<&(String, String)> = extras.env.iter().chain(&launch.env).collect();
    let mut env: Vec<(Vec<u8>, Vec<u8>)> = std::env::vars_os()
        .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .filter(|(k, _)| !given.iter().any(|(ek, _)| ek.as_bytes() == k.as_slice()))
        .collect();
    let mut seen: Vec<&str> = Vec::new();
    for (k, v) in given {
        // The backend's own first: they already include the launch's.
        if !seen.contains(&k.as_str()) {
            seen.push(k);
            env.push((k.as_bytes().to_vec(), v.as_bytes().to_vec()));
        }
    }
    let envp = env
        .iter()
        .map(|(k, v)| cstring(&[k.as_slice(), b"=", v.as_slice()].concat()))
        .collect::<Result<Vec<_>>>()?;
    let cwd = match &launch.cwd {
        Some(d) => Some(cstring(d.as_os_str().as_bytes())?),
        None => None,
    };
    let fds = match (&launch.stdio, output) {
        (Some(s), Some([out, err])) => {
            Some([s.stdin.as_raw_fd(), out.as_raw_fd(), err.as_raw_fd()])
        }
        (None, None) => None,
        _ => bail!("the program's stdin and its output pipes go together"),
    };
    if let Some(d) = &launch.cwd {
        if !d.is_dir() {
            bail!("working directory {} does not exist", d.display());
        }
    }

    let parent = nix::unistd::getpid().as_raw();
    // SAFETY: between fork and execve the child calls only async-signal-safe
    // functions (prctl, getppid, dup2, fcntl, chdir, raise, execve, _exit) on
    // data prepared before the fork; it allocates nothing and takes no locks.
    match unsafe { nix::unistd::fork() }.context("fork")? {
        ForkResult::Child => {
            // The program dies with logprobe (with the thread that started
            // it, which runs the trace to its end): never half-instrumented,
            // never unobserved. A parent already gone is checked after.
            // SAFETY: prctl(PR_SET_PDEATHSIG) and getppid take and return
            // plain integers.
            let dies = unsafe {
                libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGKILL as libc::c_ulong,
                    0,
                    0,
                    0,
                )
            };
            // SAFETY: as above.
            if dies != 0 || unsafe { libc::getppid() } != parent {
                // SAFETY: _exit is async-signal-safe.
                unsafe { libc::_exit(126) };
            }
            if let Some(fds) = fds {
                for (target, fd) in fds.into_iter().enumerate() {
                    // SAFETY: dup2 is async-signal-safe; both are plain
                    // descriptor numbers, `fd` open in this process.
                    if unsafe { libc::dup2(fd, target as libc::c_int) } < 0 {
                        // SAFETY: _exit is async-signal-safe.
                        unsafe { libc::_exit(126) };
                    }
                }
            }
            if let Some(fd) = extras.keep_fd {
                // SAFETY: fcntl is async-signal-safe; `fd` is open in this
                // process, and clearing FD_CLOEXEC touches nothing else.
                if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } < 0 {
                    // SAFETY: _exit is async-signal-safe.
                    unsafe { libc::_exit(126) };
                }
            }
            if let Some(d) = &cwd {
                if nix::unistd::chdir(d.as_c_str()).is_err() {
                    // SAFETY: _exit is async-signal-safe.
                    unsafe { libc::_exit(126) };
                }
            }
            let _ = nix::sys::signal::raise(Signal::SIGSTOP);
            let _ = nix::unistd::execve(&path, &argv, &envp);
            // SAFETY: _exit is async-signal-safe.
            unsafe { libc::_exit(127) }
        }
        ForkResult::Parent { child } => {
            let mut status = 0;
            // SAFETY: waitpid writes only into `status`, a local integer.
            let r = unsafe { libc::waitpid(child.as_raw(), &mut status, libc::WUNTRACED) };
            if r != child.as_raw() || !libc::WIFSTOPPED(status) {
                bail!("{}: the child did not start", program.display());
            }
            Ok(child)
        }
    }
}
