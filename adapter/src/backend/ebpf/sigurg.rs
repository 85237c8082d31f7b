//! The SIGURG handler library (`sigurg.c`, built by build.rs and embedded)
//! that a launched C, C++ or Rust program gets through LD_PRELOAD, so that
//! the probes can read its XMM registers from a signal frame as they do a
//! Go program's (see `signal` and bpf/probe.bpf.c).
//!
//! The library lives in a memfd, never on disk: the launched child keeps
//! the descriptor across `execve` and the dynamic loader opens it as
//! `/proc/self/fd/N`; the library's constructor then closes it and takes
//! itself out of LD_PRELOAD, so the program's own children start clean.
//! logprobe keeps its own descriptor to attach `lp_sigtramp` to the
//! handler (a uprobe names a file by its inode, which a memfd has).

use std::ffi::OsString;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use nix::sys::memfd::{memfd_create, MemFdCreateFlag};

/// Bytes kept at the alignment the ELF reader needs for its headers.
#[repr(C, align(8))]
struct Aligned<T: ?Sized>(T);

/// The library, as built for this machine.
static LIBRARY: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/sigurg.so")));
/// The handler's symbol in it.
const HANDLER: &str = "lp_sigurg_handler";
/// The variable that tells the constructor which descriptor to close.
const FD_VAR: &str = "LOGPROBE_PRELOAD_FD";
/// The variable that asks the constructor to stop the program (SIGSTOP)
/// once its executable is mapped, before its own code runs.
const STOP_VAR: &str = "LOGPROBE_STOP_AT_START";

/// The library in a memfd, and where its handler starts.
pub struct SigurgLib {
    fd: OwnedFd,
    handler: u64,
}

impl SigurgLib {
    /// Writes the library into a new memfd (closed on exec in logprobe;
    /// the launched child clears that flag for itself).
    pub fn create() -> Result<SigurgLib> {
        let handler = handler_offset(&LIBRARY.0)?;
        let fd = memfd_create(c"logprobe-sigurg", MemFdCreateFlag::MFD_CLOEXEC)
            .context("creating a memfd for the SIGURG handler library")?;
        let mut file = File::from(fd);
        file.write_all(&LIBRARY.0)
            .context("writing the SIGURG handler library into its memfd")?;
        Ok(SigurgLib {
            fd: file.into(),
            handler,
        })
    }

    /// The descriptor the child must keep across `execve`.
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The library's path in logprobe's own process (to attach to).
    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.fd()))
    }

    /// The handler's offset in the library file.
    pub fn handler(&self) -> u64 {
        self.handler
    }

    /// The variables to add to the child's environment: LD_PRELOAD with
    /// the library first, ahead of `existing` (the program's own), and,
    /// with `stop`, the request to stop once the executable is mapped.
    pub fn env(&self, existing: Option<OsString>, stop: bool) -> Vec<(String, String)> {
        let ours = format!("/proc/self/fd/{}", self.fd());
        let preload = match existing.map(|e| e.to_string_lossy().into_owned()) {
            Some(e) if !e.is_empty() => format!("{ours}:{e}"),
            _ => ours,
        };
        let mut env = vec![
            ("LD_PRELOAD".to_string(), preload),
            (FD_VAR.to_string(), self.fd().to_string()),
        ];
        if stop {
            env.push((STOP_VAR.to_string(), "1".to_string()));
        }
        env
    }
}

/// Whether the program at `path` should get the library: it is linked
/// dynamically (the loader honours LD_PRELOAD) and is not a Go program
/// (`.go.buildinfo`), which handles SIGURG itself.
pub fn wanted(path: &Path) -> bool {
    use object::Object;
    let Ok(f) = File::open(path) else {
        return false;
    };
    let data = object::ReadCache::new(f);
    let Ok(file) = object::File::parse(&data) else {
        return false;
    };
    file.section_by_name(".interp").is_some() && file.section_by_name(".go.buildinfo").is_none()
}

fn handler_offset(library: &[u8]) -> Result<u64> {
    use object::{Object, ObjectSymbol};
    let file = object::File::parse(library).context("reading the SIGURG handler library")?;
    let sym = file
        .dynamic_symbols()
        .chain(file.symbols())
        .find(|s| s.name() == Ok(HANDLER))
        .ok_or_else(|| anyhow!("the SIGURG handler library has no {HANDLER}"))?;
    super::addresses::file_offset(&file, sym.address())
        .ok_or_else(|| anyhow!("{HANDLER} is outside the library's segments"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_library_has_its_handler() {
        let p = SigurgLib::create().unwrap();
        assert!(p.handler() > 0);
        let env = p.env(Some("/lib/x.so".into()), false);
        assert_eq!(env[0].1, format!("/proc/self/fd/{}:/lib/x.so", p.fd()));
    }
}
