//! End-to-end tests of what `logprobe trace` offers a user coming from
//! `dlv trace`: stacks at each hit (`--stack N`), through the command line
//! and the DAP server, under every backend, on real Go programs.

// A test fails by panicking: what Cargo.toml denies in the adapter is how
// a test says what went wrong.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::dap::*;
use common::*;
use serde_json::json;

/// `s` with addresses masked and every source path cut to what follows
/// `fixtures/` (the fixtures' DWARF names the tree they were built in) or
/// to the file name of a Go toolchain's source.
fn portable(s: &str) -> String {
    let s = mask_addresses(s);
    let paths = regex::Regex::new(r"at /\S*/(fixtures/\S+|src/runtime/)(\S*):(\d+)").unwrap();
    paths
        .replace_all(&s, |c: &regex::Captures| match &c[1] {
            "src/runtime/" => format!("at runtime/{}:N", &c[2]),
            f => format!("at {f}{}:{}", &c[2], &c[3]),
        })
        .into_owned()
}

/// The seed's hit line `first` with its stack of 3 at `main.go:line`.
fn seed_stack(first: &str, line: u32) -> String {
    format!(
        "{first}\n\tStack:\n\t\t0  0xADDR in main.foo\n\t\t     at fixtures/go/seed/main.go:{line}
\t\t1  0xADDR in main.main\n\t\t     at fixtures/go/seed/main.go:14
\t\t2  0xADDR in runtime.main\n\t\t     at runtime/proc.go:N\n\t\t(truncated)\n"
    )
}

fn seed_call_stack() -> String {
    seed_stack("> goroutine(1): main.foo(99, 9801)", 5)
}

fn seed_return_stack() -> String {
    seed_stack(">> goroutine(1): main.foo => (9900)", 8)
}

#[test]
fn stack_prints_the_innermost_frames_under_each_hit_as_dlv_does() {
    let mut texts = Vec::new();
    for case in cases(&["seed", "seed-debug"]) {
        let out = trace(case.backend, "foo", &case.path(), &[], &["-s", "3"]);
        assert!(out.status.success(), "{case}: {}", stderr(&out));
        let text = portable(&stdout(&out));
        assert_eq!(
            text,
            format!(
                "{}x=99, y=9801, z=0\n{}z=9900\n",
                seed_call_stack(),
                seed_return_stack()
            ),
            "{case}"
        );
        texts.push(text);
        // The whole stack: it ends at runtime.goexit, not truncated.
        let out = trace(case.backend, "foo", &case.path(), &[], &["--stack", "8"]);
        let text = portable(&stdout(&out));
        assert!(
            text.contains("\t\t3  0xADDR in runtime.goexit\n") && !text.contains("(truncated)"),
            "{case}: {text}"
        );
    }
    // The same text under every backend (addresses masked: a run's own).
    assert!(texts.windows(2).all(|w| w[0] == w[1]));
}

#[test]
fn stacks_are_the_same_on_every_goroutine_under_both_backends() {
    // Calls on many goroutines at once: each stack is its own goroutine's.
    let mut seen = Vec::new();
    for backend in backends() {
        let out = trace(
            backend,
            r"^main\.work$",
            "concurrent",
            &[],
            &["-s", "2", "--json"],
        );
        assert!(out.status.success(), "{backend}: {}", stderr(&out));
        let mut callers: Vec<String> = stdout(&out)
            .lines()
            .filter(|l| l.starts_with('{'))
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .map(|e| {
                let frames = e["stack"]["frames"].as_array().unwrap();
                assert_eq!(frames[0]["function"], "main.work", "{e}");
                format!(
                    "{} {} {}",
                    e["kind"],
                    frames[1]["function"].as_str().unwrap(),
                    frames[1]["line"]
                )
            })
            .collect();
        callers.sort();
        callers.dedup();
        assert!(!callers.is_empty(), "{backend}");
        seen.push(callers);
    }
    assert!(seen.windows(2).all(|w| w[0] == w[1]), "{seen:?}");
}

