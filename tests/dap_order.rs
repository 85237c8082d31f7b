//! End-to-end tests of order in `logprobe dap`: the program's stdout and
//! stderr and the trace and logpoint lines reach the client in the order
//! they happened, under every backend, as `logprobe trace` prints them.

// A test fails by panicking: what Cargo.toml denies in the adapter is how
// a test says what went wrong.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::dap::*;
use common::*;
use serde_json::json;

/// The `output` events of categories console, stdout and stderr, in the
/// order the client received them, as (category, text).
fn sequence(c: &Client) -> Vec<(String, String)> {
    c.events
        .iter()
        .filter(|e| e["event"] == "output")
        .filter_map(|e| {
            let category = e["body"]["category"].as_str()?;
            let text = e["body"]["output"].as_str()?;
            ["console", "stdout", "stderr"]
                .contains(&category)
                .then(|| (category.to_string(), text.to_string()))
        })
        .collect()
}

fn line(category: &str, text: String) -> (String, String) {
    (category.to_string(), format!("{text}\n"))
}

/// What the interleave fixture writes and what tracing `main.step` shows,
/// in order, for `n` rounds.
fn interleaved(n: i64) -> Vec<(String, String)> {
    let step = |i: i64| {
        [
            line("console", format!("> goroutine(1): main.step({i})")),
            line(
                "console",
                format!(">> goroutine(1): main.step => ({})", 3 * i),
            ),
        ]
    };
    let mut want = Vec::new();
    let mut sum = 0;
    for i in 0..n {
        want.push(line("stdout", format!("out {i}")));
        want.extend(step(i));
        sum += 3 * i;
        if i % 10 == 0 {
            want.push(line("stderr", format!("err {i}")));
            want.extend(step(-i));
            sum -= 3 * i;
        }
    }
    want.push(line("stdout", format!("sum={sum}")));
    want
}

#[test]
fn program_output_and_trace_lines_arrive_in_the_order_they_happened() {
    const ROUNDS: i64 = 200;
    let want = interleaved(ROUNDS);
    for backend in backends() {
        for build in ["interleave", "interleave-debug"] {
            let (mut c, _adapter) = stdio_adapter();
            launch(&mut c, backend, build, &["200"], json!({}));
            let r = c.ok(
                "traceFunctions",
                json!({"functions": [{"regex": r"^main\.step$"}]}),
            );
            assert_eq!(r["body"]["functions"][0]["verified"], true, "{r}");
            c.ok("configurationDone", json!({}));
            c.run_to_end();
            assert_eq!(c.output("important"), "", "{backend} {build}");
            let got = sequence(&c);
            if let Some(i) = (0..want.len().max(got.len())).find(|&i| want.get(i) != got.get(i)) {
                panic!(
                    "{backend} {build}: event {i} is {:?}, expected {:?}\n(received around it: {:#?})",
                    got.get(i),
                    want.get(i),
                    &got[i.saturating_sub(3)..(i + 3).min(got.len())]
                );
            }
            assert_eq!(c.exit_code(), Some(0));
            c.ok("disconnect", json!({}));

            // The command line prints the same order on its stdout.
            let out = trace(backend, r"^main\.step$", build, &["200"], &[]);
            assert!(out.status.success(), "{backend}: {}", stderr(&out));
            let cli: String = want
                .iter()
                .filter(|(category, _)| category != "stderr")
                .map(|(_, text)| text.as_str())
                .collect();
            assert_eq!(stdout(&out), cli, "{backend} {build}: the CLI");
        }
    }
}

/// The case of issue 14: the seed's own line came before the trace line
/// and the logpoint (line 6) that happened before it.
#[test]
fn seed_output_comes_after_its_call_and_logpoint() {
    for case in cases(&["seed", "seed-debug"]) {
        let (mut c, _adapter) = stdio_adapter();
        launch(
            &mut c,
            case.backend,
            &case.path(),
            &[],
            json!({"trace": [r"^main\.foo$"]}),
        );
        c.ok("setBreakpoints", json!({"source": {"path": seed_source()}, "breakpoints": [{"line": 6, "logMessage": "x={x} y={y}"}]}));
        c.ok("configurationDone", json!({}));
        c.run_to_end();
        assert_eq!(c.output("important"), "", "{case}");
        assert_eq!(
            sequence(&c),
            [
                line("console", "> goroutine(1): main.foo(99, 9801)".into()),
                line("console", "x=99 y=9801".into()),
                line("stdout", "x=99, y=9801, z=0".into()),
                line("console", ">> goroutine(1): main.foo => (9900)".into()),
                line("stdout", "z=9900".into()),
            ],
            "{case}"
        );
        assert_eq!(c.exit_code(), Some(0), "{case}");
        c.ok("disconnect", json!({}));
    }
}

/// Output that no hit follows is not held back until the next hit or the
/// program's end: under ptrace a watcher wakes the backend for it.
#[test]
fn output_without_a_hit_after_it_arrives_while_the_program_runs() {
    for backend in backends() {
        // main.main is hit once, before "ready"; nothing is hit after it
        // for the 30 s the program would run.
        let (mut c, _adapter) = launch_ticker(backend, "600", r"^main\.main$");
        c.ok("configurationDone", json!({}));
        let started = std::time::Instant::now();
        c.wait_event(|e| e["event"] == "output" && e["body"]["category"] == "stdout");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "{backend}: 'ready' came only after {:?}",
            started.elapsed()
        );
        assert_eq!(
            sequence(&c),
            [line("console", "> goroutine(1): main.main()".into())],
            "{backend}"
        );
        assert!(
            !c.events.iter().any(|e| e["event"] == "exited"),
            "{backend}: the program ended already"
        );
        c.ok("terminate", json!({}));
        c.wait_event(|e| e["event"] == "terminated");
        c.ok("disconnect", json!({}));
    }
}
