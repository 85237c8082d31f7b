//! logprobe killed with SIGKILL (a user, the OOM killer, a crash) at any
//! moment of a trace: an attached program finishes normally, its every
//! result right, under both backends; a launched program does not go on
//! half-instrumented: it dies with logprobe.

// A test fails by panicking: what Cargo.toml denies in the adapter is how
// a test says what went wrong.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::dap::attach_tracing_tick;
use common::*;
use serde_json::json;

const REGEX: &str = r"^main\.(tick|work)$";

/// Rounds of attach-and-kill per backend.
const ROUNDS: u64 = 20;

/// Rounds of attach-and-kill per backend with the DAP server killed.
const DAP_ROUNDS: u64 = 6;

/// How long the attached program runs (it ends on its own then).
const RUN_MS: u64 = 1500;

/// Round `r`'s moment: whether the kill waits for the first trace line,
/// how long after that (or after logprobe started) it comes, and the
/// program's pause between calls (0: as fast as it can, heavy hits). Spread
/// pseudo-randomly, the same every run.
fn moment(round: u64) -> (bool, Duration, u32) {
    let x = round.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 33;
    let after_hit = round % 2 == 1;
    let delay = Duration::from_millis(x % 500);
    let pause = [0, 100, 0, 20_000][(round / 2 % 4) as usize];
    (after_hit, delay, pause)
}

/// Whether process `pid` has ended (gone, or a zombie).
fn ended(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

/// `TracerPid` of process `pid` (0: not traced).
fn tracer_of(pid: u32) -> u32 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("TracerPid:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The children of process `pid`, every thread's.
fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for t in tasks.flatten() {
        let list = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
        out.extend(
            list.split_whitespace()
                .filter_map(|c| c.parse::<u32>().ok()),
        );
    }
    out
}

/// Waits until `pid` has ended, up to `limit`.
fn wait_ended(pid: u32, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if ended(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    ended(pid)
}

/// Kills a process this test started (by pid) that outlived its welcome.
fn kill_pid(pid: u32) {
    let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
}

/// Reads logprobe's stdout to its end on a thread; the receiver gets one
/// message at the first trace line.
fn drain(out: std::process::ChildStdout) -> mpsc::Receiver<()> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut r = BufReader::new(out);
        let mut line = String::new();
        let mut told = false;
        while r.read_line(&mut line).unwrap_or(0) > 0 {
            if !told && line.starts_with('>') {
                told = true;
                let _ = tx.send(());
            }
            line.clear();
        }
    });
    rx
}

/// `logprobe trace ARGS`, its stdout drained (see [`drain`]): the child,
/// its pid, and the first trace line's signal.
fn start_logprobe(args: &[&str]) -> (Reaper, u32, mpsc::Receiver<()>) {
    let mut tracer = Reaper(Some(
        logprobe()
            .arg("trace")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn logprobe"),
    ));
    let pid = tracer.child().id();
    let first = drain(tracer.child().stdout.take().expect("stdout"));
    (tracer, pid, first)
}

/// Who is killed: `logprobe trace -p`, or `logprobe dap` attached.
#[derive(Debug, Clone, Copy)]
enum Face {
    Cli,
    Dap,
}

