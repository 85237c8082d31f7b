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
//! the program never blocks on a full pipe.
//!
//! Copied out where? For the CLI ([`Relay::divert`]), to logprobe's own
//! stdout and stderr; only descriptors that are not terminals are relayed:
//! a terminal stays the program's own, so it still sees a terminal (and
//! C's stdio stays line-buffered). For a face that shows the output itself
//! ([`Relay::capture`], the DAP server), to the sink's `output`.

use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};

use anyhow::{Context, Result};
use nix::fcntl::{fcntl, FcntlArg};

use crate::backend::output::{self, Pipe};
use crate::backend::HitSink;

/// Drain cycles that unclaimed bytes wait for a mark.
const PATIENCE: u32 = 3;

struct Relayed {
    /// Its `fd` is the program's descriptor, and logprobe's, it stands for.
    pipe: Pipe,
    /// Drain cycles that ended with bytes held and none claimed.
    waited: u32,
    claimed: bool,
    /// Copied out to the sink, not to logprobe's own descriptor.
    to_sink: bool,
}

/// The pipes standing for the program's stdout and stderr.
#[derive(Default)]
pub struct Relay {
    pipes: Vec<Relayed>,
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

    /// New pipes for the program's stdout and stderr, copied out to the
    /// sink; returns the relay and the write ends the program is given.
    pub fn capture() -> Result<(Relay, [OwnedFd; 2])> {
        let (pipes, ends) = output::open()?;
        let pipes = pipes
            .into_iter()
            .map(|pipe| Relayed {
                pipe,
                waited: 0,
                claimed: false,
                to_sink: true,
            })
            .collect();
        Ok((Relay { pipes }, ends))
    }

    /// Puts logprobe's own stdout/stderr back.
    pub fn restore(saved: Saved) {
        for (fd, keep) in saved.0 {
            let _ = nix::unistd::dup2(keep.as_raw_fd(), fd);
        }
    }

    /// A bit mask of the relayed descriptors (bit n: fd n), for the BPF side.
    pub fn fds(&self) -> u32 {
        self.pipes.iter().fold(0, |m, p| m | 1 << p.pipe.fd)
    }

    /// The program wrote `bytes` bytes to `fd`: copy them out now.
    pub fn claim(&mut self, fd: u32, bytes: u64, sink: &mut dyn HitSink) {
        let Some(p) = self.pipes.iter_mut().find(|p| p.pipe.fd as u32 == fd) else {
            return;
        };
        p.pipe.fill();
        let n = (bytes as usize).min(p.pipe.held.len());
        p.claimed = true;
        p.copy_out(n, sink);
    }

    /// The end of a drain cycle: copy out bytes no mark claimed in time.
    pub fn end_cycle(&mut self, sink: &mut dyn HitSink) {
        for p in &mut self.pipes {
            p.pipe.fill();
            if p.pipe.held.is_empty() || p.claimed {
                p.waited = 0;
            } else {
                p.waited += 1;
                if p.waited >= PATIENCE {
                    p.waited = 0;
                    let n = p.pipe.held.len();
                    p.copy_out(n, sink);
                }
            }
            p.claimed = false;
        }
    }

    /// Copies out everything left (the program has ended).
    pub fn finish(&mut self, sink: &mut dyn HitSink) {
        for p in &mut self.pipes {
            p.pipe.fill();
            let n = p.pipe.held.len();
            p.copy_out(n, sink);
        }
    }
}

/// Saves logprobe's `fd` into `saved` and points `fd` at a new pipe,
/// whose read end is returned.
fn divert_one(fd: i32, saved: &mut Saved) -> Result<Relayed> {
    let (r, w) = output::pipe()?;
    let pipe = Pipe::new(fd, r)?;
    let keep = fcntl(fd, FcntlArg::F_DUPFD_CLOEXEC(3)).context("saving stdout")?;
    // SAFETY: F_DUPFD_CLOEXEC returned a new descriptor that nothing else
    // owns; the OwnedFd closes it once.
    let keep = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(keep) };
    saved.0.push((fd, keep));
    nix::unistd::dup2(w.as_raw_fd(), fd).context("redirecting stdout")?;
    Ok(Relayed {
        pipe,
        waited: 0,
        claimed: false,
        to_sink: false,
    })
}

impl Relayed {
    fn copy_out(&mut self, n: usize, sink: &mut dyn HitSink) {
        if n == 0 {
            return;
        }
        let bytes = self.pipe.take(n);
        if self.to_sink {
            sink.output(self.pipe.fd, &bytes);
        } else if self.pipe.fd == 1 {
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
