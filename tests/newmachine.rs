//! A new machine: no tracefs, no debugfs, nothing set up by hand. Every
//! logprobe the tests start already runs that way (`common::as_new_machine`);
//! these tests show that tracefs is there to be had and still not needed,
//! and check what `logprobe doctor` says, where eBPF works and where it
//! cannot.

// A test fails by panicking: what Cargo.toml denies in the adapter is how
// a test says what went wrong.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

#[test]
fn ebpf_traces_with_tracefs_and_debugfs_unmounted() {
    if !require(is_root(), "needs root (eBPF, mount namespaces)") {
        return;
    }
    // In a mount namespace of its own: tracefs mounts (this kernel has
    // it), is unmounted again with debugfs, and then the trace runs.
    let script = r#"
        mount -t tracefs nodev /sys/kernel/tracing || exit 90
        test -e /sys/kernel/tracing/uprobe_events || exit 91
        umount /sys/kernel/tracing
        umount /sys/kernel/debug 2>/dev/null
        if grep -qE ' (tracefs|debugfs) ' /proc/self/mounts; then exit 92; fi
        exec "$@"
    "#;
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        script,
        "sh",
    ])
    .arg(env!("CARGO_BIN_EXE_logprobe"))
    .args(["trace", "--backend", "ebpf", "foo", "--"])
    .arg(fixture("seed"));
    let out = run_with_timeout(cmd, Duration::from_secs(60));
    assert!(
        out.status.success(),
        "{:?}: {}",
        out.status.code(),
        stderr(&out)
    );
    assert_eq!(stderr(&out), "");
    assert_eq!(
        stdout(&out),
        "> goroutine(1): main.foo(99, 9801)\nx=99, y=9801, z=0\n>> goroutine(1): main.foo => (9900)\nz=9900\n"
    );
}

#[test]
fn doctor_shows_ebpf_works_and_needs_no_mount() {
    if !require(is_root(), "needs root (eBPF)") {
        return;
    }
    let mut cmd = logprobe();
    cmd.arg("doctor");
    let out = run_with_timeout(cmd, Duration::from_secs(60));
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    for line in [
        "  ok      the bpf system call: this process may load tracing programs\n",
        "  ok      BPF ring buffers\n",
        "  ok      bpf_loop\n",
        "  ok      uprobe-multi links (attached to logprobe itself, by file offset)\n",
        "  ok      raw tracepoints (sys_enter, for relaying a launched program's output)\n",
        "  note    tracefs at /sys/kernel/tracing: not mounted (logprobe does not need it)\n",
        "  note    debugfs at /sys/kernel/debug: not mounted (logprobe does not need it)\n",
        "eBPF: works here. ptrace: works here. --backend auto uses eBPF.\n",
    ] {
        assert!(text.contains(line), "no {line:?} in:\n{text}");
    }
    assert!(!text.contains("MISSING"), "{text}");
    // The verifier's work stays small whatever the recipes hold (they are
    // data): each program's count of processed instructions, which does
    // not depend on the machine's load, is far below what an unrolled
    // capture loop costs (about 450,000 for the probe before).
    let verified =
        regex::Regex::new(r"verified (\w+) in [0-9.]+ ms \((\d+) instructions processed\)")
            .expect("regex");
    let programs: Vec<(String, u64)> = verified
        .captures_iter(&text)
        .map(|c| (c[1].to_string(), c[2].parse().expect("count")))
        .collect();
    let names: Vec<&str> = programs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "lp_probe",
            "lp_sigtramp",
            "lp_return",
            "lp_breakpoint",
            "lp_preempt",
            "lp_enter_write",
            "lp_exit_write"
        ],
        "{text}"
    );
    for (name, insns) in &programs {
        assert!(*insns < 30_000, "{name}: {insns} instructions processed");
    }
}

#[test]
fn doctor_says_what_is_missing_where_ebpf_cannot_work() {
    let Some(setpriv) = setpriv() else {
        return;
    };
    let mut cmd = Command::new(setpriv);
    as_new_machine(&mut cmd)
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_logprobe"))
        .arg("doctor");
    let out = run_with_timeout(cmd, Duration::from_secs(60));
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    assert!(
        text.contains(
            "  MISSING no permission to load BPF programs (run as root, or grant CAP_BPF and CAP_PERFMON)\n          fix: run as root, or grant CAP_BPF and CAP_PERFMON"
        ),
        "{text}"
    );
    assert!(text.contains("eBPF: cannot work here."), "{text}");
}
