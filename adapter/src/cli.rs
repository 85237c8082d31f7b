//! The command line: `logprobe trace`, `logprobe functions`, `logprobe dap`.
//!
//! A thin face over the engine (`trace`): clap parses the arguments into
//! the raw [`Options`] that `config` resolves and a [`Request`]; the
//! engine runs the trace; this prints what it shows to stdout, one line
//! per event (text, or JSON with `--json`), written as they happen so they
//! interleave with the traced program's own output. Messages from logprobe
//! itself go to stderr, prefixed `logprobe:`.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

use crate::config::{BackendChoice, Env, GoPackage, Options, Style, TraceConfig};
use crate::gobuild;
use crate::image::Image;
use crate::plan::Limits;
use crate::trace::{self, Launch, Outcome, Request, Shown, Sink, StopHandle, Target, Trace};

#[derive(Parser, Debug)]
#[command(
    name = "logprobe",
    version,
    about = "Trace function calls without a debugger session: ptrace or eBPF uprobes, from the shell or an editor (DAP)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Trace every function matching REGEX: print each call with its
    /// arguments and each return with its results.
    ///
    /// What runs: the program after `--` (with its arguments); or, when
    /// two words come before `--`, the Go package PACKAGE (`.`, `./cmd/x`,
    /// an import path), built with the `go` on PATH (`-gcflags=all=-N -l`
    /// unless --optimized) into a temporary directory that is removed when
    /// the trace ends, the words after `--` its arguments; `--test` builds
    /// the package's test binary (`go test -c`; PACKAGE defaults to `.`)
    /// and runs it in the package's directory, the words after `--` its
    /// flags (`-- -test.run TestFoo`). Or the running process `-p PID`.
    #[command(override_usage = "logprobe trace [OPTIONS] REGEX -- PROGRAM [ARGS]...
       logprobe trace [OPTIONS] PACKAGE REGEX [-- ARGS...]
       logprobe trace [OPTIONS] --test [PACKAGE] REGEX [-- -test.run TestFoo ...]
       logprobe trace [OPTIONS] -p PID REGEX")]
    Trace(TraceArgs),
    /// List the functions of PROGRAM that can be traced, sorted, with
    /// file:line (aligned after names of up to 40 characters).
    Functions {
        /// The executable to inspect.
        program: PathBuf,
        /// Only functions matching this regular expression.
        regex: Option<String>,
    },
    /// Serve the Debug Adapter Protocol (for editors) on stdin/stdout or TCP.
    Dap(crate::dap::DapArgs),
    /// Print a shell completion script: `source <(logprobe completions bash)`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Check what the eBPF and ptrace backends need on this machine, and
    /// say how to fix what is missing (exit status 1 when eBPF cannot work).
    Doctor,
    /// The probe sites `trace` would arm: kind, file offset, address,
    /// function (for the benchmarks' bare-uprobe floor); `uretprobe` for
    /// the function entry where eBPF sees the returns listed as `return`;
    /// then a `#` line per function saying why its returns are seen so.
    #[command(hide = true)]
    Probes { program: PathBuf, regex: String },
}

