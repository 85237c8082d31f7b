//! Entry points for the fuzzer (`adapter/examples/fuzz.rs`,
//! `scripts/fuzz.sh`, docs/fuzzing.md): each takes arbitrary bytes and
//! runs them through one of logprobe's readers the way the CLI or the DAP
//! server would, without starting or touching any process. Errors are the
//! expected outcome for most inputs and are returned; a panic, an abort or
//! a hang is a bug. Not part of the supported API.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use serde::de::DeserializeOwned;
use serde_json::Value as Json;

use crate::config::{Env, TraceConfig};
use crate::dap::codec::{self, FrameError};
use crate::dap::protocol::{
    AttachArguments, DisconnectArguments, FunctionsArguments, Incoming, LaunchArguments,
    ScopesArguments, SetBreakpointsArguments, SetConsoleVolumeArguments, SetTraceStateArguments,
    SnapshotArguments, ThreadArguments, TraceFunctionsArguments, VariablesArguments,
};
use crate::expr::{HitCondition, Template};
use crate::image::{Image, TypeTable};
use crate::trace::{self, Request, Trace, Volume};

/// splitmix64: a small seedable generator to pick mutations with (the
/// fuzzer's, and tests/robustness.rs').
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`0` when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        match n {
            0 => 0,
            n => (self.next_u64() % n as u64) as usize,
        }
    }

    /// True once in `one_in` times.
    pub fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

/// The fuzz targets, by name.
pub const TARGETS: &[&str] = &["dap", "elf", "dwarf", "pclntab"];

/// Runs target `name` on `data`.
pub fn run(name: &str, data: &[u8]) -> Result<()> {
    match name {
        "dap" => dap(data),
        "elf" => elf(data),
        "dwarf" => dwarf(data),
        "pclntab" => pclntab(data),
        other => bail!("no fuzz target '{other}' (targets: {})", TARGETS.join(", ")),
    }
}

