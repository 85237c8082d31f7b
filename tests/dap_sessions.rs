//! One `logprobe dap --listen` server, several sessions at once: each
//! client launches its own program with its own probes while the others
//! run, under every backend, and sees its own program's output and hits
//! and nothing of the others'.

// A test fails by panicking: what Cargo.toml denies in the adapter is how
// a test says what went wrong.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::{Arc, Barrier};

use common::dap::*;
use common::*;
use serde_json::{json, Value};

/// What one session does and must see.
struct Case {
    program: &'static str,
    args: Vec<String>,
    traces: Value,
    /// Every console line, in order.
    console: Vec<String>,
    stdout: String,
}

fn ticker_lines(n: u64) -> Vec<String> {
    (0..n)
        .flat_map(|i| {
            [
                format!("> goroutine(1): main.tick({i})"),
                format!(">> goroutine(1): main.tick => ({})", 2 * i),
            ]
        })
        .collect()
}

fn cases() -> Vec<Case> {
    vec![
        // The same program as the next session, traced differently: what
        // one session sees must not be the other's.
        Case {
            program: "attach",
            args: vec!["20".into()],
            traces: json!([{ "regex": "main\\.tick$" }]),
            console: ticker_lines(20),
            stdout: format!("ready\ndone sum={}\n", (0..20).map(|i| 2 * i).sum::<u64>()),
        },
        Case {
            program: "attach",
            args: vec!["30".into()],
            traces: json!([{ "regex": "main\\.tick$", "logMessage": "tick i={i}" }]),
            console: (0..30).map(|i| format!("tick i={i}")).collect(),
            stdout: format!("ready\ndone sum={}\n", (0..30).map(|i| 2 * i).sum::<u64>()),
        },
        Case {
            program: "seed",
            args: vec![],
            traces: json!([{ "regex": "main\\.foo$" }]),
            console: vec![
                "> goroutine(1): main.foo(99, 9801)".into(),
                ">> goroutine(1): main.foo => (9900)".into(),
            ],
            stdout: "x=99, y=9801, z=0\nz=9900\n".into(),
        },
    ]
}

/// Runs one case as a client of the server at `port`, starting its
/// program only when every session is ready; returns its console lines,
/// stdout and program pid.
fn run(port: u16, backend: &str, case: &Case, ready: &Barrier) -> (Vec<String>, String, i64) {
    let mut c = tcp_client(port);
    let args: Vec<&str> = case.args.iter().map(String::as_str).collect();
    launch(&mut c, backend, case.program, &args, json!({}));
    let r = c.ok("traceFunctions", json!({ "functions": case.traces }));
    assert_eq!(r["body"]["functions"][0]["verified"], true, "{r}");
    ready.wait();
    c.ok("configurationDone", json!({}));
    let (console, stdout) = c.run_to_end();
    let pid = c
        .events
        .iter()
        .find(|e| e["event"] == "process")
        .and_then(|e| e["body"]["systemProcessId"].as_i64())
        .unwrap_or(0);
    assert!(
        !c.events.iter().any(|e| e["event"] == "logprobe/hits"),
        "a client that did not ask for logprobe/hits (hitsInterval) is not sent it"
    );
    c.ok("disconnect", json!({}));
    let lines = console
        .lines()
        .filter(|l| !l.starts_with("logprobe:"))
        .map(str::to_string)
        .collect();
    (lines, stdout, pid)
}

#[test]
fn three_sessions_at_once_each_see_only_their_own_program() {
    for backend in backends() {
        let (_server, port) = tcp_adapter();
        let cases = Arc::new(cases());
        let ready = Arc::new(Barrier::new(cases.len()));
        let threads: Vec<_> = (0..cases.len())
            .map(|i| {
                let (cases, ready) = (cases.clone(), ready.clone());
                let backend = backend.to_string();
                std::thread::spawn(move || run(port, &backend, &cases[i], &ready))
            })
            .collect();
        let results: Vec<_> = threads
            .into_iter()
            .map(|t| t.join().expect("a session's client failed"))
            .collect();
        let mut pids = Vec::new();
        for (case, (console, stdout, pid)) in cases.iter().zip(results) {
            assert_eq!(
                console, case.console,
                "{backend}: console of the {} session",
                case.program
            );
            assert_eq!(
                stdout, case.stdout,
                "{backend}: stdout of the {} session",
                case.program
            );
            assert!(pid > 0, "{backend}: a process event with the pid");
            pids.push(pid);
        }
        pids.sort_unstable();
        pids.dedup();
        assert_eq!(pids.len(), 3, "{backend}: three programs, three pids");
    }
}