#[test]
fn json_events_carry_their_stack() {
    for backend in backends() {
        let out = trace(backend, "foo", "seed", &[], &["-s", "2", "--json"]);
        assert!(out.status.success(), "{backend}: {}", stderr(&out));
        let events: Vec<serde_json::Value> = stdout(&out)
            .lines()
            .filter(|l| l.starts_with('{'))
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(events.len(), 2, "{backend}");
        for e in &events {
            let stack = &e["stack"];
            assert_eq!(stack["truncated"], true, "{e}");
            let frames = stack["frames"].as_array().unwrap();
            assert_eq!(frames.len(), 2, "{e}");
            assert_eq!(frames[0]["function"], "main.foo");
            assert_eq!(frames[1]["function"], "main.main");
            assert_eq!(frames[1]["line"], 14);
            assert!(frames[1]["pc"].as_u64().unwrap() > 0);
        }
    }
}

#[test]
fn dap_output_events_carry_the_stack_in_text_and_data() {
    for backend in backends() {
        let (mut c, _adapter) = stdio_adapter();
        launch(&mut c, backend, "seed", &[], json!({"stack": 3}));
        let r = c.ok("traceFunctions", json!({"functions": [{"regex": "foo"}]}));
        assert_eq!(r["body"]["functions"][0]["verified"], true, "{r}");
        c.ok("configurationDone", json!({}));
        let (console, _) = c.run_to_end();
        assert_eq!(
            portable(&console),
            seed_call_stack() + &seed_return_stack(),
            "{backend}"
        );
        let outputs = c.outputs("console");
        let data = &outputs[0]["body"]["data"]["stack"];
        assert_eq!(data["frames"][1]["function"], "main.main", "{data}");
        c.ok("disconnect", json!({}));
    }
}

#[test]
fn a_stack_deeper_than_a_hit_can_carry_is_refused() {
    let out = trace("ptrace", "foo", "seed", &[], &["-s", "1000"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("a stack of 1000 frames is more than the 128 a hit can carry"),
        "{}",
        stderr(&out)
    );
}

/// `main.handle`'s call tree, two levels of callees followed.
const HANDLE_TREE: &str =
    "> goroutine(1):frame(1) main.handle(1, main.Shape(main.Square) {Side: 2}, main.leaf)
 > goroutine(1):frame(2) main.middle(1)
  > goroutine(1):frame(3) main.leaf(1)
  >> goroutine(1):frame(3) main.leaf => (2)
 >> goroutine(1):frame(2) main.middle => (4)
 > goroutine(1):frame(2) main.leaf(1)
 >> goroutine(1):frame(2) main.leaf => (2)
 > goroutine(1):frame(2) main.fact(3)
  > goroutine(1):frame(3) main.fact(2)
   > goroutine(1):frame(4) main.fact(1)
   >> goroutine(1):frame(4) main.fact => (1)
  >> goroutine(1):frame(3) main.fact => (2)
 >> goroutine(1):frame(2) main.fact => (6)
>> goroutine(1):frame(1) main.handle => (16)
";

#[test]
fn follow_calls_traces_callees_as_an_indented_tree_and_says_what_it_cannot_follow() {
    for case in cases(&["calls-debug"]) {
        let out = trace(
            case.backend,
            r"main\.handle$",
            &case.path(),
            &[],
            &["--follow-calls", "2"],
        );
        assert!(out.status.success(), "{case}: {}", stderr(&out));
        assert_eq!(
            stdout(&out),
            format!("{HANDLE_TREE}16\n2 10 false\n"),
            "{case}"
        );
        let err = stderr(&out);
        // The interface method and the function value: said, not missed.
        assert!(
            err.contains("logprobe: note: main.handle calls through a function value or an interface (line 34)"),
            "{case}: {err}"
        );
        assert!(
            err.contains("logprobe: note: main.fact is recursive"),
            "{case}: {err}"
        );
        // One level: the callees' own callees are not traced.
        let out = trace(
            case.backend,
            r"main\.handle$",
            &case.path(),
            &[],
            &["--follow-calls", "1", "--json"],
        );
        let depths: Vec<(String, u64)> = stdout(&out)
            .lines()
            .filter(|l| l.starts_with('{'))
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|e| e["kind"] == "call")
            .map(|e| {
                (
                    e["function"].as_str().unwrap().to_string(),
                    e["depth"].as_u64().unwrap(),
                )
            })
            .collect();
        let want: Vec<(String, u64)> = [
            ("main.handle", 1),
            ("main.middle", 2),
            ("main.fact", 2),
            ("main.fact", 3),
            ("main.fact", 4),
        ]
        .iter()
        .map(|(f, d)| (f.to_string(), *d))
        .collect();
        assert_eq!(depths, want, "{case}");
    }
}

