//! The live figures of one trace or logpoint, and their part of the
//! `logprobe/hits` event (docs/protocol.md): hit counts, the rate over the
//! last second, hits shown, call durations per function, and the most
//! recent call, return or logpoint hit. (Hits a backend lost are counted
//! for the whole trace: the kernel does not say whose they were.)
//!
//! Counting happens on the backend's thread for every hit, so it is kept to
//! a few increments and one move: a hit's decoded event is moved in as "the
//! latest" (never cloned), and is rendered into text only when a report is
//! built, at most a few times a second. Durations go into a log-linear
//! [`Histogram`] of fixed size rather than a list of samples. When reports
//! are sent, and under which id, is the face's business.

use std::collections::{HashMap, VecDeque};

use serde_json::{json, Value as Json};

use super::event::Event;
use crate::image::{FuncId, Lang};
use crate::value::{Notation, Value};

/// log2 of the sub-buckets per power of two: percentiles read from the
/// histogram are within 1/2^SUB_BITS (6.25%) of the true value.
const SUB_BITS: u32 = 4;
const SUB: usize = 1 << SUB_BITS;
/// Values below SUB get a bucket each; each power of two above, SUB buckets.
const BUCKETS: usize = SUB + (64 - SUB_BITS as usize) * SUB;

/// Longest value text in an event, in characters.
pub const MAX_TEXT: usize = 80;

/// Durations in nanoseconds, counted in buckets 1/16 of a power of two
/// wide; the shortest and longest are kept exactly. The buckets are
/// allocated on the first value.
#[derive(Debug, Default)]
pub struct Histogram {
    counts: Vec<u64>,
    count: u64,
    min: u64,
    max: u64,
}

fn bucket(v: u64) -> usize {
    if v < SUB as u64 {
        return v as usize;
    }
    let e = 63 - v.leading_zeros();
    let sub = ((v >> (e - SUB_BITS)) as usize) & (SUB - 1);
    SUB + (e - SUB_BITS) as usize * SUB + sub
}

/// The lowest value of bucket `i` and the bucket's width.
fn bucket_range(i: usize) -> (u64, u64) {
    if i < SUB {
        return (i as u64, 1);
    }
    let e = (i - SUB) / SUB + SUB_BITS as usize;
    let sub = ((i - SUB) % SUB) as u64;
    let shift = e - SUB_BITS as usize;
    ((1u64 << e) | (sub << shift), 1u64 << shift)
}

impl Histogram {
    pub fn record(&mut self, v: u64) {
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS];
        }
        if let Some(c) = self.counts.get_mut(bucket(v)) {
            *c += 1;
        }
        self.min = if self.count == 0 { v } else { self.min.min(v) };
        self.count += 1;
        self.max = self.max.max(v);
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value below which a fraction `q` of the values lie: the middle
    /// of its bucket, kept between the shortest and the longest value;
    /// `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (low, width) = bucket_range(i);
                return Some((low + width / 2).clamp(self.min, self.max));
            }
        }
        Some(self.max)
    }
}

/// Hits per second over the last second, from the counts seen at each tick.
#[derive(Debug)]
pub struct Rate {
    samples: VecDeque<(u64, u64)>,
}

const SECOND: u64 = 1_000_000_000;

impl Rate {
    /// Counting starts at `now` (CLOCK_MONOTONIC ns) from `count`.
    pub fn new(now: u64, count: u64) -> Rate {
        Rate {
            samples: VecDeque::from([(now, count)]),
        }
    }

    /// Notes `count` at `now` and returns the rate over the last second
    /// (since counting started, if that is less).
    pub fn tick(&mut self, now: u64, count: u64) -> f64 {
        self.samples.push_back((now, count));
        while self.samples.len() > 2 && self.samples[1].0 + SECOND <= now {
            self.samples.pop_front();
        }
        match self.samples.front() {
            Some(&(t0, c0)) if now > t0 => {
                count.saturating_sub(c0) as f64 * 1e9 / (now - t0) as f64
            }
            _ => 0.0,
        }
    }
}

/// A hit kept as "the latest": its decoded event and what the event alone
/// does not say.
#[derive(Debug)]
pub struct Latest {
    pub event: Event,
    /// Source line: a call's declaration, a return's `ret`, a logpoint's line.
    pub line: Option<u64>,
    /// A return's duration, when its call was seen.
    pub duration: Option<u64>,
}

/// A value in the notation of its language.
pub fn show(lang: Lang, v: &Value) -> String {
    Notation::of(lang).show(v)
}

