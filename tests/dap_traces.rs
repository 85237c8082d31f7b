//! End-to-end tests of `logprobe dap`'s probes while a program runs:
//! `traceFunctions` by regex and by position, traces and logpoints added
//! and removed while running, under every backend.

// A test fails by panicking: what Cargo.toml denies in the adapter is how
// a test says what went wrong.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::dap::*;
use common::*;
use serde_json::json;

#[test]
fn trace_functions_by_regex_and_by_position() {
    for case in cases(&["seed"]) {
        let (backend, what) = (case.backend, case.to_string());
        let (mut c, _adapter) = stdio_adapter();
        launch(&mut c, backend, &case.path(), &[], json!({}));
        let r = c.ok(
            "traceFunctions",
            json!({"functions": [{"regex": r"^main\.foo$"}, {"regex": "nothing_is_called_this"}]}),
        );
        let f = &r["body"]["functions"];
        assert_eq!(f[0]["verified"], true);
        assert_eq!(f[0]["functions"][0]["name"], "main.foo");
        assert_eq!(f[0]["functions"][0]["line"], 5);
        assert_eq!(f[1]["verified"], false);
        assert!(
            f[1]["message"]
                .as_str()
                .unwrap_or("")
                .contains("no function"),
            "{f}"
        );
        c.ok("configurationDone", json!({}));
        let (console, _) = c.run_to_end();
        assert_eq!(
            console, "> goroutine(1): main.foo(99, 9801)\n>> goroutine(1): main.foo => (9900)\n",
            "{what}"
        );
        let call = &c.outputs("console")[0]["body"];
        assert_eq!(call["line"], 5);
        assert_eq!(call["data"]["values"][0]["value"]["value"], 99);
        c.ok("disconnect", json!({}));

        // By position: the cursor on `z = x + y` (LSP line 6, 0-based).
        let (mut c, _adapter) = stdio_adapter();
        launch(
            &mut c,
            backend,
            &case.toolchain.path("seed-debug"),
            &[],
            json!({}),
        );
        let uri = format!("file://{}", seed_source());
        let r = c.ok("traceFunctions", json!({"functions": [{"position": {"textDocument": {"uri": uri}, "position": {"line": 6, "character": 1}}}]}));
        assert_eq!(
            r["body"]["functions"][0]["functions"][0]["name"], "main.foo",
            "{r}"
        );
        c.ok("configurationDone", json!({}));
        let (console, _) = c.run_to_end();
        assert_eq!(
            console, "> goroutine(1): main.foo(99, 9801)\n>> goroutine(1): main.foo => (9900)\n",
            "{what}"
        );
        c.ok("disconnect", json!({}));
    }
}

#[test]
fn traces_and_logpoints_are_added_and_removed_while_running() {
    for backend in backends() {
        let (mut c, mut adapter) = stdio_adapter();
        launch(&mut c, backend, "attach", &["60"], json!({}));
        c.ok("configurationDone", json!({}));
        c.wait_event(|e| e["event"] == "output" && e["body"]["output"] == "ready\n");
        // eBPF loads its programs once per session: probes added later are
        // data for them, never a program to verify again.
        let programs = bpf_programs(adapter.child().id());
        assert_eq!(
            backend == "ebpf",
            !programs.is_empty(),
            "{backend}: {programs:?}"
        );

        // Add a trace while running, see it fire, remove it, see it stop.
        c.ok(
            "traceFunctions",
            json!({"functions": [{"regex": r"^main\.tick$"}]}),
        );
        for _ in 0..2 {
            c.wait_event(|e| {
                e["event"] == "output"
                    && e["body"]["output"]
                        .as_str()
                        .is_some_and(|o| o.starts_with("> goroutine(1): main.tick("))
            });
        }
        c.ok("traceFunctions", json!({"functions": []}));
        c.drain_for(Duration::from_millis(300));
        let before = c.outputs("console").len();
        c.drain_for(Duration::from_millis(600));
        assert_eq!(
            c.outputs("console").len(),
            before,
            "{backend}: trace still firing after removal"
        );

        // The same with a logpoint.
        let r = c.ok("setBreakpoints", json!({"source": {"path": attach_source()}, "breakpoints": [{"line": 23, "logMessage": "tick {i}"}]}));
        let id = r["body"]["breakpoints"][0]["id"].clone();
        let ev = c.wait_event(|e| e["event"] == "breakpoint");
        assert_eq!(ev["body"]["breakpoint"]["id"], id);
        assert_eq!(ev["body"]["breakpoint"]["verified"], true);
        for _ in 0..2 {
            c.wait_event(|e| {
                e["event"] == "output"
                    && e["body"]["output"]
                        .as_str()
                        .is_some_and(|o| o.starts_with("tick "))
            });
        }
        c.ok(
            "setBreakpoints",
            json!({"source": {"path": attach_source()}, "breakpoints": []}),
        );
        c.drain_for(Duration::from_millis(300));
        let before = c.outputs("console").len();
        c.drain_for(Duration::from_millis(600));
        assert_eq!(
            c.outputs("console").len(),
            before,
            "{backend}: logpoint still firing after removal"
        );
        // None new: the session's programs, less the warm-up's trivial
        // one if it was still held when they were first listed.
        let now = bpf_programs(adapter.child().id());
        assert!(
            now.is_subset(&programs) && now.len() + 1 >= programs.len(),
            "{backend}: adding probes loaded a BPF program: {programs:?} then {now:?}"
        );

        // The program is unharmed by all of this.
        let (_, stdout) = c.run_to_end();
        // (`ready` was taken by the wait above.)
        assert_eq!(stdout, "done sum=3540\n", "{backend}");
        assert_eq!(c.exit_code(), Some(0));
        c.ok("disconnect", json!({}));
    }
}

