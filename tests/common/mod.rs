//! Shared helpers for the end-to-end tests: fixtures built once, the real
//! `logprobe` binary, and child processes that are always reaped.
#![allow(dead_code)]

pub mod dap;

use std::io::Write as _;
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

/// A Go toolchain the Go fixtures are built with: Debian's (into
/// `fixtures/bin`) and each one of `scripts/go-toolchains` that
/// `scripts/toolchains.sh` installed (into `fixtures/bin/goVERSION`).
#[derive(Debug, Clone)]
pub struct Toolchain {
    /// `go1.19.8 (Debian)`, `go1.27.3`: for messages.
    pub name: String,
    /// Prefix of its fixtures' names for [`fixture`]: `""` or `go1.27.3/`.
    pub prefix: String,
    /// Its minor version (19, 27): 24 and later have Swiss-table maps.
    pub minor: u32,
}

impl Toolchain {
    /// This toolchain's build of fixture `name` (`values`, `kinds-debug`).
    pub fn fixture(&self, name: &str) -> PathBuf {
        fixture(&self.path(name))
    }

    /// `name` as [`fixture`] and [`trace`] take it for this toolchain.
    pub fn path(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// Whether its maps are Swiss tables (Go 1.24 and later).
    pub fn swiss(&self) -> bool {
        self.minor >= 24
    }
}

/// The Go version a `go` binary reports, as `go1.19.8`.
fn go_version(go: &str) -> Option<String> {
    let out = Command::new(go)
        .args(["env", "GOVERSION"])
        .env("GOTOOLCHAIN", "local")
        .output()
        .ok()?;
    let v = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && v.starts_with("go1.")).then_some(v)
}

fn minor_of(version: &str) -> u32 {
    version
        .trim_start_matches("go1.")
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0)
}

/// The toolchains every golden case runs against: Debian's Go, then each
/// of `scripts/go-toolchains`. One that is not installed (run
/// `scripts/toolchains.sh`, which `scripts/setup.sh` does) is reported as
/// a skip, and fails the test under CI=true: each must be tested.
pub fn toolchains() -> Vec<Toolchain> {
    static FOUND: std::sync::OnceLock<Vec<Toolchain>> = std::sync::OnceLock::new();
    FOUND
        .get_or_init(|| {
            // Building the fixtures builds them for every installed toolchain.
            let _ = fixture("values");
            let mut found = Vec::new();
            if let Some(v) = go_version("go") {
                found.push(Toolchain {
                    name: format!("{v} (Debian)"),
                    prefix: String::new(),
                    minor: minor_of(&v),
                });
            }
            let listed = std::fs::read_to_string(root().join("scripts/go-toolchains"))
                .expect("scripts/go-toolchains");
            for v in listed
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
            {
                let prefix = format!("go{v}/");
                let built = root().join("fixtures/bin").join(&prefix).join("values");
                if require(
                    built.exists(),
                    &format!("Go {v} is not installed: run scripts/toolchains.sh (scripts/setup.sh does)"),
                ) {
                    found.push(Toolchain {
                        name: format!("go{v}"),
                        prefix,
                        minor: minor_of(&format!("go{v}")),
                    });
                }
            }
            found
        })
        .clone()
}

/// One run of a golden case: a toolchain's build of a fixture, under a
/// backend.
#[derive(Debug, Clone)]
pub struct Case {
    pub toolchain: Toolchain,
    pub backend: &'static str,
    /// The fixture's name (`values-debug`), without the toolchain.
    pub build: &'static str,
}

impl Case {
    /// The fixture's name as [`fixture`] and [`trace`] take it.
    pub fn path(&self) -> String {
        self.toolchain.path(self.build)
    }
}

impl std::fmt::Display for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "{} {} {}", self.toolchain.name, self.backend, self.build)
    }
}

/// Every toolchain's build of each of `builds` under every backend.
pub fn cases(builds: &[&'static str]) -> Vec<Case> {
    let mut out = Vec::new();
    for toolchain in toolchains() {
        for backend in backends() {
            for &build in builds {
                out.push(Case {
                    toolchain: toolchain.clone(),
                    backend,
                    build,
                });
            }
        }
    }
    out
}

/// The real binary, run as on a new machine (see [`as_new_machine`]).
pub fn logprobe() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_logprobe"));
    as_new_machine(&mut cmd);
    cmd
}