/// A source file as DAP's `Source` names it: its base name and path.
pub fn source(path: &str) -> Json {
    json!({ "name": path.rsplit('/').next().unwrap_or(path), "path": path })
}

/// Cuts text to `max` characters, ending it with `...` when cut.
pub fn cut(text: String, max: usize) -> String {
    if text.chars().count() <= max {
        return text;
    }
    let mut out: String = text.chars().take(max.saturating_sub(3)).collect();
    out.push_str("...");
    out
}

impl Latest {
    fn to_json(&self, message: Option<String>) -> Json {
        let e = &self.event;
        let values: Vec<Json> = e
            .values
            .iter()
            .map(|v| {
                json!({
                    "name": v.name,
                    "text": cut(show(e.lang, &v.value), MAX_TEXT),
                    "value": v.value,
                })
            })
            .collect();
        let mut hit = json!({ "time": e.time_ns, "values": values });
        match e.goroutine {
            Some(g) => hit["goroutine"] = json!(g),
            None => hit["thread"] = json!(e.thread),
        }
        if let Some(line) = self.line {
            hit["line"] = json!(line);
        }
        if let Some(d) = self.duration {
            hit["duration"] = json!(d);
        }
        if let Some(m) = message {
            hit["message"] = json!(m);
        }
        hit
    }
}

/// One function of a trace.
#[derive(Debug)]
pub struct FunctionFigures {
    pub name: String,
    pub file: Option<String>,
    pub line: Option<u64>,
    pub hits: u64,
    rate: Rate,
    pub durations: Histogram,
    pub call: Option<Latest>,
    pub ret: Option<Latest>,
}

impl FunctionFigures {
    fn report_function(&mut self, now: u64) -> Json {
        let mut f = json!({
            "name": self.name,
            "hits": self.hits,
            "rate": self.rate.tick(now, self.hits),
        });
        if let Some(path) = &self.file {
            f["source"] = source(path);
        }
        if let Some(l) = self.line {
            f["line"] = json!(l);
        }
        if let (Some(p50), Some(p99)) =
            (self.durations.quantile(0.5), self.durations.quantile(0.99))
        {
            f["durations"] = json!({
                "count": self.durations.count(),
                "p50": p50,
                "p99": p99,
                "max": self.durations.max(),
            });
        }
        if let Some(c) = &self.call {
            f["call"] = c.to_json(None);
        }
        if let Some(r) = &self.ret {
            f["return"] = r.to_json(None);
        }
        f
    }
}

/// What the figures belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Functions' calls (and returns).
    Trace,
    /// A source line.
    Logpoint,
}

/// The figures of one group: a trace (functions by regex or around a
/// position) or a logpoint.
#[derive(Debug)]
pub struct Figures {
    pub kind: Kind,
    pub paused: bool,
    pub label: String,
    pub file: Option<String>,
    pub line: Option<u64>,
    /// Hits whose condition held: calls of a trace, runs of a logpoint.
    pub hits: u64,
    pub shown: u64,
    /// Hits over a rate limit, which the backend did not report.
    limited: u64,
    /// Hits lost before they could be read (a full ring buffer).
    dropped: u64,
    rate: Rate,
    /// The rate the last event reported, to report it falling to zero.
    sent_rate: f64,
    pub functions: Vec<FunctionFigures>,
    by_func: HashMap<FuncId, usize>,
    /// A logpoint's latest hit.
    pub latest: Option<Latest>,
    /// Something changed since the last event.
    changed: bool,
}

/// A function a trace covers: its id in the image, name and declaration.
pub struct Covered {
    pub func: FuncId,
    pub name: String,
    pub file: Option<String>,
    pub line: Option<u64>,
}

impl Figures {
    fn new(kind: Kind, label: String, now: u64) -> Figures {
        Figures {
            kind,
            paused: false,
            label,
            file: None,
            line: None,
            hits: 0,
            shown: 0,
            limited: 0,
            dropped: 0,
            rate: Rate::new(now, 0),
            sent_rate: 0.0,
            functions: Vec::new(),
            by_func: HashMap::new(),
            latest: None,
            changed: true,
        }
    }

    /// A trace over `functions`; its place is the first one's declaration.
    pub fn trace(label: String, functions: Vec<Covered>, now: u64) -> Figures {
        let mut f = Figures::new(Kind::Trace, label, now);
        if let Some(first) = functions.first() {
            f.file = first.file.clone();
            f.line = first.line;
        }
        for c in functions {
            f.by_func.insert(c.func, f.functions.len());
            f.functions.push(FunctionFigures {
                name: c.name,
                file: c.file,
                line: c.line,
                hits: 0,
                rate: Rate::new(now, 0),
                durations: Histogram::default(),
                call: None,
                ret: None,
            });
        }
        f
    }

