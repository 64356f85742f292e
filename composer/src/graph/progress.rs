//! Build progress on stderr: an indicatif bar (done/total and the names of
//! running steps) when stderr is a terminal, plain lines otherwise, or
//! nothing.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::sync::Mutex;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProgressMode {
    /// A bar on a terminal, plain lines otherwise.
    #[default]
    Auto,
    /// Plain lines on stderr.
    Plain,
    /// Nothing.
    Quiet,
}

pub(crate) struct Progress {
    bar: Option<ProgressBar>,
    plain: bool,
    /// The steps running, for the bar's message (kept only with a bar).
    running: Mutex<BTreeSet<String>>,
}

impl Progress {
    pub(crate) fn new(mode: ProgressMode, total: usize) -> Self {
        let terminal = std::io::stderr().is_terminal();
        let (bar, plain) = match mode {
            ProgressMode::Quiet => (None, false),
            ProgressMode::Plain => (None, true),
            ProgressMode::Auto if terminal => {
                let bar =
                    ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
                if let Ok(style) =
                    ProgressStyle::with_template("[{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
                {
                    bar.set_style(style);
                }
                (Some(bar), false)
            }
            ProgressMode::Auto => (None, true),
        };
        Progress {
            bar,
            plain,
            running: Mutex::default(),
        }
    }

    fn running(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        self.running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn started(&self, name: &str) {
        if self.bar.is_none() {
            return;
        }
        let mut running = self.running();
        running.insert(name.to_owned());
        if let Some(bar) = &self.bar {
            bar.set_message(running.iter().cloned().collect::<Vec<_>>().join(" "));
        }
    }

    /// A step finished; `built` is `Some(path)` when its builder ran.
    pub(crate) fn finished(&self, name: &str, built: Option<&str>) {
        if let Some(bar) = &self.bar {
            let mut running = self.running();
            running.remove(name);
            bar.inc(1);
            bar.set_message(running.iter().cloned().collect::<Vec<_>>().join(" "));
        } else if self.plain
            && let Some(path) = built
        {
            eprintln!("built {name}: {path}");
        }
    }

    pub(crate) fn failed(&self, name: &str) {
        self.running().remove(name);
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
        if self.plain {
            eprintln!("failed {name}");
        }
    }

    pub(crate) fn done(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
