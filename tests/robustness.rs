//! Mutated copies of the fixture binaries and of the recorded DAP sessions
//! (fuzz/corpus/dap/) never panic the real `logprobe`: the CLI ends with a
//! one-line error, and the DAP server answers and keeps serving
//! (docs/fuzzing.md). The in-process fuzzer is scripts/fuzz.sh.

// Test helpers fail by panicking, as tests do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use common::dap::Client;
use common::*;
use logprobe::fuzzing::Rng;
use serde_json::json;

const INTERESTING: &[u64] = &[
    0,
    1,
    0x7f,
    0x80,
    0xff,
    0xffff,
    0x7fff_ffff,
    0xffff_ffff,
    u64::MAX,
];

/// File ranges of `data`'s section headers and non-loaded sections (DWARF,
/// symbols, strings) and of `.gopclntab`: what logprobe reads and the
/// kernel does not need to run the program.
fn metadata_ranges(data: &[u8]) -> Vec<(usize, usize)> {
    use object::{Object, ObjectSection};
    let file = object::File::parse(data).expect("a fixture is ELF");
    let mut out = Vec::new();
    let u64_at = |at: usize| u64::from_le_bytes(data[at..at + 8].try_into().unwrap()) as usize;
    let shoff = u64_at(0x28);
    let shnum = u16::from_le_bytes(data[0x3c..0x3e].try_into().unwrap()) as usize;
    out.push((shoff, shoff + shnum * 64));
    for s in file.sections() {
        let name = s.name().unwrap_or_default();
        let wanted = name.starts_with(".debug_")
            || name.starts_with(".zdebug_")
            || matches!(name, ".symtab" | ".strtab" | ".gopclntab");
        if let (true, Some((off, size))) = (wanted, s.file_range()) {
            out.push((off as usize, (off + size.min(1 << 16)) as usize));
        }
    }
    out.retain(|&(a, b)| a < b && b <= data.len());
    out
}

/// `data` with a few edits, in `ranges` when given (else anywhere, and
/// maybe truncated).
fn mutate(rng: &mut Rng, data: &[u8], ranges: &[(usize, usize)]) -> Vec<u8> {
    let mut out = data.to_vec();
    for _ in 0..1 + rng.below(6) {
        if out.is_empty() {
            out.push(b'{');
        }
        let at = match ranges {
            [] => rng.below(out.len()),
            r => {
                let (a, b) = r[rng.below(r.len())];
                a + rng.below(b - a)
            }
        };
        match rng.below(4) {
            0 => out[at] ^= 1 << rng.below(8),
            1 => out[at] = rng.next_u64() as u8,
            2 => {
                let v = INTERESTING[rng.below(INTERESTING.len())].to_le_bytes();
                let n = [1, 2, 4, 8][rng.below(4)];
                for (i, b) in v.iter().take(n).enumerate() {
                    if let Some(x) = out.get_mut(at + i) {
                        *x = *b;
                    }
                }
            }
            _ if ranges.is_empty() => out.truncate(at),
            _ => out[at] = out[at].wrapping_add(1),
        }
    }
    out
}