#[derive(clap::Args, Debug)]
pub struct TraceArgs {
    /// `REGEX`, the functions to trace (Go regular expression syntax; `foo`
    /// matches `main.foo`), or `PACKAGE REGEX`: the Go package to build
    /// and trace, then the functions.
    #[arg(value_names = ["PACKAGE|REGEX", "REGEX"], num_args = 1..=2, required = true)]
    pub targets: Vec<String>,
    /// Attach to this running process instead of launching one.
    #[arg(short, long, conflicts_with = "command")]
    pub pid: Option<i32>,
    /// Build and trace the Go package's test binary (`go test -c`); the
    /// arguments after `--` are its flags (`-test.run TestFoo`).
    #[arg(short = 't', long, conflicts_with = "pid")]
    pub test: bool,
    /// Build the Go package as `go build` does by default (optimized and
    /// inlined) instead of with `-gcflags=all=-N -l`.
    #[arg(long, conflicts_with = "pid")]
    pub optimized: bool,
    /// More flags for building the Go package, as a shell splits them:
    /// `--build-flags='-tags=integration -ldflags="-X main.v=1"'`.
    #[arg(long, value_name = "FLAGS", conflicts_with = "pid")]
    pub build_flags: Option<String>,
    /// Probe mechanism: `auto` uses eBPF where the kernel and privileges
    /// allow, else ptrace (saying why).
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
    pub backend: BackendChoice,
    /// Show only the calls where this condition holds, in the language of
    /// logpoint conditions: `x > 3 && s == "go"`, `p.X == 1`, `len(b) < 5`
    /// (the probes themselves check what they can).
    #[arg(long, value_name = "EXPR")]
    pub cond: Option<String>,
    /// Show only the calls whose count (among those the condition let
    /// through) satisfies this: `5` (the 5th), `>= 5`, `% 10` (every 10th).
    #[arg(long, value_name = "COUNT")]
    pub hit_cond: Option<String>,
    /// Print this message for each call instead of its call and return
    /// lines: `{expr}` is replaced by a value (`{x}`, `{p.X}`, `{len(s)}`),
    /// `$FUNCTION`, `$GOROUTINE` and `$THREAD` name the hit's context,
    /// `{{` and `}}` are braces. Returns are not probed.
    #[arg(long, value_name = "TEMPLATE", conflicts_with = "json")]
    pub print: Option<String>,
    /// Prefix every line with the time of the hit.
    #[arg(long)]
    pub timestamp: bool,
    /// Show how long each call took on its return line (`in 1.2µs`),
    /// pairing returns with calls per goroutine or thread.
    #[arg(long)]
    pub duration: bool,
    /// Longest string shown, in bytes; longer ones end in `...+N more`.
    #[arg(long, default_value_t = Limits::default().max_string_len)]
    pub max_string_len: u32,
    /// Most elements of a slice, array or map shown.
    #[arg(long, default_value_t = Limits::default().max_array_values)]
    pub max_array_values: u32,
    /// Levels of pointers (and slice, map, interface contents) followed.
    #[arg(long, default_value_t = Limits::default().max_depth)]
    pub max_depth: u32,
    /// Most hits per second each traced function reports (a token bucket
    /// holding one second's worth, checked in the kernel under eBPF); the
    /// rest are counted and not shown. 0: no limit.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub rate_limit: u32,
    /// Most hits per second all traced functions together report. 0: no
    /// limit.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub total_rate_limit: u32,
    /// Show the N innermost frames of the call stack under each call and
    /// return line (as `dlv trace -s N`); under eBPF they are taken in the
    /// kernel at the hit, by frame pointers.
    #[arg(short, long, value_name = "N")]
    pub stack: Option<u32>,
    /// Trace the functions the matched ones call too, N levels deep (found
    /// from their call instructions), indented by call depth per goroutine
    /// or thread, as `dlv trace --follow-calls N`.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub follow_calls: u32,
    /// Print each event as one JSON object (kind, function, goroutine,
    /// timestamp, typed value trees) instead of a text line.
    #[arg(long)]
    pub json: bool,
    /// The program to launch and its arguments, after `--`; with a
    /// PACKAGE, the arguments of the binary built from it.
    #[arg(last = true, value_name = "PROGRAM] [ARGS")]
    pub command: Vec<String>,
}

impl TraceArgs {
    /// The options given, for [`TraceConfig::resolve`].
    fn options(&self) -> Options {
        Options {
            backend: Some(self.backend),
            max_string_len: Some(self.max_string_len),
            max_array_values: Some(self.max_array_values),
            max_depth: Some(self.max_depth),
            rate_limit: Some(self.rate_limit),
            total_rate_limit: Some(self.total_rate_limit),
            stack: self.stack,
            style: Style {
                timestamps: self.timestamp,
                durations: self.duration,
            },
            no_debug: false,
            volume: None,
            live_changes: false,
        }
    }

