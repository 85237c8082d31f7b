//! The ptrace tracer of an attached process, in a process of its own.
//!
//! Breakpoints written into a process logprobe did not start must come out
//! again whatever happens to logprobe: killed with SIGKILL (by a user, the
//! OOM killer), its terminal closed, a crash. When a tracer dies the kernel
//! detaches its tracees but leaves its `int3` bytes in their code, and the
//! first thread to reach one dies of SIGTRAP. So the process the user runs
//! (`logprobe trace -p`, the DAP server) never traces an attached process
//! itself: it starts logprobe's own executable again as a tracer process
//! (`logprobe-ptrace`), sends it the process id and the probes over a socket,
//! and reads the hits back ([`run_attached`]). The tracer ([`serve`]) runs
//! the ptrace backend as it would run in process, and when the other end of
//! the socket goes away (the read ends, or writing a hit fails) it does what
//! a stop request does: stops every thread, writes back every original byte,
//! moves a thread caught on a breakpoint back onto the instruction, detaches
//! and exits. The program goes on as if it had never been traced.
//!
//! The tracer is hard to kill by accident: it runs in a session of its own
//! (a closed terminal's SIGHUP and Ctrl-C's SIGINT do not reach it), is
//! named `logprobe-ptrace` (`killall logprobe` does not match it), treats
//! SIGTERM, SIGINT and SIGHUP as a stop request (it detaches), and asks
//! the OOM killer to spare it (`oom_score_adj` -1000, where allowed; it
//! holds no DWARF, only the probes). Killing the tracer itself with SIGKILL
//! is the one way left to leave breakpoints behind (README, "Attaching").
//!
//! Messages are JSON, each after its length (4 bytes, little-endian).

use std::io::{self, BufReader, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use super::{ptrace, HitSink, Outcome, ProbeChanges, RawHit, StopHandle, Target};
use crate::plan::Probe;

/// The argument that makes `logprobe` the tracer process (`main.rs`).
pub const ARG: &str = "--ptrace-tracer";

/// The tracer's process name (at most 15 bytes, the kernel's limit).
const NAME: &str = "logprobe-ptrace";

/// The tracer's descriptor of its socket.
const CHANNEL_FD: i32 = 3;

/// The longest message accepted (a probe set of a large program).
const MAX_MESSAGE: usize = 256 << 20;

/// How often the face looks at its stop handle while no message comes.
const POLL_MS: i32 = 100;

#[derive(Debug, Serialize, Deserialize)]
enum ToTracer {
    Start { pid: i32, probes: Vec<Probe> },
    Changes(ProbeChanges),
    Stop,
}

#[derive(Debug, Serialize, Deserialize)]
enum FromTracer {
    Hit(RawHit),
    Notice(String),
    Armed {
        pid: i32,
        ids: Vec<u32>,
    },
    Counted {
        hits: u64,
        filtered: u64,
    },
    Limited {
        probe: u32,
        count: u64,
    },
    Output {
        fd: i32,
        bytes: Vec<u8>,
    },
    /// The end: how the trace ended, or why it failed.
    Done(std::result::Result<Outcome, String>),
}

fn send<T: Serialize>(w: &mut impl Write, message: &T) -> io::Result<()> {
    let body = serde_json::to_vec(message).map_err(io::Error::other)?;
    let len = u32::try_from(body.len()).map_err(io::Error::other)?;
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&len.to_le_bytes());
    frame.extend_from_slice(&body);
    w.write_all(&frame)?;
    w.flush()
}

/// The next message, `None` at the end of the stream.
fn receive<T: DeserializeOwned>(r: &mut impl Read) -> io::Result<Option<T>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_MESSAGE {
        return Err(io::Error::other(format!("a message of {len} bytes")));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(io::Error::other)
}

/// Traces the running process `pid` through a tracer process: the face's
/// side. Returns as the in-process backend would.
pub fn run_attached(
    pid: i32,
    probes: &[Probe],
    sink: &mut dyn HitSink,
    stop: &StopHandle,
) -> Result<Outcome> {
    if pid == std::process::id() as i32 {
        bail!("logprobe cannot trace itself");
    }
    stop.set_waiter_to_current_thread();
    let (mut child, socket) = spawn_tracer()?;
    let result = exchange(pid, probes, sink, stop, socket);
    // The socket is closed: the tracer detaches if it has not, and exits.
    let status = child.wait().context("waiting for the ptrace tracer")?;
    match result {
        Ok(Some(outcome)) => outcome.map_err(|e| anyhow!(e)),
        Ok(None) => bail!(
            "the ptrace tracer process ended ({status}) before it detached from process {pid}"
        ),
        Err(e) => Err(e),
    }
}

