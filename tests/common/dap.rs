//! A small DAP client over any byte stream, the real `logprobe dap` on
//! stdio or TCP, and the steps most DAP tests share (launch, attach).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::*;

pub const WAIT: Duration = Duration::from_secs(60);

/// A DAP client over any byte stream.
pub struct Client {
    writer: Box<dyn Write + Send>,
    rx: Receiver<Value>,
    seq: i64,
    /// Events received while waiting for something else.
    pub events: Vec<Value>,
    /// The `seq` of every message read from the adapter, in order.
    pub seqs: Arc<Mutex<Vec<i64>>>,
}

/// A gate in a client's reader: while it is closed the reader reads
/// nothing more from the adapter, as a stalled client would.
#[derive(Clone, Default)]
pub struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    pub fn close(&self) {
        *self.0 .0.lock().unwrap() = true;
    }

    pub fn open(&self) {
        *self.0 .0.lock().unwrap() = false;
        self.0 .1.notify_all();
    }

    fn pass(&self) {
        let mut closed = self.0 .0.lock().unwrap();
        while *closed {
            closed = self.0 .1.wait(closed).unwrap();
        }
    }
}

/// With `LOGPROBE_DAP_RECORD=DIR`, appends what a client sends to
/// `DIR/<test name>.dap`: how fuzz/corpus/dap/ was recorded.
fn record(bytes: &[u8]) {
    let Some(dir) = std::env::var_os("LOGPROBE_DAP_RECORD") else {
        return;
    };
    let name = std::thread::current()
        .name()
        .unwrap_or("session")
        .replace("::", "-");
    let path = std::path::Path::new(&dir).join(format!("{name}.dap"));
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .expect("open the recording");
    f.write_all(bytes).expect("record");
}

pub fn read_message(r: &mut impl BufRead) -> Option<Value> {
    let mut len = None;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some(v) = line.strip_prefix("Content-Length: ") {
            len = v.parse::<usize>().ok();
        }
    }
    let mut body = vec![0; len?];
    r.read_exact(&mut body).ok()?;
    serde_json::from_slice(&body).ok()
}

/// The official DAP JSON schema, vendored (see tests/dap-schema/README.md).
fn dap_schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let path = root().join("tests/dap-schema/debugAdapterProtocol.json");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        serde_json::from_str(&text).expect("the DAP schema is JSON")
    })
}

/// The schema definition a message must satisfy: `<Command>Response` for a
/// successful response (`ErrorResponse` for a failed one), `<Event>Event`
/// for an event, and the base `Response` or `Event` for the custom ones.
pub fn schema_definition(m: &Value) -> String {
    let defs = &dap_schema()["definitions"];
    let capitalized = |s: &str| {
        let mut c = s.chars();
        c.next()
            .map(|f| f.to_uppercase().chain(c).collect::<String>())
            .unwrap_or_default()
    };
    let (specific, base) = match m["type"].as_str() {
        Some("response") if m["success"] == false => ("ErrorResponse".to_string(), "Response"),
        Some("response") => (
            format!(
                "{}Response",
                capitalized(m["command"].as_str().unwrap_or(""))
            ),
            "Response",
        ),
        Some("event") => (
            format!("{}Event", capitalized(m["event"].as_str().unwrap_or(""))),
            "Event",
        ),
        _ => ("ProtocolMessage".to_string(), "ProtocolMessage"),
    };
    if defs.get(&specific).is_some() {
        specific
    } else {
        base.to_string()
    }
}

/// Panics unless `m` is valid against the DAP schema's definition for it.
pub fn check_against_schema(m: &Value) {
    static VALIDATORS: OnceLock<Mutex<HashMap<String, std::sync::Arc<jsonschema::Validator>>>> =
        OnceLock::new();
    let name = schema_definition(m);
    let validator =
        {
            let mut cache = VALIDATORS
                .get_or_init(Default::default)
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            cache
                .entry(name.clone())
                .or_insert_with(|| {
                    // The whole schema, narrowed to one definition, so that its
                    // `#/definitions/...` references resolve.
                    let mut schema = dap_schema().clone();
                    schema["allOf"] = json!([{ "$ref": format!("#/definitions/{name}") }]);
                    std::sync::Arc::new(jsonschema::draft4::new(&schema).unwrap_or_else(|e| {
                        panic!("the DAP schema's {name} does not compile: {e}")
                    }))
                })
                .clone()
        };
    let errors: Vec<String> = validator
        .iter_errors(m)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "message from the adapter invalid against the DAP schema's {name}: {}\n{m:#}",
        errors.join("; ")
    );
}

