//! End-to-end tests of functions in shared libraries (issue 12 item 4):
//! `fixtures/c-lib` is a C program that loads `libgeom.so` at start
//! (DT_NEEDED, found through RUNPATH `$ORIGIN`). `libgeom.so:REGEX`
//! traces the library's functions with their values, launched and
//! attached, through the CLI and the DAP server, under every backend with
//! the same text.

// A test fails by panicking: what Cargo.toml denies in the adapter is how
// a test says what went wrong.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use common::dap::*;
use common::*;
use serde_json::json;

/// `s` with addresses written `0xADDR` and thread ids `T`.
fn masked(s: &str) -> String {
    let s = mask_addresses(s);
    regex::Regex::new(r"thread\(\d+\)")
        .unwrap()
        .replace_all(&s, "thread(T)")
        .into_owned()
}

const GEOM: &str = r#"> thread(T): geom_make(3, 4)
>> thread(T): geom_make => ({w = 3, h = 4})
> thread(T): geom_area({w = 3, h = 4})
>> thread(T): geom_area => (12)
> thread(T): geom_scale(0xADDR -> {w = 3, h = 4}, 2)
>> thread(T): geom_scale => (48)
> thread(T): geom_label(0xADDR "box", {w = 6, h = 8})
>> thread(T): geom_label => (9)
"#;

fn lines(out: &std::process::Output) -> String {
    trace_lines(out).iter().map(|l| masked(l) + "\n").collect()
}

#[test]
fn library_functions_are_traced_with_values_in_a_launched_program() {
    let by_path = format!("{}:^geom_", fixture("libgeom.so").display());
    for backend in backends() {
        for pattern in ["libgeom.so:^geom_", by_path.as_str()] {
            let out = trace(backend, pattern, "c-lib", &[], &[]);
            assert!(
                out.status.success(),
                "{backend} {pattern}: {}",
                stderr(&out)
            );
            assert_eq!(lines(&out), GEOM, "{backend} {pattern}");
            assert!(
                stdout(&out).contains("area 12 scaled 48 label 9\n"),
                "{backend}: {}",
                stdout(&out)
            );
        }
        // Without a library, the executable's functions only.
        let out = trace(backend, "^(geom_area|local_twice)$", "c-lib", &[], &[]);
        assert!(out.status.success(), "{backend}: {}", stderr(&out));
        assert_eq!(
            lines(&out),
            "> thread(T): local_twice(0)\n>> thread(T): local_twice => (0)\n",
            "{backend}"
        );
    }
}

#[test]
fn a_library_the_program_does_not_load_is_an_error_that_names_those_it_does() {
    let out = trace("ptrace", "libnothere.so:x", "c-lib", &[], &[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("loads no shared library named libnothere.so") && err.contains("libgeom.so"),
        "{err}"
    );
}

#[test]
fn library_functions_are_traced_in_an_attached_process() {
    if !require_attach() {
        return;
    }
    for backend in backends() {
        let rounds = 60;
        // c-lib does `rounds` rounds 50 ms apart after its "ready".
        let (mut target, pid, mut target_out) = start_ready("c-lib", rounds);
        let mut tracer = Reaper(Some(
            logprobe()
                .args(["trace", "--backend", backend, "-p", &pid.to_string()])
                .arg("libgeom.so:^geom_(area|scale)$")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .stdin(Stdio::null())
                .spawn()
                .expect("spawn logprobe"),
        ));
        let mut trace_out = BufReader::new(tracer.child().stdout.take().expect("stdout"));
        let mut seen = Vec::new();
        while seen.len() < 4 {
            let mut l = String::new();
            assert!(
                trace_out.read_line(&mut l).expect("read") > 0,
                "{backend}: logprobe ended early"
            );
            seen.push(masked(l.trim_end()));
        }
        // The first line seen may be any of a round's four.
        let round = [
            "> thread(T): geom_area({w = 3, h = 4})",
            ">> thread(T): geom_area => (12)",
            "> thread(T): geom_scale(0xADDR -> {w = 3, h = 4}, 2)",
            ">> thread(T): geom_scale => (48)",
        ];
        let first = round.iter().position(|l| *l == seen[0]);
        let first = first.unwrap_or_else(|| panic!("{backend}: {seen:?}"));
        for (i, l) in seen.iter().enumerate() {
            assert_eq!(l, round[(first + i) % 4], "{backend}: {seen:?}");
        }
        let (code, err) = interrupt(&mut tracer);
        assert_eq!(code, Some(0), "{backend}: {err}");
        assert!(err.contains("detached"), "{backend}: {err}");
        // The program finishes on its own with the sum of every round.
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut target_out, &mut rest).expect("read");
        let status = target.child().wait().expect("wait c-lib");
        assert_eq!(status.code(), Some(0), "{backend}: c-lib died: {rest}");
        let sum = 69 * rounds + rounds * (rounds - 1);
        assert_eq!(rest, format!("done sum={sum}\n"), "{backend}");
    }
}

#[test]
fn a_launch_traces_library_functions_through_the_dap_server() {
    for backend in backends() {
        let (mut c, _adapter) = stdio_adapter();
        launch(
            &mut c,
            backend,
            "c-lib",
            &[],
            json!({"trace": ["libgeom.so:^geom_"]}),
        );
        c.ok("configurationDone", json!({}));
        let (console, program) = c.run_to_end();
        let traced: String = console
            .lines()
            .filter(|l| l.starts_with('>'))
            .map(|l| masked(l) + "\n")
            .collect();
        assert_eq!(traced, GEOM, "{backend}: {console}");
        assert!(
            program.contains("area 12 scaled 48 label 9"),
            "{backend}: {program}"
        );
    }
}