/// One round: `busy` runs, logprobe attaches to it and is killed at
/// `round`'s moment; the program must finish normally with every result
/// right, and logprobe's tracer process (ptrace) must be gone.
fn attach_and_kill(backend: &str, face: Face, round: u64) {
    let (after_hit, delay, pause) = moment(round);
    let what = format!(
        "{backend} {face:?} round {round} (after first hit: {after_hit}, {delay:?}, pause {pause} µs)"
    );
    let mut target = Reaper(Some(
        Command::new(fixture("busy"))
            .args([RUN_MS.to_string(), pause.to_string(), "4".into()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn busy"),
    ));
    let pid = target.child().id();
    let mut out = BufReader::new(target.child().stdout.take().expect("stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("read");
    assert_eq!(line, "ready\n", "{what}");

    let mut tracer = match face {
        Face::Cli => {
            let (tracer, _, first) =
                start_logprobe(&["--backend", backend, "-p", &pid.to_string(), REGEX]);
            if after_hit {
                // A hit may not come before the program ends (a slow
                // start): the kill then lands whenever it is.
                let _ = first.recv_timeout(Duration::from_millis(RUN_MS));
            }
            tracer
        }
        Face::Dap => {
            let (mut c, adapter) = attach_tracing_tick(backend, pid);
            c.ok("configurationDone", json!({}));
            if after_hit {
                c.wait_event(|e| e["event"] == "process");
            }
            // The adapter's stdin stays open (a client that hangs up makes
            // it detach on its own): it dies with the session in full swing.
            std::mem::forget(c);
            adapter
        }
    };
    let logprobe_pid = tracer.child().id();
    std::thread::sleep(delay);
    let ptrace_tracer = tracer_of(pid);
    if backend == "ptrace" && ptrace_tracer != 0 {
        assert_ne!(
            ptrace_tracer, logprobe_pid,
            "{what}: the process the user runs traces the program itself"
        );
    }
    let _ = tracer.child().kill(); // SIGKILL, by pid
    let _ = tracer.child().wait();
    let finished = wait_ended(pid, Duration::from_secs(60));
    if !finished {
        kill_pid(pid);
    }
    let status = target.child().wait().expect("wait busy");
    let mut rest = String::new();
    let _ = out.read_to_string(&mut rest);
    let mut err = String::new();
    let _ = target
        .child()
        .stderr
        .take()
        .map(|mut e| e.read_to_string(&mut err));
    assert!(finished, "{what}: the program did not finish");
    assert_eq!(
        status.code(),
        Some(0),
        "{what}: the program died: {status}\n{rest}\n{}",
        err.lines().take(8).collect::<Vec<_>>().join("\n")
    );
    assert!(
        rest.starts_with("done calls=") && rest.trim_end().ends_with(" bad=0"),
        "{what}: {rest}"
    );
    if ptrace_tracer != 0 && ptrace_tracer != logprobe_pid {
        let gone = wait_ended(ptrace_tracer, Duration::from_secs(5));
        if !gone {
            kill_pid(ptrace_tracer);
        }
        assert!(
            gone,
            "{what}: the tracer process {ptrace_tracer} outlived its trace"
        );
    }
}

fn rounds(backend: &str) {
    if !require_attach() || !require_backend(backend) {
        return;
    }
    for round in 0..ROUNDS {
        attach_and_kill(backend, Face::Cli, round);
    }
    for round in 0..DAP_ROUNDS {
        attach_and_kill(backend, Face::Dap, round);
    }
}

#[test]
fn an_attached_program_survives_ptrace_logprobe_killed_at_any_moment() {
    rounds("ptrace");
}

#[test]
fn an_attached_program_survives_ebpf_logprobe_killed_at_any_moment() {
    rounds("ebpf");
}

/// A launched program dies with logprobe under both backends: it never
/// runs on with breakpoints nobody handles, or unobserved.
#[test]
fn a_launched_program_dies_with_logprobe() {
    for backend in backends() {
        let busy = fixture("busy");
        let busy = busy.to_str().expect("path");
        let (mut tracer, logprobe_pid, first) =
            start_logprobe(&["--backend", backend, REGEX, "--", busy, "30000", "100", "2"]);
        assert!(
            first.recv_timeout(Duration::from_secs(30)).is_ok(),
            "{backend}: no trace line"
        );
        let program = children(logprobe_pid);
        assert_eq!(program.len(), 1, "{backend}: children {program:?}");
        let _ = tracer.child().kill(); // SIGKILL, by pid
        let _ = tracer.child().wait();
        let died = wait_ended(program[0], Duration::from_secs(5));
        if !died {
            kill_pid(program[0]);
        }
        assert!(died, "{backend}: the launched program outlived logprobe");
    }
}
