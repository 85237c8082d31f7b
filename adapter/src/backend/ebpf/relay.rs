//! Relaying a launched program's stdout and stderr so that, under the eBPF
//! backend, its own output lands between the trace lines in the order it
//! happened.
//!
//! The program writes into pipes instead of logprobe's stdout/stderr. The
//! BPF program marks each completed `write(2)` to them in the ring buffer
//! that carries the probe hits ([`Relay::claim`] is called for each mark,
//! in ring order), so the bytes are copied out exactly between the hits
//! that came before and after the write on that thread. Bytes no mark
//! claims (another syscall than `write`, a lost mark, a child process)
//! are copied out after a few drain cycles, so nothing is held back and
//! the program never blocks on a full pipe. Only descriptors that are not
//! terminals are relayed: a terminal stays the program's own, so it still
//! sees a terminal (and C's stdio stays line-buffered).

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};

use anyhow::{Context, Result};
use nix::fcntl::{fcntl, FcntlArg, OFlag};

/// Drain cycles that unclaimed bytes wait for a mark.
const PATIENCE: u32 = 3;

struct Pipe {
    /// 1 or 2: the program's descriptor, and logprobe's, it stands for.
    fd: i32,
    read: std::fs::File,
    /// Bytes read from the pipe, not yet copied out.
    held: Vec<u8>,
    /// Drain cycles that ended with bytes held and none claimed.
    waited: u32,
    claimed: bool,
    eof: bool,
}

/// The pipes standing for the program's stdout and stderr.
#[derive(Default)]
pub struct Relay {
    pipes: Vec<Pipe>,
}

/// logprobe's own descriptors, saved while the child is forked.
pub struct Saved(Vec<(i32, OwnedFd)>);

impl Relay {
    /// Points logprobe's fds 1 and 2 (those that are not terminals) at new
    /// pipes, for a child forked next to inherit; [`Relay::restore`] puts
    /// them back. Returns the relay and the saved descriptors.
    pub fn divert() -> Result<(Relay, Saved)> {
        let mut relay = Relay::default();
        let mut saved = Saved(Vec::new());
        for fd in [1, 2] {
            if fcntl(fd, FcntlArg::F_GETFD).is_err() || nix::unistd::isatty(fd).unwrap_or(true) {
                continue;
            }
            match divert_one(fd, &mut saved) {
                Ok(pipe) => relay.pipes.push(pipe),
                Err(e) => {
                    Relay::restore(saved);
                    return Err(e);
                }
            }
        }
        Ok((relay, saved))
    }

    /// Puts logprobe's own stdout/stderr back.
    pub fn restore(saved: Saved) {
        for (fd, keep) in saved.0 {
            let _ = nix::unistd::dup2(keep.as_raw_fd(), fd);
        }
    }

    /// A bit mask of the relayed descriptors (bit n: fd n), for the BPF side.
    pub fn fds(&self) -> u32 {
        self.pipes.iter().fold(0, |m, p| m | 1 << p.fd)
    }

    /// The program wrote `bytes` bytes to `fd`: copy them out now.
    pub fn claim(&mut self, fd: u32, bytes: u64) {
        let Some(p) = self.pipes.iter_mut().find(|p| p.fd as u32 == fd) else {
            return;
        };
        p.fill();
        let n = (bytes as usize).min(p.held.len());
        p.claimed = true;
        p.copy_out(n);
    }

    /// The end of a drain cycle: copy out bytes no mark claimed in time.
    pub fn end_cycle(&mut self) {
        for p in &mut self.pipes {
            p.fill();
            if p.held.is_empty() || p.claimed {
                p.waited = 0;
            } else {
                p.waited += 1;
                if p.waited >= PATIENCE {
                    p.waited = 0;
                    let n = p.held.len();
                    p.copy_out(n);
                }
            }
            p.claimed = false;
        }
    }

    /// Copies out everything left (the program has ended).
    pub fn finish(&mut self) {
        for p in &mut self.pipes {
            p.fill();
            let n = p.held.len();
            p.copy_out(n);
        }
    }
}

/// Saves logprobe's `fd` into `saved` and points `fd` at a new pipe,
/// whose read end is returned.
fn divert_one(fd: i32, saved: &mut Saved) -> Result<Pipe> {
    let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).context("creating a pipe")?;
    fcntl(r.as_raw_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK))
        .context("making a pipe non-blocking")?;
    let keep = fcntl(fd, FcntlArg::F_DUPFD_CLOEXEC(3)).context("saving stdout")?;
    // SAFETY: F_DUPFD_CLOEXEC returned a new descriptor that nothing else
    // owns; the OwnedFd closes it once.
    let keep = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(keep) };
    saved.0.push((fd, keep));
    nix::unistd::dup2(w.as_raw_fd(), fd).context("redirecting stdout")?;
    Ok(Pipe {
        fd,
        read: std::fs::File::from(r),
        held: Vec::new(),
        waited: 0,
        claimed: false,
        eof: false,
    })
}

impl Pipe {
    /// Reads whatever the pipe holds now.
    fn fill(&mut self) {
        let mut buf = [0u8; 16384];
        while !self.eof {
            match self.read.read(&mut buf) {
                Ok(0) => self.eof = true,
                Ok(n) => self.held.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break, // EAGAIN: nothing more for now
            }
        }
    }

    fn copy_out(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        let bytes: Vec<u8> = self.held.drain(..n).collect();
        if self.fd == 1 {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(&bytes);
            let _ = out.flush();
        } else {
            let mut err = std::io::stderr().lock();
            let _ = err.write_all(&bytes);
            let _ = err.flush();
        }
    }
}
