//! End-to-end tests of what `logprobe dap` reports while the program runs
//! (docs/protocol.md): the `logprobe/hits` event's counts, durations and
//! latest values; the console volume; rate limits; pausing, resuming and removing a
//! trace; traces and logpoints that keep their id when sent again; and the
//! snapshot thread that shows a trace's latest hit (also what `pause`
//! shows). Under every backend.

// A test fails by panicking: what Cargo.toml denies in the adapter is how
// a test says what went wrong.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::dap::*;
use common::*;
use serde_json::{json, Value};

/// Every `logprobe/hits` event's entry for trace `id`, in order.
fn entries(c: &Client, id: &str) -> Vec<Value> {
    c.events
        .iter()
        .filter(|e| e["event"] == "logprobe/hits")
        .filter_map(|e| e["body"]["traces"].as_array())
        .flatten()
        .filter(|t| t["id"] == id)
        .cloned()
        .collect()
}

/// The last entry for `id` (panics if there is none).
fn last(c: &Client, id: &str) -> Value {
    entries(c, id)
        .pop()
        .unwrap_or_else(|| panic!("no logprobe/hits entry for {id}: {:#?}", c.events))
}

fn removed(c: &Client) -> Vec<String> {
    c.events
        .iter()
        .filter(|e| e["event"] == "logprobe/hits")
        .filter_map(|e| e["body"]["removed"].as_array())
        .flatten()
        .filter_map(|r| r.as_str().map(str::to_string))
        .collect()
}

/// Waits for a `logprobe/hits` event with an entry satisfying `pred`, and
/// keeps it among the events seen.
fn wait_entry(c: &mut Client, pred: impl Fn(&Value) -> bool) {
    let e = c.wait_event(|e| {
        e["event"] == "logprobe/hits"
            && e["body"]["traces"]
                .as_array()
                .is_some_and(|t| t.iter().any(&pred))
    });
    c.events.push(e);
}

/// A session launching the ticker for good (it is ended on disconnect),
/// an event every 100 ms.
fn ticker_session(backend: &str) -> (Client, Reaper) {
    let (mut c, adapter) = stdio_adapter();
    launch(
        &mut c,
        backend,
        "attach",
        &["100000"],
        json!({ "hitsInterval": 100 }),
    );
    (c, adapter)
}

fn trace_tick(c: &mut Client) -> String {
    let r = c.ok(
        "traceFunctions",
        json!({ "functions": [{ "regex": "^main\\.tick$" }] }),
    );
    assert_eq!(r["body"]["functions"][0]["verified"], true, "{r}");
    r["body"]["functions"][0]["id"]
        .as_str()
        .expect("an id for the trace")
        .to_string()
}

#[test]
fn hits_event_counts_calls_times_them_and_keeps_the_latest_values() {
    for backend in backends() {
        let (mut c, _adapter) = stdio_adapter();
        launch(&mut c, backend, "seed", &[], json!({ "hitsInterval": 100 }));
        let r = c.ok(
            "traceFunctions",
            json!({ "functions": [{ "regex": "^main\\.foo$" }] }),
        );
        let id = r["body"]["functions"][0]["id"]
            .as_str()
            .unwrap()
            .to_string();
        c.ok("configurationDone", json!({}));
        c.run_to_end();
        // The last event comes at most one interval after the program ends.
        c.drain_for(Duration::from_millis(600));
        let t = last(&c, &id);
        assert_eq!(t["kind"], "trace", "{backend}: {t}");
        assert_eq!(t["state"], "active");
        assert_eq!(t["label"], "main.foo");
        assert_eq!(t["hits"], 1);
        assert_eq!(t["shown"], 1);
        assert_eq!(t["source"]["path"], seed_source());
        assert_eq!(t["line"], 5);
        let foo = &t["functions"][0];
        assert_eq!(foo["name"], "main.foo");
        let texts = |hit: &Value| -> Vec<String> {
            hit["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| {
                    format!(
                        "{}={}",
                        v["name"].as_str().unwrap(),
                        v["text"].as_str().unwrap()
                    )
                })
                .collect()
        };
        assert_eq!(texts(&foo["call"]), ["x=99", "y=9801"], "{backend}: {foo}");
        assert_eq!(foo["call"]["line"], 5);
        assert_eq!(foo["call"]["goroutine"], 1);
        assert_eq!(foo["call"]["values"][0]["value"]["value"], 99);
        assert_eq!(texts(&foo["return"]), ["z=9900"], "{backend}: {foo}");
        assert_eq!(foo["return"]["line"], 8, "the line of the return statement");
        let d = &foo["durations"];
        assert_eq!(d["count"], 1, "{backend}: {foo}");
        let took = foo["return"]["duration"].as_u64().unwrap();
        assert!(took > 0);
        assert_eq!(d["max"].as_u64(), Some(took));
        c.ok("disconnect", json!({}));
    }
}