impl Client {
    pub fn new(reader: impl Read + Send + 'static, writer: Box<dyn Write + Send>) -> Client {
        Client::gated(reader, writer, Gate::default())
    }

    /// A client whose reader stops at `gate` while it is closed.
    pub fn gated(
        reader: impl Read + Send + 'static,
        writer: Box<dyn Write + Send>,
        gate: Gate,
    ) -> Client {
        let (tx, rx) = channel();
        let seqs = Arc::new(Mutex::new(Vec::new()));
        let seen = seqs.clone();
        std::thread::spawn(move || {
            let mut r = BufReader::new(reader);
            loop {
                gate.pass();
                let Some(m) = read_message(&mut r) else { break };
                if let Some(seq) = m["seq"].as_i64() {
                    seen.lock().unwrap().push(seq);
                }
                if tx.send(m).is_err() {
                    break;
                }
            }
        });
        Client {
            writer,
            rx,
            seq: 0,
            events: Vec::new(),
            seqs,
        }
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        record(bytes);
        self.write(bytes);
    }

    fn write(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("write to adapter");
        self.writer.flush().expect("flush");
    }

    pub fn send(&mut self, command: &str, args: Value) -> i64 {
        self.seq += 1;
        let message =
            json!({"seq": self.seq, "type": "request", "command": command, "arguments": args});
        let frame = |body: String| format!("Content-Length: {}\r\n\r\n{body}", body.len());
        // Recorded with the checkout's path as @ROOT@, so the corpus
        // does not depend on where it was recorded.
        let root = root().display().to_string();
        record(frame(message.to_string().replace(&root, "@ROOT@")).as_bytes());
        self.write(frame(message.to_string()).as_bytes());
        self.seq
    }

    pub fn next(&mut self, deadline: Instant) -> Value {
        let left = deadline.saturating_duration_since(Instant::now());
        let m = self.rx.recv_timeout(left).unwrap_or_else(|_| {
            panic!(
                "no message from the adapter in time; events so far: {:#?}",
                self.events
            )
        });
        check_against_schema(&m);
        m
    }

    /// Sends a request and returns its response, keeping events seen meanwhile.
    pub fn request(&mut self, command: &str, args: Value) -> Value {
        let seq = self.send(command, args);
        self.response_to(seq)
    }

    pub fn response_to(&mut self, seq: i64) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let m = self.next(deadline);
            if m["type"] == "response" && m["request_seq"] == seq {
                return m;
            }
            if m["type"] == "event" {
                self.events.push(m);
            }
        }
    }

    pub fn ok(&mut self, command: &str, args: Value) -> Value {
        let r = self.request(command, args);
        assert_eq!(r["success"], true, "{command} failed: {r}");
        r
    }

    /// Waits for an event matching `pred` (seen before or arriving).
    pub fn wait_event(&mut self, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.events.iter().position(&pred) {
            return self.events.remove(i);
        }
        let deadline = Instant::now() + WAIT;
        loop {
            let m = self.next(deadline);
            if m["type"] == "event" {
                if pred(&m) {
                    return m;
                }
                self.events.push(m);
            }
        }
    }

    /// Collects events for `d`.
    pub fn drain_for(&mut self, d: Duration) {
        let deadline = Instant::now() + d;
        while let Ok(m) = self
            .rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            check_against_schema(&m);
            if m["type"] == "event" {
                self.events.push(m);
            }
        }
    }

    /// Waits for `terminated`, then returns every output event's text by category.
    pub fn run_to_end(&mut self) -> (String, String) {
        self.wait_event(|e| e["event"] == "terminated");
        (self.output("console"), self.output("stdout"))
    }

    pub fn output(&self, category: &str) -> String {
        self.events
            .iter()
            .filter(|e| e["event"] == "output" && e["body"]["category"] == category)
            .filter_map(|e| e["body"]["output"].as_str())
            .collect()
    }

    pub fn outputs(&self, category: &str) -> Vec<Value> {
        self.events
            .iter()
            .filter(|e| e["event"] == "output" && e["body"]["category"] == category)
            .cloned()
            .collect()
    }

    pub fn exit_code(&self) -> Option<i64> {
        self.events
            .iter()
            .find(|e| e["event"] == "exited")
            .and_then(|e| e["body"]["exitCode"].as_i64())
    }
}

/// `logprobe dap` on stdio; the client and the process (reaped on drop).
pub fn stdio_adapter() -> (Client, Reaper) {
    stdio_adapter_with(&[], &[])
}

/// `logprobe dap ARGS` on stdio with `env` added to its environment.
pub fn stdio_adapter_with(args: &[&str], env: &[(&str, &str)]) -> (Client, Reaper) {
    stdio_adapter_gated(args, env, Gate::default())
}

