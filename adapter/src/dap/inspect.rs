//! The requests about threads and values, answered for a program that is
//! never stopped: `threads` (the process, and the snapshot thread while
//! there is one), the custom `snapshot` (a trace's latest hit copied into
//! that thread, reported `stopped`), and `stackTrace`, `scopes`,
//! `variables`, `continue`, `next`, `stepIn` and `stepOut` on it; `pause`
//! takes a snapshot of the trace hit last (docs/protocol.md, "The latest
//! hit in the Variables view").

use anyhow::{anyhow, bail, Result};
use serde_json::{json, Value as Json};

use super::protocol::{
    ScopesArguments, SnapshotArguments, Source, ThreadArguments, VariablesArguments,
};
use super::session::Session;
use super::snapshot::{Snapshot, PROGRAM_THREAD, SNAPSHOT_THREAD};

const NEVER_STOPS: &str = "logprobe traces without stopping the program";

impl Session {
    pub(super) fn threads(&mut self) -> Result<Option<Json>> {
        // logprobe never stops the program, so it does not track threads
        // for the client; one entry stands for the process.
        let name = self
            .program
            .as_ref()
            .map(|p| p.name.rsplit('/').next().unwrap_or("").to_string())
            .unwrap_or_else(|| String::from("program"));
        let mut threads = vec![json!({ "id": PROGRAM_THREAD, "name": name })];
        if let Some(s) = &self.snapshot {
            threads.push(json!({ "id": SNAPSHOT_THREAD, "name": s.thread_name() }));
        }
        Ok(Some(json!({ "threads": threads })))
    }

    /// Copies the latest hit of trace `id` into the snapshot thread, and
    /// reports that thread stopped.
    pub(super) fn snapshot(&mut self, args: SnapshotArguments) -> Result<Option<Json>> {
        let group = self.group_id(&args.id)?;
        self.take_snapshot(&args.id, group, args.function.as_deref())?;
        Ok(Some(json!({ "threadId": SNAPSHOT_THREAD })))
    }

    fn take_snapshot(
        &mut self,
        id: &str,
        group: crate::trace::GroupId,
        function: Option<&str>,
    ) -> Result<()> {
        let hit = self
            .trace()?
            .latest(group, function)
            .ok_or_else(|| anyhow!("'{id}' has no hit yet"))?;
        let snapshot = Snapshot::new(
            id.to_string(),
            hit.name,
            hit.file.as_deref().map(Source::from_path),
            hit.line,
            hit.lang,
            hit.scopes,
        );
        self.then_send("stopped", Some(snapshot.stopped()));
        self.snapshot = Some(snapshot);
        Ok(())
    }

    fn snapshot_thread(&mut self, thread: i64) -> Result<&mut Snapshot> {
        if thread != SNAPSHOT_THREAD {
            bail!("{NEVER_STOPS}: thread {thread} is running");
        }
        self.snapshot
            .as_mut()
            .ok_or_else(|| anyhow!("there is no snapshot: send 'snapshot' first"))
    }

    pub(super) fn stack_trace(&mut self, args: ThreadArguments) -> Result<Option<Json>> {
        Ok(Some(self.snapshot_thread(args.thread_id)?.stack_trace()))
    }

    pub(super) fn scopes(&mut self, _args: ScopesArguments) -> Result<Option<Json>> {
        Ok(Some(self.snapshot_thread(SNAPSHOT_THREAD)?.scopes()))
    }

    pub(super) fn variables(&mut self, args: VariablesArguments) -> Result<Option<Json>> {
        self.snapshot_thread(SNAPSHOT_THREAD)?
            .variables(args.variables_reference)
            .map(Some)
            .ok_or_else(|| anyhow!("no variables with reference {}", args.variables_reference))
    }

    /// `continue`: closes the snapshot (the program itself never stopped).
    pub(super) fn resume_thread(&mut self, args: ThreadArguments) -> Result<Option<Json>> {
        self.snapshot_thread(args.thread_id)?;
        self.snapshot = None;
        self.then_send(
            "thread",
            Some(json!({ "reason": "exited", "threadId": SNAPSHOT_THREAD })),
        );
        Ok(Some(json!({ "allThreadsContinued": false })))
    }

    /// `pause`: the program is never stopped; the trace hit last is shown
    /// as a snapshot instead, the nearest a tracer comes to a paused view.
    pub(super) fn pause(&mut self, _args: ThreadArguments) -> Result<Option<Json>> {
        let (group, label) = self
            .trace()?
            .last_hit()
            .ok_or_else(|| anyhow!("{NEVER_STOPS}, and nothing was hit yet to show"))?;
        self.take_snapshot(&super::live::id_of(group, label), group, None)?;
        Ok(None)
    }

    /// `next`, `stepIn`, `stepOut`: the snapshot moves to the trace's
    /// newest hit.
    pub(super) fn step(&mut self, args: ThreadArguments) -> Result<Option<Json>> {
        let s = self.snapshot_thread(args.thread_id)?;
        let (id, name) = (s.trace.clone(), s.function_name().map(str::to_string));
        let group = self.group_id(&id)?;
        self.take_snapshot(&id, group, name.as_deref())?;
        Ok(None)
    }
}
