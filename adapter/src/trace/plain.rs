//! Running a program without probes: what "Run Without Debugging" (DAP
//! `noDebug`) means for a tracer. The program is launched as a backend
//! would launch it (its output going where the face sends it: with
//! `Launch::stdio`, read from pipes and handed to `Sink::output`) and
//! waited for; a stop request ends it with SIGTERM.

use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};

use super::run::Sink;
use crate::backend::{launch, output, Outcome, StopHandle, Target};

/// How often the program's end and a stop request are looked for.
const POLL: Duration = Duration::from_millis(5);

pub(super) fn run(target: &Target, sink: &mut dyn Sink, stop: &StopHandle) -> Result<Outcome> {
    let Target::Launch(l) = target else {
        bail!("a process attached without probes would show nothing: attach with probes, or launch with 'noDebug'");
    };
    let (mut pipes, ends) = match &l.stdio {
        Some(_) => {
            let (pipes, ends) = output::open()?;
            (pipes, Some(ends))
        }
        None => (Vec::new(), None),
    };
    let pid = launch::spawn_stopped(l, ends.as_ref(), &launch::Extras::default())?;
    drop(ends);
    sink.armed(pid.as_raw(), &[]);
    let hand = |pipes: &mut [output::Pipe], sink: &mut dyn Sink| {
        output::drain(pipes, &mut |fd, bytes| sink.output(fd, bytes));
    };
    kill(pid, Signal::SIGCONT).map_err(|e| anyhow!("starting the program: {e}"))?;
    let mut asked = false;
    loop {
        hand(&mut pipes, sink);
        let outcome = match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => Some(Outcome::Exited(code)),
            Ok(WaitStatus::Signaled(_, sig, _)) => Some(Outcome::Signaled(sig as i32)),
            Ok(_) | Err(nix::errno::Errno::EINTR) => None,
            Err(e) => bail!("waiting for the program: {e}"),
        };
        if let Some(outcome) = outcome {
            hand(&mut pipes, sink);
            return Ok(outcome);
        }
        if stop.requested() && !asked {
            asked = true;
            let _ = kill(pid, Signal::SIGTERM);
        }
        std::thread::sleep(POLL);
    }
}
