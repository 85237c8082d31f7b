//! End-to-end tests of `logprobe dap`'s sessions: a small DAP client
//! drives the real binary over stdio and over TCP against the real
//! fixtures, under every backend: a logpoint from launch to exit, the
//! backend's fallback, terminate, attach and detach, the `functions`
//! request, and malformed input that must not stop the server.

// A test fails by panicking: what Cargo.toml denies in the adapter is how
// a test says what went wrong.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Read;

use common::dap::*;
use common::*;
use serde_json::json;

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
    for case in cases(&["seed", "seed-debug"]) {
        let (mut c, _adapter) = stdio_adapter();
        seed_logpoint_case(&mut c, case.backend, &case.path());
    }
}

#[test]
fn without_bpf_permission_auto_falls_back_to_ptrace_with_a_notice() {
    const NO_PERMISSION: &str =
        "no permission to load BPF programs (run as root, or grant CAP_BPF and CAP_PERFMON); `logprobe doctor` shows what eBPF needs here";
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
fn terminate_ends_a_launched_program() {
    for backend in backends() {
        let (mut c, _adapter) = launch_ticker(backend, "600", r"^main\.tick$");
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

#[test]
fn attach_then_disconnect_leaves_the_program_running_unharmed() {
    if !require_attach() {
        return;
    }
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
    if !require_attach() {
        return;
    }
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
    assert_eq!(r["body"]["error"]["id"], 2, "{r}");
    assert_eq!(r["body"]["error"]["format"], r["message"], "{r}");
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
    // JSON with a seq and a command but not a request: an error response.
    let body = r#"{"seq": 77, "command": "launch", "type": 3}"#;
    c.send_raw(format!("Content-Length: {}\r\n\r\n{body}", body.len()).as_bytes());
    let r = c.response_to(77);
    assert_eq!(r["success"], false);
    assert_eq!(r["body"]["error"]["id"], 1, "{r}");
    let big = 17 * 1024 * 1024;
    let mut huge = format!("Content-Length: {big}\r\n\r\n").into_bytes();
    huge.resize(huge.len() + big, b' ');
    c.send_raw(&huge);
    important(&mut c, "refused");
    // Unknown commands and wrong argument types get error responses.
    c.ok("initialize", json!({"adapterID": "x"}));
    let r = c.request("stepIn", json!({"threadId": 1}));
    assert_eq!(r["success"], false);
    let r = c.request("readMemory", json!({}));
    assert_eq!(r["body"]["error"]["id"], 3, "{r}");
    let r = c.request("launch", json!({"program": 5}));
    assert_eq!(r["success"], false);
    assert_eq!(r["body"]["error"]["id"], 4, "{r}");
    assert!(
        r["message"]
            .as_str()
            .unwrap_or("")
            .contains("invalid arguments"),
        "{r}"
    );
    let r = c.request("launch", json!({"program": "/no/such/program"}));
    assert_eq!(r["success"], false);
    assert_eq!(r["body"]["error"]["id"], 5, "{r}");
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
    let r = c.ok("setBreakpoints", json!({"source": {"path": seed_source()}, "breakpoints": [{"line": 7}, {"line": 7, "logMessage": "{x + } {{x}}"}, {"line": 7, "logMessage": "{{x}} {x}"}]}));
    assert!(
        r["body"]["breakpoints"][0]["message"]
            .as_str()
            .unwrap_or("")
            .contains("without stopping"),
        "{r}"
    );
    // A bad expression is refused when set (dap_conditions.rs has more).
    assert_eq!(r["body"]["breakpoints"][1]["verified"], false, "{r}");
    assert_eq!(r["body"]["breakpoints"][1]["reason"], "failed", "{r}");
    assert_eq!(
        r["body"]["breakpoints"][1]["message"], "log message {x + }: unexpected character '+'",
        "{r}"
    );
    assert_eq!(r["body"]["breakpoints"][2]["reason"], "pending", "{r}");
    c.ok("configurationDone", json!({}));
    let (console, _) = c.run_to_end();
    assert_eq!(console, "{x} 99\n");
    c.ok("disconnect", json!({}));
}

/// The schema check the DAP tests apply to every message they receive
/// rejects what the schema rejects (an error response without a body, an
/// output event without output) and picks the definition by command/event.
#[test]
fn messages_are_checked_against_the_dap_schema() {
    let rejects =
        |m: serde_json::Value| std::panic::catch_unwind(|| check_against_schema(&m)).is_err();
    let error = json!({"seq": 1, "type": "response", "request_seq": 1, "success": false,
        "command": "launch", "message": "no"});
    assert_eq!(schema_definition(&error), "ErrorResponse");
    assert!(rejects(error.clone()));
    let mut with_body = error;
    with_body["body"] = json!({"error": {"id": 5, "format": "no"}});
    assert!(!rejects(with_body));
    let output =
        json!({"seq": 2, "type": "event", "event": "output", "body": {"category": "console"}});
    assert_eq!(schema_definition(&output), "OutputEvent");
    assert!(rejects(output));
    let custom = json!({"seq": 3, "type": "event", "event": "logprobe/hits", "body": {}});
    assert_eq!(schema_definition(&custom), "Event");
    assert!(!rejects(custom));
    let bps = json!({"seq": 4, "type": "response", "request_seq": 2, "success": true,
        "command": "setBreakpoints", "body": {"breakpoints": [{"verified": "yes"}]}});
    assert_eq!(schema_definition(&bps), "SetBreakpointsResponse");
    assert!(rejects(bps));
}