/// Starts `logprobe-ptrace` with one end of a socket as its descriptor 3.
fn spawn_tracer() -> Result<(std::process::Child, UnixStream)> {
    let (ours, theirs) = UnixStream::pair().context("creating the tracer's socket")?;
    let fd = theirs.as_raw_fd();
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg0(NAME)
        .arg(ARG)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    // SAFETY: the closure runs in the forked child before exec and makes
    // only async-signal-safe system calls (setsid, fcntl, dup2) on plain
    // integers; it allocates nothing and takes no lock.
    unsafe {
        cmd.pre_exec(move || {
            // A session of its own: no terminal's SIGINT or SIGHUP.
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            let ok = if fd == CHANNEL_FD {
                let flags = libc::fcntl(fd, libc::F_GETFD);
                flags >= 0 && libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) >= 0
            } else {
                libc::dup2(fd, CHANNEL_FD) >= 0
            };
            if ok {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        });
    }
    let child = cmd.spawn().context("starting the ptrace tracer process")?;
    drop(theirs);
    Ok((child, ours))
}

/// Sends the probes, then relays hits to `sink` and changes and a stop
/// request to the tracer until it says how the trace ended (`None`: it
/// ended without saying).
#[allow(clippy::type_complexity)]
fn exchange(
    pid: i32,
    probes: &[Probe],
    sink: &mut dyn HitSink,
    stop: &StopHandle,
    socket: UnixStream,
) -> Result<Option<std::result::Result<Outcome, String>>> {
    let mut reader = BufReader::new(socket.try_clone().context("the tracer's socket")?);
    let mut writer = socket;
    let start = ToTracer::Start {
        pid,
        probes: probes.to_vec(),
    };
    // A failed write means the tracer is gone: its end is read below.
    let _ = send(&mut writer, &start);
    let mut stopping = false;
    loop {
        if !stopping {
            for change in stop.take_changes() {
                let _ = send(&mut writer, &ToTracer::Changes(change));
            }
            if stop.requested() {
                stopping = true;
                let _ = send(&mut writer, &ToTracer::Stop);
            }
        }
        if reader.buffer().is_empty() && !readable(reader.get_ref().as_raw_fd()) {
            continue;
        }
        let message = match receive::<FromTracer>(&mut reader) {
            Ok(Some(m)) => m,
            Ok(None) => return Ok(None),
            Err(e) => return Err(anyhow!(e).context("reading from the ptrace tracer")),
        };
        match message {
            FromTracer::Hit(hit) => sink.hit(hit),
            FromTracer::Notice(n) => sink.notice(&n),
            FromTracer::Armed { pid, ids } => sink.armed(pid, &ids),
            FromTracer::Counted { hits, filtered } => sink.counted(hits, filtered),
            FromTracer::Limited { probe, count } => sink.limited(probe, count),
            FromTracer::Output { fd, bytes } => sink.output(fd, &bytes),
            FromTracer::Done(outcome) => return Ok(Some(outcome)),
        }
    }
}

/// Whether `fd` has something to read (or its end) within [`POLL_MS`];
/// false when a signal (a stop request's wake-up) interrupts the wait.
fn readable(fd: i32) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: poll reads and writes exactly the one pollfd given, a local.
    let n = unsafe { libc::poll(&mut p, 1, POLL_MS) };
    n > 0
}

/// The tracer process: `logprobe --ptrace-tracer`, started by
/// [`run_attached`] with its socket as descriptor 3. Returns the exit status.
pub fn serve() -> i32 {
    match serve_socket() {
        Ok(()) => 0,
        Err(_) => 1,
    }
}

