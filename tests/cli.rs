//! End-to-end tests of `logprobe trace` and `logprobe functions`: the real
//! binary traces the real fixture programs, under every backend.

// A test fails by panicking: what Cargo.toml denies in the adapter is how
// a test says what went wrong.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

#[test]
fn seed_prints_call_and_return_interleaved_with_program_output() {
    for backend in backends() {
        for build in ["seed", "seed-debug"] {
            let out = trace(backend, "foo", build, &[], &[]);
            assert_eq!(
                stdout(&out),
                "> goroutine(1): main.foo(99, 9801)\nx=99, y=9801, z=0\n>> goroutine(1): main.foo => (9900)\nz=9900\n",
                "{backend} {build}: stderr: {}",
                stderr(&out)
            );
            assert_eq!(out.status.code(), Some(0), "{backend} {build}");
        }
    }
}

#[test]
fn every_call_on_every_thread_is_reported_once_with_its_goroutine() {
    let call =
        regex::Regex::new(r"^> goroutine\((\d+)\): main\.work\((\d+), (\d+)\)$").expect("regex");
    let ret =
        regex::Regex::new(r"^>> goroutine\((\d+)\): main\.work => \((\d+)\)$").expect("regex");
    for backend in backends() {
        for build in ["concurrent", "concurrent-debug"] {
            let (workers, calls) = (8, 25);
            let out = trace(backend, r"^main\.work$", build, &["8", "25"], &[]);
            assert!(out.status.success(), "{backend} {build}: {}", stderr(&out));
            assert!(stdout(&out).contains(&format!("calls={}", workers * calls)));
            let mut open: HashMap<u64, (u64, u64)> = HashMap::new();
            let mut seen = std::collections::HashSet::new();
            let mut returns = 0;
            for line in trace_lines(&out) {
                if let Some(c) = call.captures(&line) {
                    let g: u64 = c[1].parse().expect("goid");
                    let (w, i): (u64, u64) = (c[2].parse().expect("w"), c[3].parse().expect("i"));
                    assert!(
                        open.insert(g, (w, i)).is_none(),
                        "{backend} {build}: nested call on goroutine {g}: {line}"
                    );
                    assert!(
                        seen.insert((w, i)),
                        "{backend} {build}: call reported twice: {line}"
                    );
                } else if let Some(c) = ret.captures(&line) {
                    let g: u64 = c[1].parse().expect("goid");
                    let r: u64 = c[2].parse().expect("result");
                    let (w, i) = open.remove(&g).unwrap_or_else(|| {
                        panic!("{backend} {build}: return without call: {line}")
                    });
                    assert_eq!(
                        r,
                        w * 1000 + i,
                        "{backend} {build}: wrong result for work({w}, {i})"
                    );
                    returns += 1;
                } else {
                    panic!("{backend} {build}: unexpected line {line}");
                }
            }
            assert_eq!(seen.len(), workers * calls, "{backend} {build}: calls");
            assert_eq!(returns, workers * calls, "{backend} {build}: returns");
            assert!(open.is_empty());
        }
    }
}

