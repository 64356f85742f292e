//! The state a [`Driver`](crate::Driver) shares with its machines: the
//! test's name, step log, accelerator and temporary directory, every
//! machine's console, and the failure report made from them. Machines hold
//! it, so the driver and the machines both depend on this file, not on each
//! other.

use std::sync::{Arc, Mutex, MutexGuard};

use crate::accel::Accel;
use crate::console::Console;
use crate::error::{Error, Failure};
use crate::steplog::{StepLog, first_line};

/// How many console lines of each machine a failure report shows.
pub const CONSOLE_TAIL: usize = 50;

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) machines: u8,
    pub(crate) networks: u8,
}

/// State shared by a driver and its machines.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) name: String,
    pub(crate) log: StepLog,
    pub(crate) accel: Accel,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) echo_console: bool,
    pub(crate) consoles: Mutex<Vec<Arc<Console>>>,
    pub(crate) counters: Mutex<Counters>,
}

impl Shared {
    fn lock_consoles(&self) -> MutexGuard<'_, Vec<Arc<Console>>> {
        self.consoles.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn add_console(&self, console: Arc<Console>) {
        self.lock_consoles().push(console);
    }

    /// The step log and every machine's console tail.
    pub(crate) fn report(&self) -> String {
        let mut report = format!("=== test {} ===\n", self.name);
        report.push_str(&self.log.render());
        for console in self.lock_consoles().iter() {
            report.push_str(&format!(
                "\n=== console of {} (last {CONSOLE_TAIL} lines) ===\n",
                console.machine()
            ));
            let tail = console.tail(CONSOLE_TAIL);
            if tail.is_empty() {
                report.push_str("(no output)\n");
            }
            for line in tail {
                report.push_str(&line);
                report.push('\n');
            }
        }
        report
    }

    /// Runs `f` as a step named `text`; an error becomes a [`Failure`].
    pub(crate) fn step<T>(
        &self,
        text: String,
        f: impl FnOnce() -> Result<T, Error>,
    ) -> Result<T, Failure> {
        let step = self.log.begin(text.clone());
        match f() {
            Ok(value) => {
                step.ok();
                Ok(value)
            }
            Err(error) => {
                step.fail(first_line(&error.to_string()));
                Err(Failure::new(error, text, self.report()))
            }
        }
    }
}