    /// The Go package to build, if any, and the functions' regex: two
    /// words before `--` are `PACKAGE REGEX`, one is `REGEX`.
    fn package_and_regex(&self) -> Result<(Option<GoPackage>, &str)> {
        let (package, regex) = match self.targets.as_slice() {
            [regex] => (None, regex.as_str()),
            [package, regex] => (Some(package.as_str()), regex.as_str()),
            _ => bail!("give REGEX, or PACKAGE REGEX, before `--`"),
        };
        let pkg = GoPackage::resolve(package, self.test, self.optimized, "--optimized")?;
        let pkg = GoPackage::with_build_flags(pkg, self.build_flags.as_deref(), "--build-flags")?;
        let is_path = |s: &str| s.starts_with('.') || s.starts_with('/');
        match (&pkg, package) {
            (Some(_), Some(p)) if self.pid.is_some() => {
                bail!("-p PID traces a running process, and {p} would be a Go package to build: give one or the other")
            }
            (Some(_), Some(p)) if std::path::Path::new(p).is_file() => bail!(
                "{p} is a file, not a Go package: to trace a program, give it after `--`: logprobe trace '{regex}' -- {p}"
            ),
            (Some(_), Some(p))
                if is_path(regex)
                    && std::path::Path::new(regex).is_dir()
                    && !std::path::Path::new(p).exists() =>
            {
                bail!("the package comes first, then the functions: logprobe trace {regex} '{p}'")
            }
            (None, None) if self.pid.is_none() && self.command.is_empty() && is_path(regex) => {
                bail!("give the functions to trace after the package: logprobe trace {regex} REGEX")
            }
            _ => {}
        }
        Ok((pkg, regex))
    }

    /// What to trace.
    fn request(&self, regex: &str) -> Request {
        Request::functions(regex)
            .condition(self.cond.as_deref())
            .hit_condition(self.hit_cond.as_deref())
            .message(self.print.as_deref())
            .follow_calls(self.follow_calls)
    }
}

/// Runs the command line; returns the process exit status.
pub fn run() -> Result<i32> {
    let cli = Cli::parse();
    match cli.command {
        Command::Trace(args) => run_trace(args),
        Command::Functions { program, regex } => list_functions(&program, regex.as_deref()),
        Command::Dap(args) => crate::dap::serve(args),
        Command::Doctor => crate::doctor::run(),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "logprobe", &mut std::io::stdout());
            Ok(0)
        }
        Command::Probes { program, regex } => list_probes(&program, &regex),
    }
}

fn list_probes(program: &std::path::Path, regex: &str) -> Result<i32> {
    let path = trace::resolve_program(program)?;
    let config = TraceConfig::resolve(&Options::default(), &Env::from_process())?;
    let trace = Trace::new(Arc::new(Image::open(&path)?), config);
    let prepared = trace.prepare(&Request::functions(regex))?;
    for s in &prepared.skipped {
        eprintln!("logprobe: cannot trace {s}");
    }
    let image = prepared.library().unwrap_or(trace.image());
    let mut uret_seen = Vec::new();
    for p in prepared.probes() {
        let name = &image.functions[p.func].name;
        println!(
            "{} {:#x} {:#x} {name}",
            p.kind.name(),
            p.file_offset,
            p.address
        );
        if let Some(at) = p.returns_at.filter(|at| !uret_seen.contains(at)) {
            uret_seen.push(at);
            println!("uretprobe {:#x} {:#x} {name}", at.file_offset, at.address);
        }
    }
    // Why each function's returns are seen as they are under eBPF.
    let mut analysis = crate::plan::unwind::Analysis::new(image)?;
    let mut explained = Vec::new();
    for p in prepared.probes() {
        if p.kind != crate::plan::ProbeKind::Return || explained.contains(&p.func) {
            continue;
        }
        explained.push(p.func);
        let r = analysis.returns_of(p.func)?;
        let how = match r.uretprobe {
            true => "a uretprobe",
            false => "probes on its RETs",
        };
        let name = &image.functions[p.func].name;
        println!("# {name}: returns through {how} under eBPF: {}", r.why);
    }
    Ok(0)
}

fn list_functions(program: &std::path::Path, regex: Option<&str>) -> Result<i32> {
    let path = trace::resolve_program(program)?;
    let image = Image::open(&path)?;
    let mut rows: Vec<(String, String)> = trace::list(&image, regex.unwrap_or(""))?
        .into_iter()
        .map(|id| {
            let f = &image.functions[id];
            let pos = match (&f.file, f.line) {
                (Some(file), Some(line)) => format!("{file}:{line}"),
                _ => String::from("?"),
            };
            (f.name.clone(), pos)
        })
        .collect();
    rows.sort();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for line in columns(&rows) {
        if writeln!(out, "{line}").is_err() {
            break; // e.g. piped into `head`
        }
    }
    Ok(0)
}

