//! `logprobe trace --cond/--hit-cond/--print`: the conditions, hit
//! conditions and log messages of DAP logpoints, on the command line, under
//! every backend, against the real fixtures.

// A test fails by panicking: what Cargo.toml denies in the adapter is how
// a test says what went wrong.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;

#[test]
fn a_condition_and_a_hit_condition_choose_the_calls_shown_with_their_returns() {
    // tick(i) for i = 0..19: calls with i >= 5 count; every 3rd is shown,
    // and the return of each call shown.
    let mut want = Vec::new();
    for i in (5..20).filter(|i| (i - 4) % 3 == 0) {
        want.push(format!("> goroutine(1): main.tick({i})"));
        want.push(format!(">> goroutine(1): main.tick => ({})", i * 2));
    }
    for backend in backends() {
        let out = trace(
            backend,
            r"^main\.tick$",
            "attach",
            &["20"],
            &["--cond", "i >= 5", "--hit-cond", "% 3"],
        );
        assert!(out.status.success(), "{backend}: {}", stderr(&out));
        assert_eq!(trace_lines(&out), want, "{backend}");
        assert!(stdout(&out).ends_with("done sum=380\n"), "{backend}");
        assert_eq!(stderr(&out), "", "{backend}");
    }
}

#[test]
fn conditions_the_probes_check_and_those_they_leave_show_the_same_calls() {
    // work(worker, i) on 8 goroutines: the integer conjuncts are checked by
    // the probes, the float comparison by logprobe; the calls they reject
    // and their returns are never shown.
    let mut want = Vec::new();
    for i in [20, 21, 23, 24] {
        want.push(format!("> goroutine(G): main.work(3, {i})"));
        want.push(format!(">> goroutine(G): main.work => ({})", 3000 + i));
    }
    want.sort();
    let goroutine = regex::Regex::new(r"goroutine\(\d+\)").expect("regex");
    for backend in backends() {
        for prefilter in ["1", "0"] {
            let mut cmd = logprobe();
            cmd.env("LOGPROBE_PREFILTER", prefilter)
                .args(["trace", "--backend", backend, "--cond"])
                .arg("worker == 3 && i >= 20 && !(i == 22) && i < 1000.5")
                .args([r"^main\.work$", "--"])
                .arg(fixture("concurrent"))
                .args(["8", "25"]);
            let out = run_with_timeout(cmd, Duration::from_secs(120));
            assert!(out.status.success(), "{backend}: {}", stderr(&out));
            let mut lines: Vec<String> = trace_lines(&out)
                .iter()
                .map(|l| goroutine.replace(l, "goroutine(G)").into_owned())
                .collect();
            lines.sort();
            assert_eq!(lines, want, "{backend} LOGPROBE_PREFILTER={prefilter}");
        }
    }
}

#[test]
fn a_message_replaces_the_call_line_and_returns_are_not_shown() {
    for backend in backends() {
        let out = trace(
            backend,
            r"^main\.tick$",
            "attach",
            &["3"],
            &["--print", "$FUNCTION({i}) on $GOROUTINE {{i*2}}={i}+{i}"],
        );
        assert!(out.status.success(), "{backend}: {}", stderr(&out));
        assert_eq!(
            stdout(&out),
            "ready\nmain.tick(0) on 1 {i*2}=0+0\nmain.tick(1) on 1 {i*2}=1+1\nmain.tick(2) on 1 {i*2}=2+2\ndone sum=6\n",
            "{backend}"
        );
        // Fields, lengths and strings in Go notation, as in logpoints; a
        // name a function does not have shows why in place.
        for build in ["values", "values-debug"] {
            let out = trace(
                backend,
                r"^main\.(text|structs)$",
                build,
                &[],
                &["--print", "{s}/{len(b)} {pp.X} {o.tags[1]}"],
            );
            assert!(out.status.success(), "{backend} {build}: {}", stderr(&out));
            let text = stdout(&out);
            let lines: Vec<&str> = text
                .lines()
                .filter(|l| l.starts_with("\"hello\"") || l.starts_with("<error"))
                .collect();
            assert_eq!(
                lines,
                [
                    "\"hello\"/5 <error: no variable pp here> <error: no variable o here>",
                    "<error: no variable s here>/<error: no variable b here> 5 \"y\""
                ],
                "{backend} {build}"
            );
        }
    }
}

