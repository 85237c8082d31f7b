//! What a face asks the engine to probe, typed: functions by name, the
//! function around a source position, or a source line (a logpoint); with
//! an optional condition, hit condition and log message, and whether
//! returns are probed.

/// What to probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Select {
    /// Every traceable function whose name matches this regular
    /// expression (Go syntax; `foo` matches `main.foo`).
    Functions(String),
    /// The function whose code holds this source line (1-based), or on a
    /// line without code, the last one declared before it in that file.
    Around { file: String, line: u64 },
    /// The first statement of this source line (1-based) in every function
    /// with code for it, with the variables in scope there.
    Line { file: String, line: u64 },
}

/// One request: what to probe and what to show of its hits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub select: Select,
    /// Only hits where this holds are shown (`crate::expr`); what of it
    /// the probes can check themselves, they do.
    pub condition: Option<String>,
    /// Only hits whose count (among those the condition let through)
    /// satisfies this: `5`, `>= 5`, `% 10`.
    pub hit_condition: Option<String>,
    /// A log message replacing the event's line: `{expr}`, `$FUNCTION`,
    /// `$GOROUTINE`, `$THREAD`.
    pub message: Option<String>,
    /// Whether the functions' returns are probed and shown. A log message
    /// replaces the call line and no return is shown, so
    /// [`Request::message`] turns this off.
    pub returns: bool,
    /// Levels of callees of the selected functions traced too (`dlv trace
    /// --follow-calls N`), found statically from their call instructions;
    /// their lines are indented by call depth.
    pub follow_calls: u32,
}

impl Request {
    fn new(select: Select) -> Request {
        let returns = !matches!(select, Select::Line { .. });
        Request {
            select,
            condition: None,
            hit_condition: None,
            message: None,
            returns,
            follow_calls: 0,
        }
    }

    /// The functions matching `regex`.
    pub fn functions(regex: impl Into<String>) -> Request {
        Request::new(Select::Functions(regex.into()))
    }

    /// The function around `file:line` (1-based).
    pub fn around(file: impl Into<String>, line: u64) -> Request {
        Request::new(Select::Around {
            file: file.into(),
            line,
        })
    }

    /// A logpoint at `file:line` (1-based).
    pub fn line(file: impl Into<String>, line: u64) -> Request {
        Request::new(Select::Line {
            file: file.into(),
            line,
        })
    }

    /// With a condition; a blank one is none.
    pub fn condition(mut self, condition: Option<&str>) -> Request {
        self.condition = condition
            .filter(|c| !c.trim().is_empty())
            .map(str::to_string);
        self
    }

    /// With a hit condition; a blank one is none.
    pub fn hit_condition(mut self, hit_condition: Option<&str>) -> Request {
        self.hit_condition = hit_condition
            .filter(|c| !c.trim().is_empty())
            .map(str::to_string);
        self
    }

    /// With `levels` of callees traced too.
    pub fn follow_calls(mut self, levels: u32) -> Request {
        self.follow_calls = levels;
        self
    }

    /// With a log message, which replaces the call line: returns are then
    /// not probed.
    pub fn message(mut self, message: Option<&str>) -> Request {
        self.message = message.map(str::to_string);
        if self.message.is_some() {
            self.returns = false;
        }
        self
    }
}
