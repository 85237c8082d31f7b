//! A mutation fuzzer for logprobe's readers that runs on stable Rust
//! (docs/fuzzing.md): the targets of `logprobe::fuzzing` fed mutated copies
//! of a seed corpus, for a bounded time, every panic caught and its input
//! saved with a one-line command that replays it.
//!
//! ```text
//! fuzz run TARGET [SECONDS] [--seed N]   fuzz TARGET for SECONDS (default 20)
//! fuzz repro TARGET FILE                 run TARGET once on FILE
//! ```
//!
//! Seeds are the files under `fuzz/corpus/TARGET/` and, for the binary
//! readers, the fixture binaries under `fixtures/bin/` (and their
//! `.gopclntab` sections), read at run time so that no large binary is
//! committed. Mutations: bit flips, random bytes, interesting integers
//! (0, 1, -1, powers of two and their neighbours, the input's length) and
//! small additions to the integers already there (length and offset
//! fields), truncations, deleted, duplicated and inserted chunks, splices
//! of two inputs, and for DAP streams `Content-Length` edits and JSON
//! tokens. Half the edits land in the places the readers look first (ELF
//! and program/section headers, `.debug_*` sections, the `.gopclntab`
//! header and function table). An input whose error message is new joins
//! the corpus, a cheap stand-in for coverage feedback.
//!
//! Crashes go to `fuzz/crashes/TARGET/` (`--crashes DIR` elsewhere); an
//! input that aborts the process or hangs is left in `.current` there and
//! `scripts/fuzz.sh` keeps it.

use std::collections::HashSet;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use logprobe::fuzzing::{self, Rng};

/// A run longer than this is reported as a hang.
const HANG: Duration = Duration::from_secs(20);

/// One corpus entry and where in it edits matter most.
#[derive(Clone)]
struct Entry {
    data: Arc<Vec<u8>>,
    hot: Arc<Vec<(usize, usize)>>,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Byte ranges of an ELF file that the readers parse first: the file
/// header, program and section headers, and the DWARF and Go sections.
fn hot_ranges(data: &[u8], target: &str) -> Vec<(usize, usize)> {
    use object::{Object, ObjectSection};
    let mut hot = vec![(0, data.len().min(64))];
    if target == "pclntab" || target == "dap" {
        // The header and the start of the function table.
        return vec![(0, data.len().min(4096))];
    }
    let u64_at = |at: usize| -> Option<usize> {
        let b: [u8; 8] = data.get(at..at + 8)?.try_into().ok()?;
        usize::try_from(u64::from_le_bytes(b)).ok()
    };
    let u16_at = |at: usize| -> Option<usize> {
        let b: [u8; 2] = data.get(at..at + 2)?.try_into().ok()?;
        Some(u16::from_le_bytes(b) as usize)
    };
    if let (Some(phoff), Some(phnum)) = (u64_at(0x20), u16_at(0x38)) {
        hot.push((phoff, phoff.saturating_add(phnum * 56)));
    }
    if let (Some(shoff), Some(shnum)) = (u64_at(0x28), u16_at(0x3c)) {
        hot.push((shoff, shoff.saturating_add(shnum * 64)));
    }
    if let Ok(file) = object::File::parse(data) {
        for s in file.sections() {
            let name = s.name().unwrap_or_default();
            let wanted = match target {
                "dwarf" => name.starts_with(".debug_") || name.starts_with(".zdebug_"),
                _ => name == ".gopclntab" || name == ".symtab" || name == ".strtab",
            };
            if let (true, Some((off, size))) = (wanted, s.file_range()) {
                let (off, size) = (off as usize, size as usize);
                // The first bytes of a big section are its headers.
                hot.push((off, off + size.min(1 << 16)));
            }
        }
    }
    hot.retain(|&(a, b)| a < b && b <= data.len());
    hot
}

fn entry(data: Vec<u8>, target: &str) -> Entry {
    let hot = hot_ranges(&data, target);
    Entry {
        data: Arc::new(data),
        hot: Arc::new(hot),
    }
}

/// The seed corpus of `target`.
fn seeds(target: &str) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    let dir = root().join("fuzz/corpus").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("no seed corpus at {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    for f in files {
        let data = std::fs::read(&f).with_context(|| format!("reading {}", f.display()))?;
        out.push(entry(data, target));
    }
    // Fixture binaries (built by scripts/build-fixtures.sh), when present:
    // small C and C++ ones, and Go's with and without DWARF.
    let bins: &[&str] = match target {
        "elf" => &[
            "c-values",
            "cpp-values",
            "seed-nodwarf",
            "seed-stripped",
            "seed",
        ],
        "dwarf" => &["c-values-debug", "c-values", "cpp-values", "seed-debug"],
        "pclntab" => &["seed-stripped", "values"],
        _ => &[],
    };
    for name in bins {
        let Ok(data) = std::fs::read(root().join("fixtures/bin").join(name)) else {
            continue;
        };
        if target == "pclntab" {
            if let Some(section) = fuzzing::gopclntab_section(&data) {
                out.push(entry(section, target));
            }
        } else {
            out.push(entry(data, target));
        }
    }
    if out.is_empty() {
        bail!("no seeds for {target}");
    }
    Ok(out)
}