#[test]
fn a_condition_that_cannot_be_evaluated_says_so_once_and_shows_nothing() {
    for backend in backends() {
        let out = trace(
            backend,
            r"^main\.tick$",
            "attach",
            &["3"],
            &["--cond", "nope == 1"],
        );
        assert!(out.status.success(), "{backend}: {}", stderr(&out));
        assert_eq!(trace_lines(&out), Vec::<String>::new(), "{backend}");
        assert_eq!(
            stderr(&out),
            "logprobe: condition cannot be evaluated at main.tick: no variable nope here\n",
            "{backend}"
        );
    }
}

#[test]
fn bad_conditions_and_messages_get_one_clear_line() {
    let seed = fixture("seed");
    let seed = seed.to_str().expect("path");
    let run = |extra: &[&str]| {
        let mut c = logprobe();
        c.args(["trace", "--backend", "ptrace"])
            .args(extra)
            .args(["foo", "--", seed]);
        run_with_timeout(c, Duration::from_secs(30))
    };
    let out = run(&["--cond", "x >"]);
    assert!(!out.status.success());
    assert_eq!(
        stderr(&out),
        "logprobe: condition \"x >\": expression ends too early\n"
    );
    let out = run(&["--hit-cond", ">= many"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).starts_with("logprobe: bad hit condition \">= many\""),
        "{}",
        stderr(&out)
    );
    assert_eq!(stderr(&out).lines().count(), 1);
    // A message is text, JSON is data: one or the other.
    let out = run(&["--print", "{x}", "--json"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("cannot be used with"),
        "{}",
        stderr(&out)
    );
}

/// The number in `logprobe: N hits over the rate limit were not shown`.
fn limited(err: &str) -> u64 {
    err.lines()
        .filter_map(|l| l.strip_prefix("logprobe: "))
        .filter_map(|l| l.strip_suffix(" hits over the rate limit were not shown"))
        .map(|n| n.parse::<u64>().unwrap())
        .sum()
}

#[test]
fn a_rate_limit_holds_a_hot_function_to_its_budget_and_counts_the_rest() {
    const CALLS: u64 = 5000;
    const RATE: u64 = 50;
    for backend in backends() {
        let out = trace(
            backend,
            r"^main\.target$",
            "bench",
            &[&CALLS.to_string(), "target"],
            &["--rate-limit", &RATE.to_string()],
        );
        assert!(out.status.success(), "{backend}: {}", stderr(&out));
        let lines = trace_lines(&out);
        let calls = lines.iter().filter(|l| l.starts_with("> ")).count() as u64;
        let returns = lines.iter().filter(|l| l.starts_with(">> ")).count() as u64;
        assert_eq!(calls, returns, "{backend}: a return for every call shown");
        assert_eq!(
            calls + limited(&stderr(&out)),
            CALLS,
            "{backend}: {}",
            stderr(&out)
        );
        // A bucket of one second's worth, refilled at RATE a second, over
        // the loop's own time (from its output) and a second of slack.
        let ns: u64 = stdout(&out)
            .rsplit("elapsed_ns=")
            .next()
            .and_then(|n| n.trim().parse().ok())
            .unwrap();
        let budget = RATE + RATE * (ns / 1_000_000_000 + 1);
        assert!(
            calls <= budget,
            "{backend}: {calls} calls shown, budget {budget}"
        );
        assert!(
            calls >= RATE,
            "{backend}: the first second's burst is shown"
        );
    }
}
