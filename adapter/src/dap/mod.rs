//! `logprobe dap`: the Debug Adapter Protocol server editors talk to.
//!
//! Layers, one folder each: [`codec`] frames messages, [`protocol`] holds
//! the serde types, this file is the transport (stdio, or TCP with every
//! connection a session on a thread of its own) and the log, [`session`] holds a session's state
//! and dispatches requests to the handlers of each request family
//! ([`lifecycle`], [`breakpoints`], [`traces`], [`live`], [`inspect`]),
//! [`run`] runs the program's trace on its own thread and sends what it
//! shows as `output` events, [`live`] ticks on another to send the live
//! figures, and [`snapshot`] presents a copied hit as a thread. A
//! thin face: launch and attach arguments become the engine's options,
//! logpoints and trace entries its requests (`crate::trace`), which does
//! everything else.
//!
//! Plain threads, not an async runtime: the backend blocks in `waitpid` on
//! its own thread (ptrace requires all calls to come from one thread), the
//! request loop blocks reading the client, and the program's output is read
//! by one thread per pipe. Over TCP each connection gets its own request
//! loop thread and with it all of the above: sessions are independent and
//! few, so tokio would add a runtime without removing any of these threads.

pub mod breakpoints;
pub mod codec;
pub mod inspect;
pub mod lifecycle;
pub mod live;
pub mod outgoing;
pub mod protocol;
pub mod run;
pub mod session;
pub mod snapshot;
pub mod traces;

use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use anyhow::{Context, Result};

use codec::FrameError;
use outgoing::Outgoing;
use protocol::{ErrorId, Failure, Incoming, OutputBody};
use session::Session;

#[derive(clap::Args, Debug)]
pub struct DapArgs {
    /// Serve over TCP at this address (`127.0.0.1:4711`, or a port alone for
    /// loopback) instead of stdin/stdout; each connection is a session of its
    /// own, served at the same time as the others.
    #[arg(long)]
    pub listen: Option<String>,
    /// Write the log here instead of stderr.
    #[arg(long)]
    pub log: Option<PathBuf>,
    /// Bytes of messages queued for a client that reads slowly before
    /// `output` events are left out (counted, and reported to it once it
    /// catches up); at least 65536.
    #[arg(long, value_name = "N", default_value_t = outgoing::DEFAULT_QUEUE_BYTES,
          value_parser = outgoing::parse_queue_bytes)]
    pub queue_bytes: u64,
}

static LOG: OnceLock<Mutex<Box<dyn Write + Send>>> = OnceLock::new();

/// Writes one line to the log (stderr or `--log FILE`), never to stdout.
pub fn log(message: &str) {
    let sink = LOG.get_or_init(|| Mutex::new(Box::new(std::io::stderr())));
    if let Ok(mut w) = sink.lock() {
        let _ = writeln!(w, "logprobe: {message}");
        let _ = w.flush();
    }
}

/// Runs the server until stdin closes (stdio) or forever (TCP).
pub fn serve(args: DapArgs) -> Result<i32> {
    if let Some(path) = &args.log {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open the log file {}", path.display()))?;
        let _ = LOG.set(Mutex::new(Box::new(file)));
    }
    match &args.listen {
        None => {
            let stdin = std::io::stdin();
            session(
                BufReader::new(stdin.lock()),
                Box::new(std::io::stdout()),
                args.queue_bytes,
            );
            Ok(0)
        }
        Some(addr) => {
            let addr: SocketAddr = match addr.parse::<u16>() {
                Ok(port) => SocketAddr::from(([127, 0, 0, 1], port)),
                Err(_) => addr
                    .parse()
                    .with_context(|| format!("--listen {addr}: expected HOST:PORT or PORT"))?,
            };
            let listener =
                TcpListener::bind(addr).with_context(|| format!("cannot listen on {addr}"))?;
            log(&format!(
                "DAP server listening on {}",
                listener.local_addr().unwrap_or(addr)
            ));
            if !addr.ip().is_loopback() {
                log(&format!(
                    "{addr} is not a loopback address: anyone who can reach it can run programs as this user"
                ));
            }
            accept(listener, args.queue_bytes);
            Ok(0)
        }
    }
}

/// Serves every connection on a thread of its own, for as long as the
/// listener accepts them: each is a session with its own program, probes
/// and backend, and shares nothing with the others but the log.
fn accept(listener: TcpListener, queue_bytes: u64) {
    for conn in listener.incoming() {
        let stream = match conn {
            Ok(s) => s,
            Err(e) => {
                log(&format!("accept failed: {e}"));
                continue;
            }
        };
        let peer = stream
            .peer_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let writer = match stream.try_clone() {
            Ok(w) => w,
            Err(e) => {
                log(&format!("cannot use the connection from {peer}: {e}"));
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let name = format!("session {peer}");
        let spawned = std::thread::Builder::new().name(name).spawn(move || {
            log(&format!("session from {peer}"));
            session(BufReader::new(stream), Box::new(writer), queue_bytes);
            log(&format!("session from {peer} ended"));
        });
        if let Err(e) = spawned {
            log(&format!("cannot start a session thread: {e}"));
        }
    }
}

/// Serves one client until it disconnects or its stream ends.
fn session(mut reader: impl std::io::BufRead, writer: Box<dyn Write + Send>, queue_bytes: u64) {
    let out = Outgoing::new(writer, queue_bytes);
    let mut session = Session::new(out.clone());
    while !session.ended() {
        let body = match codec::read_frame(&mut reader) {
            Ok(body) => body,
            Err(FrameError::Bad(m)) => {
                complain(&out, &format!("bad message skipped: {m}"));
                continue;
            }
            Err(FrameError::Eof) => break,
            Err(FrameError::Io(e)) => {
                log(&format!("reading the client failed: {e}"));
                break;
            }
        };
        match serde_json::from_slice::<Incoming>(&body) {
            Ok(msg) if msg.kind == "request" => session.handle(msg),
            Ok(msg) => log(&format!("ignoring a message of type {:?}", msg.kind)),
            Err(e) => {
                // Answer with an error response when seq and command can be
                // found, else with an output event.
                let v: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
                let seq = v
                    .as_ref()
                    .and_then(|v| v.get("seq"))
                    .and_then(|s| s.as_i64());
                let cmd = v
                    .as_ref()
                    .and_then(|v| v.get("command"))
                    .and_then(|s| s.as_str());
                match (seq, cmd) {
                    (Some(seq), Some(cmd)) => {
                        let f = Failure::new(ErrorId::Malformed, format!("malformed request: {e}"));
                        out.respond(seq, cmd, Err(f))
                    }
                    _ => complain(&out, &format!("invalid message skipped: {e}")),
                }
            }
        }
    }
    session.shutdown();
    out.finish();
}

/// Tells the client (and the log) about input that was not understood.
fn complain(out: &Outgoing, message: &str) {
    log(message);
    out.output(OutputBody {
        category: "important",
        output: format!("logprobe: {message}\n"),
        source: None,
        line: None,
        data: None,
    });
}