/// Widest name column `logprobe functions` pads to; longer names (C++
/// templates, Rust trait impls) are followed by their position without
/// padding, so one long name does not widen every line.
const NAME_COLUMN: usize = 40;

/// `name  file:line` lines, the positions in a column as wide as the
/// names need up to [`NAME_COLUMN`].
fn columns(rows: &[(String, String)]) -> Vec<String> {
    let width = rows
        .iter()
        .map(|(name, _)| name.chars().count())
        .filter(|&n| n <= NAME_COLUMN)
        .max()
        .unwrap_or(0);
    rows.iter()
        .map(|(name, pos)| {
            let pad = width.saturating_sub(name.chars().count());
            format!("{name}{:pad$}  {pos}", "")
        })
        .collect()
}

/// The stop handle signal handlers reach.
static STOP: OnceLock<(StopHandle, bool)> = OnceLock::new();

/// A Go package is being built: `go` runs in a process group of its own,
/// out of the terminal's reach, so Ctrl-C ends the build through `STOP`.
static BUILDING: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(sig: libc::c_int) {
    if let Some((stop, attached)) = STOP.get() {
        // A launched program got the terminal's SIGINT itself; logprobe
        // follows it to its end. Any other stop request ends the trace.
        if *attached || sig != libc::SIGINT || BUILDING.load(Ordering::SeqCst) {
            stop.request();
        }
    }
}

fn install_signal_handlers(stop: StopHandle, attached: bool) {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let _ = STOP.set((stop, attached));
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: `on_signal` only reads a OnceLock and BUILDING (atomic loads), stores
        // an atomic and calls tgkill, all async-signal-safe.
        if let Err(e) = unsafe { sigaction(sig, &action) } {
            eprintln!("logprobe: cannot handle {sig}: {e}");
        }
    }
}

/// Prints what a trace shows: one line per event on stdout (text or
/// JSON), logprobe's own messages on stderr.
struct Printer {
    json: bool,
    /// Lines not written yet: with a backend that reports hits in
    /// batches (eBPF), one write per batch instead of one per line.
    pending: String,
}

/// Writes of at most this many bytes to a pipe are never interleaved
/// with other writers' (POSIX PIPE_BUF on Linux).
const PIPE_BUF: usize = 4096;

/// Most bytes of lines held back until a batch ends.
const MAX_PENDING: usize = 1 << 16;

impl Printer {
    fn write_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        // Whole lines, at most PIPE_BUF bytes a write where possible: a
        // pipe keeps such writes whole, so the traced program's own output
        // (same pipe) never lands inside one of our lines.
        let mut rest = self.pending.as_bytes();
        while !rest.is_empty() {
            let cut = if rest.len() <= PIPE_BUF {
                rest.len()
            } else {
                match rest[..PIPE_BUF].iter().rposition(|&b| b == b'\n') {
                    Some(i) => i + 1,
                    // A single line longer than PIPE_BUF: written whole.
                    None => rest
                        .iter()
                        .position(|&b| b == b'\n')
                        .map_or(rest.len(), |i| i + 1),
                }
            };
            let _ = out.write_all(&rest[..cut]);
            let _ = out.flush();
            rest = &rest[cut..];
        }
        self.pending.clear();
    }
}

impl Sink for Printer {
    fn event(&mut self, shown: &Shown<'_>) {
        if self.json {
            match serde_json::to_string(shown.event) {
                Ok(j) => self.pending.push_str(&j),
                Err(e) => self
                    .pending
                    .push_str(&format!("{{\"error\":\"cannot serialize event: {e}\"}}")),
            }
        } else {
            self.pending.push_str(shown.text);
        }
        self.pending.push('\n');
        if self.pending.len() >= MAX_PENDING {
            self.write_pending();
        }
    }

    fn notice(&mut self, message: &str) {
        self.write_pending();
        eprintln!("logprobe: {message}");
    }

    fn flush(&mut self) {
        self.write_pending();
    }

    /// Not called: the CLI's program shares logprobe's stdout and stderr
    /// (`Launch::stdio` is `None`), relayed by the backend under eBPF.
    fn output(&mut self, fd: i32, bytes: &[u8]) {
        self.write_pending();
        let _ = if fd == 2 {
            std::io::stderr().write_all(bytes)
        } else {
            let mut out = std::io::stdout().lock();
            out.write_all(bytes).and_then(|_| out.flush())
        };
    }
}

