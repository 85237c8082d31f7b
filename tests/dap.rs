//! End-to-end tests of `logprobe dap`: a small DAP client drives the real
//! binary over stdio and over TCP against the real fixtures, under every
//! backend: logpoints, traceFunctions by regex and by position, conditions
//! and hit conditions, probes added and removed while the program runs,
//! attach/detach, and malformed input that must not stop the server.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::dap::*;
use common::*;
use serde_json::{json, Value};

/// `logprobe dap` on stdio as the unprivileged user `nobody` (via
/// setpriv); `None` where that is impossible (not root, no setpriv).
fn stdio_adapter_as_nobody() -> Option<(Client, Reaper)> {
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
    if !root || !std::path::Path::new("/usr/bin/setpriv").exists() {
        eprintln!("skipping: needs root and setpriv to drop privileges");
        return None;
    }
    // setpriv execs logprobe, so the pid reaped is logprobe's.
    let mut child = Reaper(Some(
        Command::new("/usr/bin/setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_logprobe"))
            .arg("dap")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn logprobe dap as nobody"),
    ));
    let stdin = child.child().stdin.take().expect("stdin");
    let stdout = child.child().stdout.take().expect("stdout");
    Some((Client::new(stdout, Box::new(stdin)), child))
}

fn seed_logpoint_case(c: &mut Client, backend: &str, build: &str) {
    launch(c, backend, build, &[], json!({}));
    let r = c.ok("setBreakpoints", json!({"source": {"path": seed_source()}, "breakpoints": [{"line": 7, "logMessage": "x={x} y={y}"}]}));
    let bp = &r["body"]["breakpoints"][0];
    assert_eq!(
        bp["verified"], false,
        "not armed before the program starts: {bp}"
    );
    let id = bp["id"].clone();
    c.ok("configurationDone", json!({}));
    let changed = c.wait_event(|e| e["event"] == "breakpoint");
    assert_eq!(changed["body"]["breakpoint"]["id"], id);
    assert_eq!(changed["body"]["breakpoint"]["verified"], true);
    let (console, stdout) = c.run_to_end();
    assert_eq!(console, "x=99 y=9801\n", "{backend} {build}");
    assert_eq!(stdout, "x=99, y=9801, z=0\nz=9900\n", "{backend} {build}");
    let hit = &c.outputs("console")[0]["body"];
    assert_eq!(hit["line"], 7);
    assert_eq!(hit["source"]["path"], seed_source());
    assert_eq!(hit["data"]["kind"], "line");
    assert_eq!(hit["data"]["function"], "main.foo");
    assert_eq!(c.exit_code(), Some(0));
    assert!(c
        .events
        .iter()
        .any(|e| e["event"] == "process" && e["body"]["startMethod"] == "launch"));
    c.ok("disconnect", json!({}));
}

#[test]
fn seed_logpoint_prints_the_values_at_its_line_over_stdio() {
    for backend in backends() {
        for build in ["seed", "seed-debug"] {
            let (mut c, _adapter) = stdio_adapter();
            seed_logpoint_case(&mut c, backend, build);
        }
    }
}