    pub fn logpoint(label: String, file: String, line: u64, now: u64) -> Figures {
        let mut f = Figures::new(Kind::Logpoint, label, now);
        f.file = Some(file);
        f.line = Some(line);
        f
    }

    fn function(&mut self, func: FuncId) -> Option<&mut FunctionFigures> {
        let i = *self.by_func.get(&func)?;
        self.functions.get_mut(i)
    }

    /// A call whose condition held.
    pub fn call(&mut self, func: FuncId, event: Event) {
        self.hits += 1;
        self.changed = true;
        if let Some(f) = self.function(func) {
            f.hits += 1;
            let line = f.line;
            f.call = Some(Latest {
                event,
                line,
                duration: None,
            });
        }
    }

    /// The return of a call whose condition held, from the `ret` at `line`.
    pub fn ret(&mut self, func: FuncId, event: Event, line: Option<u64>, duration: Option<u64>) {
        self.changed = true;
        if let Some(f) = self.function(func) {
            if let Some(d) = duration {
                f.durations.record(d);
            }
            f.ret = Some(Latest {
                event,
                line,
                duration,
            });
        }
    }

    /// A logpoint's line ran and its condition held.
    pub fn line(&mut self, event: Event) {
        self.hits += 1;
        self.changed = true;
        let line = self.line;
        self.latest = Some(Latest {
            event,
            line,
            duration: None,
        });
    }

    pub fn count_shown(&mut self) {
        self.shown += 1;
    }

    pub fn set_paused(&mut self, paused: bool) {
        if self.paused != paused {
            self.paused = paused;
            self.changed = true;
        }
    }

    /// The most recent call (or logpoint hit), for summaries and snapshots.
    pub fn newest(&self) -> Option<&Latest> {
        match self.kind {
            Kind::Logpoint => self.latest.as_ref(),
            Kind::Trace => self
                .functions
                .iter()
                .filter_map(|f| f.call.as_ref())
                .max_by_key(|l| l.event.time_ns),
        }
    }

    /// `count` more hits were over a rate limit.
    pub fn add_limited(&mut self, count: u64) {
        self.limited += count;
        self.changed = true;
    }

    /// `count` more hits were lost before they could be read.
    pub fn add_dropped(&mut self, count: u64) {
        self.dropped += count;
        self.changed = true;
    }