#[test]
fn follow_calls_applies_the_condition_to_the_roots_and_notes_mutual_recursion() {
    for case in cases(&["calls-debug"]) {
        // `main.route` runs twice (n = 1, 5): only the tree that passed
        // the condition is shown, its callee's call included.
        let out = trace(
            case.backend,
            r"main\.route$",
            &case.path(),
            &[],
            &["--follow-calls", "1", "--cond", "n > 2"],
        );
        assert!(out.status.success(), "{case}: {}", stderr(&out));
        assert_eq!(
            stdout(&out),
            "16
> goroutine(1):frame(1) main.route(5)
 > goroutine(1):frame(2) main.double(5)
 >> goroutine(1):frame(2) main.double => (10)
>> goroutine(1):frame(1) main.route => (10)
2 10 false
",
            "{case}"
        );
        assert_eq!(stderr(&out), "", "{case}");
        // even -> odd -> even: the callee's call of the root nests deeper,
        // and is said.
        let out = trace(
            case.backend,
            r"main\.even$",
            &case.path(),
            &[],
            &["--follow-calls", "1"],
        );
        assert!(out.status.success(), "{case}: {}", stderr(&out));
        assert_eq!(
            stdout(&out),
            "16
> goroutine(1):frame(1) main.even(3)
 > goroutine(1):frame(2) main.odd(2)
  > goroutine(1):frame(3) main.even(1)
   > goroutine(1):frame(4) main.odd(0)
   >> goroutine(1):frame(4) main.odd => (false)
  >> goroutine(1):frame(3) main.even => (false)
 >> goroutine(1):frame(2) main.odd => (false)
>> goroutine(1):frame(1) main.even => (false)
2 10 false
",
            "{case}"
        );
        assert_eq!(
            stderr(&out),
            "logprobe: note: main.even and main.odd call each other: their calls are traced, nested deeper\n",
            "{case}"
        );
    }
}

#[test]
fn dap_follows_calls_as_the_command_line_does() {
    for backend in backends() {
        let (mut c, _adapter) = stdio_adapter();
        launch(&mut c, backend, "calls-debug", &[], json!({}));
        let r = c.ok(
            "traceFunctions",
            json!({"functions": [{"regex": "main\\.handle$", "followCalls": 2}]}),
        );
        let result = &r["body"]["functions"][0];
        assert_eq!(result["verified"], true, "{r}");
        assert!(
            result["message"]
                .as_str()
                .unwrap()
                .contains("main.handle calls through a function value or an interface"),
            "{r}"
        );
        c.ok("configurationDone", json!({}));
        let (console, _) = c.run_to_end();
        assert_eq!(console, HANDLE_TREE, "{backend}");
        c.ok("disconnect", json!({}));
    }
}

#[test]
fn completions_are_printed_for_bash_zsh_and_fish() {
    for (shell, mark) in [
        ("bash", "_logprobe()"),
        ("zsh", "#compdef logprobe"),
        ("fish", "complete -c logprobe"),
    ] {
        let out = logprobe().args(["completions", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        let script = stdout(&out);
        assert!(script.contains(mark), "{shell}: {script}");
        assert!(script.contains("follow-calls"), "{shell}");
    }
}
