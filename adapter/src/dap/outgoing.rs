//! The stream to the client: a queue bounded in bytes, shared by every
//! thread that reports something, and the writer thread that empties it.
//!
//! Senders encode and queue; they never wait for the client (the backend
//! thread may hold a traced thread stopped). A client that reads slowly or
//! not at all cannot make the queue grow without bound: once the queued
//! bytes pass the budget (`logprobe dap --queue-bytes`), `output` events
//! other than category `important` are left out and counted, until the
//! writer has brought the queue under half the budget. Then, before any
//! other message, one `important` output says how many were not sent
//! (`data {kind: "notSent", count}`); again at the end if some were left
//! out since. Responses and other events are always queued: the client
//! asked for the first, and the second are few (the live figures are not
//! sent while the queue is over budget, see `live.rs`). Sequence numbers
//! are given to the messages queued only, so the client sees no gaps.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Condvar, Mutex, MutexGuard};

use anyhow::Result;
use serde_json::{json, Value as Json};

use super::protocol::{Event, Failure, OutputBody, Response};
use super::{codec, log};

/// The default budget of queued bytes (`--queue-bytes`).
pub const DEFAULT_QUEUE_BYTES: u64 = 16 << 20;
/// The smallest budget `--queue-bytes` accepts.
pub const MIN_QUEUE_BYTES: u64 = 64 << 10;

/// Parses `--queue-bytes`: a number of bytes, at least [`MIN_QUEUE_BYTES`].
pub fn parse_queue_bytes(s: &str) -> Result<u64, String> {
    let n: u64 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a number of bytes"))?;
    if n < MIN_QUEUE_BYTES {
        return Err(format!(
            "{n} bytes is too small: the queue needs at least {MIN_QUEUE_BYTES}"
        ));
    }
    Ok(n)
}

struct State {
    frames: VecDeque<Vec<u8>>,
    /// Bytes queued, the frame being written included.
    bytes: u64,
    /// Over budget: outputs are left out until `bytes` falls under half.
    shedding: bool,
    /// Outputs left out since the last notice, and in all.
    unreported: u64,
    not_sent: u64,
    seq: i64,
    closed: bool,
    /// The client stopped accepting writes: frames are discarded.
    failed: bool,
}

pub struct Outgoing {
    state: Mutex<State>,
    ready: Condvar,
    budget: u64,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Outgoing {
    /// A queue of at most about `budget` bytes of output events, written
    /// to `writer` by a thread of its own.
    pub fn new(writer: Box<dyn Write + Send>, budget: u64) -> std::sync::Arc<Outgoing> {
        let out = std::sync::Arc::new(Outgoing {
            state: Mutex::new(State {
                frames: VecDeque::new(),
                bytes: 0,
                shedding: false,
                unreported: 0,
                not_sent: 0,
                seq: 1,
                closed: false,
                failed: false,
            }),
            ready: Condvar::new(),
            budget,
            writer: Mutex::new(None),
        });
        let queue = out.clone();
        let spawned = std::thread::Builder::new()
            .name("dap writer".into())
            .spawn(move || queue.write_all(writer));
        match spawned {
            Ok(t) => {
                if let Ok(mut w) = out.writer.lock() {
                    *w = Some(t);
                }
            }
            Err(e) => {
                log(&format!("cannot start the writer thread: {e}"));
                if let Ok(mut s) = out.state.lock() {
                    s.failed = true;
                    s.closed = true;
                }
            }
        }
        out
    }

    fn lock(&self) -> Option<MutexGuard<'_, State>> {
        self.state.lock().ok()
    }

    /// The writer thread: frames out in order until closed and empty.
    fn write_all(&self, mut writer: Box<dyn Write + Send>) {
        loop {
            let frame = {
                let Some(mut s) = self.lock() else { return };
                loop {
                    if let Some(f) = s.frames.pop_front() {
                        break f;
                    }
                    if s.closed {
                        return;
                    }
                    s = match self.ready.wait(s) {
                        Ok(s) => s,
                        Err(_) => return,
                    };
                }
            };
            let failed = self.lock().is_none_or(|s| s.failed);
            if !failed {
                if let Err(e) = writer.write_all(&frame).and_then(|_| writer.flush()) {
                    log(&format!("writing to the client failed: {e}"));
                    if let Some(mut s) = self.lock() {
                        s.failed = true;
                    }
                }
            }
            let Some(mut s) = self.lock() else { return };
            s.bytes = s.bytes.saturating_sub(frame.len() as u64);
            if s.shedding && s.bytes < self.budget / 2 {
                s.shedding = false;
                self.notice(&mut s);
            }
        }
    }

