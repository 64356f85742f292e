//! Build progress on stderr: an indicatif bar (done/total and the names of
//! running steps) when stderr is a terminal, plain lines otherwise, or
//! nothing.

use super::report::{Origin, StepReport};
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

    /// A step finished: plain lines name the steps built and substituted
    /// (those found in the local store are silent).
    pub(crate) fn finished(&self, step: &StepReport) {
        let name = step.name.as_str();
        if let Some(bar) = &self.bar {
            let mut running = self.running();
            running.remove(name);
            bar.inc(1);
            bar.set_message(running.iter().cloned().collect::<Vec<_>>().join(" "));
        } else if self.plain {
            let path = &step.path;
            match (step.origin, &step.substituter) {
                (Origin::Built, _) => eprintln!("built {name}: {path}"),
                (Origin::Substituted, Some(cache)) => {
                    eprintln!("substituted {name} from {cache}: {path}");
                }
                _ => {}
            }
        }
    }

    /// A warning, above the bar or as a plain line.
    pub(crate) fn warn(&self, text: &str) {
        let line = format!("imago: warning: {text}");
        if let Some(bar) = &self.bar {
            bar.println(line);
        } else if self.plain {
            eprintln!("{line}");
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

    /// A started step that will not finish (the build stopped).
    pub(crate) fn abandoned(&self, name: &str) {
        self.running().remove(name);
    }

    pub(crate) fn done(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