#[test]
fn without_bpf_permission_auto_falls_back_to_ptrace_with_a_notice() {
    const NO_PERMISSION: &str =
        "no permission to load BPF programs (run as root, or grant CAP_BPF and CAP_PERFMON)";
    // No `backend`: the default, auto.
    let Some((mut c, _adapter)) = stdio_adapter_as_nobody() else {
        return;
    };
    c.ok("initialize", json!({"adapterID": "logprobe"}));
    c.ok(
        "launch",
        json!({"program": fixture("seed").display().to_string()}),
    );
    c.wait_event(|e| e["event"] == "initialized");
    c.ok("setBreakpoints", json!({"source": {"path": seed_source()}, "breakpoints": [{"line": 7, "logMessage": "x={x} y={y}"}]}));
    c.ok("configurationDone", json!({}));
    let (console, stdout) = c.run_to_end();
    // The fallback is a console notice before the logpoint's line.
    assert_eq!(
        console,
        format!("logprobe: using ptrace: eBPF is unavailable: {NO_PERMISSION}\nx=99 y=9801\n")
    );
    assert_eq!(stdout, "x=99, y=9801, z=0\nz=9900\n");
    assert_eq!(c.output("important"), "");
    assert_eq!(c.exit_code(), Some(0));
    c.ok("disconnect", json!({}));

    // Asked for by name, eBPF does not fall back: one line says why.
    let Some((mut c, _adapter)) = stdio_adapter_as_nobody() else {
        return;
    };
    launch(&mut c, "ebpf", "seed", &[], json!({}));
    c.ok("configurationDone", json!({}));
    let (console, stdout) = c.run_to_end();
    assert_eq!((console.as_str(), stdout.as_str()), ("", ""));
    assert_eq!(
        c.output("important"),
        format!("logprobe: {NO_PERMISSION}\n")
    );
    assert!(!c.events.iter().any(|e| e["event"] == "process"));
    c.ok("disconnect", json!({}));
}

#[test]
fn tcp_serves_one_session_after_another() {
    for backend in backends() {
        let (_adapter, port) = tcp_adapter();
        for build in ["seed", "seed-debug"] {
            let mut c = tcp_client(port);
            seed_logpoint_case(&mut c, backend, build);
        }
    }
}

#[test]
fn trace_functions_by_regex_and_by_position() {
    for backend in backends() {
        let (mut c, _adapter) = stdio_adapter();
        launch(&mut c, backend, "seed", &[], json!({}));
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
            "{backend}"
        );
        let call = &c.outputs("console")[0]["body"];
        assert_eq!(call["line"], 5);
        assert_eq!(call["data"]["values"][0]["value"]["value"], 99);
        c.ok("disconnect", json!({}));

        // By position: the cursor on `z = x + y` (LSP line 6, 0-based).
        let (mut c, _adapter) = stdio_adapter();
        launch(&mut c, backend, "seed-debug", &[], json!({}));
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
            "{backend}"
        );
        c.ok("disconnect", json!({}));
    }
}

#[test]
fn logpoint_expressions_follow_pointers_fields_and_strings() {
    let source = root()
        .join("fixtures/go/kinds/main.go")
        .display()
        .to_string();
    for backend in backends() {
        for build in ["kinds", "kinds-debug"] {
            let (mut c, _adapter) = stdio_adapter();
            launch(&mut c, backend, build, &[], json!({}));
            c.ok(
                "setBreakpoints",
                json!({"source": {"path": source}, "breakpoints": [
                    // func (p *Point) Scale(k int): p is a pointer.
                    {"line": 20, "logMessage": "$FUNCTION g=$GOROUTINE p.X={p.X} (*p).Y={(*p).Y} *p={*p} k={k} bad={p[1]}"},
                    // func (p Point) Sum(): p is a value.
                    {"line": 17, "logMessage": "sum {p.X}+{p.Y}", "condition": "p.X == 3"},
                    {"line": 24, "logMessage": "mix {s} len={len(s)} a={a}", "condition": "s == \"ab\" && n > 2"},
                    {"line": 24, "logMessage": "never", "condition": "s != \"ab\""},
                ]}),
            );
            c.ok("configurationDone", json!({}));
            let (console, _) = c.run_to_end();
            // A float still in an XMM register (the optimized build) is
            // read under eBPF too, through a signal frame.
            let a = "2.5";
            assert_eq!(
                console,
                format!(
                    "sum 3+4\n\
                     main.(*Point).Scale g=1 p.X=3 (*p).Y=4 *p=main.Point {{X: 3, Y: 4}} k=2 bad=<error: *main.Point: no element [1] to read>\n\
                     mix \"ab\" len=2 a={a}\n"
                ),
                "{backend} {build}"
            );
            c.ok("disconnect", json!({}));
        }
    }
}

