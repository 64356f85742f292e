//! One VM test: its machines, networks, step log and failure reports.
//!
//! A [`Driver`] is created at the start of a test. It owns the test's
//! temporary directory (machine sockets, disk overlays, UEFI variable
//! copies), the step log and the list of consoles, and it creates machines
//! and networks. Machines keep the shared state alive, so the directory is
//! removed only after the last machine (and its QEMU) is gone.
//!
//! Every failure is turned into a [`Failure`] here, with a report holding the
//! step log and the last [`CONSOLE_TAIL`](crate::CONSOLE_TAIL) console lines of *each* machine. If
//! the test panics instead (a failed `assert!`), dropping the driver prints
//! the same report.

use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::accel::Accel;
use crate::config::MachineConfig;
use crate::error::{Error, Failure};
use crate::machine::Machine;
use crate::network::Network;
use crate::shared::Shared;
use crate::steplog::{StepLog, first_line};

/// A VM test.
#[derive(Debug)]
pub struct Driver {
    shared: Arc<Shared>,
}

impl Driver {
    /// Starts a test named `name`: picks the accelerator (once per process)
    /// and creates the temporary directory.
    ///
    /// Console lines are echoed to stderr unless `IMAGO_VM_CONSOLE=0`.
    pub fn new(name: &str) -> Result<Self, Failure> {
        let log = StepLog::new(true);
        let accel = Accel::get().clone();
        let text = format!("test {name}: create temporary directory");
        let step = log.begin(text.clone());
        let dir = match tempfile::Builder::new().prefix("imago-vm-").tempdir() {
            Ok(dir) => {
                step.ok();
                dir
            }
            Err(e) => {
                step.fail(e.to_string());
                let error = Error::io("creating the test's temporary directory", e);
                return Err(Failure::new(error, text, log.render()));
            }
        };
        let echo_console = std::env::var("IMAGO_VM_CONSOLE").map_or(true, |v| v != "0");
        Ok(Self {
            shared: Arc::new(Shared {
                name: name.to_owned(),
                log,
                accel,
                dir,
                echo_console,
                consoles: Mutex::default(),
                counters: Mutex::default(),
            }),
        })
    }

    /// Creates a machine (not started yet).
    pub fn machine(&self, config: MachineConfig) -> Result<Machine, Failure> {
        let text = format!("create machine {}", config.name);
        self.shared.step(text, || {
            let index = {
                let mut counters = self
                    .shared
                    .counters
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                counters.machines = counters.machines.checked_add(1).ok_or_else(|| {
                    Error::Config("more than 255 machines in one test".to_owned())
                })?;
                counters.machines
            };
            config.validate()?;
            Machine::new(Arc::clone(&self.shared), config, index)
        })
    }

    /// Creates a private network (see [`Network`]).
    pub fn network(&self) -> Result<Network, Failure> {
        self.shared.step("create network".to_owned(), || {
            let index = {
                let mut counters = self
                    .shared
                    .counters
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                counters.networks = counters.networks.checked_add(1).ok_or_else(|| {
                    Error::Config("more than 255 networks in one test".to_owned())
                })?;
                counters.networks
            };
            Network::start(index)
        })
    }

    /// The accelerator and timeout factor in use.
    pub fn accel(&self) -> &Accel {
        &self.shared.accel
    }

    /// The test's temporary directory.
    pub fn dir(&self) -> &Path {
        self.shared.dir.path()
    }

    /// Groups test actions under one step of the log.
    pub fn step<T>(
        &self,
        text: &str,
        f: impl FnOnce() -> Result<T, Failure>,
    ) -> Result<T, Failure> {
        let step = self.shared.log.begin(text);
        let result = f();
        match &result {
            Ok(_) => step.ok(),
            Err(failure) => step.fail(first_line(&failure.error().to_string())),
        }
        result
    }

    /// Runs host-side preparation (building a system, a disk image) as a
    /// step of the log; an error becomes a [`Failure`] with
    /// [`Error::Setup`], so setup problems are reported like guest ones.
    pub fn setup<T, E: std::fmt::Display>(
        &self,
        text: &str,
        f: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, Failure> {
        self.shared.step(text.to_owned(), || {
            f().map_err(|e| Error::Setup(e.to_string()))
        })
    }

    /// The current report: step log and console tails.
    pub fn report(&self) -> String {
        self.shared.report()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("\n{}", self.shared.report());
        }
    }
}