#[test]
fn console_volume_sample_and_summary_leave_lines_out_and_count_them() {
    for backend in backends() {
        for volume in ["sample", "summary"] {
            let (mut c, _adapter) = stdio_adapter();
            launch(
                &mut c,
                backend,
                "attach",
                &["40"],
                json!({ "consoleVolume": volume, "consoleLinesPerSecond": 3, "hitsInterval": 100 }),
            );
            let id = trace_tick(&mut c);
            c.ok("configurationDone", json!({}));
            c.run_to_end();
            c.drain_for(Duration::from_millis(1500));
            // Every call is counted whatever the console showed.
            assert_eq!(last(&c, &id)["hits"], 40, "{backend} {volume}");
            let calls = numbers_after(&c, "> goroutine(1): main.tick(").len();
            let notes: Vec<Value> = c
                .outputs("console")
                .into_iter()
                .filter(|e| e["body"]["data"]["kind"] == "omitted")
                .collect();
            assert!(
                !notes.is_empty(),
                "{backend} {volume}: no end-of-second line"
            );
            let omitted: u64 = notes
                .iter()
                .map(|n| n["body"]["data"]["omitted"].as_u64().unwrap())
                .sum();
            assert!(notes
                .iter()
                .all(|n| n["body"]["data"]["trace"] == id.as_str()));
            if volume == "sample" {
                // 40 calls over about 2 s at 20 a second: 3 a second shown.
                assert!((3..=12).contains(&calls), "{backend}: {calls} calls shown");
                assert_eq!(calls as u64 + omitted, 40, "{backend}: shown + omitted");
                let text = notes[0]["body"]["output"].as_str().unwrap();
                assert!(
                    text.contains("more calls in the last second not shown (console volume: sample, 3 a second)"),
                    "{text}"
                );
            } else {
                assert_eq!(calls, 0, "{backend}: summary shows no call line");
                assert_eq!(omitted, 40);
                let text = notes[0]["body"]["output"].as_str().unwrap();
                assert!(
                    text.starts_with("logprobe: main.tick: ")
                        && text.contains("latest: > goroutine(1): main.tick("),
                    "{text}"
                );
            }
            c.ok("disconnect", json!({}));
        }
    }
}