/// A DAP byte stream: frames as the server reads them, each request's
/// envelope and typed arguments, and what launch and attach arguments
/// resolve to (options, backend, limits, trace patterns, conditions, log
/// messages), as the server checks them before anything starts.
pub fn dap(data: &[u8]) -> Result<()> {
    let mut reader = data;
    // The first error, which names the kind of input that was refused.
    let mut first: Option<anyhow::Error> = None;
    // A stream of empty frames is cheap; bound the work anyway.
    for _ in 0..10_000 {
        let outcome = match codec::read_frame(&mut reader) {
            Ok(body) => request(&body),
            Err(FrameError::Bad(m)) => Err(anyhow::anyhow!("bad frame: {m}")),
            Err(FrameError::Eof) => break,
            Err(FrameError::Io(e)) => return Err(e).context("reading the stream"),
        };
        if let (Err(e), None) = (outcome, &first) {
            first = Some(e);
        }
    }
    match first {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// One message body, as `dap::session` reads it.
fn request(body: &[u8]) -> Result<()> {
    let req = match serde_json::from_slice::<Incoming>(body) {
        Ok(req) => req,
        Err(e) => {
            // The server then looks for seq and command to answer with.
            let v: Option<Json> = serde_json::from_slice(body).ok();
            let _ = v.as_ref().and_then(|v| v.get("seq")?.as_i64());
            let _ = v.as_ref().and_then(|v| v.get("command")?.as_str());
            return Err(e).context("malformed request");
        }
    };
    let command = req.command.as_deref().unwrap_or_default();
    match command {
        "launch" => {
            let a: LaunchArguments = arguments(&req)?;
            resolve(&a.common.options()?, &a.common.trace)
        }
        "attach" => {
            let a: AttachArguments = arguments(&req)?;
            resolve(&a.common.options()?, &a.common.trace)
        }
        "setBreakpoints" => {
            let a: SetBreakpointsArguments = arguments(&req)?;
            let all = a.breakpoints.unwrap_or_default();
            all.iter()
                .try_for_each(|b| conditions([&b.condition, &b.hit_condition, &b.log_message]))
        }
        "traceFunctions" => {
            let a: TraceFunctionsArguments = arguments(&req)?;
            a.functions.iter().try_for_each(|e| {
                if let Some(re) = &e.regex {
                    trace::compile_pattern(re)?;
                }
                conditions([&e.condition, &e.hit_condition, &e.log_message])
            })
        }
        "setConsoleVolume" => {
            let a: SetConsoleVolumeArguments = arguments(&req)?;
            Volume::parse(&a.volume, a.lines_per_second).map(drop)
        }
        "functions" => arguments::<FunctionsArguments>(&req).map(drop),
        "setTraceState" => arguments::<SetTraceStateArguments>(&req).map(drop),
        "snapshot" => arguments::<SnapshotArguments>(&req).map(drop),
        "scopes" => arguments::<ScopesArguments>(&req).map(drop),
        "variables" => arguments::<VariablesArguments>(&req).map(drop),
        "disconnect" => arguments::<DisconnectArguments>(&req).map(drop),
        "stackTrace" | "continue" | "next" | "stepIn" | "stepOut" | "pause" => {
            arguments::<ThreadArguments>(&req).map(drop)
        }
        _ => Ok(()),
    }
}

/// A request's typed arguments, as `dap::session` reads them.
fn arguments<T: DeserializeOwned>(req: &Incoming) -> Result<T> {
    let args = match &req.arguments {
        None | Some(Json::Null) => Json::Object(Default::default()),
        Some(v) => v.clone(),
    };
    serde_json::from_value(args).context("invalid arguments")
}

/// Launch and attach options resolved as a trace's configuration.
fn resolve(options: &crate::config::Options, patterns: &[String]) -> Result<()> {
    TraceConfig::resolve(options, &Env::default())?;
    for p in patterns {
        trace::compile_pattern(p)?;
    }
    Ok(())
}

/// A logpoint's or trace's condition, hit condition and log message.
fn conditions([cond, hit, message]: [&Option<String>; 3]) -> Result<()> {
    if let Some(c) = cond {
        crate::expr::parse(c)?;
    }
    if let Some(h) = hit {
        HitCondition::parse(h)?;
    }
    if let Some(m) = message {
        let t = Template::parse(m);
        let _ = t.exprs().count();
    }
    Ok(())
}

/// An ELF file as `logprobe functions` reads it: the image's index and
/// the list of traceable functions with their code.
pub fn elf(data: &[u8]) -> Result<()> {
    let image = Image::from_bytes(Path::new("fuzz-input"), data.to_vec())?;
    for id in trace::list(&image, "")? {
        let f = &image.functions[id];
        let _ = image.code(f);
        let _ = image.file_offset(f.low);
        let _ = image.function_at(f.low);
    }
    Ok(())
}

/// An ELF file's DWARF as `logprobe trace` and logpoints use it: types
/// resolved, probes planned with their capture recipes, places at entry,
/// lines, scopes and frames, for the program's own functions (the
/// language runtimes' are many and alike).
pub fn dwarf(data: &[u8]) -> Result<()> {
    let image = Arc::new(Image::from_bytes(Path::new("fuzz-input"), data.to_vec())?);
    let config = TraceConfig::resolve(&Default::default(), &Env::default())?;
    let trace = Trace::new(image.clone(), config);
    let own: Vec<usize> = (0..image.functions.len())
        .filter(|&i| own_function(&image.functions[i].name))
        .take(24)
        .collect();
    let mut table = TypeTable::default();
    let mut cache = HashMap::new();
    let mut errors = 0usize;
    for &id in &own {
        let f = &image.functions[id];
        for p in &f.params {
            if let Some(t) = p.type_ref {
                errors += usize::from(image.resolve_type(&mut table, &mut cache, t).is_err());
            }
        }
        let _ = image.entry_places(f, &[]);
        errors += usize::from(image.variables_at(f.low).is_err());
        let _ = image.cfa_at(f.low);
        let pattern = format!("^{}$", regex::escape(&f.name));
        errors += usize::from(trace.prepare(&Request::functions(pattern)).is_err());
        if let (Some(file), Some(line)) = (&f.file, f.line) {
            errors += usize::from(image.function_around(file, line).is_err());
            let req = Request::line(file.clone(), line + 1).message(Some("{x} $FUNCTION"));
            errors += usize::from(trace.prepare(&req).is_err());
        }
    }
    let pcs: Vec<u64> = own.iter().map(|&i| image.functions[i].low).collect();
    errors += usize::from(image.lines_at(&pcs).is_err());
    for &pc in &pcs {
        let _ = image.runtime_type_die(pc);
        let _ = image.vtable_type_die(pc);
    }
    if errors > 0 {
        bail!("{errors} lookups failed");
    }
    Ok(())
}

/// The functions a program's author wrote, rather than its runtime's.
fn own_function(name: &str) -> bool {
    const RUNTIME: &[&str] = &[
        "runtime.",
        "internal/",
        "sync.",
        "syscall.",
        "os.",
        "fmt.",
        "std::",
        "core::",
        "alloc::",
        "reflect.",
        "strconv.",
        "unicode",
        "io.",
        "errors.",
        "_",
        "<",
    ];
    !RUNTIME.iter().any(|p| name.starts_with(p))
}

/// The bytes of a `.gopclntab` section, as a stripped Go binary's
/// functions are found.
pub fn pclntab(data: &[u8]) -> Result<()> {
    crate::image::pclntab_functions(data).map(drop)
}

/// The `.gopclntab` section of ELF file `data`, for seeds.
pub fn gopclntab_section(data: &[u8]) -> Option<Vec<u8>> {
    use object::{Object, ObjectSection};
    let file = object::File::parse(data).ok()?;
    Some(file.section_by_name(".gopclntab")?.data().ok()?.to_vec())
}
