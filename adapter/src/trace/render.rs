//! The text of an event: the line `dlv trace` prints (`> goroutine(1):
//! main.foo(99, 9801)`, `>> goroutine(1): main.foo => (9900)`), a
//! logpoint's `@ file:line (values)`, with the options of [`Style`]
//! (wall-clock time, call durations). Values are written in the notation
//! of the event's language (`value::render`).

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use super::event::{Event, EventKind, Stack};
use crate::config::Style;
use crate::expr::template::Context;
use crate::expr::Template;
use crate::value::Notation;

/// Pairs each return with its call on the same goroutine (or thread, for
/// code without goroutines) to tell how long the call took.
#[derive(Debug, Default)]
pub struct Durations {
    /// Calls not returned yet, innermost last, per goroutine or thread.
    open: HashMap<(bool, u64), Vec<(String, u64)>>,
}

/// Calls remembered per goroutine; deeper ones (or calls whose return was
/// lost) push out the oldest.
const MAX_OPEN_CALLS: usize = 1024;

impl Durations {
    /// Records `e`; for a return, the nanoseconds since its call, if seen.
    pub fn observe(&mut self, e: &Event) -> Option<u64> {
        let key = match e.goroutine {
            Some(g) => (true, g),
            None => (false, e.thread as u64),
        };
        let stack = self.open.entry(key).or_default();
        match e.kind {
            EventKind::Call => {
                if stack.len() >= MAX_OPEN_CALLS {
                    stack.remove(0);
                }
                stack.push((e.function.clone(), e.time_ns));
                None
            }
            EventKind::Return => {
                let at = stack.iter().rposition(|(f, _)| *f == e.function)?;
                let start = stack[at].1;
                stack.truncate(at);
                if stack.is_empty() {
                    self.open.remove(&key);
                }
                Some(e.time_ns.saturating_sub(start))
            }
            EventKind::Line => None,
        }
    }
}

/// A duration as Go's `time.Duration` prints it: `850ns`, `1.204µs`, `12.5ms`, `3.2s`.
pub fn format_duration(ns: u64) -> String {
    let (unit, scale) = match ns {
        0..=999 => return format!("{ns}ns"),
        1_000..=999_999 => ("µs", 1_000),
        1_000_000..=999_999_999 => ("ms", 1_000_000),
        _ => ("s", 1_000_000_000),
    };
    let whole = ns / scale;
    let frac = ns % scale;
    let digits = scale.ilog10() as usize;
    let frac = format!("{frac:0digits$}");
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        format!("{whole}{unit}")
    } else {
        format!("{whole}.{frac}{unit}")
    }
}