/// Floats in XMM registers on many threads at once: under eBPF each hit
/// goes through its thread's signal frame, and must still show its own
/// values, exactly once, like ptrace.
#[test]
fn float_arguments_and_results_on_every_thread_are_each_shown_right() {
    let call = regex::Regex::new(r"^> goroutine\((\d+)\): main\.fwork\((\d+), (\d+)\.5\)$")
        .expect("regex");
    let ret =
        regex::Regex::new(r"^>> goroutine\((\d+)\): main\.fwork => \((\d+)\.5\)$").expect("regex");
    for backend in backends() {
        for build in ["concurrent", "concurrent-debug"] {
            let (workers, calls) = (8u64, 100u64);
            let out = trace(backend, r"^main\.fwork$", build, &["8", "100"], &[]);
            assert!(out.status.success(), "{backend} {build}: {}", stderr(&out));
            let mut open: HashMap<u64, (u64, u64)> = HashMap::new();
            let mut seen = std::collections::HashSet::new();
            let mut returns = 0;
            for line in trace_lines(&out) {
                if let Some(c) = call.captures(&line) {
                    let g: u64 = c[1].parse().expect("goid");
                    let (w, i): (u64, u64) = (c[2].parse().expect("w"), c[3].parse().expect("i"));
                    assert!(w < workers && i < calls, "{backend} {build}: {line}");
                    assert!(
                        open.insert(g, (w, i)).is_none(),
                        "{backend} {build}: {line}"
                    );
                    assert!(seen.insert((w, i)), "{backend} {build}: twice: {line}");
                } else if let Some(c) = ret.captures(&line) {
                    let g: u64 = c[1].parse().expect("goid");
                    let r: u64 = c[2].parse().expect("result");
                    let (w, i) = open.remove(&g).unwrap_or_else(|| {
                        panic!("{backend} {build}: return without call: {line}")
                    });
                    assert_eq!(r, w * 1000 + i, "{backend} {build}: {line}");
                    returns += 1;
                } else {
                    panic!("{backend} {build}: unexpected line {line}");
                }
            }
            assert_eq!(
                seen.len() as u64,
                workers * calls,
                "{backend} {build}: calls"
            );
            assert_eq!(returns, workers * calls, "{backend} {build}: returns");
        }
    }
}

