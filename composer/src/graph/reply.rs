//! How a running step tells the scheduler's coordinator that it finished.
//!
//! A step ends twice: its worker frees a build slot ([`Msg::Slot`]) as soon
//! as the output is hashed and queued for the store's group commit, and the
//! step itself is done ([`Msg::Step`]) when the output is registered, which
//! may happen later and on another thread. A [`Reply`] carries the second
//! message; one that is dropped unsent (a panic while committing) still
//! reports the step as failed, so the coordinator never waits forever.

use super::dag::StepId;
use super::report::{StepFailureCause, StepReport};
use crate::store::{Blake3Digest, StorePath};
use std::sync::mpsc::Sender;
use std::time::Instant;

/// What the coordinator receives.
pub(crate) enum Msg {
    /// A worker finished its part; another step may start building.
    Slot,
    /// A step is done.
    Step(StepId, Done),
}

pub(crate) enum Done {
    Ok(StepReport, StorePath),
    Failed(StepFailureCause, String),
}

/// How a step got its output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum How {
    /// The builder ran.
    Built,
    /// The build cache had it.
    Cached,
    /// The build cache had it, but broken: the builder ran again and its
    /// output replaced the broken copy (`--repair`).
    Repaired,
}

/// What a step's report needs besides its output.
#[derive(Debug, Clone)]
pub(crate) struct StepInfo {
    pub name: String,
    pub builder: String,
    pub placeholder: String,
    /// When the build started, and when this step did (ms after that).
    pub build_start: Instant,
    pub start_ms: f64,
}

/// Sends a step's [`Done`] exactly once.
pub(crate) struct Reply {
    tx: Option<Sender<Msg>>,
    id: StepId,
    info: StepInfo,
}

impl Reply {
    pub(crate) fn new(tx: Sender<Msg>, id: StepId, info: StepInfo) -> Reply {
        Reply {
            tx: Some(tx),
            id,
            info,
        }
    }

    pub(crate) fn ok(mut self, path: StorePath, key: &Blake3Digest, how: How) {
        let info = &self.info;
        let report = StepReport {
            name: info.name.clone(),
            builder: info.builder.clone(),
            placeholder: info.placeholder.clone(),
            path: path.to_absolute(),
            cached: how == How::Cached,
            repaired: how == How::Repaired,
            key: key.to_string(),
            start_ms: info.start_ms,
            end_ms: info.build_start.elapsed().as_secs_f64() * 1000.0,
        };
        self.send(Done::Ok(report, path));
    }

    pub(crate) fn failed(mut self, cause: StepFailureCause, log: String) {
        self.send(Done::Failed(cause, log));
    }

    fn send(&mut self, done: Done) {
        if let Some(tx) = self.tx.take() {
            // The coordinator outlives every step (it waits for them all).
            let _ = tx.send(Msg::Step(self.id, done));
        }
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        self.send(Done::Failed(StepFailureCause::Unregistered, String::new()));
    }
}