const INTERESTING: &[u64] = &[
    0,
    1,
    2,
    7,
    8,
    0x10,
    0x40,
    0x7f,
    0x80,
    0xff,
    0x100,
    0x7fff,
    0x8000,
    0xffff,
    0x1_0000,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_fffe,
    0xffff_ffff,
    0x1_0000_0000,
    0x7fff_ffff_ffff_ffff,
    0x8000_0000_0000_0000,
    u64::MAX - 1,
    u64::MAX,
];

const DAP_TOKENS: &[&str] = &[
    "Content-Length: ",
    "\r\n\r\n",
    "\r\n",
    "\n",
    ":",
    "null",
    "-1",
    "0",
    "1e999",
    "-9223372036854775809",
    "18446744073709551616",
    "4294967296",
    "\"\"",
    "\"\\ud800\"",
    "\"\\u0000\"",
    "{}",
    "[]",
    "[[[[[[[[[[[[[[[[",
    "true",
    "\"request\"",
    "\"response\"",
    "\"launch\"",
    "\"setBreakpoints\"",
    "\"traceFunctions\"",
    "\"setConsoleVolume\"",
    "\"backend\":",
    "\"ptrace\"",
    "\"ebpf\"",
    "\"bpf\"",
    "\"maxDepth\":",
    "\"consoleVolume\":\"sample\"",
    "\"condition\":",
    "\"hitCondition\":",
    "\"logMessage\":",
    "\"{x\"",
    "\"{{}}{\"",
    "\"x >\"",
    "\"% 0\"",
    "\">= -1\"",
    "\"(((((((((((((((((((((((((((((((x\"",
    "\"a[b[c[d[e]]]]\"",
    "\"len(\"",
    "\"regex\":\"(\"",
    "\"regex\":\"a{99999}\"",
    "\"arguments\":",
    "\"seq\":",
    "\"command\":",
    "\"type\":",
    "\u{feff}",
    "\u{fffd}",
];

fn put_int(data: &mut [u8], at: usize, width: usize, v: u64) {
    let bytes = v.to_le_bytes();
    for (i, &byte) in bytes.iter().enumerate().take(width) {
        if let Some(b) = data.get_mut(at + i) {
            *b = byte;
        }
    }
}

fn get_int(data: &[u8], at: usize, width: usize) -> u64 {
    let mut bytes = [0u8; 8];
    for (i, b) in bytes.iter_mut().enumerate().take(width) {
        *b = data.get(at + i).copied().unwrap_or(0);
    }
    u64::from_le_bytes(bytes)
}

/// A position to edit: half the time in a hot range.
fn position(rng: &mut Rng, len: usize, hot: &[(usize, usize)]) -> usize {
    if !hot.is_empty() && rng.chance(2) {
        let (a, b) = hot[rng.below(hot.len())];
        return (a + rng.below(b - a)).min(len.saturating_sub(1));
    }
    rng.below(len)
}

