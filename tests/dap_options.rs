//! End-to-end tests of the DAP `launch`/`attach` options the VS Code
//! extension offers (package.json's `configurationAttributes`): the value
//! limits give exactly what the command line's flags give, `noDebug` runs
//! the program without probes, and what cannot be honoured is refused with
//! the reason.

// A test fails by panicking: what Cargo.toml denies in the adapter is how
// a test says what went wrong.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::dap::*;
use common::*;
use serde_json::json;

/// The console lines of a session tracing `regex` in `fixture` launched
/// with `options`.
fn traced(backend: &str, fixture: &str, regex: &str, options: serde_json::Value) -> String {
    let (mut c, _adapter) = stdio_adapter();
    launch(&mut c, backend, fixture, &[], options);
    let r = c.ok("traceFunctions", json!({"functions": [{"regex": regex}]}));
    assert_eq!(r["body"]["functions"][0]["verified"], true, "{r}");
    c.ok("configurationDone", json!({}));
    let (console, _) = c.run_to_end();
    assert_eq!(c.output("important"), "", "{backend}");
    c.ok("disconnect", json!({}));
    mask_addresses(&console)
}

#[test]
fn value_limits_in_launch_arguments_cut_values_as_the_command_lines_do() {
    let regex = r"^main\.(text|slices|cycle|ifaces|maps|many|structs|chans)$";
    for backend in backends() {
        for (options, flags) in [
            (
                json!({"maxStringLen": 4, "maxArrayValues": 1, "maxDepth": 1}),
                vec![
                    "--max-string-len",
                    "4",
                    "--max-array-values",
                    "1",
                    "--max-depth",
                    "1",
                ],
            ),
            (json!({"maxDepth": 0}), vec!["--max-depth", "0"]),
            (json!({}), vec![]),
        ] {
            let dap = traced(backend, "values", regex, options.clone());
            let out = trace(backend, regex, "values", &[], &flags);
            assert!(out.status.success(), "{backend}: {}", stderr(&out));
            let cli = mask_addresses(&(trace_lines(&out).join("\n") + "\n"));
            assert_eq!(dap, cli, "{backend} {options}");
            // The limits took effect.
            let cut = match options.get("maxStringLen") {
                Some(_) => "\"hell\"...+1 more",
                None => "\"hello\"",
            };
            assert!(dap.contains(cut), "{backend} {options}: {dap}");
            let shallow = options.get("maxDepth") == Some(&json!(0));
            assert_eq!(
                dap.contains("main.chans((chan int)(0xADDR)"),
                shallow,
                "{backend} {options}: {dap}"
            );
        }
    }
}

#[test]
fn no_debug_runs_the_program_without_probes() {
    let (mut c, _adapter) = stdio_adapter();
    launch(
        &mut c,
        "ptrace",
        "attach",
        &["3", "5"],
        json!({"noDebug": true, "trace": [r"^main\.tick$"]}),
    );
    let r = c.ok("setBreakpoints", json!({"source": {"path": attach_source()}, "breakpoints": [{"line": 23, "logMessage": "i={i}"}]}));
    let bp = &r["body"]["breakpoints"][0];
    assert_eq!(bp["verified"], false, "{bp}");
    assert!(
        bp["message"].as_str().unwrap_or("").contains("noDebug"),
        "{bp}"
    );
    let r = c.ok(
        "traceFunctions",
        json!({"functions": [{"regex": r"^main\.tick$"}]}),
    );
    let t = &r["body"]["functions"][0];
    assert_eq!(t["verified"], false, "{t}");
    assert!(
        t["message"].as_str().unwrap_or("").contains("noDebug"),
        "{t}"
    );
    c.ok("configurationDone", json!({}));
    let process = c.wait_event(|e| e["event"] == "process");
    assert_eq!(process["body"]["startMethod"], "launch");
    let (console, stdout) = c.run_to_end();
    // The program's own output, its exit status, and nothing traced.
    assert_eq!(stdout, "ready\ndone sum=6\n");
    assert_eq!(console, "");
    assert_eq!(c.output("important"), "");
    assert_eq!(c.exit_code(), Some(5));
    c.ok("disconnect", json!({}));
}

#[test]
fn no_debug_ends_with_terminate_like_any_launch() {
    let (mut c, _adapter) = stdio_adapter();
    launch(
        &mut c,
        "ptrace",
        "attach",
        &["600"],
        json!({"noDebug": true}),
    );
    c.ok("configurationDone", json!({}));
    let process = c.wait_event(|e| e["event"] == "process");
    let pid = process["body"]["systemProcessId"].as_i64().expect("pid");
    c.wait_event(|e| e["event"] == "output" && e["body"]["output"] == "ready\n");
    c.ok("terminate", json!({}));
    let exited = c.wait_event(|e| e["event"] == "exited");
    assert_eq!(exited["body"]["exitCode"], 128 + 15, "killed by SIGTERM");
    c.wait_event(|e| e["event"] == "terminated");
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "program {pid} still there"
    );
    c.ok("disconnect", json!({}));
}

#[test]
fn options_that_cannot_be_honoured_are_refused_with_the_reason() {
    let program = fixture("seed").display().to_string();
    let refused = |env: &[(&str, &str)], command: &str, args: serde_json::Value| {
        let (mut c, _adapter) = stdio_adapter_with(&[], env);
        c.ok("initialize", json!({"adapterID": "logprobe"}));
        let r = c.request(command, args);
        assert_eq!(r["success"], false, "{r}");
        // The session goes on.
        c.ok("threads", json!({}));
        r["message"].as_str().unwrap_or("").to_string()
    };
    let m = refused(&[], "launch", json!({"program": program, "backend": "bpf"}));
    assert!(
        m.contains("unknown backend 'bpf' (use 'ebpf', 'ptrace' or 'auto')"),
        "{m}"
    );
    let m = refused(&[], "launch", json!({"program": program, "maxDepth": -1}));
    assert!(m.contains("invalid arguments for 'launch'"), "{m}");
    let m = refused(
        &[],
        "launch",
        json!({"program": program, "maxArrayValues": "all"}),
    );
    assert!(m.contains("invalid arguments for 'launch'"), "{m}");
    let m = refused(&[], "attach", json!({"pid": 1, "noDebug": true}));
    assert!(m.contains("'noDebug' applies to launch only"), "{m}");
    let m = refused(
        &[("LOGPROBE_PREFILTER", "yes")],
        "launch",
        json!({"program": program}),
    );
    assert_eq!(m, "LOGPROBE_PREFILTER must be 0 or 1, not 'yes'");
}
