//! A client that stops reading never holds up the program or makes the
//! adapter's memory grow: `output` events beyond the queue's budget
//! (`logprobe dap --queue-bytes`) are left out, counted and reported
//! (docs/protocol.md, "A client that reads slowly"). Under every backend.

// A test fails by panicking: what Cargo.toml denies in the adapter is how
// a test says what went wrong.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::dap::*;
use common::*;
use serde_json::{json, Value};

/// Calls of `main.target` the program makes: two hits each.
const CALLS: u64 = 20_000;

/// The pid of `adapter`'s child process named `name`, if it has one.
fn child_named(adapter: u32, name: &str) -> Option<u32> {
    let tasks = std::fs::read_dir(format!("/proc/{adapter}/task")).ok()?;
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|c| {
            c.split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok())
                .collect::<Vec<_>>()
        })
        .find(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == name)
        })
}

/// Whether process `pid` is gone or a zombie (it has ended).
fn ended(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(true)
}

/// The sum of the numbers that `important` outputs starting with
/// `prefix` give before ` `, e.g. `logprobe: 12 events dropped`.
fn important_counts(c: &Client, prefix: &str, rest: &str) -> u64 {
    c.outputs("important")
        .iter()
        .filter_map(|e| e["body"]["output"].as_str())
        .filter_map(|o| o.strip_prefix(prefix))
        .filter_map(|o| o.split_once(' '))
        .filter(|(_, tail)| tail.starts_with(rest))
        .map(|(n, _)| n.parse::<u64>().unwrap())
        .sum()
}

fn stalled_client(backend: &str) {
    if !require_backend(backend) {
        return;
    }
    let gate = Gate::default();
    let (mut c, mut adapter) = stdio_adapter_gated(&["--queue-bytes", "65536"], &[], gate.clone());
    let adapter_pid = adapter.child().id();
    launch(
        &mut c,
        backend,
        "bench",
        &[&CALLS.to_string(), "target"],
        json!({ "trace": [r"^main\.target$"], "hitsInterval": 100 }),
    );
    // From here on the client reads nothing until the program has ended.
    gate.close();
    c.send("configurationDone", json!({}));
    let deadline = Instant::now() + Duration::from_secs(120);
    let program = loop {
        if let Some(pid) = child_named(adapter_pid, "bench") {
            break pid;
        }
        assert!(Instant::now() < deadline, "the program never started");
        std::thread::sleep(Duration::from_millis(5));
    };
    while !ended(program) {
        if Instant::now() > deadline {
            gate.open();
            panic!("{backend}: the program did not end while the client read nothing");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    gate.open();
    c.run_to_end();
    assert_eq!(
        c.exit_code(),
        Some(0),
        "{backend}: {:#?}",
        c.outputs("important")
    );
    c.ok("disconnect", json!({}));
    c.drain_for(Duration::from_millis(500));

    let hits = c
        .outputs("console")
        .iter()
        .filter(|e| matches!(e["body"]["data"]["kind"].as_str(), Some("call" | "return")))
        .count() as u64;
    let stdout_lines = c.outputs("stdout").len() as u64;
    let notices: Vec<Value> = c
        .outputs("important")
        .into_iter()
        .filter(|e| e["body"]["data"]["kind"] == "notSent")
        .collect();
    let not_sent: u64 = notices
        .iter()
        .map(|e| e["body"]["data"]["count"].as_u64().unwrap())
        .sum();
    for n in &notices {
        let count = n["body"]["data"]["count"].as_u64().unwrap();
        assert_eq!(
            n["body"]["output"],
            format!("logprobe: {count} output events were not sent: the client read too slowly (logprobe dap --queue-bytes)\n")
        );
    }
    let dropped = important_counts(&c, "logprobe: ", "events dropped");
    assert!(
        not_sent > 0,
        "{backend}: a client that read nothing for {CALLS} calls was sent every event"
    );
    // Every hit is shown, left out by the adapter, or lost in the kernel;
    // the program's one stdout line is shown or left out.
    assert_eq!(
        hits + stdout_lines + not_sent + dropped,
        2 * CALLS + 1,
        "{backend}: {hits} hits shown, {stdout_lines} stdout lines, {not_sent} not sent, {dropped} dropped"
    );
    eprintln!("{backend}: {hits} hits shown, {not_sent} not sent, {dropped} dropped");
    if backend == "ptrace" {
        assert_eq!(dropped, 0);
    }
    // The live figures count what was left out, too.
    let last = c
        .events
        .iter()
        .rev()
        .find(|e| e["event"] == "logprobe/hits")
        .expect("a logprobe/hits event");
    assert_eq!(last["body"]["notSent"], not_sent, "{last}");
    // Messages left out took no sequence number.
    let seqs = c.seqs.lock().unwrap().clone();
    let expected: Vec<i64> = (1..=seqs.len() as i64).collect();
    assert!(seqs == expected, "{backend}: sequence numbers with gaps");
}

#[test]
fn stalled_client_ptrace() {
    stalled_client("ptrace");
}

#[test]
fn stalled_client_ebpf() {
    stalled_client("ebpf");
}

#[test]
fn queue_bytes_too_small_is_refused() {
    let out = run_with_timeout(
        {
            let mut cmd = logprobe();
            cmd.args(["dap", "--queue-bytes", "1000"]);
            cmd
        },
        Duration::from_secs(20),
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("1000 bytes is too small: the queue needs at least 65536"),
        "{}",
        stderr(&out)
    );
}