/// One mutation of `data`, in place.
fn mutate_once(
    rng: &mut Rng,
    data: &mut Vec<u8>,
    hot: &[(usize, usize)],
    target: &str,
    other: &[u8],
) {
    if data.is_empty() {
        data.push(rng.next_u64() as u8);
        return;
    }
    let len = data.len();
    let at = position(rng, len, hot);
    let widths = [1, 2, 4, 8];
    let kinds = if target == "dap" { 11 } else { 9 };
    match rng.below(kinds) {
        0 => data[at] ^= 1 << rng.below(8),
        1 => data[at] = rng.next_u64() as u8,
        2 => {
            let width = widths[rng.below(4)];
            let mut v = match rng.below(4) {
                0 => len as u64,
                _ => INTERESTING[rng.below(INTERESTING.len())],
            };
            if rng.chance(4) {
                v = v.swap_bytes() >> (64 - 8 * width as u32);
            }
            put_int(data, at, width, v);
        }
        3 => {
            // A length or offset field a little off.
            let width = widths[rng.below(4)];
            let delta = rng.below(33) as u64;
            let v = get_int(data, at, width);
            let v = if rng.chance(2) {
                v.wrapping_add(delta)
            } else {
                v.wrapping_sub(delta)
            };
            put_int(data, at, width, v);
        }
        4 => {
            let keep = if rng.chance(2) { at } else { rng.below(len) };
            data.truncate(keep);
        }
        5 => {
            let n = (1 + rng.below(64)).min(len - at);
            data.drain(at..at + n);
        }
        6 => {
            // Duplicate a chunk (a repeated record).
            let n = (1 + rng.below(256)).min(len - at);
            let chunk: Vec<u8> = data[at..at + n].to_vec();
            let to = rng.below(len + 1);
            data.splice(to..to, chunk);
        }
        7 => {
            // Splice: this input's start, the other's end.
            if !other.is_empty() {
                let from = rng.below(other.len());
                data.truncate(at);
                data.extend_from_slice(&other[from..]);
            }
        }
        8 => {
            // Overwrite with a chunk of the other input.
            if !other.is_empty() {
                let from = rng.below(other.len());
                let n = (1 + rng.below(64)).min(other.len() - from).min(len - at);
                data[at..at + n].copy_from_slice(&other[from..from + n]);
            }
        }
        9 => {
            // Content-Length: a number that is not the body's length.
            let text = String::from_utf8_lossy(data).into_owned();
            let starts: Vec<usize> = text
                .match_indices("Content-Length: ")
                .map(|(i, _)| i + 16)
                .collect();
            if let Some(&s) = starts.get(rng.below(starts.len())) {
                let end = text[s..].find('\r').map_or(text.len(), |e| s + e);
                let old: i64 = text[s..end].trim().parse().unwrap_or(0);
                let new = match rng.below(4) {
                    0 => (INTERESTING[rng.below(INTERESTING.len())]).to_string(),
                    1 => old.wrapping_add(rng.below(9) as i64 - 4).to_string(),
                    2 => format!("-{}", rng.below(5)),
                    _ => String::from(
                        ["", " ", "x", "1 2", "0x10", "+3", "99999999999999999999"][rng.below(7)],
                    ),
                };
                if s <= data.len() && end <= data.len() {
                    data.splice(s..end, new.into_bytes());
                }
            }
        }
        _ => {
            let token = DAP_TOKENS[rng.below(DAP_TOKENS.len())].as_bytes();
            if rng.chance(2) {
                data.splice(at..at, token.iter().copied());
            } else {
                let n = (1 + rng.below(16)).min(len - at);
                data.splice(at..at + n, token.iter().copied());
            }
        }
    }
}

/// A mutated copy of `base`: one to eight edits.
fn mutate(rng: &mut Rng, base: &Entry, other: &Entry, target: &str) -> Vec<u8> {
    let mut data = base.data.as_ref().clone();
    for _ in 0..1 + rng.below(8) {
        mutate_once(rng, &mut data, &base.hot, target, &other.data);
    }
    data
}

/// The message of the last panic, with its place.
static PANIC: Mutex<Option<String>> = Mutex::new(None);

fn install_panic_hook() {
    panic::set_hook(Box::new(|info| {
        let message = match info.payload().downcast_ref::<&str>() {
            Some(s) => s.to_string(),
            None => info
                .payload()
                .downcast_ref::<String>()
                .cloned()
                .unwrap_or_else(|| String::from("(no message)")),
        };
        let place = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        if let Ok(mut p) = PANIC.lock() {
            *p = Some(format!("{message} at {place}"));
        }
        if std::env::var_os("FUZZ_BACKTRACE").is_some() {
            eprintln!("{}", std::backtrace::Backtrace::force_capture());
        }
    }));
}

/// Runs `target` on `data`: `Ok(Err(message))` for an error, `Err(panic)`.
fn run_one(target: &str, data: &[u8]) -> std::result::Result<Result<()>, String> {
    panic::catch_unwind(AssertUnwindSafe(|| fuzzing::run(target, data))).map_err(|_| {
        PANIC
            .lock()
            .ok()
            .and_then(|mut p| p.take())
            .unwrap_or_else(|| String::from("panic"))
    })
}

/// An error message without its numbers: inputs with a new one are kept.
fn error_class(e: &anyhow::Error) -> String {
    format!("{e:#}")
        .chars()
        .filter(|c| !c.is_ascii_digit())
        .take(48)
        .collect()
}

fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