    /// The group's entry of the next report (docs/protocol.md's
    /// `logprobe/hits`, without the face's `id`), if anything changed since
    /// the last one: its rates as of `now`; a logpoint's message is
    /// rendered by `message`.
    pub fn report(&mut self, now: u64, message: &dyn Fn(&Event) -> String) -> Option<Json> {
        let rate = self.rate.tick(now, self.hits);
        if !self.changed && rate == self.sent_rate {
            return None;
        }
        self.changed = false;
        self.sent_rate = rate;
        let mut t = json!({
            "kind": match self.kind { Kind::Trace => "trace", Kind::Logpoint => "logpoint" },
            "state": if self.paused { "paused" } else { "active" },
            "label": self.label,
            "hits": self.hits,
            "rate": rate,
            "shown": self.shown,
            "limited": self.limited,
            "dropped": self.dropped,
        });
        if let Some(path) = &self.file {
            t["source"] = source(path);
        }
        if let Some(l) = self.line {
            t["line"] = json!(l);
        }
        match self.kind {
            Kind::Trace => {
                let functions: Vec<Json> = self
                    .functions
                    .iter_mut()
                    .map(|f| f.report_function(now))
                    .collect();
                t["functions"] = json!(functions);
            }
            Kind::Logpoint => {
                if let Some(l) = &self.latest {
                    t["latest"] = l.to_json(Some(message(&l.event)));
                }
            }
        }
        Some(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{EventKind, NamedValue};

    #[test]
    fn buckets_cover_every_value_in_order() {
        let mut last = 0;
        for v in (0..5000u64).chain([u64::MAX / 3, u64::MAX - 1, u64::MAX]) {
            let b = bucket(v);
            assert!(b < BUCKETS, "{v} -> {b}");
            assert!(b >= last, "buckets grow with values");
            last = b;
            let (low, width) = bucket_range(b);
            assert!(low <= v && v - low < width, "{v} in [{low}, +{width})");
        }
    }

    #[test]
    fn percentiles_are_within_a_sixteenth() {
        let mut h = Histogram::default();
        assert_eq!(h.quantile(0.5), None);
        // 1..=100_000 ns: the true median is 50_000, the 99th percentile 99_000.
        for v in 1..=100_000u64 {
            h.record(v);
        }
        let p50 = h.quantile(0.5).unwrap_or(0) as f64;
        let p99 = h.quantile(0.99).unwrap_or(0) as f64;
        assert!((p50 - 50_000.0).abs() <= 50_000.0 / 16.0, "p50 {p50}");
        assert!((p99 - 99_000.0).abs() <= 99_000.0 / 16.0, "p99 {p99}");
        assert_eq!(h.max(), 100_000);
        assert_eq!(h.count(), 100_000);
        // One value: every percentile is it (the bucket is exact below 16).
        let mut one = Histogram::default();
        one.record(7);
        assert_eq!(one.quantile(0.5), Some(7));
        assert_eq!(one.quantile(0.99), Some(7));
        // A percentile stays between the shortest and the longest value.
        let mut big = Histogram::default();
        big.record(1_000_001);
        assert_eq!(big.quantile(0.5), Some(1_000_001));
        big.record(1_000_003);
        let p99 = big.quantile(0.99).unwrap_or(0);
        assert!((1_000_001..=1_000_003).contains(&p99), "{p99}");
    }

    #[test]
    fn the_rate_covers_the_last_second() {
        let mut r = Rate::new(0, 0);
        // 100 hits every 250 ms: 400 a second.
        let mut rate = 0.0;
        for i in 1..=12u64 {
            rate = r.tick(i * SECOND / 4, i * 100);
        }
        assert!((rate - 400.0).abs() < 1.0, "{rate}");
        // Then nothing: the rate falls to zero within a second.
        for i in 13..=17u64 {
            rate = r.tick(i * SECOND / 4, 1200);
        }
        assert_eq!(rate, 0.0);
    }

    fn event(kind: EventKind, time_ns: u64, x: i64) -> Event {
        Event {
            kind,
            function: "main.foo".into(),
            goroutine: Some(1),
            pid: 1,
            thread: 1,
            time_ns,
            file: None,
            line: None,
            values: vec![NamedValue {
                name: "x".into(),
                value: Value::Int { value: x },
            }],
            stack: None,
            depth: None,
            lang: Lang::Go,
        }
    }

    #[test]
    fn an_event_carries_what_changed_once() {
        let covered = vec![Covered {
            func: 3,
            name: "main.foo".into(),
            file: Some("/w/main.go".into()),
            line: Some(5),
        }];
        let mut f = Figures::trace("main.foo".into(), covered, 0);
        f.call(3, event(EventKind::Call, 10, 99));
        f.ret(
            3,
            event(EventKind::Return, 1_210, 9900),
            Some(8),
            Some(1_200),
        );
        let none = |_: &Event| String::new();
        let t = f.report(SECOND, &none);
        let t = t.unwrap_or_default();
        assert_eq!(t["hits"], 1);
        assert_eq!(t["state"], "active");
        let foo = &t["functions"][0];
        assert_eq!(foo["call"]["values"][0]["text"], "99");
        assert_eq!(foo["call"]["values"][0]["value"]["value"], 99);
        assert_eq!(foo["call"]["line"], 5);
        assert_eq!(foo["call"]["goroutine"], 1);
        assert_eq!(foo["return"]["line"], 8);
        assert_eq!(foo["return"]["duration"], 1_200);
        assert_eq!(foo["durations"]["max"], 1_200);
        // The rate was 1 a second; nothing changes, so only its fall is
        // reported, then nothing.
        assert!(f.report(3 * SECOND, &none).is_some(), "the rate fell");
        assert!(f.report(4 * SECOND, &none).is_none(), "unchanged");
        f.set_paused(true);
        assert_eq!(
            f.report(5 * SECOND, &none).unwrap_or_default()["state"],
            "paused"
        );
    }

    #[test]
    fn a_logpoint_event_renders_its_message_lazily() {
        let mut f = Figures::logpoint("x={x}".into(), "/w/main.go".into(), 6, 0);
        f.line(event(EventKind::Line, 5, 1));
        f.line(event(EventKind::Line, 6, 2));
        let t = f
            .report(SECOND, &|e: &Event| format!("x={}", e.values.len() + 1))
            .unwrap_or_default();
        assert_eq!(t["hits"], 2);
        assert_eq!(t["latest"]["values"][0]["text"], "2");
        assert_eq!(t["latest"]["message"], "x=2");
        assert_eq!(t["latest"]["line"], 6);
    }

    #[test]
    fn long_texts_are_cut() {
        assert_eq!(cut("abcdef".into(), 5), "ab...");
        assert_eq!(cut("abc".into(), 5), "abc");
    }
}