#[test]
fn methods_floats_strings_and_multiple_results() {
    let expected = "\
> goroutine(1): main.Point.Sum(main.Point {X: 3, Y: 4})
>> goroutine(1): main.Point.Sum => (7)
> goroutine(1): main.(*Point).Scale(*main.Point {X: 3, Y: 4}, 2)
>> goroutine(1): main.(*Point).Scale => ()
> goroutine(1): main.mix(2.5, 0.5, \"ab\", 3, true)
>> goroutine(1): main.mix => (\"ababab\", 1.25, error nil)
> goroutine(1): main.divmod(17, 5)
>> goroutine(1): main.divmod => (3, 2)
> goroutine(1): main.warm(main.Celsius(20))
>> goroutine(1): main.warm => (main.Celsius(21.5))
> goroutine(1): main.long(\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"...+36 more)
>> goroutine(1): main.long => (100)
";
    for backend in backends() {
        for build in ["kinds", "kinds-debug"] {
            let out = trace(
                backend,
                r"^main\.(Point|\(\*Point\)|mix|divmod|warm|long)",
                build,
                &[],
                &[],
            );
            assert!(out.status.success(), "{backend} {build}: {}", stderr(&out));
            let lines = trace_lines(&out).join("\n") + "\n";
            assert_eq!(mask_addresses(&lines), expected, "{backend} {build}");
        }
    }
}

#[test]
fn closures_are_traced_by_their_go_names() {
    // The `add` closure of main.main, a real call when built with -N -l.
    // (A goroutine's closure is a poor subject: the program may exit after
    // the goroutine's last send and before its RET.)
    for backend in backends() {
        let out = trace(backend, r"^main\.main\.func1$", "kinds-debug", &[], &[]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(
            trace_lines(&out),
            vec![
                "> goroutine(1): main.main.func1(40, 2)",
                ">> goroutine(1): main.main.func1 => (42)"
            ],
            "{backend}"
        );
    }
}

#[test]
fn stack_growth_does_not_report_a_call_twice() {
    for backend in backends() {
        for build in ["kinds", "kinds-debug"] {
            let out = trace(backend, r"^main\.grow$", build, &[], &[]);
            assert!(out.status.success(), "{}", stderr(&out));
            let lines = trace_lines(&out);
            let calls: Vec<&String> = lines.iter().filter(|l| l.starts_with("> ")).collect();
            let rets: Vec<&String> = lines.iter().filter(|l| l.starts_with(">> ")).collect();
            assert_eq!(calls.len(), 41, "{backend} {build}: {lines:?}");
            assert_eq!(rets.len(), 41, "{backend} {build}");
            for (k, l) in calls.iter().enumerate() {
                assert!(
                    l.ends_with(&format!("main.grow({})", 40 - k)),
                    "{backend} {build}: {l}"
                );
            }
            assert!(rets[40].ends_with("main.grow => (20)"), "{}", rets[40]);
            assert!(stdout(&out).contains("grow 20"));
        }
    }
}

#[test]
fn the_program_exit_status_becomes_logprobes() {
    for backend in backends() {
        let out = trace(backend, r"^main\.tick$", "attach", &["1", "7"], &[]);
        assert_eq!(out.status.code(), Some(7), "{backend}: {}", stderr(&out));
        assert_eq!(
            trace_lines(&out),
            vec![
                "> goroutine(1): main.tick(0)",
                ">> goroutine(1): main.tick => (0)"
            ]
        );
    }
}

#[test]
fn attach_then_detach_leaves_the_program_running_unharmed() {
    if !require_attach() {
        return;
    }
    let call = regex::Regex::new(r"^> goroutine\(1\): main\.tick\((\d+)\)$").expect("regex");
    for backend in backends() {
        let (mut target, pid, mut target_out) = start_ticker(60);

        let mut tracer = Reaper(Some(
            logprobe()
                .args([
                    "trace",
                    "--backend",
                    backend,
                    "-p",
                    &pid.to_string(),
                    r"^main\.tick$",
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .stdin(Stdio::null())
                .spawn()
                .expect("spawn logprobe"),
        ));
        let tracer_pid = tracer.child().id();
        let mut trace_out = BufReader::new(tracer.child().stdout.take().expect("stdout"));
        let mut calls = 0;
        while calls < 3 {
            let mut l = String::new();
            assert!(
                trace_out.read_line(&mut l).expect("read") > 0,
                "{backend}: logprobe ended early"
            );
            if call.is_match(l.trim_end()) {
                calls += 1;
            }
        }
        // Ctrl-C: detach.
        let _ = Command::new("kill")
            .args(["-INT", &tracer_pid.to_string()])
            .status();
        let status = tracer.child().wait().expect("wait logprobe");
        let mut err = String::new();
        let _ = std::io::Read::read_to_string(
            &mut tracer.child().stderr.take().expect("stderr"),
            &mut err,
        );
        assert_eq!(status.code(), Some(0), "{backend}: {err}");
        assert!(err.contains("detached"), "{backend}: {err}");

        // The program finishes on its own with the sum of every call.
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut target_out, &mut rest).expect("read");
        let status = target.child().wait().expect("wait fixture");
        assert_eq!(status.code(), Some(0), "{backend}: target died: {rest}");
        assert_eq!(rest, "done sum=3540\n", "{backend}");
    }
}

fn one_line_error(out: &std::process::Output) -> String {
    assert!(
        !out.status.success(),
        "expected failure, got: {}",
        stdout(out)
    );
    let err = stderr(out);
    assert_eq!(err.lines().count(), 1, "expected one line, got: {err}");
    assert!(err.starts_with("logprobe: "), "{err}");
    err
}

#[test]
fn bad_input_gets_one_clear_line() {
    let run = |args: &[&str]| {
        run_with_timeout(
            {
                let mut c = logprobe();
                c.args(args);
                c
            },
            Duration::from_secs(30),
        )
    };
    let seed = fixture("seed");
    let seed = seed.to_str().expect("path");

    let err = one_line_error(&run(&["trace", "foo", "--", "/nonexistent/prog"]));
    assert!(err.contains("/nonexistent/prog"), "{err}");

    let script = root().join("scripts/test.sh");
    let err = one_line_error(&run(&[
        "trace",
        "foo",
        "--",
        script.to_str().expect("path"),
    ]));
    assert!(err.contains("not an ELF"), "{err}");

    let err = one_line_error(&run(&["trace", "foo(", "--", seed]));
    assert!(err.contains("invalid regular expression 'foo('"), "{err}");

    let err = one_line_error(&run(&["trace", "fooo", "--", seed]));
    assert!(
        err.contains("no function") && err.contains("similar: main.foo"),
        "{err}"
    );

    let err = one_line_error(&run(&["trace", "-p", "999999999", "foo"]));
    assert!(err.contains("999999999"), "{err}");

    let err = one_line_error(&run(&["trace", "foo"]));
    assert!(err.contains("nothing to trace"), "{err}");

    let err = one_line_error(&run(&["functions", "/nonexistent/prog"]));
    assert!(err.contains("/nonexistent/prog"), "{err}");
}

#[test]
fn a_process_that_is_already_traced_is_refused_and_left_alone() {
    if !require_attach() {
        return;
    }
    for backend in backends() {
        let mut first = Reaper(Some(
            logprobe()
                .args(["trace", "--backend", "ptrace", r"^main\.tick$", "--"])
                .arg(fixture("attach"))
                .arg("30")
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .stdin(Stdio::null())
                .spawn()
                .expect("spawn"),
        ));
        let mut out = BufReader::new(first.child().stdout.take().expect("stdout"));
        let mut l = String::new();
        while !l.starts_with("ready") {
            l.clear();
            assert!(out.read_line(&mut l).expect("read") > 0);
        }
        // The traced program's pid: the child of the first logprobe.
        let children =
            std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", first.child().id()))
                .expect("children");
        let pid = children
            .split_whitespace()
            .next()
            .expect("traced child")
            .to_string();
        let second = run_with_timeout(
            {
                let mut c = logprobe();
                c.args(["trace", "--backend", backend, "-p", &pid, "tick"]);
                c
            },
            Duration::from_secs(30),
        );
        let err = one_line_error(&second);
        assert!(
            err.contains("cannot trace pid") || err.contains("cannot attach"),
            "{err}"
        );
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut out, &mut rest).expect("read");
        let status = first.child().wait().expect("wait");
        assert!(status.success(), "{backend}: the first trace failed");
        assert!(rest.ends_with("done sum=870\n"), "{backend}: {rest}");
    }
}

#[test]
fn binaries_without_dwarf_are_traced_by_symbol_name() {
    for backend in backends() {
        for build in ["seed-nodwarf", "seed-stripped"] {
            let out = trace(backend, "foo", build, &[], &[]);
            assert!(out.status.success(), "{backend} {build}: {}", stderr(&out));
            assert_eq!(
                stdout(&out),
                "> goroutine(1): main.foo(?)\nx=99, y=9801, z=0\n>> goroutine(1): main.foo => (?)\nz=9900\n",
                "{backend} {build}"
            );
            let err = stderr(&out);
            assert_eq!(err.lines().count(), 1, "{err}");
            assert!(err.contains("no DWARF"), "{err}");
        }
    }
}

#[test]
fn functions_lists_names_with_source_positions() {
    let out = run_with_timeout(
        {
            let mut c = logprobe();
            c.arg("functions").arg(fixture("kinds")).arg(r"^main\.");
            c
        },
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let src = root().join("fixtures/go/kinds/main.go");
    let src = src.to_str().expect("path");
    for (name, line) in [
        ("main.Point.Sum", 17),
        ("main.(*Point).Scale", 20),
        ("main.mix", 23),
        ("main.main", 46),
    ] {
        let row = text
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("{name} missing: {text}"));
        assert!(row.ends_with(&format!("{src}:{line}")), "{row}");
    }
    assert!(!text.contains("autogenerated"), "{text}");
}

#[test]
fn the_programs_own_signals_are_delivered() {
    for backend in backends() {
        for build in ["signals", "signals-debug"] {
            let out = trace(backend, r"^main\.handled$", build, &[], &[]);
            assert!(out.status.success(), "{backend} {build}: {}", stderr(&out));
            assert!(
                stdout(&out).ends_with("signals sent=20 received=20\n"),
                "{backend} {build}: {}",
                stdout(&out)
            );
            let calls: Vec<String> = trace_lines(&out)
                .into_iter()
                .filter(|l| l.starts_with("> "))
                .collect();
            let expected: Vec<String> = (1..=20)
                .map(|n| format!("> goroutine(1): main.handled({n})"))
                .collect();
            assert_eq!(calls, expected, "{backend} {build}");
        }
    }
}

#[test]
fn a_million_calls_are_each_printed_once_or_counted_as_dropped() {
    // eBPF only: at ~30 µs a hit, ptrace would take minutes for this.
    if !require_backend("ebpf") {
        return;
    }
    let n = 1_000_000;
    let out = trace(
        "ebpf",
        r"^main\.target$",
        "bench",
        &[&n.to_string(), "target"],
        &[],
    );
    calls_printed_or_counted(&out, n);
}

#[test]
fn an_overflowing_ring_buffer_reports_exactly_how_many_events_it_dropped() {
    if !require_backend("ebpf") {
        return;
    }
    let n = 100_000;
    let mut cmd = logprobe();
    cmd.env("LOGPROBE_EBPF_RINGBUF_BYTES", "16384")
        .args(["trace", "--backend", "ebpf", r"^main\.target$", "--"])
        .arg(fixture("bench"))
        .args([&n.to_string(), "target"]);
    let out = run_with_timeout(cmd, Duration::from_secs(120));
    let dropped = calls_printed_or_counted(&out, n);
    assert!(dropped > 0, "a 16 KiB ring buffer did not overflow");
}

/// Checks a trace of `bench N target`: every call and return printed at
/// most once, in order, with the right values, and printed + dropped =
/// 2 N hits. Returns the drop count.
fn calls_printed_or_counted(out: &std::process::Output, n: u64) -> u64 {
    let err = stderr(out);
    assert!(out.status.success(), "{err}");
    assert!(stdout(out).contains(&format!("calls={n} ")), "{err}");
    let mut dropped = 0u64;
    for line in err.lines() {
        let count = line
            .strip_prefix("logprobe: ")
            .and_then(|l| l.strip_suffix(" events dropped"))
            .and_then(|c| c.parse::<u64>().ok());
        match count {
            Some(c) => dropped = c,
            None => panic!("unexpected message: {line}"),
        }
    }
    let (mut calls, mut returns) = (0u64, 0u64);
    let mut last_call: Option<u64> = None;
    let mut last_return: Option<u64> = None;
    let mut open: Option<u64> = None;
    for line in stdout(out).lines() {
        if let Some(arg) = line
            .strip_prefix("> goroutine(1): main.target(")
            .and_then(|r| r.strip_suffix(')'))
        {
            let i: u64 = arg.parse().expect("argument");
            assert!(
                last_call.is_none_or(|l| i > l),
                "call {i} printed twice or out of order"
            );
            last_call = Some(i);
            open = Some(i);
            calls += 1;
        } else if let Some(r) = line
            .strip_prefix(">> goroutine(1): main.target => (")
            .and_then(|r| r.strip_suffix(')'))
        {
            // target(i) returns i: results name their calls.
            let r: u64 = r.parse().expect("result");
            assert!(
                last_return.is_none_or(|l| r > l),
                "return of call {r} printed twice or out of order"
            );
            last_return = Some(r);
            match open.take() {
                // Without losses every return follows its own call.
                Some(i) if dropped == 0 => assert_eq!(r, i, "target({i}) returned {r}"),
                Some(i) => assert!(r >= i, "return of call {r} after call {i}"),
                None => assert!(dropped > 0, "return {r} without a call"),
            }
            returns += 1;
        } else {
            assert!(line.starts_with("calls="), "unexpected line {line}");
        }
    }
    assert!(calls <= n && returns <= n);
    assert_eq!(
        calls + returns + dropped,
        2 * n,
        "calls {calls} + returns {returns} + dropped {dropped}"
    );
    dropped
}

/// Runs `logprobe ARGS` as the unprivileged user `nobody` (via setpriv);
/// `None` where that is impossible (not root, no setpriv), after saying so.
fn as_nobody(args: &[&str]) -> Option<std::process::Output> {
    let mut c = Command::new(setpriv()?);
    as_new_machine(&mut c);
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_logprobe"))
        .args(args);
    Some(run_with_timeout(c, Duration::from_secs(60)))
}

#[test]
fn without_bpf_permission_ebpf_says_so_and_auto_falls_back_to_ptrace() {
    let seed = fixture("seed");
    let seed = seed.to_str().expect("path");
    let Some(out) = as_nobody(&["trace", "--backend", "ebpf", "foo", "--", seed]) else {
        return;
    };
    let err = one_line_error(&out);
    assert!(err.contains("no permission to load BPF programs"), "{err}");

    let Some(out) = as_nobody(&["trace", "foo", "--", seed]) else {
        return;
    };
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        "logprobe: using ptrace: eBPF is unavailable: no permission to load BPF programs (run as root, or grant CAP_BPF and CAP_PERFMON); `logprobe doctor` shows what eBPF needs here\n"
    );
    assert_eq!(
        trace_lines(&out),
        vec![
            "> goroutine(1): main.foo(99, 9801)",
            ">> goroutine(1): main.foo => (9900)"
        ]
    );
}

#[test]
fn an_attached_process_that_exits_ends_the_ebpf_trace_with_one_line() {
    if !require_backend("ebpf") {
        return;
    }
    let (mut target, pid, _target_out) = start_ticker(20);
    let pid = pid.to_string();
    let out = run_with_timeout(
        {
            let mut c = logprobe();
            c.args(["trace", "--backend", "ebpf", "-p", &pid, r"^main\.tick$"]);
            c
        },
        Duration::from_secs(60),
    );
    let err = one_line_error(&out);
    assert!(
        err.contains(&format!("process {pid} exited during the trace")),
        "{err}"
    );
    assert!(
        !trace_lines(&out).is_empty(),
        "no call was traced before the exit"
    );
    assert!(target.child().wait().expect("wait").success());
}

#[test]
fn duration_shows_how_long_each_call_took_on_its_return_line() {
    let ret = regex::Regex::new(
        r"^>> goroutine\(1\): main\.foo => \(9900\) in [0-9]+(\.[0-9]+)?(ns|µs|ms|s)$",
    )
    .expect("regex");
    let stamped =
        regex::Regex::new(r"^\d\d:\d\d:\d\d\.\d{9} > goroutine\(1\): main\.foo\(99, 9801\)$")
            .expect("regex");
    for backend in backends() {
        let out = trace(backend, "foo", "seed", &[], &["--duration"]);
        assert!(out.status.success(), "{backend}: {}", stderr(&out));
        let lines = trace_lines(&out);
        assert_eq!(lines.len(), 2, "{backend}: {lines:?}");
        assert_eq!(lines[0], "> goroutine(1): main.foo(99, 9801)", "{backend}");
        assert!(ret.is_match(&lines[1]), "{backend}: {}", lines[1]);

        let out = trace(backend, "foo", "seed", &[], &["--timestamp"]);
        assert!(out.status.success(), "{backend}: {}", stderr(&out));
        let first = stdout(&out)
            .lines()
            .find(|l| l.contains("> goroutine"))
            .map(str::to_string);
        assert!(
            first.as_deref().is_some_and(|l| stamped.is_match(l)),
            "{backend}: {first:?}"
        );
    }
}

#[test]
fn another_process_running_the_same_program_is_not_traced() {
    for backend in backends() {
        let (_other, _, _other_out) = start_ticker(60);
        let out = trace(backend, r"^main\.tick$", "attach", &["3"], &[]);
        assert!(out.status.success(), "{backend}: {}", stderr(&out));
        assert_eq!(
            stdout(&out),
            "ready\n> goroutine(1): main.tick(0)\n>> goroutine(1): main.tick => (0)\n> goroutine(1): main.tick(1)\n>> goroutine(1): main.tick => (2)\n> goroutine(1): main.tick(2)\n>> goroutine(1): main.tick => (4)\ndone sum=6\n",
            "{backend}"
        );
    }
}
