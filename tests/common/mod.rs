//! Shared helpers for the end-to-end tests: fixtures built once, the real
//! `logprobe` binary, and child processes that are always reaped.
#![allow(dead_code)]

pub mod dap;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// The path of a built fixture (built on first use by scripts/build-fixtures.sh).
pub fn fixture(name: &str) -> PathBuf {
    static BUILD: Once = Once::new();
    BUILD.call_once(|| {
        let status = Command::new("bash")
            .arg(root().join("scripts/build-fixtures.sh"))
            .status()
            .expect("running scripts/build-fixtures.sh");
        assert!(status.success(), "building the fixtures failed");
    });
    let p = root().join("fixtures/bin").join(name);
    assert!(p.exists(), "fixture {} was not built", p.display());
    p
}

pub fn logprobe() -> Command {
    Command::new(env!("CARGO_BIN_EXE_logprobe"))
}

/// The backends every end-to-end case runs under.
/// `LOGPROBE_TEST_BACKENDS=ebpf` (comma-separated) narrows the list.
pub fn backends() -> Vec<&'static str> {
    let all = vec!["ptrace", "ebpf"];
    match std::env::var("LOGPROBE_TEST_BACKENDS") {
        Ok(only) => all
            .into_iter()
            .filter(|b| only.split(',').any(|o| o.trim() == *b))
            .collect(),
        Err(_) => all,
    }
}

/// `logprobe trace --backend B [extra] REGEX -- FIXTURE ARGS`, to completion.
pub fn trace(
    backend: &str,
    regex: &str,
    fixture_name: &str,
    args: &[&str],
    extra: &[&str],
) -> Output {
    let mut cmd = logprobe();
    cmd.arg("trace")
        .arg("--backend")
        .arg(backend)
        .args(extra)
        .arg(regex)
        .arg("--")
        .arg(fixture(fixture_name))
        .args(args);
    run_with_timeout(cmd, Duration::from_secs(120))
}

/// Runs a command to completion, killing it (by pid) if it takes too long.
pub fn run_with_timeout(mut cmd: Command, limit: Duration) -> Output {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd.spawn().expect("spawning");
    let guard = Reaper(Some(child));
    let start = Instant::now();
    let pid = guard.0.as_ref().map(|c| c.id()).unwrap_or(0);
    let watchdog = std::thread::spawn(move || {
        while start.elapsed() < limit {
            std::thread::sleep(Duration::from_millis(100));
            if !Path::new(&format!("/proc/{pid}")).exists() {
                return false;
            }
            // A zombie is finished; wait_with_output below reaps it.
            if std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|s| s.contains(") Z "))
                .unwrap_or(true)
            {
                return false;
            }
        }
        // SAFETY-free: kill by the pid of the child this test started.
        let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        true
    });
    let out = guard.into_inner().wait_with_output().expect("waiting");
    let timed_out = watchdog.join().unwrap_or(false);
    assert!(!timed_out, "command timed out after {limit:?}");
    out
}

/// Starts the attach fixture (it calls `main.tick` `ticks` times, 50 ms
/// apart) and waits for its "ready" line: the child, its pid, its stdout.
pub fn start_ticker(ticks: u32) -> (Reaper, u32, std::io::BufReader<std::process::ChildStdout>) {
    use std::io::BufRead;
    let mut program = Command::new(fixture("attach"));
    program
        .arg(ticks.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .stdin(Stdio::null());
    let mut target = Reaper(Some(program.spawn().expect("spawn fixture")));
    let pid = target.child().id();
    let mut out = std::io::BufReader::new(target.child().stdout.take().expect("stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("read");
    assert_eq!(line, "ready\n");
    (target, pid, out)
}

/// Kills and reaps a child when dropped, so no test leaves a process behind.
pub struct Reaper(pub Option<Child>);

impl Reaper {
    pub fn into_inner(mut self) -> Child {
        self.0.take().expect("child")
    }
    pub fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("child")
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The trace lines (those starting with `>`) of an output.
pub fn trace_lines(o: &Output) -> Vec<String> {
    stdout(o)
        .lines()
        .filter(|l| l.starts_with('>'))
        .map(str::to_string)
        .collect()
}
