//! The command line: `logprobe trace`, `logprobe functions`, `logprobe dap`.
//!
//! Arguments are parsed by clap into raw options, checked, and turned into
//! the engine's inputs (an image, a target, probes); the engine's events are
//! printed to stdout, one line each, flushed as they happen so they
//! interleave with the traced program's own output. Messages from logprobe
//! itself go to stderr, prefixed `logprobe:`.

use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};

use crate::backend::ebpf::{self, EbpfBackend};
use crate::backend::ptrace::PtraceBackend;
use crate::backend::{launch, Backend, HitSink, Launch, Outcome, RawHit, StopHandle, Target};
use crate::image::Image;
use crate::plan::Limits;
use crate::trace::{self, Prepared, Style};

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
    Trace(TraceArgs),
    /// List the functions of PROGRAM that can be traced, with file:line.
    Functions {
        /// The executable to inspect.
        program: PathBuf,
        /// Only functions matching this regular expression.
        regex: Option<String>,
    },
    /// Serve the Debug Adapter Protocol (for editors) on stdin/stdout or TCP.
    Dap(crate::dap::DapArgs),
    /// Check what the eBPF and ptrace backends need on this machine, and
    /// say how to fix what is missing (exit status 1 when eBPF cannot work).
    Doctor,
    /// The probe sites `trace` would arm: kind, file offset, address,
    /// function (for the benchmark's bare-uprobe floor).
    #[command(hide = true)]
    Probes { program: PathBuf, regex: String },
}

