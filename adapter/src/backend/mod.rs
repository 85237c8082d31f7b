//! Backends arm probes in a live process and report raw hits.
//!
//! A backend receives the plan's probes and a [`Target`], runs the program
//! (or attaches to it) until it ends or a stop is requested, and hands every
//! hit to a [`HitSink`] as a [`RawHit`]: which probe, which thread, when, and
//! the bytes each capture step read. Backends never look at types; turning
//! bytes into values is the decoder's job (`crate::value`).

pub mod ebpf;
pub mod exec;
pub mod launch;
pub mod output;
pub mod ptrace;
pub mod tracer;

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Result;

use crate::plan::Probe;

/// One probe hit as read from the process.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RawHit {
    /// `Probe::id`.
    pub probe: u32,
    pub pid: i32,
    pub tid: i32,
    /// CLOCK_MONOTONIC nanoseconds (the clock of `bpf_ktime_get_ns`).
    pub time_ns: u64,
    /// One entry per capture step; `None` where the memory was unreadable.
    pub captures: Vec<Option<Vec<u8>>>,
}

/// Receives hits and notices while a backend runs.
pub trait HitSink {
    fn hit(&mut self, hit: RawHit);
    /// A one-line message for the user (a warning, a lost event count).
    fn notice(&mut self, message: &str);
    /// The probes `ids` are now armed in process `pid`: called once after
    /// the initial probes are armed (before a launched program runs) and
    /// after each [`ProbeChanges`] is applied.
    fn armed(&mut self, _pid: i32, _ids: &[u32]) {}
    /// The end of a batch of hits: a sink may hold hits back until then.
    /// Backends that report hits one at a time (ptrace) need not call it.
    fn flush(&mut self) {}
    /// At the end of a run: how many probe hits there were (past their
    /// guards), and how many of them the backend itself did not report
    /// (rejected by a recipe's filter, or the return of such a call).
    fn counted(&mut self, _hits: u64, _filtered: u64) {}
    /// While running: how many hits were lost so far before they could be
    /// read (a full ring buffer), all probes together. Backends that never
    /// lose a hit (ptrace holds the thread until it is read) need not call it.
    fn dropped(&mut self, _total: u64) {}
    /// `count` more hits of probe `probe` were over a rate limit and not
    /// reported (`plan::RateLimit`).
    fn limited(&mut self, _probe: u32, _count: u64) {}
    /// `count` more hits of probe `probe` were lost before they could be
    /// read (counted in [`HitSink::dropped`]'s total too).
    fn lost(&mut self, _probe: u32, _count: u64) {}
    /// The launched program wrote `bytes` to its stdout (`fd` 1) or stderr
    /// (2), after the hits handed on before and before those handed on
    /// after. Called only when the launch gave [`Launch::stdio`].
    fn output(&mut self, fd: i32, bytes: &[u8]);
}

/// Probes to arm and to remove while a backend runs (see
/// [`StopHandle::change_probes`]). Ids are `Probe::id`s; they stay unique
/// for the whole run, so a removed id is never reused.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct ProbeChanges {
    pub add: Vec<Probe>,
    pub remove: Vec<u32>,
}

/// A program to start.
#[derive(Debug, Clone)]
pub struct Launch {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub cwd: Option<PathBuf>,
    /// Extra environment variables, added to logprobe's own.
    pub env: Vec<(String, String)>,
    /// `None`: the program shares logprobe's stdin, stdout and stderr.
    pub stdio: Option<Stdio>,
}

/// A launched program whose output the face shows itself (the DAP server):
/// `stdin` becomes its fd 0, and its stdout and stderr are pipes the
/// backend reads, handing what the program writes to [`HitSink::output`]
/// in order with the hits (see `output`).
#[derive(Debug, Clone)]
pub struct Stdio {
    pub stdin: Arc<OwnedFd>,
}

#[derive(Debug, Clone)]
pub enum Target {
    Launch(Launch),
    Attach(i32),
}

/// How a trace ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Outcome {
    Exited(i32),
    Signaled(i32),
    /// Detached from an attached process, which goes on running.
    Detached,
}

impl Outcome {
    /// The exit status a shell would see for the program.
    pub fn exit_code(self) -> i32 {
        match self {
            Outcome::Exited(c) => c,
            Outcome::Signaled(s) => 128 + s,
            Outcome::Detached => 0,
        }
    }
}

