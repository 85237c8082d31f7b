//! One typed configuration for a trace, resolved once from what the user
//! gave: the command line's flags (`cli`), the DAP `launch`/`attach`
//! arguments (`dap::protocol`, mirroring the VS Code extension's
//! `package.json`), and the environment's switches.
//!
//! Two steps, as ripgrep does: each face parses its raw input into
//! [`Options`], which only records what was given; [`TraceConfig::resolve`]
//! then checks it whole and fills in defaults, and everything downstream
//! (the engine, the planner, the decoder, the line format) reads the
//! resolved [`TraceConfig`] and nothing else. An option that cannot be
//! honoured is an error here, with a message that says what to do.
//!
//! The environment switches are for measuring (docs/benchmarks.md):
//! `LOGPROBE_PREFILTER=0` turns the probes' own condition checks off,
//! `LOGPROBE_ENTRY_AT_LOW=1` puts entry probes on the first instruction,
//! `LOGPROBE_BENCH_ENTRY_ONLY=1` arms entry probes only under eBPF, and
//! `LOGPROBE_EBPF_RINGBUF_BYTES` shrinks the eBPF ring buffer (for tests of
//! the loss accounting).

use std::fmt;
use std::str::FromStr;

use anyhow::{bail, Result};

use crate::plan::{Limits, PlanOptions, RateLimit, MAX_STACK_FRAMES};
use crate::trace::Volume;

/// Which probe mechanism runs a trace; `auto` is decided when it starts
/// (eBPF where it loads and attaches, else ptrace with a notice).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Deserialize)]
#[serde(try_from = "String")]
pub enum BackendChoice {
    /// eBPF uprobes: the program never stops.
    Ebpf,
    /// int3 breakpoints through ptrace: works everywhere ptrace does.
    Ptrace,
    /// eBPF when it can be used here, else ptrace.
    #[default]
    Auto,
}

impl FromStr for BackendChoice {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "ebpf" => Ok(BackendChoice::Ebpf),
            "ptrace" => Ok(BackendChoice::Ptrace),
            "auto" => Ok(BackendChoice::Auto),
            other => bail!("unknown backend '{other}' (use 'ebpf', 'ptrace' or 'auto')"),
        }
    }
}

impl TryFrom<String> for BackendChoice {
    type Error = anyhow::Error;

    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl fmt::Display for BackendChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendChoice::Ebpf => "ebpf",
            BackendChoice::Ptrace => "ptrace",
            BackendChoice::Auto => "auto",
        })
    }
}

/// How event lines look.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Style {
    /// Prefix each line with the wall-clock time of the hit.
    pub timestamps: bool,
    /// End each return line with the call's duration.
    pub durations: bool,
}

/// What the user gave, from any face, before it is checked: `None` is
/// "not given".
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub backend: Option<BackendChoice>,
    pub max_string_len: Option<u32>,
    pub max_array_values: Option<u32>,
    pub max_depth: Option<u32>,
    /// Hits per second a probe that starts a hit may report (0: no limit).
    pub rate_limit: Option<u32>,
    /// Hits per second all probes together may report (0: no limit).
    pub total_rate_limit: Option<u32>,
    /// Frames of the call stack each hit carries (`--stack N`).
    pub stack: Option<u32>,
    pub style: Style,
    /// Run the program without probes (DAP `noDebug`).
    pub no_debug: bool,
    /// Which shown hits become lines (default: all).
    pub volume: Option<Volume>,
    /// Probes come and go while the program runs (the DAP server), so the
    /// backend keeps room for them.
    pub live_changes: bool,
}

/// The environment's switches, as read (once) from the process.
#[derive(Debug, Clone, Default)]
pub struct Env {
    pub prefilter: Option<String>,
    pub entry_at_low: Option<String>,
    pub ringbuf_bytes: Option<String>,
    pub bench_entry_only: Option<String>,
}

impl Env {
    /// The switches of logprobe's own environment.
    pub fn from_process() -> Env {
        let var = |name| std::env::var(name).ok().filter(|v| !v.is_empty());
        Env {
            prefilter: var("LOGPROBE_PREFILTER"),
            entry_at_low: var("LOGPROBE_ENTRY_AT_LOW"),
            ringbuf_bytes: var("LOGPROBE_EBPF_RINGBUF_BYTES"),
            bench_entry_only: var("LOGPROBE_BENCH_ENTRY_ONLY"),
        }
    }
}

/// A `0`/`1` switch named `name`; `default` when unset.
fn switch(name: &str, value: Option<&str>, default: bool) -> Result<bool> {
    match value {
        None => Ok(default),
        Some("0") => Ok(false),
        Some("1") => Ok(true),
        Some(other) => bail!("{name} must be 0 or 1, not '{other}'"),
    }
}

