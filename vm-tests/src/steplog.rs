//! The step log: every driver action as a nested, timed step.
//!
//! A step is opened with [`StepLog::begin`] and closed through the returned
//! [`Step`] (`ok`, `ok_with`, `fail`); a step dropped without being closed
//! (a panic unwinding through it) is recorded as abandoned. Steps opened while
//! another is open are its children and are indented under it. Times are
//! relative to the creation of the log (the start of the test).
//!
//! Each step is printed to stderr when it begins and when it ends (visible
//! with `--nocapture`), and [`StepLog::render`] formats the whole log as a
//! table for failure reports.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
enum Outcome {
    Running,
    Ok(Option<String>),
    Failed(String),
    Abandoned,
}

#[derive(Debug, Clone)]
struct Entry {
    depth: usize,
    text: String,
    start: Duration,
    end: Option<Duration>,
    outcome: Outcome,
}

#[derive(Debug, Default)]
struct Inner {
    entries: Vec<Entry>,
    open: usize,
}

/// A shared, append-only log of steps.
#[derive(Debug, Clone)]
pub struct StepLog {
    start: Instant,
    echo: bool,
    inner: Arc<Mutex<Inner>>,
}

impl StepLog {
    /// A new log whose clock starts now; `echo` prints steps to stderr.
    pub fn new(echo: bool) -> Self {
        Self {
            start: Instant::now(),
            echo,
            inner: Arc::default(),
        }
    }

    /// Time since the log was created.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves the log consistent (every
        // mutation is a single push or field store), so poisoning is ignored.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Opens a step; close it with [`Step::ok`] or [`Step::fail`].
    pub fn begin(&self, text: impl Into<String>) -> Step {
        let text = text.into();
        let start = self.elapsed();
        let mut inner = self.lock();
        let depth = inner.open;
        inner.open += 1;
        inner.entries.push(Entry {
            depth,
            text: text.clone(),
            start,
            end: None,
            outcome: Outcome::Running,
        });
        let index = inner.entries.len() - 1;
        drop(inner);
        if self.echo {
            eprintln!("[{:>8}] {}▶ {text}", secs(start), indent(depth));
        }
        Step {
            log: self.clone(),
            index,
            closed: false,
        }
    }

    /// Runs `f` as a step: closed as ok on `Ok`, as failed with the error's
    /// first line on `Err`.
    pub fn step<T, E: std::fmt::Display>(
        &self,
        text: impl Into<String>,
        f: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        let step = self.begin(text);
        match f() {
            Ok(value) => {
                step.ok();
                Ok(value)
            }
            Err(e) => {
                step.fail(first_line(&e.to_string()));
                Err(e)
            }
        }
    }

    fn close(&self, index: usize, outcome: Outcome) {
        let end = self.elapsed();
        let mut inner = self.lock();
        inner.open = inner.open.saturating_sub(1);
        let Some(entry) = inner.entries.get_mut(index) else {
            return;
        };
        entry.end = Some(end);
        entry.outcome = outcome;
        let entry = entry.clone();
        drop(inner);
        if self.echo {
            let took = end.saturating_sub(entry.start);
            let (mark, note) = match &entry.outcome {
                Outcome::Ok(None) | Outcome::Running => ("✔", String::new()),
                Outcome::Ok(Some(note)) => ("✔", format!(": {note}")),
                Outcome::Failed(why) => ("✘", format!(": {why}")),
                Outcome::Abandoned => ("✘", ": abandoned".to_owned()),
            };
            eprintln!(
                "[{:>8}] {}{mark} {} ({}){note}",
                secs(end),
                indent(entry.depth),
                entry.text,
                secs(took)
            );
        }
    }

    /// The log as a table: start time, duration, outcome, indented text.
    pub fn render(&self) -> String {
        let now = self.elapsed();
        let inner = self.lock();
        let mut out = String::from("step log (start relative to test start, duration):\n");
        for entry in &inner.entries {
            let took = entry.end.unwrap_or(now).saturating_sub(entry.start);
            let (status, note) = match &entry.outcome {
                Outcome::Running => ("RUNNING", String::new()),
                Outcome::Ok(None) => ("ok", String::new()),
                Outcome::Ok(Some(note)) => ("ok", format!(": {note}")),
                Outcome::Failed(why) => ("FAILED", format!(": {why}")),
                Outcome::Abandoned => ("ABANDONED", String::new()),
            };
            let _ = writeln!(
                out,
                "  {:>8} {:>8}  {status:<9} {}{}{note}",
                secs(entry.start),
                secs(took),
                indent(entry.depth),
                entry.text
            );
        }
        out
    }
}

/// An open step; close it exactly once.
#[must_use = "a step must be closed with ok() or fail()"]
#[derive(Debug)]
pub struct Step {
    log: StepLog,
    index: usize,
    closed: bool,
}

impl Step {
    /// Closes the step as successful.
    pub fn ok(mut self) {
        self.closed = true;
        self.log.close(self.index, Outcome::Ok(None));
    }

    /// Closes the step as successful, with a short note (e.g. "3 attempts").
    pub fn ok_with(mut self, note: impl Into<String>) {
        self.closed = true;
        self.log.close(self.index, Outcome::Ok(Some(note.into())));
    }

    /// Closes the step as failed with a one-line reason.
    pub fn fail(mut self, why: impl Into<String>) {
        self.closed = true;
        self.log.close(self.index, Outcome::Failed(why.into()));
    }
}

impl Drop for Step {
    fn drop(&mut self) {
        if !self.closed {
            self.log.close(self.index, Outcome::Abandoned);
        }
    }
}

fn secs(d: Duration) -> String {
    format!("{:.3}s", d.as_secs_f64())
}

fn indent(depth: usize) -> String {
    "  ".repeat(depth)
}

/// The first line of a message, for one-line step outcomes.
pub(crate) fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_steps_render_indented_with_outcomes() {
        let log = StepLog::new(false);
        let outer = log.begin("m1: start");
        log.begin("m1: spawn qemu").ok();
        log.begin("m1: wait for backdoor").ok_with("2 attempts");
        outer.ok();
        log.begin("m1: succeed `false`").fail("exit code 1");
        let text = log.render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{text}");
        assert!(lines[1].contains("ok        m1: start"), "{text}");
        assert!(lines[2].contains("ok          m1: spawn qemu"), "{text}");
        assert!(
            lines[3].contains("m1: wait for backdoor: 2 attempts"),
            "{text}"
        );
        assert!(
            lines[4].contains("FAILED    m1: succeed `false`: exit code 1"),
            "{text}"
        );
    }

    #[test]
    fn dropped_step_is_abandoned_and_running_step_shown() {
        let log = StepLog::new(false);
        drop(log.begin("lost"));
        let _open = log.begin("still running");
        let text = log.render();
        assert!(text.contains("ABANDONED lost"), "{text}");
        assert!(text.contains("RUNNING   still running"), "{text}");
    }

    #[test]
    fn step_helper_records_error_first_line() {
        let log = StepLog::new(false);
        let result: Result<(), String> = log.step("x", || Err("bad\nmore".to_owned()));
        assert!(result.is_err());
        assert!(log.render().contains("FAILED    x: bad\n"));
    }
}