#[test]
fn functions_request_lists_traceable_functions() {
    let (mut c, _adapter) = stdio_adapter();
    launch(&mut c, "ptrace", "seed", &[], json!({}));
    let r = c.ok("functions", json!({"filter": r"^main\."}));
    let names: Vec<&str> = r["body"]["functions"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|f| f["name"].as_str())
        .collect();
    assert_eq!(names, ["main.foo", "main.main"]);
    // Another program, named in the request.
    let r = c.ok(
        "functions",
        json!({"filter": r"^main\.t", "program": fixture("attach").display().to_string()}),
    );
    assert_eq!(r["body"]["functions"][0]["name"], "main.tick");
    assert_eq!(r["body"]["functions"][0]["line"], 13);
    c.ok("disconnect", json!({}));
}

#[test]
fn conditions_and_hit_conditions() {
    for backend in backends() {
        let (mut c, _adapter) = stdio_adapter();
        launch(&mut c, backend, "attach-debug", &["20"], json!({}));
        // tick(i) for i = 0..19: calls with i >= 5 count; every 3rd is shown.
        c.ok("traceFunctions", json!({"functions": [{"regex": r"^main\.tick$", "condition": "i >= 5", "hitCondition": "% 3"}]}));
        // The loop line: only the 5th time i > 10 && n == 20 holds (i = 15).
        c.ok("setBreakpoints", json!({"source": {"path": attach_source()}, "breakpoints": [
            {"line": 23, "logMessage": "i={i} sum={sum}", "condition": "i > 10 && n == 20", "hitCondition": "5"},
            {"line": 23, "logMessage": "late {i}", "hitCondition": ">= 19"},
        ]}));
        c.ok("configurationDone", json!({}));
        let (console, stdout) = c.run_to_end();
        let mut expected = String::new();
        for i in 5..20 {
            let shown = (i - 4) % 3 == 0;
            if shown {
                expected += &format!(
                    "> goroutine(1): main.tick({i})\n>> goroutine(1): main.tick => ({})\n",
                    i * 2
                );
            }
            if i == 15 {
                expected += "i=15 sum=210\n";
            }
            if i >= 18 {
                expected += &format!("late {i}\n");
            }
        }
        let mut got: Vec<&str> = console.lines().collect();
        let mut want: Vec<&str> = expected.lines().collect();
        got.sort();
        want.sort();
        assert_eq!(got, want, "{backend}: {console}");
        assert!(stdout.ends_with("done sum=380\n"), "{stdout}");
        c.ok("disconnect", json!({}));
    }
}