/// A Go package to build and trace instead of a program (`logprobe trace
/// [--test] PACKAGE REGEX`, DAP `package`/`test`/`optimized`), resolved:
/// `--test` alone means the package in the current directory (`.`), and
/// `--optimized` means nothing without a package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoPackage {
    /// As `go build` takes it: `.`, `./cmd/server`, an import path.
    pub package: String,
    /// Build the package's test binary (`go test -c`) instead.
    pub test: bool,
    /// Build as `go build` does by default, instead of with
    /// `-gcflags=all=-N -l`.
    pub optimized: bool,
    /// More flags for `go build` (or `go test -c`), as dlv's
    /// `--build-flags`: `-tags=x`, `-ldflags=-X main.v=1`, `-race`.
    pub build_flags: Vec<String>,
}

impl GoPackage {
    /// The package to build, from what a face was given (`optimized_name`
    /// is its spelling of that option, for the message); `None`: a program
    /// is traced as it is.
    pub fn resolve(
        package: Option<&str>,
        test: bool,
        optimized: bool,
        optimized_name: &str,
    ) -> Result<Option<GoPackage>> {
        let package = match (package, test) {
            (Some(""), _) => bail!("the Go package to build is empty: give `.`, `./cmd/x` or an import path"),
            (Some(p), _) => p,
            (None, true) => ".",
            (None, false) if optimized => bail!(
                "{optimized_name} applies to a Go package that logprobe builds: give the package (`.`, `./cmd/x`), or build the program yourself"
            ),
            (None, false) => return Ok(None),
        };
        Ok(Some(GoPackage {
            package: package.to_string(),
            test,
            optimized,
            build_flags: Vec::new(),
        }))
    }

    /// `pkg` built with `flags`, split into words as a shell splits them
    /// (quotes keep `-ldflags='-X main.v=1'` one word); `flags_name` is
    /// the face's spelling of that option, for the messages.
    pub fn with_build_flags(
        pkg: Option<GoPackage>,
        flags: Option<&str>,
        flags_name: &str,
    ) -> Result<Option<GoPackage>> {
        let Some(flags) = flags.filter(|f| !f.trim().is_empty()) else {
            return Ok(pkg);
        };
        let Some(mut pkg) = pkg else {
            bail!("{flags_name} applies to a Go package that logprobe builds: give the package (`.`, `./cmd/x`), or build the program yourself");
        };
        let Some(words) = shlex::split(flags) else {
            bail!("{flags_name} {flags:?} has an unclosed quote");
        };
        if let Some(w) = words.iter().find(|w| *w == "-o" || w.starts_with("-o=")) {
            bail!("{flags_name} cannot set {w}: logprobe chooses where the binary goes, and removes it afterwards");
        }
        pkg.build_flags = words;
        Ok(Some(pkg))
    }
}

/// Everything that shapes a trace, resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TraceConfig {
    pub backend: BackendChoice,
    /// Limits, and the planner's switches.
    pub plan: PlanOptions,
    pub style: Style,
    /// Launch the program with no probes, its output forwarded: what "Run
    /// Without Debugging" means for a tracer.
    pub no_debug: bool,
    /// Which shown hits become lines, to begin with (a face may change it
    /// while the program runs).
    pub volume: Volume,
    /// The eBPF backend's settings.
    pub ebpf: EbpfConfig,
}

/// What the eBPF backend is told (`backend::ebpf::Options`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EbpfConfig {
    /// Bytes of the ring buffer (`LOGPROBE_EBPF_RINGBUF_BYTES`, for tests of
    /// the loss accounting); `None`: the backend's default.
    pub ringbuf_bytes: Option<u32>,
    /// Arm entry probes only (`LOGPROBE_BENCH_ENTRY_ONLY=1`, for the
    /// benchmark).
    pub entry_only: bool,
    /// Keep room for probes added while the program runs.
    pub live_changes: bool,
}

impl TraceConfig {
    /// Checks `options` and `env` together and fills in the defaults.
    pub fn resolve(options: &Options, env: &Env) -> Result<TraceConfig> {
        let defaults = Limits::default();
        let limits = Limits {
            max_string_len: options.max_string_len.unwrap_or(defaults.max_string_len),
            max_array_values: options
                .max_array_values
                .unwrap_or(defaults.max_array_values),
            max_depth: options.max_depth.unwrap_or(defaults.max_depth),
        };
        let stack = options.stack.unwrap_or(0);
        if stack > u32::from(MAX_STACK_FRAMES) {
            bail!("a stack of {stack} frames is more than the {MAX_STACK_FRAMES} a hit can carry");
        }
        let plan = PlanOptions {
            limits,
            stack: stack as u16,
            prefilter: switch("LOGPROBE_PREFILTER", env.prefilter.as_deref(), true)?,
            entry_at_low: switch("LOGPROBE_ENTRY_AT_LOW", env.entry_at_low.as_deref(), false)?,
            rate: RateLimit {
                probe: options.rate_limit.unwrap_or(0),
                total: options.total_rate_limit.unwrap_or(0),
            },
        };
        let ringbuf_bytes = match env.ringbuf_bytes.as_deref() {
            None => None,
            Some(v) => match v.parse::<u32>() {
                Ok(n) if n.is_power_of_two() && n >= 4096 => Some(n),
                _ => bail!(
                    "LOGPROBE_EBPF_RINGBUF_BYTES must be a power of two of at least 4096, not '{v}'"
                ),
            },
        };
        Ok(TraceConfig {
            backend: options.backend.unwrap_or_default(),
            plan,
            style: options.style,
            no_debug: options.no_debug,
            volume: options.volume.unwrap_or_default(),
            ebpf: EbpfConfig {
                ringbuf_bytes,
                entry_only: switch(
                    "LOGPROBE_BENCH_ENTRY_ONLY",
                    env.bench_entry_only.as_deref(),
                    false,
                )?,
                live_changes: options.live_changes,
            },
        })
    }

