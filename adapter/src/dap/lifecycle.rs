//! The session's life: `initialize`, `launch`, `attach`,
//! `configurationDone` (the program starts, or probes go in, only then),
//! `threads`, `disconnect` and `terminate`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value as Json;

use super::log;
use super::protocol::{
    AttachArguments, Capabilities, CommonArguments, DisconnectArguments, LaunchArguments,
};
use super::session::{Program, Session};
use crate::config::{Env, GoPackage, TraceConfig};
use crate::gobuild::{self, Built};
use crate::image::Image;
use crate::trace::{self, Launch, Request, Target, Trace};

/// Every capability logprobe has, and a reason for each deliberate `false`.
pub fn capabilities() -> Capabilities {
    Capabilities {
        supports_configuration_done_request: true,
        supports_conditional_breakpoints: true,
        supports_hit_conditional_breakpoints: true,
        supports_log_points: true,
        supports_terminate_request: true,
        support_terminate_debuggee: true,
        // Function breakpoints would stop the program; function traces are
        // the custom `traceFunctions` request instead.
        supports_function_breakpoints: false,
        // Nothing is ever stopped, so there is no frame to evaluate in.
        supports_evaluate_for_hovers: false,
        // No recording of execution.
        supports_step_back: false,
        // Values are read, never written.
        supports_set_variable: false,
        // A restart is a new launch; the client can do that itself.
        supports_restart_request: false,
        // Exceptions are not intercepted.
        supports_exception_info_request: false,
        // Watchpoints are not implemented.
        supports_data_breakpoints: false,
        // There is no stepping at all.
        supports_single_thread_execution_requests: false,
    }
}

impl Session {
    pub(super) fn initialize(&mut self) -> Result<Option<Json>> {
        if self.initialized {
            bail!("'initialize' was already sent in this session");
        }
        self.initialized = true;
        Ok(Some(serde_json::to_value(capabilities())?))
    }

    pub(super) fn launch(&mut self, args: LaunchArguments) -> Result<Option<Json>> {
        if self.program.is_some() {
            bail!("a program was already launched or attached in this session");
        }
        let package = GoPackage::resolve(
            args.package.as_deref(),
            args.test,
            args.optimized,
            "'optimized'",
        )?;
        let package =
            GoPackage::with_build_flags(package, args.build_flags.as_deref(), "'buildFlags'")?;
        let cwd = args.cwd.map(PathBuf::from);
        let (program, built) = match (&package, args.program.is_empty()) {
            (Some(_), false) => bail!(
                "give 'program' (an executable) or 'package' (a Go package to build), not both"
            ),
            (None, true) => bail!("'program' is required (or 'package', a Go package to build)"),
            (None, false) => (PathBuf::from(&args.program), None),
            (Some(pkg), true) => {
                let built = gobuild::build(pkg, cwd.as_deref(), None)?;
                (built.exe.clone(), Some(built))
            }
        };
        let path = trace::resolve_program(&program)?;
        // A test binary runs in its package's directory, as under `go test`.
        let cwd = match (&package, &built) {
            (Some(p), Some(b)) if p.test => Some(b.package_dir.clone()),
            _ => cwd,
        };
        let target = Target::Launch(Launch {
            program,
            args: args.args,
            cwd,
            env: args.env.into_iter().collect(),
            stdio: None,
        });
        self.choose(path, target, &args.common, built)
    }

    pub(super) fn attach(&mut self, args: AttachArguments) -> Result<Option<Json>> {
        if self.program.is_some() {
            bail!("a program was already launched or attached in this session");
        }
        if args.common.no_debug {
            bail!("'noDebug' applies to launch only: a process attached without probes would show nothing");
        }
        let pid = args.pid;
        if pid <= 0 {
            bail!("'pid' must be a process id, not {pid}");
        }
        let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
            .with_context(|| format!("no process with pid {pid} (or not allowed to inspect it)"))?;
        self.choose(exe, Target::Attach(pid), &args.common, None)
    }

    /// Common part of launch and attach: the options resolved, the image,
    /// the functions traced from the start; then `initialized`.
    fn choose(
        &mut self,
        exe: PathBuf,
        target: Target,
        common: &CommonArguments,
        built: Option<Built>,
    ) -> Result<Option<Json>> {
        let config = TraceConfig::resolve(&common.options()?, &Env::from_process())?;
        self.hits_interval = match common.hits_interval {
            None => super::live::DEFAULT_INTERVAL_MS,
            Some(0) => 0,
            Some(ms) => ms.max(super::live::MIN_INTERVAL_MS),
        };
        let mut trace = Trace::new(Arc::new(Image::open(&exe)?), config);
        if let Target::Attach(pid) = target {
            trace = trace.attached_to(pid);
        }
        let mut groups = Vec::new();
        if config.no_debug && !common.trace.is_empty() {
            log("noDebug: the launch's 'trace' functions are not probed");
        } else {
            for regex in &common.trace {
                groups.push(trace.prepare(&Request::functions(regex))?);
            }
        }
        self.launch_traces = trace.replace(&[], groups);
        self.program = Some(Program {
            target,
            trace,
            name: exe.display().to_string(),
            built,
        });
        self.then_send("initialized", None);
        Ok(None)
    }

    pub(super) fn configuration_done(&mut self) -> Result<Option<Json>> {
        if self.configured {
            bail!("'configurationDone' was already sent");
        }
        let program = self
            .program
            .as_ref()
            .ok_or_else(|| anyhow!("no program yet: send 'launch' or 'attach' first"))?;
        let running = super::run::start(self.out.clone(), program, self.logpoints.clone())?;
        self.running = Some(running);
        self.configured = true;
        self.start_live()?;
        Ok(None)
    }

    pub(super) fn disconnect(&mut self, args: DisconnectArguments) -> Result<Option<Json>> {
        // A launched program is always ended: its output goes through this
        // session. An attached one is left running with every probe
        // removed, unless the client explicitly asks to end it (VS Code's
        // "Terminate" on an attach session): then it is sent SIGTERM once
        // the probes are out of it.
        let attached = match (&self.program, &self.running) {
            (Some(p), Some(_)) => match p.target {
                Target::Attach(pid) => Some(pid),
                Target::Launch(_) => None,
            },
            _ => None,
        };
        if attached.is_none() && args.terminate_debuggee == Some(false) && self.running.is_some() {
            log("terminateDebuggee: false after launch: the program is ended all the same");
        }
        self.stop_backend();
        self.end();
        if let (Some(pid), Some(true)) = (attached, args.terminate_debuggee) {
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            )
            .with_context(|| format!("probes removed, but process {pid} cannot be terminated"))?;
        }
        Ok(None)
    }

    pub(super) fn terminate(&mut self) -> Result<Option<Json>> {
        let Some(r) = &self.running else {
            bail!("nothing is running");
        };
        // Launched: SIGTERM, and `exited`/`terminated` follow when it ends.
        // Attached: detach, leaving it running.
        r.stop.request();
        Ok(None)
    }
}