fn run_trace(args: TraceArgs) -> Result<i32> {
    let (package, regex) = args.package_and_regex()?;
    trace::compile_pattern(regex)?;
    let stop = StopHandle::default();
    // A package is built first, into a directory removed when `built` is
    // dropped: when this returns, whatever way the trace ended. Ctrl-C
    // and SIGTERM during the build end it (`go` and its compilers).
    let built = match &package {
        Some(pkg) => {
            install_signal_handlers(stop.clone(), false);
            BUILDING.store(true, Ordering::SeqCst);
            let built = gobuild::build(pkg, None, Some(&stop));
            BUILDING.store(false, Ordering::SeqCst);
            Some(built?)
        }
        None => None,
    };
    let (target, exe) = match (args.pid, &built, args.command.split_first()) {
        (_, Some(built), _) => {
            let target = Target::Launch(Launch {
                program: built.exe.clone(),
                args: args.command.clone(),
                // A test binary runs in its package's directory, as under
                // `go test` (for its testdata).
                cwd: package
                    .as_ref()
                    .filter(|p| p.test)
                    .map(|_| built.package_dir.clone()),
                env: Vec::new(),
                stdio: None,
            });
            (target, built.exe.clone())
        }
        (Some(pid), None, _) => {
            let exe = std::fs::read_link(format!("/proc/{pid}/exe")).with_context(|| {
                format!("no process with pid {pid} (or not allowed to inspect it)")
            })?;
            (Target::Attach(pid), exe)
        }
        (None, None, Some((program, rest))) => {
            let exe = trace::resolve_program(std::path::Path::new(program))?;
            let target = Target::Launch(Launch {
                program: PathBuf::from(program),
                args: rest.to_vec(),
                cwd: None,
                env: Vec::new(),
                stdio: None,
            });
            (target, exe)
        }
        (None, None, None) => {
            bail!("nothing to trace: give a program after `--` (logprobe trace '{regex}' -- ./prog), a Go package before the functions (logprobe trace ./cmd/x '{regex}'), or a running process with -p PID")
        }
    };
    let config = TraceConfig::resolve(&args.options(), &Env::from_process())?;
    // Under eBPF the kernel verifies the program while the image is read.
    let preload = trace::Preload::start(&config, &exe);
    let image = Arc::new(Image::open(&exe)?);
    let mut trace = Trace::new(image.clone(), config).preloaded(preload);
    if let Target::Attach(pid) = target {
        trace = trace.attached_to(pid);
    }
    let prepared = trace.prepare(&args.request(regex))?;
    if !image.has_dwarf {
        eprintln!(
            "logprobe: warning: {} has no DWARF debug info; calls are traced by symbol name but arguments and results cannot be shown (build without -ldflags=-w and do not strip)",
            exe.display()
        );
    }
    for s in &prepared.skipped {
        eprintln!("logprobe: cannot trace {s}");
    }
    for n in &prepared.notes {
        eprintln!("logprobe: note: {n}");
    }
    trace.add(prepared);
    if built.is_none() {
        install_signal_handlers(stop.clone(), matches!(target, Target::Attach(_)));
    }
    let mut printer = Printer {
        json: args.json,
        pending: String::new(),
    };
    let outcome = trace.run(&target, &mut printer, &stop);
    printer.write_pending();
    let outcome = outcome?;
    if let (Outcome::Detached, Target::Attach(pid)) = (outcome, &target) {
        eprintln!("logprobe: detached from {pid}; it keeps running");
    }
    Ok(outcome.exit_code())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_align_after_short_names_and_long_names_do_not_widen_the_column() {
        let row = |n: &str, p: &str| (n.to_string(), p.to_string());
        let long = "<alloc::vec::Vec<T,A> as core::ops::drop::Drop>::drop";
        let lines = columns(&[
            row("add", "a.c:3"),
            row("main::work", "m.rs:7"),
            row(long, "vec.rs:9"),
        ]);
        assert_eq!(
            lines,
            [
                "add         a.c:3",
                "main::work  m.rs:7",
                &format!("{long}  vec.rs:9"),
            ]
        );
    }
}
