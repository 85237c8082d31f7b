//! End-to-end tests of `logprobe dap`'s conditions, hit conditions and
//! log messages: evaluated over decoded values, checked by the probes
//! themselves where they can be, and logpoint expressions through
//! pointers, fields, indexes and lengths, under every backend.

// A test fails by panicking: what Cargo.toml denies in the adapter is how
// a test says what went wrong.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::dap::*;
use common::*;
use serde_json::{json, Value};

#[test]
fn logpoint_expressions_follow_pointers_fields_and_strings() {
    let source = root()
        .join("fixtures/go/kinds/main.go")
        .display()
        .to_string();
    for case in cases(&["kinds", "kinds-debug"]) {
        let (backend, build) = (case.backend, &case.path());
        {
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

/// Logpoints are checked when they are set: a variable in scope nowhere
/// at the line, or an expression that does not parse, in the message or
/// the condition, leaves the breakpoint unverified with the reason; the
/// others on the same line are armed and print.
#[test]
fn logpoints_naming_unknown_variables_or_bad_expressions_are_refused_when_set() {
    for backend in backends() {
        let (mut c, _adapter) = stdio_adapter();
        launch(&mut c, backend, "attach-debug", &["3"], json!({}));
        let r = c.ok(
            "setBreakpoints",
            json!({"source": {"path": attach_source()}, "breakpoints": [
                {"line": 23, "logMessage": "i={i} {nosuchvar}"},
                {"line": 23, "logMessage": "never", "condition": "i > 0 && zz == 1"},
                {"line": 23, "logMessage": "{a.b} {len(c)} {d[e]}"},
                {"line": 23, "logMessage": "never", "condition": "i >"},
                {"line": 23, "logMessage": "x {i +} y"},
                {"line": 23, "logMessage": "i={i} sum={sum}", "condition": "i == 1 && n == 3"},
            ]}),
        );
        let bps = r["body"]["breakpoints"].as_array().unwrap();
        let message = |k: usize| bps[k]["message"].as_str().unwrap_or("").to_string();
        let at = format!("in scope at {}:23 (in scope: ", attach_source());
        for (k, bp) in bps.iter().enumerate().take(5) {
            assert_eq!(bp["verified"], false, "{backend} {k}: {r}");
            assert_eq!(bp["reason"], "failed", "{backend} {k}: {r}");
        }
        assert!(
            message(0).starts_with(&format!("no variable nosuchvar {at}")),
            "{backend}: {}",
            message(0)
        );
        // What is in scope is listed: the loop's variables among them.
        for name in ["i", "n", "sum"] {
            assert!(
                message(0).contains(&format!(" {name},"))
                    || message(0).contains(&format!(" {name})")),
                "{backend}: {}",
                message(0)
            );
        }
        assert!(
            message(1).starts_with(&format!("no variable zz {at}")),
            "{backend}: {}",
            message(1)
        );
        assert!(
            message(2).starts_with(&format!("no variables a, c, d, e {at}")),
            "{backend}: {}",
            message(2)
        );
        assert!(
            message(3).starts_with("condition \"i >\": "),
            "{backend}: {}",
            message(3)
        );
        assert_eq!(
            message(4),
            "log message {i +}: unexpected character '+'",
            "{backend}"
        );
        assert_eq!(bps[5]["reason"], "pending", "{backend}: {r}");
        c.ok("configurationDone", json!({}));
        let armed = c.wait_event(|e| e["event"] == "breakpoint");
        assert_eq!(
            armed["body"]["breakpoint"]["id"], bps[5]["id"],
            "{backend}: {armed}"
        );
        let (console, _) = c.run_to_end();
        assert_eq!(console, "i=1 sum=0\n", "{backend}");
        // Only the valid logpoint was ever armed.
        assert!(
            !c.events.iter().any(|e| e["event"] == "breakpoint"),
            "{backend}: {:?}",
            c.events
        );
        c.ok("disconnect", json!({}));
    }
}