/// Runs `fixture ARGS` in a session with `traces`, the backend checking
/// conditions or not (`LOGPROBE_PREFILTER`): the console lines (goroutine
/// ids masked, sorted), and from the adapter's log the probe hits and
/// those the backend did not report.
fn prefiltered(
    backend: &str,
    fixture: &str,
    args: &[&str],
    traces: Value,
    prefilter: bool,
) -> (Vec<String>, u64, u64) {
    let flag = if prefilter { "1" } else { "0" };
    let log = std::env::temp_dir().join(format!(
        "logprobe-test-prefilter-{}-{backend}-{fixture}-{flag}.log",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&log);
    let log_arg = log.display().to_string();
    let (mut c, _adapter) =
        stdio_adapter_with(&["--log", &log_arg], &[("LOGPROBE_PREFILTER", flag)]);
    launch(&mut c, backend, fixture, args, json!({}));
    c.ok("traceFunctions", json!({ "functions": traces }));
    c.ok("configurationDone", json!({}));
    let (console, _) = c.run_to_end();
    c.ok("disconnect", json!({}));
    let goroutine = regex::Regex::new(r"goroutine\(\d+\)").expect("regex");
    let mut lines: Vec<String> = console
        .lines()
        .map(|l| goroutine.replace(l, "goroutine(G)").into_owned())
        .collect();
    lines.sort();
    let text = std::fs::read_to_string(&log).expect("the adapter's log");
    let _ = std::fs::remove_file(&log);
    let counts =
        regex::Regex::new(r"(\d+) probe hits, (\d+) not reported by the backend").expect("regex");
    let c = counts
        .captures(&text)
        .unwrap_or_else(|| panic!("no counts in the log: {text}"));
    let number = |i: usize| c[i].parse::<u64>().expect("a number");
    (lines, number(1), number(2))
}

/// A condition over a function's arguments is checked by the backend
/// itself (in the kernel under eBPF): the calls it rejects, and their
/// returns, never reach the adapter, and what is shown is exactly what the
/// adapter shows when it checks every hit itself.
#[test]
fn conditions_over_arguments_are_checked_by_the_backend() {
    // work(worker, i) for 8 workers x i = 0..24; the float comparison is
    // left to the adapter, the other conjuncts are checked by the backend.
    let traces = json!([{"regex": r"^main\.work$",
        "condition": "worker == 3 && i >= 20 && !(i == 22) && i < 1000.5"}]);
    let mut want = Vec::new();
    for i in [20, 21, 23, 24] {
        want.push(format!("> goroutine(G): main.work(3, {i})"));
        want.push(format!(">> goroutine(G): main.work => ({})", 3000 + i));
    }
    want.sort();
    for backend in backends() {
        for prefilter in [true, false] {
            let (lines, hits, filtered) = prefiltered(
                backend,
                "concurrent",
                &["8", "25"],
                traces.clone(),
                prefilter,
            );
            assert_eq!(lines, want, "{backend} prefilter={prefilter}");
            // 200 calls and 200 returns reach the probes.
            assert_eq!(hits, 400, "{backend}");
            let expected = if prefilter { 400 - 8 } else { 0 };
            assert_eq!(filtered, expected, "{backend} prefilter={prefilter}");
        }
    }
}

/// Every kind of comparison the backend checks (signed and unsigned
/// integers, booleans, nil pointers, struct fields, strings in registers
/// and on the stack, lengths) rejects exactly the calls the adapter would.
#[test]
fn backend_conditions_cover_integers_booleans_pointers_and_strings() {
    let traces = json!([
        {"regex": r"^main\.text$", "condition": "s == \"hello\" && len(b) == 5 && esc != \"\""},
        {"regex": r"^main\.chars$", "condition": "ok && r == 233 && b != 65"},
        {"regex": r"^main\.structs$", "condition": "p.X == 1 && o.Inner.A == 1 && pp != nil && none == nil"},
        {"regex": r"^main\.ints$", "condition": "a == -8 && b < 0 && h >= 64 && e == 8 && !(u > 100)"},
        {"regex": r"^main\.wide$", "condition": "s != \"ten\" || i == 10"},
        {"regex": r"^main\.many$", "condition": "long == \"0123\""},
        {"regex": r"^main\.named_$", "condition": "d == 1500000000 && ok_or_not_a_variable"},
    ]);
    let want = [
        "> goroutine(G): main.ints(-8, -16, -32, -64, 8, 16, 32, 64, 100)",
        ">> goroutine(G): main.ints => (100)",
        "> goroutine(G): main.text(\"hello\", \"tab\\there \\\"q\\\" \\x01 é\\n\", []uint8 len: 5, cap: 5, [98,121,116,101,115])",
        ">> goroutine(G): main.text => (\"hellotab\\there \\\"q\\\" \\x01 é\\nbytes\")",
        "> goroutine(G): main.structs(main.Point {X: 1, Y: 2}, main.Outer {Inner: main.Inner {A: 1, b: \"in\"}, Name: \"out\", p: *main.Point {X: 5, Y: 6}, tags: []string len: 2, cap: 2, [\"x\",\"y\"]}, *main.Point {X: 5, Y: 6}, *main.Point nil)",
        ">> goroutine(G): main.structs => (*main.Point {X: 5, Y: 6})",
    ];
    let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
    want.sort();
    for backend in backends() {
        let mut runs = Vec::new();
        for prefilter in [true, false] {
            let (lines, hits, filtered) =
                prefiltered(backend, "values", &[], traces.clone(), prefilter);
            let warnings: Vec<&String> = lines
                .iter()
                .filter(|l| l.starts_with("logprobe:"))
                .collect();
            let shown: Vec<String> = lines
                .iter()
                .filter(|l| !l.starts_with("logprobe:"))
                .cloned()
                .collect();
            assert_eq!(shown, want, "{backend} prefilter={prefilter}: {warnings:?}");
            runs.push((hits, filtered));
        }
        let ((hits, filtered), (hits_all, none)) = (runs[0], runs[1]);
        assert_eq!((hits, none), (hits_all, 0), "{backend}");
        // Every rejected call and its return stayed in the backend, but
        // named_'s: its condition names no variable and is the adapter's.
        let named_hits = 2;
        assert_eq!(filtered + 6 + named_hits, hits, "{backend}");
    }
}

#[test]
fn traces_and_logpoints_are_added_and_removed_while_running() {
    for backend in backends() {
        let (mut c, _adapter) = stdio_adapter();
        launch(&mut c, backend, "attach", &["60"], json!({}));
        c.ok("configurationDone", json!({}));
        c.wait_event(|e| e["event"] == "output" && e["body"]["output"] == "ready\n");

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

        // The program is unharmed by all of this.
        let (_, stdout) = c.run_to_end();
        // (`ready` was taken by the wait above.)
        assert_eq!(stdout, "done sum=3540\n", "{backend}");
        assert_eq!(c.exit_code(), Some(0));
        c.ok("disconnect", json!({}));
    }
}

/// The numbers after `prefix` in the console lines that start with it.
fn numbers_after(c: &Client, prefix: &str) -> Vec<i64> {
    c.outputs("console")
        .iter()
        .filter_map(|e| e["body"]["output"].as_str()?.strip_prefix(prefix))
        .filter_map(|rest| {
            let digits: String = rest.chars().take_while(|ch| ch.is_ascii_digit()).collect();
            digits.parse().ok()
        })
        .collect()
}

#[test]
fn removing_a_logpoint_keeps_the_trace_armed_with_it() {
    // The launch trace and the logpoint are armed together before the
    // program starts (one uprobe-multi link under eBPF); removing the
    // logpoint must leave the trace firing, once per call, and a logpoint
    // added next (reusing the freed recipe slot under eBPF) must show its
    // own text.
    for backend in backends() {
        let (mut c, _adapter) = stdio_adapter();
        launch(
            &mut c,
            backend,
            "attach",
            &["100"],
            json!({"trace": [r"^main\.tick$"]}),
        );
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

#[test]
fn terminate_ends_a_launched_program() {
    for backend in backends() {
        let (mut c, _adapter) = stdio_adapter();
        launch(
            &mut c,
            backend,
            "attach",
            &["600"],
            json!({"trace": [r"^main\.tick$"]}),
        );
        c.ok("configurationDone", json!({}));
        let process = c.wait_event(|e| e["event"] == "process");
        let pid = process["body"]["systemProcessId"].as_i64().expect("pid");
        c.wait_event(|e| {
            e["event"] == "output"
                && e["body"]["output"]
                    .as_str()
                    .is_some_and(|o| o.starts_with("> goroutine(1): main.tick("))
        });
        c.ok("terminate", json!({}));
        let exited = c.wait_event(|e| e["event"] == "exited");
        assert_eq!(
            exited["body"]["exitCode"],
            128 + 15,
            "{backend}: killed by SIGTERM"
        );
        c.wait_event(|e| e["event"] == "terminated");
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "{backend}: program {pid} still there"
        );
        c.ok("disconnect", json!({}));
    }
}

/// A session attached to `pid` (the ticker fixture) tracing `main.tick`,
/// before `configurationDone`.
fn attach_tracing_tick(backend: &str, pid: u32) -> (Client, Reaper) {
    let (mut c, adapter) = stdio_adapter();
    c.ok("initialize", json!({"adapterID": "logprobe"}));
    c.ok(
        "attach",
        json!({"pid": pid, "backend": backend, "trace": [r"^main\.tick$"]}),
    );
    c.wait_event(|e| e["event"] == "initialized");
    (c, adapter)
}

#[test]
fn attach_then_disconnect_leaves_the_program_running_unharmed() {
    for backend in backends() {
        let (mut target, pid, mut target_out) = start_ticker(100);

        let (mut c, _adapter) = attach_tracing_tick(backend, pid);
        c.ok("setBreakpoints", json!({"source": {"path": attach_source()}, "breakpoints": [{"line": 23, "logMessage": "i={i}"}]}));
        c.ok("configurationDone", json!({}));
        let process = c.wait_event(|e| e["event"] == "process");
        assert_eq!(process["body"]["systemProcessId"], pid);
        assert_eq!(process["body"]["startMethod"], "attach");
        c.wait_event(|e| {
            e["event"] == "output"
                && e["body"]["output"]
                    .as_str()
                    .is_some_and(|o| o.starts_with("i="))
        });
        for _ in 0..2 {
            c.wait_event(|e| {
                e["event"] == "output"
                    && e["body"]["output"]
                        .as_str()
                        .is_some_and(|o| o.starts_with(">> goroutine(1): main.tick => ("))
            });
        }
        // Probes change while attached: the logpoint goes (relinking the
        // trace armed with it under eBPF), another comes.
        c.ok(
            "setBreakpoints",
            json!({"source": {"path": attach_source()}, "breakpoints": []}),
        );
        c.ok("setBreakpoints", json!({"source": {"path": attach_source()}, "breakpoints": [{"line": 23, "logMessage": "again {i}"}]}));
        c.wait_event(|e| {
            e["event"] == "output"
                && e["body"]["output"]
                    .as_str()
                    .is_some_and(|o| o.starts_with("again "))
        });
        // The trace still fires (a call seen from now on).
        c.events.clear();
        c.wait_event(|e| {
            e["event"] == "output"
                && e["body"]["output"]
                    .as_str()
                    .is_some_and(|o| o.starts_with("> goroutine(1): main.tick("))
        });
        c.ok("disconnect", json!({"terminateDebuggee": false}));

        let mut rest = String::new();
        target_out.read_to_string(&mut rest).expect("read");
        let status = target.child().wait().expect("wait fixture");
        assert_eq!(status.code(), Some(0), "{backend}: target died: {rest}");
        assert_eq!(rest, "done sum=9900\n", "{backend}");
    }
}

/// `terminateDebuggee: true` after attach is the user asking to end the
/// process: the probes come out first, then it gets SIGTERM.
#[test]
fn attach_then_disconnect_with_terminate_debuggee_ends_the_program() {
    use std::os::unix::process::ExitStatusExt;
    for backend in backends() {
        let (mut target, pid, _out) = start_ticker(100_000);
        let (mut c, _adapter) = attach_tracing_tick(backend, pid);
        c.ok("configurationDone", json!({}));
        c.wait_event(|e| {
            e["event"] == "output"
                && e["body"]["output"]
                    .as_str()
                    .is_some_and(|o| o.starts_with(">> goroutine(1): main.tick => ("))
        });
        c.ok("disconnect", json!({"terminateDebuggee": true}));
        let status = target.child().wait().expect("wait fixture");
        assert_eq!(status.signal(), Some(15), "{backend}: {status:?}");
    }
}

#[test]
fn malformed_input_gets_errors_and_the_server_keeps_serving() {
    let (mut c, _adapter) = stdio_adapter();
    let important = |c: &mut Client, needle: &str| {
        let needle = needle.to_string();
        c.wait_event(move |e| {
            e["event"] == "output"
                && e["body"]["output"]
                    .as_str()
                    .is_some_and(|o| o.contains(&needle))
        });
    };
    // A request before initialize.
    let r = c.request("launch", json!({"program": "/bin/true"}));
    assert_eq!(r["success"], false);
    assert!(
        r["message"]
            .as_str()
            .unwrap_or("")
            .contains("before 'initialize'"),
        "{r}"
    );
    // Broken framing, broken JSON, an oversized message.
    c.send_raw(b"Content-Length: banana\r\n\r\n");
    important(&mut c, "bad Content-Length");
    c.send_raw(b"Content-Length: 9\r\n\r\n{not json");
    important(&mut c, "invalid message");
    let big = 17 * 1024 * 1024;
    let mut huge = format!("Content-Length: {big}\r\n\r\n").into_bytes();
    huge.resize(huge.len() + big, b' ');
    c.send_raw(&huge);
    important(&mut c, "refused");
    // Unknown commands and wrong argument types get error responses.
    c.ok("initialize", json!({"adapterID": "x"}));
    let r = c.request("stepIn", json!({"threadId": 1}));
    assert_eq!(r["success"], false);
    let r = c.request("launch", json!({"program": 5}));
    assert_eq!(r["success"], false);
    assert!(
        r["message"]
            .as_str()
            .unwrap_or("")
            .contains("invalid arguments"),
        "{r}"
    );
    let r = c.request("launch", json!({"program": "/no/such/program"}));
    assert_eq!(r["success"], false);
    assert!(
        r["message"]
            .as_str()
            .unwrap_or("")
            .contains("/no/such/program"),
        "{r}"
    );
    let r = c.request(
        "setBreakpoints",
        json!({"source": {"path": seed_source()}, "breakpoints": [{"line": 7}]}),
    );
    assert_eq!(r["body"]["breakpoints"][0]["verified"], false);
    // Still serving: a real session works after all that.
    launch_after_init(&mut c, "seed");
    let r = c.ok("setBreakpoints", json!({"source": {"path": seed_source()}, "breakpoints": [{"line": 7}, {"line": 7, "logMessage": "{x + } {{x}} {nope}"}]}));
    assert!(
        r["body"]["breakpoints"][0]["message"]
            .as_str()
            .unwrap_or("")
            .contains("without stopping"),
        "{r}"
    );
    c.ok("configurationDone", json!({}));
    let (console, _) = c.run_to_end();
    assert!(console.starts_with("<error: "), "{console}");
    assert!(
        console.contains(" {x} <error: no variable nope here>\n"),
        "{console}"
    );
    c.ok("disconnect", json!({}));
}

fn launch_after_init(c: &mut Client, program: &str) {
    c.ok(
        "launch",
        json!({"program": fixture(program).display().to_string()}),
    );
    c.wait_event(|e| e["event"] == "initialized");
}

#[test]
fn trace_messages_and_conditions_read_fields_indexes_and_lengths() {
    for backend in backends() {
        for build in ["values", "values-debug"] {
            let (mut c, _adapter) = stdio_adapter();
            launch(&mut c, backend, build, &[], json!({}));
            let r = c.ok(
                "traceFunctions",
                json!({"functions": [
                    {"regex": r"^main\.slices$", "condition": "len(s) == 3 && arr[s[1]] == 9",
                     "logMessage": "slices len={len(s)},{len(nested)},{len(arr)},{len(empty)} arr[s[1]]={arr[s[1]]} s[len(empty)]={s[len(empty)]} nested[s[0]]={nested[s[0]]} out={s[arr[0]]}"},
                    {"regex": r"^main\.structs$", "condition": "pp.X == 5 && (*pp).Y == 6 && o.p.X == 5",
                     "logMessage": "structs pp.X={pp.X} *pp={*pp} o.tags[1]={o.tags[1]} len(o.Name)={len(o.Name)} none={none.X}"},
                    {"regex": r"^main\.maps$", "condition": "len(m) == 2",
                     "logMessage": "maps len={len(m)} m[\"b\"]={m[\"b\"]} len(none)={len(none)}"},
                    {"regex": r"^main\.many$", "condition": "len(s) > 1000"},
                ]}),
            );
            for f in r["body"]["functions"].as_array().into_iter().flatten() {
                assert_eq!(f["verified"], true, "{f}");
            }
            c.ok("configurationDone", json!({}));
            let (console, _) = c.run_to_end();
            assert_eq!(
                console,
                "slices len=3,3,3,0 arr[s[1]]=9 s[len(empty)]=1 nested[s[0]]=[]string len: 0, cap: 0, [] out=<error: index 7 out of range [0:3]>\n\
                 structs pp.X=5 *pp=main.Point {X: 5, Y: 6} o.tags[1]=\"y\" len(o.Name)=3 none=<error: X: nil *main.Point>\n\
                 maps len=2 m[\"b\"]=2 len(none)=0\n",
                "{backend} {build}"
            );
            assert_eq!(c.output("important"), "", "{backend} {build}");
            c.ok("disconnect", json!({}));
        }
    }
}

#[test]
fn logpoints_index_with_variables_in_scope() {
    let kinds = root()
        .join("fixtures/go/kinds/main.go")
        .display()
        .to_string();
    let values = root()
        .join("fixtures/go/values/main.go")
        .display()
        .to_string();
    for backend in backends() {
        // A local array indexed by a parameter: the optimized build keeps
        // `depth` in no place DWARF names at that line, so the -N -l build.
        let (mut c, _adapter) = stdio_adapter();
        launch(&mut c, backend, "kinds-debug", &[], json!({}));
        c.ok(
            "setBreakpoints",
            json!({"source": {"path": kinds}, "breakpoints": [
                // grow(depth): `pad[depth%256] = byte(depth)` ran.
                {"line": 40, "logMessage": "pad[depth]={pad[depth]} len={len(pad)} past={pad[len(pad)]}", "condition": "depth == 5"},
                {"line": 40, "logMessage": "cond {depth}", "condition": "pad[depth] == 3 && len(pad) == 256"},
            ]}),
        );
        c.ok("configurationDone", json!({}));
        let (console, _) = c.run_to_end();
        assert_eq!(
            console, "pad[depth]=5 len=256 past=<error: index 256 out of range [0:256]>\ncond 3\n",
            "{backend}"
        );
        assert_eq!(c.output("important"), "", "{backend}");
        c.ok("disconnect", json!({}));

        // Parameters indexing each other, in both builds.
        for build in ["values", "values-debug"] {
            let (mut c, _adapter) = stdio_adapter();
            launch(&mut c, backend, build, &[], json!({}));
            c.ok(
                "setBreakpoints",
                json!({"source": {"path": values}, "breakpoints": [
                    // slices(s = [1 2 3] with cap 4, nested, arr = [7 8 9], empty = nil):
                    // s[3] is in the backing array yet out of range.
                    {"line": 60, "logMessage": "arr[s[1]]={arr[s[1]]} s[len(empty)]={s[len(empty)]} len(nested)={len(nested)} out={arr[s[2]]} s[3]={s[3]}",
                     "condition": "s[len(empty)] == 1 && arr[s[1]] == 9"},
                    {"line": 60, "logMessage": "never", "condition": "arr[s[0]] != 8"},
                ]}),
            );
            c.ok("configurationDone", json!({}));
            let (console, _) = c.run_to_end();
            assert_eq!(
                console,
                "arr[s[1]]=9 s[len(empty)]=1 len(nested)=3 out=<error: index 3 out of range [0:3]> s[3]=<error: index 3 out of range [0:3]>\n",
                "{backend} {build} {}", c.output("important")
            );
            c.ok("disconnect", json!({}));
        }
    }
}
