//! End-to-end tests of tracing a Go package that logprobe builds itself
//! (`logprobe trace [--test] PACKAGE REGEX [-- ARGS]`, DAP `package` and
//! `test`), as `dlv trace [-t] PACKAGE REGEX` does: built with the `go` on
//! PATH, traced under every backend, and the binary removed afterwards,
//! also when the build fails or the trace is ended by a signal.

// A test fails by panicking: what Cargo.toml denies in the adapter is how
// a test says what went wrong.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::dap::*;
use common::*;
use serde_json::json;

/// A directory of the test's own, removed when dropped: the TMPDIR
/// logprobe builds in (so what it leaves there is seen), or a module.
struct Dir(PathBuf);

impl Dir {
    fn new(what: &str) -> Dir {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let p =
            std::env::temp_dir().join(format!("logprobe-test-{what}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Dir(p)
    }

    /// What is in it (empty once logprobe cleaned up after itself).
    fn entries(&self) -> Vec<String> {
        std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Whether the Go toolchain these tests build with is on PATH.
fn require_go() -> bool {
    let found = Command::new("go")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    require(
        found,
        "needs `go` on PATH (apt-get install golang-go; scripts/setup.sh does)",
    )
}

/// The fixture package with a test file: `main.handle`, `main.fact`.
fn calls_package() -> PathBuf {
    root().join("fixtures/go/calls")
}

/// A module of its own in a new directory: `go.mod` and `main.go`; `None`
/// (after saying why) where there is no Go to build it.
fn go_module(name: &str, main_go: &str) -> Option<Dir> {
    require_go().then(|| module(name, main_go))
}

fn module(name: &str, main_go: &str) -> Dir {
    let d = Dir::new(name);
    std::fs::write(d.0.join("go.mod"), format!("module {name}\n\ngo 1.19\n")).unwrap();
    std::fs::write(d.0.join("main.go"), main_go).unwrap();
    d
}

/// Runs `f` under every backend with a TMPDIR of its own, then checks
/// that logprobe left nothing in it.
fn each_backend(mut f: impl FnMut(&'static str, &Dir)) {
    for backend in backends() {
        let tmp = Dir::new("tmp");
        f(backend, &tmp);
        assert_eq!(
            tmp.entries(),
            Vec::<String>::new(),
            "{backend}: left in TMPDIR"
        );
    }
}

/// `logprobe trace --backend B ARGS` run in `dir`, building in `tmp`.
fn trace_in(dir: &Path, tmp: &Dir, backend: &str, args: &[&str]) -> std::process::Output {
    let mut cmd = logprobe();
    cmd.current_dir(dir)
        .env("TMPDIR", &tmp.0)
        .args(["trace", "--backend", backend])
        .args(args);
    run_with_timeout(cmd, Duration::from_secs(300))
}

/// Goroutine ids masked: a test binary's depend on how many goroutines
/// the runtime started first.
fn mask_goroutines(s: &str) -> String {
    regex::Regex::new(r"goroutine\(\d+\)")
        .unwrap()
        .replace_all(s, "goroutine(N)")
        .into_owned()
}

const LEAF: &str = "> goroutine(1): main.leaf(1)
>> goroutine(1): main.leaf => (2)
> goroutine(1): main.leaf(1)
>> goroutine(1): main.leaf => (2)
16
2 10 false
";

#[test]
fn a_package_is_built_traced_and_its_binary_removed() {
    if !require_go() {
        return;
    }
    for backend in backends() {
        // By path and by import path, from inside the module.
        for package in [".", "calls"] {
            let tmp = Dir::new("tmp");
            let out = trace_in(&calls_package(), &tmp, backend, &[package, r"main\.leaf$"]);
            assert!(
                out.status.success(),
                "{backend} {package}: {}",
                stderr(&out)
            );
            assert_eq!(stdout(&out), LEAF, "{backend} {package}");
            assert_eq!(tmp.entries(), Vec::<String>::new(), "{backend} {package}");
        }
        // Built with -N -l, `main.handle`'s arguments are all there; the
        // words after `--` reach the program (it takes none, and ignores
        // them).
        let tmp = Dir::new("tmp");
        let out = trace_in(
            &calls_package(),
            &tmp,
            backend,
            &["-s", "1", ".", r"main\.handle$", "--", "extra"],
        );
        assert!(out.status.success(), "{backend}: {}", stderr(&out));
        assert!(
            stdout(&out).starts_with(
                "> goroutine(1): main.handle(1, main.Shape(main.Square) {Side: 2}, main.leaf)\n"
            ),
            "{backend}: {}",
            stdout(&out)
        );
        assert_eq!(tmp.entries(), Vec::<String>::new(), "{backend}");
    }
}

#[test]
fn build_flags_reach_go_build_split_as_a_shell_splits_them() {
    if !require_go() {
        return;
    }
    for backend in backends() {
        // The quotes keep `-X main.banner=...` one flag with its value.
        let tmp = Dir::new("tmp");
        let out = trace_in(
            &calls_package(),
            &tmp,
            backend,
            &[
                "--build-flags=-tags=unused -ldflags='-X main.banner=built-with-flags'",
                ".",
                r"main\.leaf$",
            ],
        );
        assert!(out.status.success(), "{backend}: {}", stderr(&out));
        assert_eq!(
            stdout(&out),
            format!("built-with-flags\n{LEAF}"),
            "{backend}"
        );
        assert_eq!(tmp.entries(), Vec::<String>::new(), "{backend}");
        // Through DAP, as Delve's `buildFlags`.
        let (mut c, adapter) = dap_session(
            &tmp,
            Some(
                json!({"package": ".", "cwd": calls_package(), "backend": backend,
                        "buildFlags": "-ldflags='-X main.banner=from-dap'",
                        "trace": [r"main\.double$"]}),
            ),
        );
        let (console, program_out) = c.run_to_end();
        assert_eq!(
            console,
            "> goroutine(1): main.double(1)\n>> goroutine(1): main.double => (2)\n\
             > goroutine(1): main.double(5)\n>> goroutine(1): main.double => (10)\n",
            "{backend}"
        );
        assert_eq!(program_out, "from-dap\n16\n2 10 false\n", "{backend}");
        c.ok("disconnect", json!({}));
        assert!(adapter.into_inner().wait().unwrap().success(), "{backend}");
        assert_eq!(tmp.entries(), Vec::<String>::new(), "{backend}");
    }
    // Without a package there is nothing to build with them; `-o` is ours.
    let out = trace_in(
        &calls_package(),
        &Dir::new("tmp"),
        "ptrace",
        &["--build-flags=-race", r"main\.leaf$", "--", "/bin/true"],
    );
    assert_eq!(
        stderr(&out).trim_end(),
        "logprobe: --build-flags applies to a Go package that logprobe builds: give the package (`.`, `./cmd/x`), or build the program yourself"
    );
    let out = trace_in(
        &calls_package(),
        &Dir::new("tmp"),
        "ptrace",
        &["--build-flags=-o /tmp/x", ".", r"main\.leaf$"],
    );
    assert!(stderr(&out).contains("cannot set -o"), "{}", stderr(&out));
}

/// `calls.fact(4)`'s calls and returns, as a test binary names them (its
/// package main is renamed after its import path).
const FACT: &str = "> goroutine(N): calls.fact(4)
> goroutine(N): calls.fact(3)
> goroutine(N): calls.fact(2)
> goroutine(N): calls.fact(1)
>> goroutine(N): calls.fact => (1)
>> goroutine(N): calls.fact => (2)
>> goroutine(N): calls.fact => (6)
>> goroutine(N): calls.fact => (24)
";

#[test]
fn test_builds_the_test_binary_and_passes_it_the_words_after_the_dashes() {
    if !require_go() {
        return;
    }
    let mut texts = Vec::new();
    for backend in backends() {
        let tmp = Dir::new("tmp");
        // PACKAGE defaults to `.`; `-test.run` picks TestFact, so
        // TestHandle's calls of `fact(3)` are not run.
        let out = trace_in(
            &calls_package(),
            &tmp,
            backend,
            &["--test", r"\.fact$", "--", "-test.run", "TestFact"],
        );
        assert!(out.status.success(), "{backend}: {}", stderr(&out));
        let text = mask_goroutines(&stdout(&out));
        assert_eq!(text, format!("{FACT}PASS\n"), "{backend}");
        assert_eq!(tmp.entries(), Vec::<String>::new(), "{backend}");
        texts.push(text);
        // Every test, the package named: both tests' calls.
        let tmp = Dir::new("tmp");
        let out = trace_in(
            &calls_package(),
            &tmp,
            backend,
            &["-t", ".", r"\.handle$", "--", "-test.v"],
        );
        assert!(out.status.success(), "{backend}: {}", stderr(&out));
        let text = mask_goroutines(&stdout(&out));
        assert!(
            text.contains("=== RUN   TestHandle\n> goroutine(N): calls.handle(1, calls.Shape(calls.Square) {Side: 2}, calls.leaf)\n>> goroutine(N): calls.handle => (16)\n--- PASS: TestHandle"),
            "{backend}: {text}"
        );
        assert_eq!(tmp.entries(), Vec::<String>::new(), "{backend}");
    }
    assert!(texts.windows(2).all(|w| w[0] == w[1]));
}

/// A program that does not compile.
const BROKEN_GO: &str = "package main

func main() {
	println(undefinedThing)
}
";

#[test]
fn a_build_error_is_gos_own_and_nothing_is_traced() {
    let Some(broken) = go_module("broken", BROKEN_GO) else {
        return;
    };
    each_backend(|backend, tmp| {
        let out = trace_in(&broken.0, tmp, backend, &[".", "main"]);
        assert!(!out.status.success(), "{backend}");
        let err = stderr(&out);
        assert!(
            err.starts_with("logprobe: building . failed:\n")
                && err.contains("main.go:4:10: undefined: undefinedThing"),
            "{backend}: {err}"
        );
        assert_eq!(stdout(&out), "", "{backend}");
    });
}

#[test]
fn mistakes_say_what_to_do_in_one_line() {
    if !require_go() {
        return;
    }
    let tmp = Dir::new("tmp");
    let cases: &[(&[&str], &str)] = &[
        (
            &["/bin/true", "main"],
            "logprobe: /bin/true is a file, not a Go package: to trace a program, give it after `--`: logprobe trace 'main' -- /bin/true\n",
        ),
        (
            &["./calls"],
            "logprobe: give the functions to trace after the package: logprobe trace ./calls REGEX\n",
        ),
        (
            &["main", "./calls"],
            "logprobe: the package comes first, then the functions: logprobe trace ./calls 'main'\n",
        ),
        (
            &["--optimized", "main", "--", "/bin/true"],
            "logprobe: --optimized applies to a Go package that logprobe builds: give the package (`.`, `./cmd/x`), or build the program yourself\n",
        ),
        (
            &["main"],
            "logprobe: nothing to trace: give a program after `--` (logprobe trace 'main' -- ./prog), a Go package before the functions (logprobe trace ./cmd/x 'main'), or a running process with -p PID\n",
        ),
    ];
    for (args, want) in cases {
        let out = trace_in(&root().join("fixtures/go"), &tmp, "ptrace", args);
        assert!(!out.status.success(), "{args:?}");
        assert_eq!(stderr(&out), *want, "{args:?}");
    }
    // A library package is not a command: its tests can be traced.
    let lib = module("lib", "package lib\n\nfunc F() int { return 1 }\n");
    let out = trace_in(&lib.0, &tmp, "ptrace", &[".", "F"]);
    assert_eq!(
        stderr(&out),
        "logprobe: . is package lib, not a command (package main): trace its tests with --test (DAP: \"test\": true), or give a main package\n"
    );
    let out = trace_in(&lib.0, &tmp, "ptrace", &["--test", "F"]);
    assert_eq!(
        stderr(&out),
        "logprobe: . has no test files: there is no test binary to trace\n"
    );
    assert_eq!(tmp.entries(), Vec::<String>::new());
}

/// A program that calls `main.tick` every 10 ms for a minute.
const TICKER_GO: &str = "package main

import \"time\"

//go:noinline
func tick(i int) int { return i + 1 }

func main() {
	for i := 0; i < 6000; i++ {
		tick(i)
		time.Sleep(10 * time.Millisecond)
	}
}
";

#[test]
fn a_trace_ended_by_a_signal_removes_the_binary() {
    let Some(ticker) = go_module("ticker", TICKER_GO) else {
        return;
    };
    each_backend(|backend, tmp| {
        let mut cmd = logprobe();
        cmd.current_dir(&ticker.0)
            .env("TMPDIR", &tmp.0)
            .args(["trace", "--backend", backend, ".", r"main\.tick$"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = Reaper(Some(cmd.spawn().unwrap()));
        let pid = child.child().id();
        let mut out = std::io::BufReader::new(child.child().stdout.take().unwrap());
        let mut line = String::new();
        use std::io::BufRead;
        out.read_line(&mut line).unwrap();
        assert_eq!(line, "> goroutine(1): main.tick(0)\n", "{backend}");
        // While it runs, the binary is there.
        assert_eq!(tmp.entries().len(), 1, "{backend}");
        // SIGTERM to logprobe (by the pid of the child this test started).
        let status = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let start = Instant::now();
        let status = child.into_inner().wait().unwrap();
        assert!(start.elapsed() < Duration::from_secs(60));
        assert!(status.code().is_some(), "{backend}: {status:?}");
    });
}

#[test]
fn a_build_ended_by_a_signal_leaves_nothing_behind() {
    let Some(ticker) = go_module("ticker", TICKER_GO) else {
        return;
    };
    // Ctrl-C (SIGINT to logprobe alone: `go` runs in a process group of
    // its own) and SIGTERM. An empty build cache makes the build last long
    // enough to be ended while `go` runs (its work directory is there).
    for signal in ["-INT", "-TERM"] {
        let tmp = Dir::new("tmp");
        let cache = Dir::new("gocache");
        let mut cmd = logprobe();
        cmd.current_dir(&ticker.0)
            .env("TMPDIR", &tmp.0)
            .env("GOCACHE", &cache.0)
            .args(["trace", "--backend", "ptrace", ".", r"main\.tick$"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let child = Reaper(Some(cmd.spawn().unwrap()));
        let pid = child.0.as_ref().unwrap().id();
        let building = || {
            std::fs::read_dir(&tmp.0).unwrap().flatten().any(|d| {
                std::fs::read_dir(d.path()).is_ok_and(|mut inner| {
                    inner.any(|e| {
                        e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with("go-build"))
                    })
                })
            })
        };
        let start = Instant::now();
        while !building() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "go never started"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // SIGTERM to logprobe (by the pid of the child this test started).
        assert!(Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .unwrap()
            .success());
        let out = child.into_inner().wait_with_output().unwrap();
        assert!(!out.status.success());
        assert_eq!(stderr(&out), "logprobe: interrupted while building\n");
        assert_eq!(stdout(&out), "");
        assert_eq!(tmp.entries(), Vec::<String>::new());
        // Nothing of the build goes on: no process works in the cache.
        std::thread::sleep(Duration::from_millis(200));
        assert!(!compiling_in(&cache.0), "{signal}");
    }
}

/// Whether a process runs with `dir` in its command line or environment
/// (go's compilers use the cache in `GOCACHE`).
fn compiling_in(dir: &Path) -> bool {
    let dir = dir.display().to_string();
    std::fs::read_dir("/proc").unwrap().flatten().any(|p| {
        ["cmdline", "environ"].iter().any(|f| {
            std::fs::read(p.path().join(f))
                .is_ok_and(|b| String::from_utf8_lossy(&b).contains(&dir))
        })
    })
}

/// A DAP session building in `tmp`, initialized; `launch` sent with
/// `launch_args` when given (then `initialized` and `configurationDone`).
fn dap_session(tmp: &Dir, launch_args: Option<serde_json::Value>) -> (Client, Reaper) {
    let tmpdir = tmp.0.display().to_string();
    let (mut c, adapter) = stdio_adapter_with(&[], &[("TMPDIR", &tmpdir)]);
    c.ok(
        "initialize",
        json!({"adapterID": "logprobe", "linesStartAt1": true}),
    );
    if let Some(args) = launch_args {
        c.ok("launch", args);
        c.wait_event(|e| e["event"] == "initialized");
        c.ok("configurationDone", json!({}));
    }
    (c, adapter)
}

#[test]
fn dap_launches_a_package_and_its_tests_and_removes_the_binaries() {
    if !require_go() {
        return;
    }
    let dir = calls_package().display().to_string();
    each_backend(|backend, tmp| {
        let (mut c, adapter) = dap_session(
            tmp,
            Some(
                json!({"package": ".", "cwd": dir, "backend": backend, "trace": [r"main\.leaf$"]}),
            ),
        );
        let (console, program_out) = c.run_to_end();
        assert_eq!(
            console,
            "> goroutine(1): main.leaf(1)\n>> goroutine(1): main.leaf => (2)\n".repeat(2),
            "{backend}"
        );
        assert_eq!(program_out, "16\n2 10 false\n", "{backend}");
        let process = c.wait_event(|e| e["event"] == "process");
        let name = process["body"]["name"].as_str().unwrap().to_string();
        assert!(
            name.starts_with(&tmp.0.display().to_string()),
            "{backend}: {name}"
        );
        c.ok("disconnect", json!({}));
        assert!(adapter.into_inner().wait().unwrap().success(), "{backend}");
        assert!(!Path::new(&name).exists(), "{backend}: {name}");
    });
    each_backend(|backend, tmp| {
        // The test binary, its flags as `args`.
        let (mut c, adapter) = dap_session(
            tmp,
            Some(
                json!({"test": true, "cwd": dir, "backend": backend, "trace": [r"\.fact$"],
                   "args": ["-test.run", "TestFact"]}),
            ),
        );
        let (console, program_out) = c.run_to_end();
        assert_eq!(mask_goroutines(&console), FACT, "{backend}");
        assert_eq!(program_out, "PASS\n", "{backend}");
        c.ok("disconnect", json!({}));
        assert!(adapter.into_inner().wait().unwrap().success(), "{backend}");
    });
    let broken = module("broken", "package main\n\nfunc main() { nope() }\n");
    each_backend(|backend, tmp| {
        // A build error fails the launch with go's own message.
        let (mut c, _adapter) = dap_session(tmp, None);
        let r = c.request(
            "launch",
            json!({"package": ".", "cwd": broken.0.display().to_string(), "backend": backend}),
        );
        assert_eq!(r["success"], false, "{r}");
        let message = r["message"].as_str().unwrap();
        assert!(
            message.starts_with("building . failed:") && message.contains("undefined: nope"),
            "{backend}: {message}"
        );
        let r = c.request("launch", json!({"program": "/bin/true", "package": "."}));
        assert_eq!(
            r["message"],
            "give 'program' (an executable) or 'package' (a Go package to build), not both"
        );
    });
}