#[test]
fn a_paused_trace_stops_counting_until_resumed_and_a_removed_one_is_gone() {
    for backend in backends() {
        let (mut c, _adapter) = ticker_session(backend);
        let id = trace_tick(&mut c);
        c.ok("configurationDone", json!({}));
        wait_entry(&mut c, |t| t["hits"].as_u64() >= Some(3));
        let r = c.ok(
            "setTraceState",
            json!({ "traces": [{ "id": id, "state": "paused" }] }),
        );
        assert_eq!(r["body"]["traces"][0]["state"], "paused", "{r}");
        c.drain_for(Duration::from_millis(400));
        let paused = last(&c, &id);
        assert_eq!(paused["state"], "paused", "{backend}");
        let before = paused["hits"].as_u64().unwrap();
        c.drain_for(Duration::from_millis(600));
        assert_eq!(
            last(&c, &id)["hits"].as_u64(),
            Some(before),
            "{backend}: counted while paused"
        );

        c.ok(
            "setTraceState",
            json!({ "traces": [{ "id": id, "state": "active" }] }),
        );
        wait_entry(&mut c, |t| t["hits"].as_u64() > Some(before + 2));
        assert_eq!(last(&c, &id)["state"], "active");

        // The same entry sent again is the same trace: same id, count kept.
        let again = trace_tick(&mut c);
        assert_eq!(again, id, "{backend}: the same entry keeps its id");
        c.drain_for(Duration::from_millis(300));
        assert!(
            last(&c, &id)["hits"].as_u64() > Some(before + 2),
            "{backend}: count kept"
        );

        let r = c.ok("setTraceState", json!({ "traces": [{ "id": id, "state": "removed" }, { "id": "t999", "state": "paused" }] }));
        assert_eq!(r["body"]["traces"][0]["state"], "removed");
        assert_eq!(r["body"]["traces"][1]["message"], "no trace 't999'");
        c.drain_for(Duration::from_millis(400));
        assert!(removed(&c).contains(&id), "{backend}: 'removed' names {id}");
        c.events.clear();
        c.drain_for(Duration::from_millis(500));
        assert!(
            numbers_after(&c, "> goroutine(1): main.tick(").is_empty(),
            "{backend}: still traced after removal"
        );
        let bad = c.request("pause", json!({ "threadId": 1 }));
        assert_eq!(bad["success"], false);
        assert!(bad["message"]
            .as_str()
            .unwrap()
            .contains("without stopping"));
        c.ok("disconnect", json!({}));
    }
}

#[test]
fn a_logpoint_sent_again_keeps_its_id_and_count() {
    for backend in backends() {
        let (mut c, _adapter) = ticker_session(backend);
        let set = |c: &mut Client| {
            c.ok(
                "setBreakpoints",
                json!({ "source": { "path": attach_source() },
                        "breakpoints": [{ "line": 13, "logMessage": "tick i={i}" }] }),
            )["body"]["breakpoints"][0]
                .clone()
        };
        let first = set(&mut c);
        c.ok("configurationDone", json!({}));
        c.wait_event(|e| e["event"] == "breakpoint");
        let id = format!("b{}", first["id"]);
        wait_entry(&mut c, |t| t["hits"].as_u64() >= Some(2));
        let lp = last(&c, &id);
        assert_eq!(lp["kind"], "logpoint", "{backend}: {lp}");
        assert_eq!(lp["breakpointId"], first["id"]);
        assert_eq!(lp["line"], 13);
        assert!(lp["latest"]["message"]
            .as_str()
            .unwrap()
            .starts_with("tick i="));
        assert_eq!(lp["latest"]["values"][0]["name"], "i");
        let second = set(&mut c);
        assert_eq!(
            second["id"], first["id"],
            "{backend}: same logpoint, same id"
        );
        assert_eq!(second["verified"], true, "{backend}: armed already");
        let before = lp["hits"].as_u64().unwrap();
        c.drain_for(Duration::from_millis(400));
        assert!(
            last(&c, &id)["hits"].as_u64() >= Some(before),
            "{backend}: count kept"
        );
        c.ok("disconnect", json!({}));
    }
}

