//! Rolling built systems out to several machines in waves: the canaries
//! first, then a few at a time. Each machine gets the part of the closure
//! it lacks, switches, and runs the system's health checks; one that fails
//! them is returned to the system it ran before ([`super::host`]). After
//! each wave the rollout stops when more machines failed than allowed.
//!
//! A raised `stop` flag (an interruption) starts no new machine: the
//! machines in progress finish, the rest are `not started`. A machine
//! already running the system (and, for `switch` and `boot`, having it as
//! its current generation) is skipped, so running the same rollout again
//! continues where an interrupted one stopped.

use super::host::{Host, RolloutOptions};
use super::report::{HostReport, Outcome};
use crate::store::Store;
use std::sync::atomic::{AtomicBool, Ordering};

/// The machines of each wave, as indexes into the targets: the first
/// `canary` machines form the first wave, the rest go `parallel` at a time.
pub fn waves(targets: usize, canary: usize, parallel: usize) -> Vec<Vec<usize>> {
    let canary = canary.min(targets);
    let mut waves = Vec::new();
    if canary > 0 {
        waves.push((0..canary).collect());
    }
    let rest: Vec<usize> = (canary..targets).collect();
    waves.extend(rest.chunks(parallel.max(1)).map(<[usize]>::to_vec));
    waves
}

/// What a rollout tells its watcher as it goes.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// A wave begins (`wave` from 0, of `waves`) with these machines.
    Wave {
        wave: usize,
        waves: usize,
        targets: &'a [String],
    },
    /// A machine begins.
    Started { target: &'a str },
    /// A machine is done.
    Done(&'a HostReport),
    /// No further wave runs: too many failures, or an interruption.
    Stopped { reason: Stop },
}

/// Why a rollout started no further wave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    Failures { failed: usize },
    Interrupted,
}

/// The rollout's whole result.
#[derive(Debug, Clone)]
pub struct Rollout {
    /// Every machine's report, in the targets' order.
    pub hosts: Vec<HostReport>,
    /// Why it stopped early, if it did.
    pub stopped: Option<Stop>,
}

/// Rolls each host's system out in `plan`'s waves (from [`waves`]),
/// telling `watch` what happens as it happens.
pub fn roll_out(
    store: &Store,
    hosts: &[Host<'_>],
    plan: &[Vec<usize>],
    options: &RolloutOptions,
    stop: &AtomicBool,
    watch: &(dyn Fn(Event<'_>) + Sync),
) -> Rollout {
    let mut reports: Vec<Option<HostReport>> = vec![None; hosts.len()];
    let mut failures = 0;
    let mut stopped = None;
    for (wave, members) in plan.iter().enumerate() {
        if stopped.is_none() {
            if stop.load(Ordering::SeqCst) {
                stopped = Some(Stop::Interrupted);
            } else if failures > options.max_failures {
                stopped = Some(Stop::Failures { failed: failures });
            }
            if let Some(reason) = stopped {
                watch(Event::Stopped { reason });
            }
        }
        if stopped.is_some() {
            for &i in members {
                reports[i] = Some(hosts[i].not_started(wave, options));
            }
            continue;
        }
        let names: Vec<String> = members.iter().map(|&i| hosts[i].remote.name()).collect();
        watch(Event::Wave {
            wave,
            waves: plan.len(),
            targets: &names,
        });
        let done = run_wave(store, hosts, members, wave, options, stop, watch);
        for (i, report) in done {
            failures += usize::from(report.outcome.failed());
            reports[i] = Some(report);
        }
    }
    if stopped.is_none() && stop.load(Ordering::SeqCst) {
        // Interrupted during the last wave: machines of it may not have
        // started.
        stopped = reports
            .iter()
            .flatten()
            .any(|r| r.outcome == Outcome::NotStarted)
            .then_some(Stop::Interrupted);
    }
    let hosts = reports
        .into_iter()
        .enumerate()
        .map(|(i, r)| r.unwrap_or_else(|| hosts[i].not_started(0, options)))
        .collect();
    Rollout { hosts, stopped }
}

/// Deploys one wave's machines at once; their reports.
fn run_wave(
    store: &Store,
    hosts: &[Host<'_>],
    members: &[usize],
    wave: usize,
    options: &RolloutOptions,
    stop: &AtomicBool,
    watch: &(dyn Fn(Event<'_>) + Sync),
) -> Vec<(usize, HostReport)> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = members
            .iter()
            .map(|&i| {
                let host = hosts[i];
                let handle = scope.spawn(move || {
                    let name = host.remote.name();
                    if !stop.load(Ordering::SeqCst) {
                        watch(Event::Started { target: &name });
                    }
                    let report = host.deploy(store, wave, options, stop);
                    watch(Event::Done(&report));
                    report
                });
                (i, handle)
            })
            .collect();
        handles
            .into_iter()
            .map(|(i, h)| {
                let report = h.join().unwrap_or_else(|_| HostReport {
                    outcome: Outcome::Failed {
                        error: "the deploy of this machine panicked".to_owned(),
                    },
                    ..hosts[i].not_started(wave, options)
                });
                (i, report)
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canaries_first_then_a_few_at_a_time() {
        assert_eq!(waves(5, 1, 2), vec![vec![0], vec![1, 2], vec![3, 4]]);
        assert_eq!(waves(3, 0, 1), vec![vec![0], vec![1], vec![2]]);
        assert_eq!(waves(2, 5, 1), vec![vec![0, 1]]);
        assert_eq!(waves(4, 2, 0), vec![vec![0, 1], vec![2], vec![3]]);
        assert_eq!(waves(1, 1, 3), vec![vec![0]]);
        assert!(waves(0, 1, 1).is_empty());
    }
}