#[test]
fn removing_a_logpoint_keeps_the_trace_armed_with_it() {
    // The launch trace and the logpoint are armed together before the
    // program starts (one uprobe-multi link under eBPF); removing the
    // logpoint must leave the trace firing, once per call, and a logpoint
    // added next (reusing the freed recipe slot under eBPF) must show its
    // own text.
    for backend in backends() {
        let (mut c, _adapter) = launch_ticker(backend, "100", r"^main\.tick$");
        c.ok("setBreakpoints", json!({"source": {"path": attach_source()}, "breakpoints": [{"line": 23, "logMessage": "lp {i}"}]}));
        c.ok("configurationDone", json!({}));
        c.wait_event(|e| e["event"] == "output" && e["body"]["output"] == "ready\n");
        c.drain_for(Duration::from_millis(400));
        assert!(
            numbers_after(&c, "lp ").len() >= 2,
            "{backend}: no logpoint hits"
        );

        c.ok(
            "setBreakpoints",
            json!({"source": {"path": attach_source()}, "breakpoints": []}),
        );
        c.drain_for(Duration::from_millis(300));
        let lp = numbers_after(&c, "lp ").len();
        let ticks = numbers_after(&c, "> goroutine(1): main.tick(").len();
        c.drain_for(Duration::from_millis(600));
        assert_eq!(
            numbers_after(&c, "lp ").len(),
            lp,
            "{backend}: logpoint still firing"
        );
        assert!(
            numbers_after(&c, "> goroutine(1): main.tick(").len() >= ticks + 5,
            "{backend}: the trace stopped with the logpoint"
        );

        c.ok("setBreakpoints", json!({"source": {"path": attach_source()}, "breakpoints": [{"line": 23, "logMessage": "again {i}"}]}));
        c.drain_for(Duration::from_millis(400));
        let again = numbers_after(&c, "again ");
        assert!(
            again.len() >= 2,
            "{backend}: the new logpoint does not fire"
        );
        let last_lp = numbers_after(&c, "lp ").last().copied().unwrap_or(-1);
        assert!(
            again[0] > last_lp,
            "{backend}: {again:?} after lp {last_lp}"
        );

        let (_, stdout) = c.run_to_end();
        assert_eq!(stdout, "done sum=9900\n", "{backend}");
        assert_eq!(c.exit_code(), Some(0));
        // Each call shown at most once, in order (a relink may miss calls,
        // never repeat one).
        let ticks = numbers_after(&c, "> goroutine(1): main.tick(");
        assert!(
            ticks.windows(2).all(|w| w[0] < w[1]),
            "{backend}: {ticks:?}"
        );
        assert!(ticks.len() >= 50, "{backend}: {ticks:?}");
        c.ok("disconnect", json!({}));
    }
}