#[derive(clap::Args, Debug)]
pub struct TraceArgs {
    /// Functions to trace (Go regular expression syntax; `foo` matches `main.foo`).
    pub regex: String,
    /// Attach to this running process instead of launching one.
    #[arg(short, long, conflicts_with = "command")]
    pub pid: Option<i32>,
    /// Probe mechanism: `auto` uses eBPF where the kernel and privileges
    /// allow, else ptrace (saying why).
    #[arg(long, value_enum, default_value_t = BackendKind::Auto)]
    pub backend: BackendKind,
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
    /// Print each event as one JSON object (kind, function, goroutine,
    /// timestamp, typed value trees) instead of a text line.
    #[arg(long)]
    pub json: bool,
    /// The program to launch and its arguments, after `--`.
    #[arg(last = true)]
    pub command: Vec<String>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum BackendKind {
    /// eBPF uprobes: the program never stops.
    Ebpf,
    /// int3 breakpoints through ptrace: works everywhere ptrace does.
    Ptrace,
    /// eBPF when it can be used here, else ptrace.
    Auto,
}

/// Runs the command line; returns the process exit status.
pub fn run() -> Result<i32> {
    let cli = Cli::parse();
    match cli.command {
        Command::Trace(args) => run_trace(args),
        Command::Functions { program, regex } => list_functions(&program, regex.as_deref()),
        Command::Dap(args) => crate::dap::serve(args),
        Command::Doctor => crate::doctor::run(),
        Command::Probes { program, regex } => list_probes(&program, &regex),
    }
}

fn list_probes(program: &std::path::Path, regex: &str) -> Result<i32> {
    let path = launch::resolve_program(program)?;
    let image = Image::open(&path)?;
    let re = trace::compile_pattern(regex)?;
    let functions = trace::select(&image, &re);
    let prepared = trace::prepare(&image, &functions, Limits::default(), &mut |w| {
        eprintln!("logprobe: {w}")
    })?;
    for p in &prepared.probes {
        let kind = match p.kind {
            crate::plan::ProbeKind::Entry => "entry",
            crate::plan::ProbeKind::Return => "return",
            crate::plan::ProbeKind::Line => "line",
        };
        let name = &image.functions[p.func].name;
        println!("{kind} {:#x} {:#x} {name}", p.file_offset, p.address);
    }
    Ok(0)
}

fn list_functions(program: &std::path::Path, regex: Option<&str>) -> Result<i32> {
    let path = launch::resolve_program(program)?;
    let image = Image::open(&path)?;
    let re = trace::compile_pattern(regex.unwrap_or(""))?;
    let mut rows: Vec<(String, String)> = trace::select(&image, &re)
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
    let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for (name, pos) in rows {
        if writeln!(out, "{name:width$}  {pos}").is_err() {
            break; // e.g. piped into `head`
        }
    }
    Ok(0)
}

/// The stop handle signal handlers reach.
static STOP: OnceLock<(StopHandle, bool)> = OnceLock::new();

extern "C" fn on_signal(sig: libc::c_int) {
    if let Some((stop, attached)) = STOP.get() {
        // A launched program got the terminal's SIGINT itself; logprobe
        // follows it to its end. Any other stop request ends the trace.
        if *attached || sig != libc::SIGINT {
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
        // SAFETY: `on_signal` only reads a OnceLock (an atomic load), stores
        // an atomic and calls tgkill, all async-signal-safe.
        if let Err(e) = unsafe { sigaction(sig, &action) } {
            eprintln!("logprobe: cannot handle {sig}: {e}");
        }
    }
}

struct Printer<'p, 'a> {
    prepared: &'p Prepared<'a>,
    style: Style,
    json: bool,
    durations: Option<trace::Durations>,
    /// Lines not written yet: with a backend that reports hits in
    /// batches (eBPF), one write per batch instead of one per line.
    pending: String,
    batched: bool,
}

/// Writes of at most this many bytes to a pipe are never interleaved
/// with other writers' (POSIX PIPE_BUF on Linux).
const PIPE_BUF: usize = 4096;

/// Most bytes of lines held back in batched mode.
const MAX_PENDING: usize = 1 << 16;

impl Printer<'_, '_> {
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

impl HitSink for Printer<'_, '_> {
    fn hit(&mut self, hit: RawHit) {
        if let Some(event) = self.prepared.event(&hit) {
            let line = if self.json {
                match serde_json::to_string(&event) {
                    Ok(j) => j,
                    Err(e) => format!("{{\"error\":\"cannot serialize event: {e}\"}}"),
                }
            } else {
                let duration = self.durations.as_mut().and_then(|d| d.observe(&event));
                trace::render_with_duration(&event, self.style, duration)
            };
            self.pending.push_str(&line);
            self.pending.push('\n');
            if !self.batched || self.pending.len() >= MAX_PENDING {
                self.write_pending();
            }
        }
    }

    fn notice(&mut self, message: &str) {
        self.write_pending();
        eprintln!("logprobe: {message}");
    }

    fn flush(&mut self) {
        self.write_pending();
    }
}

fn run_trace(args: TraceArgs) -> Result<i32> {
    let re = trace::compile_pattern(&args.regex)?;
    let (target, exe) = match (args.pid, args.command.split_first()) {
        (Some(pid), _) => {
            let exe = std::fs::read_link(format!("/proc/{pid}/exe")).with_context(|| {
                format!("no process with pid {pid} (or not allowed to inspect it)")
            })?;
            (Target::Attach(pid), exe)
        }
        (None, Some((program, rest))) => {
            let exe = launch::resolve_program(std::path::Path::new(program))?;
            let target = Target::Launch(Launch {
                program: PathBuf::from(program),
                args: rest.to_vec(),
                cwd: None,
                env: Vec::new(),
                stdio: None,
            });
            (target, exe)
        }
        (None, None) => {
            bail!("nothing to trace: give a program after `--`, or a running process with -p PID")
        }
    };
    // Under eBPF the kernel verifies the program while the image is read.
    let ebpf_backend = (args.backend != BackendKind::Ptrace)
        .then(|| EbpfBackend::preloading(ebpf::Options::from_env()));
    let image = Image::open(&exe)?;
    let functions = trace::select(&image, &re);
    if functions.is_empty() {
        let near = trace::suggestions(&image, &args.regex);
        if near.is_empty() {
            bail!("no function in {} matches '{}'", exe.display(), args.regex);
        }
        bail!(
            "no function in {} matches '{}'; similar: {}",
            exe.display(),
            args.regex,
            near.join(", ")
        );
    }
    if !image.has_dwarf {
        eprintln!(
            "logprobe: warning: {} has no DWARF debug info; calls are traced by symbol name but arguments and results cannot be shown (build without -ldflags=-w and do not strip)",
            exe.display()
        );
    }
    let limits = Limits {
        max_string_len: args.max_string_len,
        max_array_values: args.max_array_values,
        max_depth: args.max_depth,
    };
    let prepared = trace::prepare(&image, &functions, limits, &mut |w| {
        eprintln!("logprobe: {w}")
    })?;
    if prepared.probes.is_empty() {
        bail!(
            "none of the {} matching functions can be probed",
            functions.len()
        );
    }
    let stop = StopHandle::default();
    install_signal_handlers(stop.clone(), matches!(target, Target::Attach(_)));
    let style = Style {
        timestamps: args.timestamp,
        unknown_values: !image.has_dwarf,
    };
    let mut printer = Printer {
        prepared: &prepared,
        style,
        json: args.json,
        durations: args.duration.then(trace::Durations::default),
        pending: String::new(),
        batched: false,
    };
    let use_ebpf = match args.backend {
        BackendKind::Ptrace => false,
        BackendKind::Ebpf => true,
        BackendKind::Auto => match ebpf::unavailable_reason(&prepared.probes) {
            None => true,
            Some(why) => {
                eprintln!("logprobe: using ptrace: eBPF is unavailable: {why}");
                false
            }
        },
    };
    let mut backend: Box<dyn Backend> = if use_ebpf {
        printer.batched = true;
        Box::new(ebpf_backend.unwrap_or_else(|| EbpfBackend::new(ebpf::Options::from_env())))
    } else {
        Box::new(PtraceBackend)
    };
    let mut outcome = backend.run(&target, &prepared.probes, &mut printer, &stop);
    if let Err(e) = &outcome {
        // Nothing was armed and the program has not run: ptrace can still.
        if let (BackendKind::Auto, Some(why)) = (args.backend, e.downcast_ref::<ebpf::NotArmed>()) {
            eprintln!("logprobe: using ptrace: eBPF is unavailable: {why}");
            printer.batched = false;
            outcome = PtraceBackend.run(&target, &prepared.probes, &mut printer, &stop);
        }
    }
    printer.write_pending();
    let outcome = outcome?;
    if let (Outcome::Detached, Target::Attach(pid)) = (outcome, &target) {
        eprintln!("logprobe: detached from {pid}; it keeps running");
    }
    Ok(outcome.exit_code())
}