/// [`stdio_adapter_with`], its client's reader stopping at `gate`.
pub fn stdio_adapter_gated(args: &[&str], env: &[(&str, &str)], gate: Gate) -> (Client, Reaper) {
    let mut child = Reaper(Some(
        logprobe()
            .arg("dap")
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn logprobe dap"),
    ));
    let stdin = child.child().stdin.take().expect("stdin");
    let stdout = child.child().stdout.take().expect("stdout");
    (Client::gated(stdout, Box::new(stdin), gate), child)
}

/// `logprobe dap` on stdio as the unprivileged user `nobody` (via
/// setpriv); `None` where that is impossible (not root, no setpriv), after
/// saying so.
pub fn stdio_adapter_as_nobody() -> Option<(Client, Reaper)> {
    // setpriv execs logprobe, so the pid reaped is logprobe's.
    let mut child = Reaper(Some(
        as_new_machine(&mut Command::new(setpriv()?))
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_logprobe"))
            .arg("dap")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn logprobe dap as nobody"),
    ));
    let stdin = child.child().stdin.take().expect("stdin");
    let stdout = child.child().stdout.take().expect("stdout");
    Some((Client::new(stdout, Box::new(stdin)), child))
}

/// `logprobe dap --listen 127.0.0.1:0` and the port it listens on.
pub fn tcp_adapter() -> (Reaper, u16) {
    let mut child = Reaper(Some(
        logprobe()
            .args(["dap", "--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn logprobe dap --listen"),
    ));
    let mut err = BufReader::new(child.child().stderr.take().expect("stderr"));
    let mut line = String::new();
    err.read_line(&mut line).expect("read the listening line");
    let port = line
        .trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    // Keep draining the log so the server never blocks on it.
    std::thread::spawn(move || {
        let mut sink = String::new();
        let _ = err.read_to_string(&mut sink);
    });
    (child, port)
}

pub fn tcp_client(port: u16) -> Client {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let reader = stream.try_clone().expect("clone");
    Client::new(reader, Box::new(stream))
}

pub fn seed_source() -> String {
    root()
        .join("fixtures/go/seed/main.go")
        .display()
        .to_string()
}

pub fn attach_source() -> String {
    root()
        .join("fixtures/go/attach/main.go")
        .display()
        .to_string()
}

/// initialize + launch (+ the `initialized` event).
pub fn launch(c: &mut Client, backend: &str, program: &str, args: &[&str], extra: Value) {
    let init = c.ok(
        "initialize",
        json!({"adapterID": "logprobe", "linesStartAt1": true}),
    );
    assert_eq!(init["body"]["supportsLogPoints"], true);
    let mut a = json!({"program": fixture(program).display().to_string(), "args": args, "backend": backend});
    if let (Some(a), Some(extra)) = (a.as_object_mut(), extra.as_object()) {
        a.extend(extra.clone());
    }
    c.ok("launch", a);
    c.wait_event(|e| e["event"] == "initialized");
}

/// A session on stdio that launched the ticker fixture (`attach`) for
/// `ticks` ticks, tracing `regex`, before `configurationDone`.
pub fn launch_ticker(backend: &str, ticks: &str, regex: &str) -> (Client, Reaper) {
    let (mut c, adapter) = stdio_adapter();
    launch(
        &mut c,
        backend,
        "attach",
        &[ticks],
        json!({"trace": [regex]}),
    );
    (c, adapter)
}

pub fn launch_after_init(c: &mut Client, program: &str) {
    c.ok(
        "launch",
        json!({"program": fixture(program).display().to_string()}),
    );
    c.wait_event(|e| e["event"] == "initialized");
}

/// A session attached to `pid` (the ticker fixture) tracing `main.tick`,
/// before `configurationDone`.
pub fn attach_tracing_tick(backend: &str, pid: u32) -> (Client, Reaper) {
    let (mut c, adapter) = stdio_adapter();
    c.ok("initialize", json!({"adapterID": "logprobe"}));
    c.ok(
        "attach",
        json!({"pid": pid, "backend": backend, "trace": [r"^main\.tick$"]}),
    );
    c.wait_event(|e| e["event"] == "initialized");
    (c, adapter)
}

/// The numbers after `prefix` in the console lines that start with it.
pub fn numbers_after(c: &Client, prefix: &str) -> Vec<i64> {
    c.outputs("console")
        .iter()
        .filter_map(|e| e["body"]["output"].as_str()?.strip_prefix(prefix))
        .filter_map(|rest| {
            let digits: String = rest.chars().take_while(|ch| ch.is_ascii_digit()).collect();
            digits.parse().ok()
        })
        .collect()
}