/// Makes `cmd` run as on a new machine: in a private mount namespace of
/// its own, with tracefs and debugfs unmounted (a fresh Debian machine
/// mounts neither, and logprobe must not need them; whatever this machine
/// has mounted stays as it is outside). Needs root, as tracing does;
/// without it the command runs as is.
pub fn as_new_machine(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    if !is_root() {
        return cmd;
    }
    // SAFETY: the closure runs in the forked child before exec and only
    // makes system calls (unshare, mount, umount2), which are
    // async-signal-safe; it allocates nothing (the paths are C string
    // literals) and touches no lock.
    unsafe {
        cmd.pre_exec(|| {
            if libc::unshare(libc::CLONE_NEWNS) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // Unmounts below must not reach the machine's own namespace.
            let root = c"/";
            let flags = libc::MS_REC | libc::MS_PRIVATE;
            if libc::mount(
                std::ptr::null(),
                root.as_ptr(),
                std::ptr::null(),
                flags,
                std::ptr::null(),
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            // Not mounted (EINVAL) or absent (ENOENT) is what is wanted;
            // a mount stacked on another takes one call each.
            for dir in [
                c"/sys/kernel/debug/tracing",
                c"/sys/kernel/tracing",
                c"/sys/kernel/debug",
            ] {
                for _ in 0..8 {
                    if libc::umount2(dir.as_ptr(), libc::MNT_DETACH) != 0 {
                        break;
                    }
                }
            }
            Ok(())
        })
    };
    cmd
}

/// Whether a test can run here: `cond`, else `why` is printed and the
/// test skips (returns), unless `CI=true`, where it fails instead. So a
/// machine that cannot run a test says so, and CI never shows green for a
/// test that ran nothing.
pub fn require(cond: bool, why: &str) -> bool {
    if cond {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("cannot run under CI=true: {why}");
    }
    // Straight to stderr: the test harness captures `eprintln!` of passing
    // tests, and a skip must be seen.
    let _ = writeln!(std::io::stderr(), "SKIPPED: {why}");
    false
}

/// Whether the tests run as root (eBPF needs it, and so do ptrace's
/// attaching to a process that is not logprobe's child and dropping
/// privileges with setpriv).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .is_some_and(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
        })
}

/// Whether logprobe may attach to a process it did not start: as root, or
/// where Yama's `ptrace_scope` allows any process of the same user.
pub fn can_attach() -> bool {
    is_root()
        || std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope")
            .map_or(true, |s| s.trim() == "0")
}

/// `require` for tests that attach to a running process.
pub fn require_attach() -> bool {
    require(
        can_attach(),
        "attaching to a running process needs root or kernel.yama.ptrace_scope=0",
    )
}

/// The path of `setpriv`, where the tests can drop to the unprivileged
/// user `nobody` with it (as root); `None` after saying why not (a skip, or
/// a failure under CI=true).
pub fn setpriv() -> Option<&'static str> {
    const SETPRIV: &str = "/usr/bin/setpriv";
    require(
        is_root() && Path::new(SETPRIV).exists(),
        "needs root and /usr/bin/setpriv to drop privileges",
    )
    .then_some(SETPRIV)
}

/// The backends every end-to-end case runs under: ptrace, and eBPF where
/// the tests run as root. `LOGPROBE_TEST_BACKENDS=ebpf` (comma-separated)
/// narrows the list. A backend left out is reported as a skip (a failure
/// under CI=true): both must run the same cases.
pub fn backends() -> Vec<&'static str> {
    static CHOSEN: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    CHOSEN
        .get_or_init(|| {
            let only = std::env::var("LOGPROBE_TEST_BACKENDS").ok();
            let mut chosen = Vec::new();
            for backend in ["ptrace", "ebpf"] {
                let named = only
                    .as_deref()
                    .is_none_or(|o| o.split(',').any(|b| b.trim() == backend));
                let runnable = require(
                    named,
                    &format!("the {backend} backend: LOGPROBE_TEST_BACKENDS leaves it out"),
                ) && (backend != "ebpf"
                    || require(is_root(), "the ebpf backend: needs root"));
                if runnable {
                    chosen.push(backend);
                }
            }
            chosen
        })
        .clone()
}

/// Whether `backend` is among [`backends`], saying why not when it is not.
pub fn require_backend(backend: &str) -> bool {
    require(
        backends().contains(&backend),
        &format!("needs the {backend} backend"),
    )
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
    start_ready("attach", ticks)
}

/// Starts fixture `name` with argument `count` and waits for its "ready"
/// line: the child, its pid, its stdout.
pub fn start_ready(
    name: &str,
    count: u32,
) -> (Reaper, u32, std::io::BufReader<std::process::ChildStdout>) {
    use std::io::BufRead;
    let mut program = Command::new(fixture(name));
    program
        .arg(count.to_string())
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

/// Interrupts a `logprobe trace -p` (Ctrl-C) and waits for it: its exit
/// code and what it wrote on stderr.
pub fn interrupt(tracer: &mut Reaper) -> (Option<i32>, String) {
    let _ = Command::new("kill")
        .args(["-INT", &tracer.child().id().to_string()])
        .status();
    let status = tracer.child().wait().expect("wait logprobe");
    let mut err = String::new();
    if let Some(mut e) = tracer.child().stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut err);
    }
    (status.code(), err)
}

/// The ids of the BPF programs process `pid` holds open (from its
/// descriptors' fdinfo).
pub fn bpf_programs(pid: u32) -> std::collections::BTreeSet<u32> {
    let mut ids = std::collections::BTreeSet::new();
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return ids;
    };
    for fd in fds.flatten() {
        let info = std::fs::read_to_string(fd.path()).unwrap_or_default();
        ids.extend(
            info.lines()
                .filter_map(|l| l.strip_prefix("prog_id:"))
                .filter_map(|v| v.trim().parse::<u32>().ok()),
        );
    }
    ids
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

/// `s` with every hexadecimal address written `0xADDR`.
pub fn mask_addresses(s: &str) -> String {
    regex::Regex::new(r"0x[0-9a-f]+")
        .expect("regex")
        .replace_all(s, "0xADDR")
        .into_owned()
}

/// The trace lines (those starting with `>`) of an output.
pub fn trace_lines(o: &Output) -> Vec<String> {
    stdout(o)
        .lines()
        .filter(|l| l.starts_with('>'))
        .map(str::to_string)
        .collect()
}