/// Writes mutated copies of fixture `name` into `dir` (executable).
fn mutated_copies(
    name: &str,
    n: usize,
    seed: u64,
    metadata_only: bool,
    dir: &Path,
) -> Vec<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let data = std::fs::read(fixture(name)).expect("read the fixture");
    let ranges = if metadata_only {
        metadata_ranges(&data)
    } else {
        Vec::new()
    };
    let mut rng = Rng(seed);
    (0..n)
        .map(|i| {
            let path = dir.join(format!("{name}-{i}"));
            std::fs::write(&path, mutate(&mut rng, &data, &ranges)).expect("write a copy");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
            path
        })
        .collect()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("logprobe-robust-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// logprobe ended on its own terms: no panic, no signal; a failure is one
/// `logprobe: ...` line.
fn assert_clean(what: &str, out: &Output) {
    use std::os::unix::process::ExitStatusExt;
    let err = stderr(out);
    assert!(
        out.status.signal().is_none(),
        "{what}: killed by signal {:?}\n{err}",
        out.status.signal()
    );
    assert_ne!(out.status.code(), Some(101), "{what}: exit 101\n{err}");
    assert!(!err.contains("panicked"), "{what}: panic\n{err}");
}

#[test]
fn functions_on_mutated_binaries_is_an_error_or_a_list_never_a_panic() {
    let dir = scratch("functions");
    let mut copies = Vec::new();
    for (i, name) in ["seed", "seed-stripped", "c-values", "cpp-values"]
        .iter()
        .enumerate()
    {
        copies.extend(mutated_copies(name, 12, 100 + i as u64, false, &dir));
        copies.extend(mutated_copies(name, 12, 200 + i as u64, true, &dir));
    }
    let mut errors = 0;
    for copy in &copies {
        let mut cmd = logprobe();
        cmd.arg("functions").arg(copy);
        let out = run_with_timeout(cmd, Duration::from_secs(60));
        assert_clean(&format!("logprobe functions {}", copy.display()), &out);
        if !out.status.success() {
            errors += 1;
            assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
            assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
        }
    }
    eprintln!(
        "{} mutated binaries, {errors} refused with an error",
        copies.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn trace_on_binaries_with_mutated_debug_info_never_panics() {
    if !require(is_root(), "tracing needs root") {
        return;
    }
    let dir = scratch("trace");
    let mut copies = mutated_copies("seed", 8, 300, true, &dir);
    copies.extend(mutated_copies("c-values", 6, 301, true, &dir));
    for copy in &copies {
        let mut cmd = logprobe();
        cmd.args(["trace", "--backend", "ptrace", "main|add", "--"])
            .arg(copy);
        let out = run_with_timeout(cmd, Duration::from_secs(60));
        assert_clean(&format!("logprobe trace {}", copy.display()), &out);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A request with a seq no recorded session uses.
fn probe(c: &mut Client, seq: i64, command: &str, args: serde_json::Value) -> serde_json::Value {
    let body =
        json!({"seq": seq, "type": "request", "command": command, "arguments": args}).to_string();
    c.send_raw(format!("Content-Length: {}\r\n\r\n{body}", body.len()).as_bytes());
    c.response_to(seq)
}

/// The bodies of a recorded session, with programs that do not exist and
/// no request that attaches or ends the session.
fn recorded_bodies(path: &Path) -> Vec<Vec<u8>> {
    let text = std::fs::read_to_string(path).expect("read a recorded session");
    let text = text
        .replace("@ROOT@", "/nonexistent-logprobe-robustness")
        .replace("\"attach\"", "\"attach-not\"")
        .replace("\"disconnect\"", "\"disconnect-not\"")
        .replace("\"terminate\"", "\"terminate-not\"");
    let mut bodies = Vec::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("Content-Length: ") {
        rest = &rest[at + 16..];
        let Some(end) = rest.find("\r\n\r\n") else {
            break;
        };
        let Ok(len) = rest[..end].trim().parse::<usize>() else {
            continue;
        };
        let body = rest.get(end + 4..end + 4 + len).unwrap_or(&rest[end + 4..]);
        bodies.push(body.as_bytes().to_vec());
        rest = &rest[end + 4 + body.len()..];
    }
    bodies
}

#[test]
fn dap_server_answers_mutated_sessions_and_keeps_serving() {
    let corpus = root().join("fuzz/corpus/dap");
    let mut sessions: Vec<PathBuf> = std::fs::read_dir(&corpus)
        .expect("the recorded sessions")
        .map(|e| e.expect("entry").path())
        .collect();
    sessions.sort();
    let dir = scratch("dap");
    let binaries = mutated_copies("seed", 6, 400, false, &dir);
    // Over stdio the session runs on the main thread: a panic there is
    // exit status 101; one on another thread is logged.
    let log = dir.join("dap.log");
    let (mut c, adapter) =
        common::dap::stdio_adapter_with(&["--log", &log.display().to_string()], &[]);
    let mut rng = Rng(7);
    let mut seq = 1_000_000;
    let r = probe(
        &mut c,
        seq,
        "initialize",
        json!({"adapterID": "robustness"}),
    );
    assert_eq!(r["success"], true, "{r}");
    let real = fixture("c-values").display().to_string();
    for round in 0..4 {
        for session in &sessions {
            // Well-framed messages with mutated bodies: each gets an answer
            // (a response or an output event), and the server goes on.
            for body in recorded_bodies(session) {
                let body = mutate(&mut rng, &body, &[]);
                let mut frame = format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes();
                frame.extend_from_slice(&body);
                c.send_raw(&frame);
            }
            seq += 1;
            let args = json!({"program": real, "filter": "scaled"});
            let r = probe(&mut c, seq, "functions", args);
            assert_eq!(r["success"], true, "after {}: {r}", session.display());
            assert!(r["body"].to_string().contains("scaled"), "{r}");
        }
        // The custom `functions` request on mutated binaries.
        for b in &binaries {
            seq += 1;
            let r = probe(
                &mut c,
                seq,
                "functions",
                json!({"program": b.display().to_string(), "limit": 5}),
            );
            assert!(r["success"].is_boolean(), "{r}");
        }
        // Broken framing last (it may swallow what follows as a body):
        // raw mutated bytes of a whole recording.
        if round == 3 {
            let raw = std::fs::read(&sessions[rng.below(sessions.len())]).expect("read");
            c.send_raw(&mutate(&mut rng, &raw, &[]));
        }
    }
    // Closing stdin ends the server, cleanly.
    drop(c);
    let status = adapter.into_inner().wait().expect("wait for the server");
    let err = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(status.code(), Some(0), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
