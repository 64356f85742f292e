//! How a running step tells the scheduler's coordinator that it finished.
//!
//! A step's worker goes on to the next ready step as soon as the output is
//! hashed and queued for the store's group commit; the step itself is done
//! when the output is registered, which may happen later and on another
//! thread. A [`Reply`] carries that message to the coordinator's
//! [`Mailbox`]; one that is dropped unsent (a panic while committing) still
//! reports the step as failed, so the coordinator never waits forever.
//!
//! Outputs are registered in batches; their replies are posted without
//! waking the coordinator, which is woken once for the whole batch: woken
//! per step, it preempted the commit thread about every other step.

use super::dag::StepId;
use super::report::{Origin, StepFailureCause, StepReport};
use super::substitute::Substitution;
use crate::store::{Blake3Digest, StorePath};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Instant;

/// Finished steps, waiting for the coordinator.
#[derive(Default)]
pub(crate) struct Mailbox {
    posted: Mutex<Posted>,
    wake: Condvar,
}

#[derive(Default)]
struct Posted {
    done: Vec<(StepId, Done)>,
    /// The coordinator has work besides finished steps (a step to build,
    /// handed over by a lookup loop).
    nudged: bool,
}

impl Mailbox {
    /// Posts a finished step; wakes the coordinator unless `quiet` (then
    /// the poster calls [`Mailbox::wake`] later).
    fn post(&self, id: StepId, done: Done, quiet: bool) {
        self.posted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .done
            .push((id, done));
        if !quiet {
            self.wake.notify_one();
        }
    }

    /// Wakes the coordinator for what was posted quietly.
    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    /// Wakes the coordinator to start work that is not a finished step.
    pub(crate) fn nudge(&self) {
        self.posted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .nudged = true;
        self.wake.notify_one();
    }

    /// Waits until something is posted (or a nudge) and takes all of it.
    pub(crate) fn take(&self) -> Vec<(StepId, Done)> {
        let mut posted = self.posted.lock().unwrap_or_else(PoisonError::into_inner);
        while posted.done.is_empty() && !posted.nudged {
            posted = self
                .wake
                .wait(posted)
                .unwrap_or_else(PoisonError::into_inner);
        }
        posted.nudged = false;
        std::mem::take(&mut posted.done)
    }
}

pub(crate) enum Done {
    /// The step's report and output; with the key and record of an output
    /// a substituter named but that is not fetched yet.
    Ok(StepReport, StorePath, Option<(Blake3Digest, Substitution)>),
    Failed(StepFailureCause, String),
    /// Dropped unbuilt after its resolution, since the build stopped.
    Skipped,
}

/// How a step got its output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum How {
    /// The builder ran.
    Built,
    /// The build cache had it.
    Cached,
    /// A substituter had it; `true` once it is fetched into the store.
    Substituted(Substitution, bool),
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

/// Posts a step's [`Done`] exactly once.
pub(crate) struct Reply {
    mailbox: Option<Arc<Mailbox>>,
    id: StepId,
    info: StepInfo,
    quiet: bool,
}

impl Reply {
    pub(crate) fn new(mailbox: Arc<Mailbox>, id: StepId, info: StepInfo) -> Reply {
        Reply {
            mailbox: Some(mailbox),
            id,
            info,
            quiet: false,
        }
    }

    /// Posts without waking the coordinator: the caller arranges a
    /// [`Mailbox::wake`] after it (a dropped, unsent reply still wakes).
    pub(crate) fn quiet(mut self) -> Reply {
        self.quiet = true;
        self
    }

    pub(crate) fn ok(mut self, path: StorePath, key: &Blake3Digest, how: How) {
        let info = &self.info;
        let report = StepReport {
            name: info.name.clone(),
            builder: info.builder.clone(),
            placeholder: info.placeholder.clone(),
            path: path.to_absolute(),
            origin: match how {
                How::Built | How::Repaired => Origin::Built,
                How::Cached => Origin::Local,
                How::Substituted(..) => Origin::Substituted,
            },
            cached: how == How::Cached,
            repaired: how == How::Repaired,
            substituter: match &how {
                How::Substituted(found, _) => Some(found.source.clone()),
                _ => None,
            },
            key: key.to_string(),
            start_ms: info.start_ms,
            end_ms: info.build_start.elapsed().as_secs_f64() * 1000.0,
        };
        let unfetched = match how {
            How::Substituted(found, false) => Some((*key, found)),
            _ => None,
        };
        self.send(Done::Ok(report, path, unfetched));
    }

    pub(crate) fn failed(mut self, cause: StepFailureCause, log: String) {
        self.send(Done::Failed(cause, log));
    }

    pub(crate) fn skipped(mut self) {
        self.send(Done::Skipped);
    }

    fn send(&mut self, done: Done) {
        if let Some(mailbox) = self.mailbox.take() {
            mailbox.post(self.id, done, self.quiet);
        }
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        // Dropped unsent: whoever dropped it may never wake the coordinator.
        self.quiet = false;
        self.send(Done::Failed(StepFailureCause::Unregistered, String::new()));
    }
}
