//! A copy's progress bar on stderr: objects (or packages) done of all,
//! and the bytes they weighed. Shown only on a terminal and never with
//! `--json`; hidden, it costs nothing.

use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};

pub struct Progress {
    bar: ProgressBar,
    bytes: AtomicU64,
    /// Whether the bar is drawn once started.
    show: bool,
}

impl Progress {
    /// A bar that is never drawn.
    pub fn hidden() -> Progress {
        Progress {
            bar: ProgressBar::hidden(),
            bytes: AtomicU64::new(0),
            show: false,
        }
    }

    /// A bar on stderr when `show` and stderr is a terminal, hidden
    /// otherwise; drawn from the first [`Progress::start`].
    pub fn on_terminal(show: bool) -> Progress {
        if !show || !std::io::stderr().is_terminal() {
            return Progress::hidden();
        }
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::hidden());
        if let Ok(style) =
            ProgressStyle::with_template("{prefix} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
        {
            bar.set_style(style);
        }
        Progress {
            bar,
            bytes: AtomicU64::new(0),
            show: true,
        }
    }

    /// Starts counting `total` things of the kind `what` (`objects`,
    /// `packages`) that `doing` (`copying`, `checking`).
    pub fn start(&self, doing: &str, what: &str, total: u64) {
        self.bar.set_prefix(doing.to_owned());
        self.bar.set_length(total);
        self.bar.set_position(0);
        self.bytes.store(0, Ordering::Relaxed);
        self.what(what);
        if self.show && self.bar.is_hidden() {
            self.bar.set_draw_target(ProgressDrawTarget::stderr());
        }
    }

    fn what(&self, what: &str) {
        let bytes = self.bytes.load(Ordering::Relaxed);
        self.bar
            .set_message(format!("{what}, {}", HumanBytes(bytes)));
    }

    /// One more done, of `bytes` bytes (0 for one that did not travel).
    pub fn done(&self, what: &str, bytes: u64) {
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.bar.inc(1);
        self.what(what);
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