#[test]
fn a_snapshot_shows_the_latest_hit_as_a_read_only_thread() {
    for backend in backends() {
        let (mut c, _adapter) = ticker_session(backend);
        let id = trace_tick(&mut c);
        let early = c.request("snapshot", json!({ "id": id }));
        assert_eq!(early["success"], false, "no hit yet");
        c.ok("configurationDone", json!({}));
        wait_entry(&mut c, |t| t["functions"][0]["return"].is_object());
        let r = c.ok("snapshot", json!({ "id": id }));
        assert_eq!(r["body"]["threadId"], 2);
        let stopped = c.wait_event(|e| e["event"] == "stopped");
        assert_eq!(stopped["body"]["reason"], "snapshot");
        assert_eq!(stopped["body"]["threadId"], 2);
        assert_eq!(stopped["body"]["allThreadsStopped"], false);
        let threads = c.ok("threads", json!({}));
        assert_eq!(
            threads["body"]["threads"][1]["name"],
            "main.tick: latest hit (snapshot)"
        );
        let stack = c.ok("stackTrace", json!({ "threadId": 2 }));
        let frame = &stack["body"]["stackFrames"][0];
        assert_eq!(frame["line"], 13, "{backend}: {frame}");
        assert_eq!(frame["source"]["path"], attach_source());
        let scopes = c.ok("scopes", json!({ "frameId": frame["id"] }));
        assert_eq!(scopes["body"]["scopes"][0]["name"], "Arguments");
        assert_eq!(scopes["body"]["scopes"][1]["name"], "Results");
        let args = c.ok(
            "variables",
            json!({ "variablesReference": scopes["body"]["scopes"][0]["variablesReference"] }),
        );
        let i = &args["body"]["variables"][0];
        assert_eq!(i["name"], "i", "{backend}: {args}");
        let i_value: i64 = i["value"].as_str().unwrap().parse().unwrap();
        assert_eq!(i["presentationHint"]["attributes"][0], "readOnly");
        let results = c.ok(
            "variables",
            json!({ "variablesReference": scopes["body"]["scopes"][1]["variablesReference"] }),
        );
        let r0: i64 = results["body"]["variables"][0]["value"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(r0 % 2 == 0, "{backend}: tick returns 2i: {results}");

        // Stepping moves the snapshot to the newest hit.
        std::thread::sleep(Duration::from_millis(300));
        c.ok("next", json!({ "threadId": 2 }));
        c.wait_event(|e| e["event"] == "stopped");
        let stack = c.ok("stackTrace", json!({ "threadId": 2 }));
        let scopes = c.ok(
            "scopes",
            json!({ "frameId": stack["body"]["stackFrames"][0]["id"] }),
        );
        let args = c.ok(
            "variables",
            json!({ "variablesReference": scopes["body"]["scopes"][0]["variablesReference"] }),
        );
        let newer: i64 = args["body"]["variables"][0]["value"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(newer > i_value, "{backend}: {newer} after {i_value}");

        // Continue closes it; the program was never stopped.
        let r = c.ok("continue", json!({ "threadId": 2 }));
        assert_eq!(r["body"]["allThreadsContinued"], false);
        c.wait_event(|e| e["event"] == "thread" && e["body"]["reason"] == "exited");
        let threads = c.ok("threads", json!({}));
        assert_eq!(threads["body"]["threads"].as_array().map(Vec::len), Some(1));
        assert_eq!(
            c.request("stackTrace", json!({ "threadId": 1 }))["success"],
            false
        );

        // Pause stops nothing: it shows the trace hit last as a snapshot.
        c.ok("pause", json!({ "threadId": 1 }));
        let stopped = c.wait_event(|e| e["event"] == "stopped");
        assert_eq!(stopped["body"]["threadId"], 2, "{backend}: {stopped}");
        assert!(stopped["body"]["description"]
            .as_str()
            .unwrap()
            .contains("main.tick (the program keeps running)"));
        c.ok("disconnect", json!({}));
    }
}

#[test]
fn hits_lost_under_ebpf_are_reported_while_the_program_runs() {
    if !require_backend("ebpf") {
        return;
    }
    // A 16 KiB ring buffer overflows under a hot function; the loss is
    // counted by the kernel and reported in the events' `dropped`, not only
    // at the end.
    let (mut c, _adapter) = stdio_adapter_with(&[], &[("LOGPROBE_EBPF_RINGBUF_BYTES", "16384")]);
    launch(
        &mut c,
        "ebpf",
        "bench",
        &["300000", "target"],
        json!({ "hitsInterval": 100, "consoleVolume": "summary" }),
    );
    let id = c.ok(
        "traceFunctions",
        json!({ "functions": [{ "regex": "^main\\.target$" }] }),
    )["body"]["functions"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    c.ok("configurationDone", json!({}));
    let lost = c.wait_event(|e| {
        e["event"] == "logprobe/hits" && e["body"]["dropped"].as_u64() > Some(0)
            || e["event"] == "terminated"
    });
    assert_eq!(
        lost["event"], "logprobe/hits",
        "no loss reported while running"
    );
    c.run_to_end();
    c.drain_for(Duration::from_millis(400));
    let dropped = c
        .events
        .iter()
        .filter(|e| e["event"] == "logprobe/hits")
        .filter_map(|e| e["body"]["dropped"].as_u64())
        .max()
        .unwrap();
    // What arrived was counted; with what was lost it makes every call.
    let counted = last(&c, &id)["hits"].as_u64().unwrap();
    assert!(dropped > 0);
    assert!(
        counted < 300_000,
        "{counted} calls counted although hits were lost"
    );
    let log = c.output("important");
    assert!(log.contains(&format!("{dropped} events dropped")), "{log}");
    // The kernel counts each loss in its probe's slot too: the one trace
    // lost them all.
    assert_eq!(last(&c, &id)["dropped"].as_u64(), Some(dropped));
    c.ok("disconnect", json!({}));
}

#[test]
fn a_rate_limit_in_the_launch_arguments_holds_each_trace_and_logpoint_to_its_budget() {
    const CALLS: u64 = 5000;
    const RATE: u64 = 40;
    let path = root().join("fixtures/go/bench/main.go");
    let source = path.display().to_string();
    let text = std::fs::read_to_string(&path).unwrap();
    let line = 1 + text
        .lines()
        .position(|l| l.trim() == "sink += target(i)")
        .expect("the loop's call of target") as u64;
    for backend in backends() {
        let (mut c, _adapter) = stdio_adapter();
        launch(
            &mut c,
            backend,
            "bench",
            &[&CALLS.to_string(), "target"],
            json!({ "hitsInterval": 100, "rateLimit": RATE }),
        );
        let trace = c.ok(
            "traceFunctions",
            json!({ "functions": [{ "regex": "^main\\.target$" }] }),
        )["body"]["functions"][0]["id"]
            .as_str()
            .unwrap()
            .to_string();
        // The loop's call of target: a logpoint with a budget of its own.
        let bp = c.ok(
            "setBreakpoints",
            json!({ "source": { "path": source },
                    "breakpoints": [{ "line": line, "logMessage": "at i={i}" }] }),
        )["body"]["breakpoints"][0]["id"]
            .clone();
        let logpoint = format!("b{bp}");
        let started = std::time::Instant::now();
        c.ok("configurationDone", json!({}));
        c.run_to_end();
        let took = started.elapsed().as_secs();
        c.drain_for(Duration::from_millis(600));
        // A bucket of one second's worth, refilled at RATE a second, over
        // the session's time and a second of slack.
        let budget = RATE + RATE * (took + 1);
        let calls = numbers_after(&c, "> goroutine(1): main.target(").len() as u64;
        let returns = c
            .output("console")
            .matches(">> goroutine(1): main.target => (")
            .count() as u64;
        let messages = numbers_after(&c, "at i=").len() as u64;
        let mut limited = 0;
        for (id, shown) in [(&trace, calls), (&logpoint, messages)] {
            let t = last(&c, id);
            let over = t["limited"].as_u64().unwrap();
            assert_eq!(t["hits"].as_u64(), Some(shown), "{backend} {id}: {t}");
            assert_eq!(shown + over, CALLS, "{backend} {id}: shown + limited");
            assert!(
                (RATE..=budget).contains(&shown),
                "{backend} {id}: {shown} shown, budget {budget}"
            );
            limited += over;
        }
        assert_eq!(calls, returns, "{backend}: a return for every call shown");
        let body_limited = c
            .events
            .iter()
            .filter(|e| e["event"] == "logprobe/hits")
            .filter_map(|e| e["body"]["limited"].as_u64())
            .max();
        assert_eq!(body_limited, Some(limited), "{backend}");
        let log = c.output("important");
        assert!(
            log.contains(&format!(
                "logprobe: {limited} hits over the rate limit were not shown"
            )),
            "{backend}: {log}"
        );
        c.ok("disconnect", json!({}));
    }
}
