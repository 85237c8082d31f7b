//! Console volume: which of a group's hits become lines. `all` shows every
//! hit; `sample` the first N of each second and then one line counting the
//! rest; `summary` none, and one line per group and second with its count,
//! durations and latest hit (docs/protocol.md, "Console volume").
//!
//! This module decides per hit and words the end-of-second lines; the
//! figures it quotes are handed in, and when a second ends is the face's
//! clock. A hit the volume leaves out is still counted in the figures.

use anyhow::{bail, Result};

use super::render::format_duration;

/// Lines per trace and second under `sample` when the client names none.
pub const DEFAULT_LINES_PER_SECOND: u64 = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Volume {
    #[default]
    All,
    Sample {
        per_second: u64,
    },
    Summary,
}

impl Volume {
    /// From the protocol's names (`all`, `sample`, `summary`) and the
    /// `sample` rate.
    pub fn parse(name: &str, lines_per_second: Option<u64>) -> Result<Volume> {
        let per_second = lines_per_second.unwrap_or(DEFAULT_LINES_PER_SECOND);
        match name {
            "all" => Ok(Volume::All),
            "sample" if per_second == 0 => bail!("'linesPerSecond' must be at least 1"),
            "sample" => Ok(Volume::Sample { per_second }),
            "summary" => Ok(Volume::Summary),
            other => bail!("unknown console volume '{other}' (use 'all', 'sample' or 'summary')"),
        }
    }
}

/// What one trace did in the current second.
#[derive(Debug, Default, Clone, Copy)]
pub struct Window {
    /// Hits that would have been lines at volume `all`.
    pub hits: u64,
    pub shown: u64,
}

/// What the end-of-second lines quote about a trace.
pub struct Quote {
    pub label: String,
    /// "call" for traces, "hit" for logpoints.
    pub noun: &'static str,
    /// Hits since the trace began.
    pub total: u64,
    /// p50, p99 and max of its call durations, if timed.
    pub durations: Option<(u64, u64, u64)>,
    /// The latest hit as its console line would read.
    pub latest: Option<String>,
}

/// The line that ends a second, and what it counts.
#[derive(Debug, PartialEq)]
pub struct Closed {
    pub text: String,
    pub omitted: u64,
    pub hits: u64,
}

fn plural(noun: &str, n: u64) -> String {
    if n == 1 {
        noun.to_string()
    } else {
        format!("{noun}s")
    }
}

impl Window {
    /// Whether a hit that passed its conditions becomes a line.
    pub fn admit(&mut self, volume: Volume) -> bool {
        self.hits += 1;
        let shown = match volume {
            Volume::All => true,
            Volume::Sample { per_second } => self.shown < per_second,
            Volume::Summary => false,
        };
        if shown {
            self.shown += 1;
        }
        shown
    }

    /// Ends the second: the line saying what was left out (`sample`) or
    /// what happened (`summary`), if there is one; the window starts over.
    pub fn close(&mut self, volume: Volume, quote: impl FnOnce() -> Quote) -> Option<Closed> {
        let Window { hits, shown } = std::mem::take(self);
        let omitted = hits - shown;
        match volume {
            Volume::All => None,
            Volume::Sample { per_second } if omitted > 0 => {
                let q = quote();
                Some(Closed {
                    text: format!(
                        "logprobe: {}: {omitted} more {} in the last second not shown (console volume: sample, {per_second} a second)",
                        q.label,
                        plural(q.noun, omitted)
                    ),
                    omitted,
                    hits,
                })
            }
            Volume::Summary if hits > 0 => {
                let q = quote();
                let mut text = format!(
                    "logprobe: {}: {hits} {} in the last second, none shown ({} in all",
                    q.label,
                    plural(q.noun, hits),
                    q.total
                );
                if let Some((p50, p99, max)) = q.durations {
                    text.push_str(&format!(
                        "; p50 {}, p99 {}, max {}",
                        format_duration(p50),
                        format_duration(p99),
                        format_duration(max)
                    ));
                }
                text.push(')');
                if let Some(latest) = q.latest {
                    text.push_str(&format!("; latest: {latest}"));
                }
                Some(Closed {
                    text,
                    omitted,
                    hits,
                })
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quote() -> Quote {
        Quote {
            label: "main.foo".into(),
            noun: "call",
            total: 1234,
            durations: Some((1210, 8650, 20500)),
            latest: Some("> goroutine(1): main.foo(99, 9801)".into()),
        }
    }

    #[test]
    fn names_parse_and_bad_ones_say_what_to_use() {
        assert_eq!(Volume::parse("all", None).ok(), Some(Volume::All));
        assert_eq!(
            Volume::parse("sample", None).ok(),
            Some(Volume::Sample {
                per_second: DEFAULT_LINES_PER_SECOND
            })
        );
        assert_eq!(
            Volume::parse("sample", Some(3)).ok(),
            Some(Volume::Sample { per_second: 3 })
        );
        assert!(Volume::parse("sample", Some(0)).is_err());
        let e = Volume::parse("loud", None)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("'all', 'sample' or 'summary'"), "{e}");
    }

    #[test]
    fn all_shows_everything_and_closes_silently() {
        let mut w = Window::default();
        assert!((0..100).all(|_| w.admit(Volume::All)));
        assert_eq!(w.close(Volume::All, quote), None);
    }

    #[test]
    fn sample_shows_the_first_n_then_counts_the_rest() {
        let v = Volume::Sample { per_second: 3 };
        let mut w = Window::default();
        let shown: Vec<bool> = (0..5).map(|_| w.admit(v)).collect();
        assert_eq!(shown, [true, true, true, false, false]);
        let closed = w.close(v, quote);
        assert_eq!(
            closed,
            Some(Closed {
                text: "logprobe: main.foo: 2 more calls in the last second not shown (console volume: sample, 3 a second)"
                    .into(),
                omitted: 2,
                hits: 5,
            })
        );
        // A new second: shown again; nothing left out, nothing said.
        assert!(w.admit(v));
        assert_eq!(w.close(v, quote), None);
    }

    #[test]
    fn summary_shows_nothing_and_says_everything_once_a_second() {
        let mut w = Window::default();
        assert!(!w.admit(Volume::Summary));
        let closed = w.close(Volume::Summary, quote);
        assert_eq!(
            closed.map(|c| (c.text, c.omitted)),
            Some((
                "logprobe: main.foo: 1 call in the last second, none shown (1234 in all; p50 1.21µs, p99 8.65µs, max 20.5µs); latest: > goroutine(1): main.foo(99, 9801)".into(),
                1
            ))
        );
        assert_eq!(
            w.close(Volume::Summary, quote),
            None,
            "a quiet second says nothing"
        );
    }
}