fn serve_socket() -> Result<()> {
    name_this_process();
    // Spared by the OOM killer where allowed (root): killing the tracer is
    // what would leave breakpoints behind, and it holds little memory.
    let _ = std::fs::write("/proc/self/oom_score_adj", "-1000");
    let socket = channel()?;
    let mut reader = BufReader::new(socket.try_clone()?);
    let Some(ToTracer::Start { pid, probes }) = receive::<ToTracer>(&mut reader)? else {
        return Ok(());
    };
    let stop = StopHandle::default();
    let _ = STOP.set(stop.clone());
    install_stop_handlers();
    {
        let stop = stop.clone();
        std::thread::spawn(move || listen(reader, stop));
    }
    let mut forward = Forward {
        out: socket,
        stop: stop.clone(),
        broken: false,
    };
    let result = ptrace::run_here(&Target::Attach(pid), &probes, &mut forward, &stop);
    forward.send(&FromTracer::Done(result.map_err(|e| format!("{e:#}"))));
    Ok(())
}

/// Reads changes and the stop request from the face. At the end of the
/// stream (the face is gone, however it died) or at a stop request, the
/// trace stops; the wake-up is repeated until the process exits, since one
/// landing just before the tracer blocks in `waitpid` would be lost.
fn listen(mut reader: BufReader<UnixStream>, stop: StopHandle) {
    loop {
        match receive::<ToTracer>(&mut reader) {
            Ok(Some(ToTracer::Changes(c))) => stop.change_probes(c),
            Ok(Some(ToTracer::Start { .. })) => {}
            Ok(Some(ToTracer::Stop)) | Ok(None) | Err(_) => break,
        }
    }
    loop {
        stop.request();
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The socket [`spawn_tracer`] gave this process.
fn channel() -> Result<UnixStream> {
    let st = nix::sys::stat::fstat(CHANNEL_FD)
        .map_err(|e| anyhow!("{NAME} is started by logprobe itself (descriptor 3: {e})"))?;
    if st.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        bail!("{NAME} is started by logprobe itself (descriptor 3 is not a socket)");
    }
    // SAFETY: descriptor 3 is open and a socket (checked above); the parent
    // passed it for this use, and nothing else in this process owns it.
    Ok(unsafe { UnixStream::from_raw_fd(CHANNEL_FD) })
}

fn name_this_process() {
    let name = c"logprobe-ptrace";
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16
    // bytes from the pointer, a static C string literal.
    unsafe {
        libc::prctl(libc::PR_SET_NAME, name.as_ptr() as libc::c_ulong, 0, 0, 0);
    }
}

/// Hands what the backend reports to the face; a failed write (the face is
/// gone) stops the trace.
struct Forward {
    out: UnixStream,
    stop: StopHandle,
    broken: bool,
}

impl Forward {
    fn send(&mut self, message: &FromTracer) {
        if self.broken {
            return;
        }
        if send(&mut self.out, message).is_err() {
            self.broken = true;
            self.stop.request();
        }
    }
}

impl HitSink for Forward {
    fn hit(&mut self, hit: RawHit) {
        self.send(&FromTracer::Hit(hit));
    }
    fn notice(&mut self, message: &str) {
        self.send(&FromTracer::Notice(message.to_string()));
    }
    fn armed(&mut self, pid: i32, ids: &[u32]) {
        self.send(&FromTracer::Armed {
            pid,
            ids: ids.to_vec(),
        });
    }
    fn counted(&mut self, hits: u64, filtered: u64) {
        self.send(&FromTracer::Counted { hits, filtered });
    }
    fn limited(&mut self, probe: u32, count: u64) {
        self.send(&FromTracer::Limited { probe, count });
    }
    fn output(&mut self, fd: i32, bytes: &[u8]) {
        self.send(&FromTracer::Output {
            fd,
            bytes: bytes.to_vec(),
        });
    }
}

/// The stop handle the tracer's signal handlers reach.
static STOP: OnceLock<StopHandle> = OnceLock::new();

extern "C" fn on_signal(_: libc::c_int) {
    if let Some(stop) = STOP.get() {
        stop.request();
    }
}

/// SIGTERM, SIGINT and SIGHUP detach, as a stop request does.
fn install_stop_handlers() {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for sig in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        // SAFETY: `on_signal` only reads a OnceLock (an atomic load), stores
        // an atomic and calls tgkill, all async-signal-safe.
        let _ = unsafe { sigaction(sig, &action) };
    }
}