    /// Queues one message, numbered now.
    fn push(&self, s: &mut State, make: impl FnOnce(i64) -> serde_json::Result<Vec<u8>>) {
        if s.closed {
            return;
        }
        match make(s.seq) {
            Ok(body) => {
                s.seq += 1;
                let frame = codec::encode_frame(&body);
                s.bytes += frame.len() as u64;
                s.frames.push_back(frame);
                self.ready.notify_one();
            }
            Err(e) => log(&format!("cannot encode a message: {e}")),
        }
    }

    /// Queues the notice of the outputs left out since the last one, if any.
    fn notice(&self, s: &mut State) {
        let count = std::mem::take(&mut s.unreported);
        if count == 0 {
            return;
        }
        log(&format!("{count} output events were not sent"));
        let body = OutputBody {
            category: "important",
            output: format!(
                "logprobe: {count} output events were not sent: the client read too slowly (logprobe dap --queue-bytes)\n"
            ),
            source: None,
            line: None,
            data: Some(json!({ "kind": "notSent", "count": count })),
        };
        self.push(s, |seq| {
            event_json(seq, "output", serde_json::to_value(body).ok())
        });
    }

    /// Writes out everything queued (and the last notice) and stops the
    /// writer thread.
    pub fn finish(&self) {
        if let Some(mut s) = self.lock() {
            self.notice(&mut s);
            s.closed = true;
            self.ready.notify_all();
        }
        let thread = self.writer.lock().ok().and_then(|mut w| w.take());
        if let Some(t) = thread {
            let _ = t.join();
        }
    }

    /// Output events left out so far, all categories together.
    pub fn not_sent(&self) -> u64 {
        self.lock().map_or(0, |s| s.not_sent)
    }

    /// Whether the queue is over its budget (outputs are being left out).
    pub fn congested(&self) -> bool {
        self.lock().is_some_and(|s| s.shedding)
    }

    /// Sends the response to a request; a failed one carries its message
    /// both as `message` and as `body.error` (the schema's ErrorResponse).
    pub fn respond(&self, request_seq: i64, command: &str, result: Result<Option<Json>, Failure>) {
        let Some(mut s) = self.lock() else { return };
        self.push(&mut s, |seq| {
            let (success, message, body) = match result {
                Ok(body) => (true, None, body),
                Err(f) => (false, Some(f.message.clone()), Some(f.body())),
            };
            serde_json::to_vec(&Response {
                seq,
                kind: "response",
                request_seq,
                success,
                command,
                message,
                body,
            })
        });
    }

    pub fn event(&self, event: &str, body: Option<Json>) {
        let Some(mut s) = self.lock() else { return };
        self.push(&mut s, |seq| event_json(seq, event, body));
    }

    /// An `output` event; left out (and counted) while the queue is over
    /// budget, unless it is `important`.
    pub fn output(&self, body: OutputBody) {
        let Some(mut s) = self.lock() else { return };
        if body.category != "important" {
            if s.shedding {
                s.unreported += 1;
                s.not_sent += 1;
                return;
            }
            if s.bytes > self.budget {
                s.shedding = true;
                s.unreported += 1;
                s.not_sent += 1;
                return;
            }
        }
        let body = match serde_json::to_value(body) {
            Ok(b) => b,
            Err(e) => return log(&format!("cannot encode output: {e}")),
        };
        self.push(&mut s, |seq| event_json(seq, "output", Some(body)));
    }
}

fn event_json(seq: i64, event: &str, body: Option<Json>) -> serde_json::Result<Vec<u8>> {
    serde_json::to_vec(&Event {
        seq,
        kind: "event",
        event,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_bytes_must_be_a_number_of_at_least_64_kib() {
        assert_eq!(parse_queue_bytes("65536"), Ok(65536));
        assert!(parse_queue_bytes("65535").is_err_and(|e| e.contains("at least 65536")));
        assert!(parse_queue_bytes("16M").is_err_and(|e| e.contains("not a number")));
    }
}