    pub fn limits(&self) -> Limits {
        self.plan.limits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_not_given_takes_the_defaults() {
        let c = TraceConfig::resolve(&Options::default(), &Env::default()).expect("resolves");
        assert_eq!(c.backend, BackendChoice::Auto);
        assert_eq!(c.limits(), Limits::default());
        assert!(c.plan.prefilter && !c.plan.entry_at_low && !c.no_debug);
        let given = Options {
            backend: Some(BackendChoice::Ptrace),
            max_depth: Some(1),
            ..Options::default()
        };
        let c = TraceConfig::resolve(&given, &Env::default()).expect("resolves");
        assert_eq!(c.backend, BackendChoice::Ptrace);
        assert_eq!(
            c.limits(),
            Limits {
                max_depth: 1,
                ..Limits::default()
            }
        );
    }

    #[test]
    fn switches_are_zero_or_one_and_anything_else_is_refused() {
        let env = Env {
            prefilter: Some("0".into()),
            entry_at_low: Some("1".into()),
            ringbuf_bytes: Some("16384".into()),
            bench_entry_only: Some("1".into()),
        };
        let c = TraceConfig::resolve(&Options::default(), &env).expect("resolves");
        assert!(!c.plan.prefilter && c.plan.entry_at_low);
        assert_eq!(c.ebpf.ringbuf_bytes, Some(16384));
        assert!(c.ebpf.entry_only);
        let env = Env {
            ringbuf_bytes: Some("1000".into()),
            ..Env::default()
        };
        let e = TraceConfig::resolve(&Options::default(), &env).expect_err("refused");
        assert_eq!(
            format!("{e:#}"),
            "LOGPROBE_EBPF_RINGBUF_BYTES must be a power of two of at least 4096, not '1000'"
        );
        let env = Env {
            prefilter: Some("off".into()),
            ..Env::default()
        };
        let e = TraceConfig::resolve(&Options::default(), &env).expect_err("refused");
        assert_eq!(
            format!("{e:#}"),
            "LOGPROBE_PREFILTER must be 0 or 1, not 'off'"
        );
    }

    #[test]
    fn a_go_package_is_what_was_given_or_dot_for_tests() {
        let r = |p, t, o| GoPackage::resolve(p, t, o, "--optimized");
        assert_eq!(r(None, false, false).expect("resolves"), None);
        let tests = r(None, true, false).expect("resolves").expect("a package");
        assert_eq!((tests.package.as_str(), tests.test), (".", true));
        let named = r(Some("./cmd/x"), false, true).expect("resolves");
        assert_eq!(
            named.map(|p| (p.package, p.optimized)),
            Some(("./cmd/x".into(), true))
        );
        let e = r(None, false, true).expect_err("refused");
        assert!(
            e.to_string()
                .starts_with("--optimized applies to a Go package"),
            "{e}"
        );
        assert!(r(Some(""), false, false).is_err());
    }

    #[test]
    fn build_flags_are_split_as_a_shell_does_and_need_a_package() {
        let pkg = || GoPackage::resolve(Some("."), false, false, "--optimized").expect("resolves");
        let with = |flags| GoPackage::with_build_flags(pkg(), flags, "--build-flags");
        let flags = with(Some("-tags=x -ldflags='-X main.v=1 -s'"))
            .expect("splits")
            .expect("a package")
            .build_flags;
        assert_eq!(flags, ["-tags=x", "-ldflags=-X main.v=1 -s"]);
        assert_eq!(
            with(None).expect("none").expect("a package").build_flags,
            Vec::<String>::new()
        );
        for (flags, why) in [
            ("-ldflags='-X", "unclosed quote"),
            ("-o /tmp/x", "cannot set -o"),
        ] {
            let e = with(Some(flags)).expect_err(flags);
            assert!(e.to_string().contains(why), "{flags}: {e}");
        }
        let e = GoPackage::with_build_flags(None, Some("-race"), "--build-flags")
            .expect_err("no package");
        assert!(
            e.to_string()
                .starts_with("--build-flags applies to a Go package"),
            "{e}"
        );
    }

    #[test]
    fn backends_are_named_as_the_extension_names_them() {
        for b in [
            BackendChoice::Ebpf,
            BackendChoice::Ptrace,
            BackendChoice::Auto,
        ] {
            assert_eq!(b.to_string().parse::<BackendChoice>().expect("parses"), b);
        }
        let e = serde_json::from_str::<BackendChoice>("\"bpf\"").expect_err("refused");
        assert!(
            e.to_string()
                .contains("unknown backend 'bpf' (use 'ebpf', 'ptrace' or 'auto')"),
            "{e}"
        );
    }
}