/// The line of `e` (without the trailing newline): `(?)` for the values
/// where they are `unknown` (no DWARF), and with `duration`, the call's,
/// after a return's results.
pub fn line(e: &Event, style: Style, unknown: bool, duration: Option<u64>) -> String {
    let mut who = match e.goroutine {
        Some(g) => format!("goroutine({g})"),
        None => format!("thread({})", e.thread),
    };
    // In a tree of followed calls, as `dlv trace --follow-calls` prints
    // it: indented by depth, the depth named after the goroutine.
    let indent = match e.depth {
        Some(d) => {
            who = format!("{who}:frame({d})");
            " ".repeat(d.saturating_sub(1) as usize)
        }
        None => String::new(),
    };
    let notation = Notation::of(e.lang);
    let values = if unknown && e.values.is_empty() {
        String::from("?")
    } else {
        e.values
            .iter()
            .map(|v| notation.show(&v.value))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut line = String::new();
    if style.timestamps {
        line.push_str(&format!("{} ", wall_clock(e.time_ns)));
    }
    let colon = if e.depth.is_some() { "" } else { ":" };
    match e.kind {
        EventKind::Call => {
            line.push_str(&format!("{indent}> {who}{colon} {}({values})", e.function))
        }
        EventKind::Return => line.push_str(&format!(
            "{indent}>> {who}{colon} {} => ({values})",
            e.function
        )),
        EventKind::Line => line.push_str(&format!(
            "@ {who}: {}:{} ({values})",
            e.file.as_deref().unwrap_or("?"),
            e.line.unwrap_or(0)
        )),
    }
    if let (EventKind::Return, Some(ns)) = (e.kind, duration) {
        line.push_str(&format!(" in {}", format_duration(ns)));
    }
    if let Some(stack) = &e.stack {
        stack_lines(&mut line, stack);
    }
    line
}

/// Appends a hit's stack under its line as `dlv trace -s` prints it: a
/// tab and `Stack:`, then per frame two tabs, its number, two spaces,
/// `0x` and its address in 16 hex digits, ` in ` and the function, and a
/// line `at file:line` aligned under the address; `(truncated)` when the
/// stack goes on.
pub fn stack_lines(out: &mut String, stack: &Stack) {
    const IND: &str = "\t\t";
    out.push_str("\n\tStack:");
    let digits = stack.frames.len().saturating_sub(1).to_string().len();
    let at = format!("{IND}{:1$}", "", digits + 2 + IND.len());
    for (i, f) in stack.frames.iter().enumerate() {
        out.push_str(&format!(
            "\n{IND}{i:digits$}  {:#018x} in {}\n{at}at {}:{}",
            f.pc,
            f.function,
            f.file.as_deref().unwrap_or("?"),
            f.line.map_or(String::from("?"), |l| l.to_string()),
        ));
    }
    if stack.truncated {
        out.push_str(&format!("\n{IND}(truncated)"));
    }
}

/// A log message shown for `e`, prefixed with the time of the hit as
/// [`line`] is.
/// A log message's text for `e`: its `{expr}`s, `$FUNCTION`, `$GOROUTINE`
/// and `$THREAD` filled in, values in the notation of `e`'s language.
pub fn template(m: &Template, e: &Event) -> String {
    m.render(
        &Context {
            function: &e.function,
            goroutine: e.goroutine,
            thread: e.thread,
            notation: Notation::of(e.lang),
        },
        &e.values,
    )
}

pub fn message(e: &Event, style: Style, text: String) -> String {
    match style.timestamps {
        true => format!("{} {text}", wall_clock(e.time_ns)),
        false => text,
    }
}

/// Converts a CLOCK_MONOTONIC time to wall-clock `HH:MM:SS.nnnnnnnnn` (UTC).
fn wall_clock(mono_ns: u64) -> String {
    let now_mono = crate::backend::monotonic_ns();
    let now_wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let wall = now_wall.saturating_sub(now_mono.saturating_sub(mono_ns));
    let secs = wall / 1_000_000_000;
    let ns = wall % 1_000_000_000;
    format!(
        "{:02}:{:02}:{:02}.{:09}",
        (secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60,
        ns
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::Lang;
    use crate::value::{NamedValue, Value};

    #[test]
    fn durations_print_like_go() {
        assert_eq!(format_duration(850), "850ns");
        assert_eq!(format_duration(1_204), "1.204µs");
        assert_eq!(format_duration(12_500_000), "12.5ms");
        assert_eq!(format_duration(3_000_000_000), "3s");
    }

    fn event(kind: EventKind, function: &str, goroutine: u64, time_ns: u64) -> Event {
        Event {
            kind,
            function: function.to_string(),
            goroutine: Some(goroutine),
            pid: 1,
            thread: 1,
            time_ns,
            file: None,
            line: None,
            values: Vec::new(),
            stack: None,
            depth: None,
            lang: Lang::Go,
        }
    }

    #[test]
    fn returns_pair_with_their_call_on_the_same_goroutine() {
        let mut d = Durations::default();
        assert_eq!(d.observe(&event(EventKind::Call, "f", 1, 100)), None);
        assert_eq!(d.observe(&event(EventKind::Call, "f", 2, 150)), None);
        assert_eq!(d.observe(&event(EventKind::Call, "g", 1, 200)), None);
        assert_eq!(d.observe(&event(EventKind::Return, "g", 1, 260)), Some(60));
        assert_eq!(d.observe(&event(EventKind::Return, "f", 2, 400)), Some(250));
        assert_eq!(d.observe(&event(EventKind::Return, "f", 1, 500)), Some(400));
        assert_eq!(d.observe(&event(EventKind::Return, "f", 1, 600)), None);
    }

    #[test]
    fn lines_look_as_dlv_trace_prints_them() {
        let mut call = event(EventKind::Call, "main.foo", 1, 0);
        call.values = vec![
            NamedValue::new("x", Value::Int { value: 99 }),
            NamedValue::new("s", Value::string("go")),
        ];
        let plain = Style::default();
        assert_eq!(
            line(&call, plain, false, None),
            "> goroutine(1): main.foo(99, \"go\")"
        );
        let mut ret = event(EventKind::Return, "main.foo", 1, 0);
        assert_eq!(
            line(&ret, plain, true, Some(1_500)),
            ">> goroutine(1): main.foo => (?) in 1.5µs"
        );
        ret.goroutine = None;
        ret.thread = 42;
        assert_eq!(
            line(&ret, plain, false, None),
            ">> thread(42): main.foo => ()"
        );
        let mut at = event(EventKind::Line, "main.foo", 1, 0);
        at.file = Some("/src/main.go".into());
        at.line = Some(7);
        assert_eq!(
            line(&at, plain, false, None),
            "@ goroutine(1): /src/main.go:7 ()"
        );
    }
}