fn fuzz(target: &str, seconds: u64, seed: u64, crashes: &Path) -> Result<bool> {
    if !fuzzing::TARGETS.contains(&target) {
        bail!(
            "no fuzz target '{target}' (targets: {})",
            fuzzing::TARGETS.join(", ")
        );
    }
    let dir = crashes.join(target);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let current = dir.join(".current");
    let mut corpus = seeds(target)?;
    let seed_count = corpus.len();
    let mut rng = Rng(seed);
    let mut classes: HashSet<String> = HashSet::new();
    // Seeds run first, unmutated.
    for e in &corpus {
        if let Ok(Err(err)) = run_one(target, &e.data) {
            classes.insert(error_class(&err));
        }
    }
    // A watchdog: a run that never ends leaves its input in `.current`.
    let started_run = Arc::new(AtomicU64::new(0));
    {
        let started_run = started_run.clone();
        let current = current.clone();
        let target = target.to_string();
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_secs(1));
            let at = started_run.load(Ordering::SeqCst);
            if at != 0 && now_ms().saturating_sub(at) > HANG.as_millis() as u64 {
                eprintln!(
                    "HANG {target}: one run took over {}s; input in {}\n  repro: {}",
                    HANG.as_secs(),
                    current.display(),
                    repro(&target, &current)
                );
                std::process::exit(3);
            }
        });
    }
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let (mut runs, mut errors, mut found) = (0u64, 0u64, 0usize);
    let mut seen_crashes: HashSet<u64> = HashSet::new();
    while Instant::now() < deadline {
        let base = corpus[rng.below(corpus.len())].clone();
        let other = corpus[rng.below(corpus.len())].clone();
        let input = mutate(&mut rng, &base, &other, target);
        std::fs::write(&current, &input)
            .with_context(|| format!("writing {}", current.display()))?;
        started_run.store(now_ms(), Ordering::SeqCst);
        let outcome = run_one(target, &input);
        started_run.store(0, Ordering::SeqCst);
        runs += 1;
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                errors += 1;
                let class = error_class(&e);
                if corpus.len() < 256 && classes.insert(class) {
                    corpus.push(Entry {
                        data: Arc::new(input),
                        hot: base.hot.clone(),
                    });
                }
            }
            Err(message) => {
                let hash = fnv(&input);
                if !seen_crashes.insert(hash) {
                    continue;
                }
                found += 1;
                let path = dir.join(format!("crash-{hash:016x}"));
                std::fs::write(&path, &input)
                    .with_context(|| format!("writing {}", path.display()))?;
                println!("CRASH {target}: {message}");
                println!(
                    "  input: {}\n  repro: {}",
                    path.display(),
                    repro(target, &path)
                );
            }
        }
    }
    let _ = std::fs::remove_file(&current);
    println!(
        "fuzz {target}: {runs} runs in {seconds}s ({} seeds, {} kept, {errors} errors, {found} crashes; seed {seed})",
        seed_count,
        corpus.len() - seed_count,
    );
    Ok(found == 0)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(1)
}

fn repro(target: &str, path: &Path) -> String {
    format!(
        "cargo run --profile fuzz --example fuzz -- repro {target} {}",
        path.display()
    )
}

fn main() {
    match real_main() {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("fuzz: {e:#}");
            std::process::exit(2);
        }
    }
}

fn real_main() -> Result<i32> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut positional = Vec::new();
    let mut seed = None;
    let mut crashes = root().join("fuzz/crashes");
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--seed" => {
                seed = Some(
                    it.next()
                        .context("--seed N")?
                        .parse::<u64>()
                        .context("--seed N")?,
                )
            }
            "--crashes" => crashes = PathBuf::from(it.next().context("--crashes DIR")?),
            _ => positional.push(a.as_str()),
        }
    }
    install_panic_hook();
    match positional.as_slice() {
        ["run", target, rest @ ..] => {
            let seconds = match rest.first() {
                Some(s) => s.parse().context("SECONDS")?,
                None => 20,
            };
            let seed = seed.unwrap_or_else(now_ms);
            Ok(if fuzz(target, seconds, seed, &crashes)? { 0 } else { 1 })
        }
        ["repro", target, file] => {
            // The panic's backtrace too.
            std::env::set_var("FUZZ_BACKTRACE", "1");
            let data = std::fs::read(file).with_context(|| format!("reading {file}"))?;
            match run_one(target, &data) {
                Ok(Ok(())) => println!("ok"),
                Ok(Err(e)) => println!("error: {e:#}"),
                Err(message) => {
                    println!("CRASH {target}: {message}");
                    return Ok(1);
                }
            }
            Ok(0)
        }
        _ => bail!(
            "usage: fuzz run TARGET [SECONDS] [--seed N] [--crashes DIR] | fuzz repro TARGET FILE\n  targets: {}",
            fuzzing::TARGETS.join(", ")
        ),
    }
}
