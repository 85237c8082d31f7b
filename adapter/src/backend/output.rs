//! A launched program's stdout and stderr as pipes the backend reads, when
//! the face gave [`Launch::stdio`](super::Launch) (the DAP server): each
//! chunk the program writes is handed to [`HitSink::output`] between the
//! hits that happened before and after it, so a face that shows both sees
//! them in the order they happened.
//!
//! The eBPF backend knows when each write happened from the marks its BPF
//! program puts in the ring buffer among the hits (`ebpf/relay.rs`). The
//! ptrace backend reads the pipes whenever a thread stops at a probe: a
//! write that completed before the hit is in the pipe by then, and the
//! thread cannot write more while it is stopped. A watcher thread
//! ([`Watched`]) wakes the backend when output arrives while no probe is
//! hit, so it never waits for the next hit.

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};
use nix::fcntl::{fcntl, FcntlArg, OFlag};

use super::{HitSink, StopHandle};

/// The read end of a pipe standing for the program's fd 1 or 2.
pub struct Pipe {
    /// 1 or 2: the program's descriptor it stands for.
    pub fd: i32,
    read: std::fs::File,
    /// Bytes read from the pipe, not yet handed on.
    pub held: Vec<u8>,
    eof: bool,
}

impl Pipe {
    /// `read`, made non-blocking, as the pipe standing for `fd`.
    pub fn new(fd: i32, read: OwnedFd) -> Result<Pipe> {
        fcntl(read.as_raw_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK))
            .context("making a pipe non-blocking")?;
        Ok(Pipe {
            fd,
            read: std::fs::File::from(read),
            held: Vec::new(),
            eof: false,
        })
    }

    /// Reads whatever the pipe holds now.
    pub fn fill(&mut self) {
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

    /// Takes the first `n` bytes held.
    pub fn take(&mut self, n: usize) -> Vec<u8> {
        self.held.drain(..n.min(self.held.len())).collect()
    }
}

/// New pipes for the program's stdout and stderr: their read ends, and
/// the write ends the program is given as its fds 1 and 2.
pub fn open() -> Result<(Vec<Pipe>, [OwnedFd; 2])> {
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    Ok((
        vec![Pipe::new(1, out_r)?, Pipe::new(2, err_r)?],
        [out_w, err_w],
    ))
}

/// Hands everything `pipes` hold now to `to` (descriptor, bytes).
pub fn drain(pipes: &mut [Pipe], to: &mut dyn FnMut(i32, &[u8])) {
    for p in pipes {
        p.fill();
        if !p.held.is_empty() {
            let bytes = p.take(p.held.len());
            to(p.fd, &bytes);
        }
    }
}

pub fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).context("creating a pipe")
}

/// The ptrace backend's pipes: drained by the backend thread at each stop,
/// and watched by a thread that wakes the backend when output arrives.
pub struct Watched {
    pipes: Vec<Pipe>,
    shared: Arc<Shared>,
    watcher: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct Shared {
    /// The watcher saw output that the backend has not drained yet.
    asked: AtomicBool,
    done: AtomicBool,
}

/// How long the watcher's `poll` waits before looking at `done` again.
const WATCH_TIMEOUT_MS: i32 = 50;

impl Watched {
    /// Starts watching `pipes`; `stop` wakes the backend's thread, which
    /// must have registered itself as the waiter.
    pub fn start(pipes: Vec<Pipe>, stop: &StopHandle) -> Result<Watched> {
        let shared = Arc::new(Shared::default());
        let fds: Vec<i32> = pipes.iter().map(|p| p.read.as_raw_fd()).collect();
        let stop = stop.clone();
        let theirs = shared.clone();
        let watcher = std::thread::Builder::new()
            .name("output watcher".into())
            .spawn(move || watch(fds, &theirs, &stop))
            .context("starting the output watcher")?;
        Ok(Watched {
            pipes,
            shared,
            watcher: Some(watcher),
        })
    }

    /// Hands everything the pipes hold now to `sink`.
    pub fn drain(&mut self, sink: &mut dyn HitSink) {
        // Cleared before reading: output that arrives after the read makes
        // the watcher ask again.
        self.shared.asked.store(false, Ordering::SeqCst);
        drain(&mut self.pipes, &mut |fd, bytes| sink.output(fd, bytes));
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        self.shared.done.store(true, Ordering::SeqCst);
        // The watcher polls the pipes' descriptors: it ends before they
        // are closed (the fields are dropped after this).
        if let Some(w) = self.watcher.take() {
            let _ = w.join();
        }
    }
}

/// The watcher: waits for output on `fds` and wakes the backend, then
/// waits until the backend has drained it (waking it again now and then,
/// since a wake-up that lands just before it blocks is missed).
fn watch(mut fds: Vec<i32>, shared: &Shared, stop: &StopHandle) {
    while !shared.done.load(Ordering::SeqCst) {
        if shared.asked.load(Ordering::SeqCst) {
            for _ in 0..10 {
                std::thread::sleep(Duration::from_millis(1));
                if !shared.asked.load(Ordering::SeqCst) {
                    break;
                }
            }
            if shared.asked.load(Ordering::SeqCst) {
                stop.wake();
            }
            continue;
        }
        let mut polled: Vec<libc::pollfd> = fds
            .iter()
            .map(|&fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: `polled` is a live array of `polled.len()` pollfd
        // structures, which poll only reads and writes within; its
        // descriptors stay open until `done` is set and this thread joined.
        let n = unsafe {
            libc::poll(
                polled.as_mut_ptr(),
                polled.len() as libc::nfds_t,
                WATCH_TIMEOUT_MS,
            )
        };
        if n <= 0 {
            continue;
        }
        let mut readable = false;
        for p in &polled {
            if p.revents & libc::POLLIN != 0 {
                readable = true;
            } else if p.revents != 0 {
                // Closed by every writer and empty: nothing more to watch.
                fds.retain(|&fd| fd != p.fd);
            }
        }
        if readable {
            shared.asked.store(true, Ordering::SeqCst);
            stop.wake();
        }
    }
}