/// Asks a running backend to stop: detach when attached, or end the
/// launched program. Cheap to clone; safe to use from a signal handler's
/// thread or another thread.
#[derive(Debug, Clone, Default)]
pub struct StopHandle {
    inner: Arc<StopInner>,
}

#[derive(Debug, Default)]
struct StopInner {
    requested: AtomicBool,
    /// Kernel thread id of the thread blocked in the backend's wait, to
    /// interrupt it; 0 before the backend starts.
    waiter: AtomicI32,
    /// Probe changes not yet taken by the backend.
    changes: Mutex<Vec<ProbeChanges>>,
}

impl StopHandle {
    pub fn request(&self) {
        self.inner.requested.store(true, Ordering::SeqCst);
        let tid = self.inner.waiter.load(Ordering::SeqCst);
        if tid > 0 {
            wake_thread(tid);
        }
    }

    pub fn requested(&self) -> bool {
        self.inner.requested.load(Ordering::SeqCst)
    }

    /// Queues probes to add and remove while the backend runs, and wakes it.
    /// The wake-up is repeated until the backend has taken the change, since
    /// a signal that lands just before the backend blocks would be missed.
    pub fn change_probes(&self, changes: ProbeChanges) {
        if let Ok(mut q) = self.inner.changes.lock() {
            q.push(changes);
        }
        let me = self.clone();
        std::thread::spawn(move || {
            for _ in 0..500 {
                if !me.has_changes() {
                    return;
                }
                let tid = me.inner.waiter.load(Ordering::SeqCst);
                if tid > 0 {
                    wake_thread(tid);
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        });
    }

    /// Whether changes are waiting for the backend.
    pub fn has_changes(&self) -> bool {
        self.inner
            .changes
            .lock()
            .map(|q| !q.is_empty())
            .unwrap_or(false)
    }

    /// Takes every queued change, oldest first (for backends).
    pub fn take_changes(&self) -> Vec<ProbeChanges> {
        match self.inner.changes.lock() {
            Ok(mut q) => std::mem::take(&mut *q),
            Err(_) => Vec::new(),
        }
    }

    /// Interrupts the backend's blocked wait, if it is waiting.
    pub(crate) fn wake(&self) {
        let tid = self.inner.waiter.load(Ordering::SeqCst);
        if tid > 0 {
            wake_thread(tid);
        }
    }

    /// Registers the calling thread as the one to interrupt.
    pub(crate) fn set_waiter_to_current_thread(&self) {
        install_wake_handler();
        self.inner
            .waiter
            .store(nix::unistd::gettid().as_raw(), Ordering::SeqCst);
    }
}

/// The signal that interrupts a blocked wait; its handler does nothing,
/// and it is installed without SA_RESTART so the wait returns EINTR.
const WAKE_SIGNAL: nix::sys::signal::Signal = nix::sys::signal::Signal::SIGUSR2;

extern "C" fn ignore_signal(_: libc::c_int) {}

fn install_wake_handler() {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet};
    let action = SigAction::new(
        SigHandler::Handler(ignore_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    // SAFETY: the handler is an empty `extern "C"` function, which is
    // async-signal-safe; replacing SIGUSR2's disposition affects only
    // logprobe's own process, which uses SIGUSR2 for nothing else.
    if let Err(e) = unsafe { sigaction(WAKE_SIGNAL, &action) } {
        eprintln!("logprobe: cannot install the wake-up handler: {e}");
    }
}

fn wake_thread(tid: i32) {
    // SAFETY: tgkill only sends a signal; the arguments are plain integers.
    unsafe {
        libc::syscall(
            libc::SYS_tgkill,
            libc::getpid(),
            tid,
            WAKE_SIGNAL as libc::c_int,
        );
    }
}

/// The probing mechanism in use.
pub trait Backend {
    /// Runs `target` with `probes` armed until it ends or `stop` is requested.
    fn run(
        &mut self,
        target: &Target,
        probes: &[Probe],
        sink: &mut dyn HitSink,
        stop: &StopHandle,
    ) -> Result<Outcome>;
}

/// Current CLOCK_MONOTONIC time in nanoseconds.
pub fn monotonic_ns() -> u64 {
    match nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC) {
        Ok(ts) => ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64,
        Err(_) => 0,
    }
}
