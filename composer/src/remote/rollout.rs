//! Rolling one built system out to several machines in waves: the canaries
//! first, then a few at a time. Each machine gets the part of the closure
//! it lacks, switches, and runs the system's health checks; one that fails
//! them is returned to the system it ran before. After each wave the
//! rollout stops when more machines failed than allowed.
//!
//! A machine already running the system (and, for `switch` and `boot`,
//! having it as its current generation) is skipped, so running the same
//! rollout again continues where an interrupted one stopped.

use super::deploy::{Action, Health, check_health, copy_closure, roll_back, run_switch};
use super::{PROFILES, Remote, sh_quote};
use crate::store::{Store, StorePath};
use std::time::Instant;

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

/// How a rollout runs on each machine.
#[derive(Debug, Clone)]
pub struct RolloutOptions {
    pub action: Action,
    /// The store directory on the machines.
    pub remote_store: String,
    /// Run the system's health checks after `switch` and `test` (when the
    /// system has any) and roll back a machine that fails them.
    pub health_checks: bool,
    /// Machines that may fail before the rollout stops.
    pub max_failures: usize,
}

/// What became of one machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It switched (and passed its checks); the objects copied.
    Done { copied: usize },
    /// It already ran the system: nothing was done.
    AlreadyThere,
    /// It failed its health checks and was returned to its previous
    /// system; the checks' report.
    RolledBack { report: String },
    /// Copying or switching failed; the error.
    Failed { error: String },
    /// The rollout stopped before its wave.
    NotStarted,
}

impl Outcome {
    /// Whether the machine counts against `max_failures`.
    pub fn failed(&self) -> bool {
        matches!(self, Outcome::RolledBack { .. } | Outcome::Failed { .. })
    }

    /// One word for the report.
    pub fn word(&self) -> &'static str {
        match self {
            Outcome::Done { .. } => "done",
            Outcome::AlreadyThere => "already there",
            Outcome::RolledBack { .. } => "rolled back",
            Outcome::Failed { .. } => "failed",
            Outcome::NotStarted => "not started",
        }
    }
}

/// One machine's line of the report.
#[derive(Debug, Clone)]
pub struct HostReport {
    /// The machine's name (`root@web1`).
    pub target: String,
    /// Its wave, from 0.
    pub wave: usize,
    /// The system it ran before and after (`/run/current-system`), when it
    /// could be read.
    pub before: Option<String>,
    pub after: Option<String>,
    pub seconds: f64,
    /// What `switch-to-configuration` printed.
    pub output: String,
    pub outcome: Outcome,
}

/// Rolls `toplevel` out to `targets` in `plan`'s waves (from [`waves`]);
/// `on_done` is called with each machine's report as it finishes. Returns
/// every machine's report, in the targets' order.
pub fn roll_out(
    store: &Store,
    toplevel: &StorePath,
    targets: &[&(dyn Remote + Sync)],
    plan: &[Vec<usize>],
    options: &RolloutOptions,
    on_done: &(dyn Fn(&HostReport) + Sync),
) -> Vec<HostReport> {
    let mut reports: Vec<Option<HostReport>> = vec![None; targets.len()];
    let mut failures = 0;
    for (wave, members) in plan.iter().enumerate() {
        if failures > options.max_failures {
            for &i in members {
                reports[i] = Some(not_started(targets[i], wave));
            }
            continue;
        }
        let done: Vec<(usize, HostReport)> = std::thread::scope(|scope| {
            let handles: Vec<_> = members
                .iter()
                .map(|&i| {
                    let remote = targets[i];
                    (
                        i,
                        scope.spawn(move || {
                            let report = deploy_one(store, toplevel, remote, wave, options);
                            on_done(&report);
                            report
                        }),
                    )
                })
                .collect();
            handles
                .into_iter()
                .map(|(i, h)| {
                    let report = h.join().unwrap_or_else(|_| HostReport {
                        outcome: Outcome::Failed {
                            error: "the deploy of this machine panicked".to_owned(),
                        },
                        ..not_started(targets[i], wave)
                    });
                    (i, report)
                })
                .collect()
        });
        for (i, report) in done {
            failures += usize::from(report.outcome.failed());
            reports[i] = Some(report);
        }
    }
    reports
        .into_iter()
        .enumerate()
        .map(|(i, r)| r.unwrap_or_else(|| not_started(targets[i], 0)))
        .collect()
}

fn not_started(remote: &dyn Remote, wave: usize) -> HostReport {
    HostReport {
        target: remote.name(),
        wave,
        before: None,
        after: None,
        seconds: 0.0,
        output: String::new(),
        outcome: Outcome::NotStarted,
    }
}

/// Copies, switches and checks one machine.
fn deploy_one(
    store: &Store,
    toplevel: &StorePath,
    remote: &dyn Remote,
    wave: usize,
    options: &RolloutOptions,
) -> HostReport {
    let started = Instant::now();
    let before = running_system(remote);
    let mut report = HostReport {
        before: before.clone(),
        ..not_started(remote, wave)
    };
    report.outcome = if already_there(remote, toplevel, options.action, before.as_deref()) {
        Outcome::AlreadyThere
    } else {
        match switch_and_check(store, toplevel, remote, options, &mut report.output) {
            Ok(outcome) => outcome,
            Err(e) => Outcome::Failed {
                error: format!("{e:#}"),
            },
        }
    };
    report.after = running_system(remote);
    report.seconds = started.elapsed().as_secs_f64();
    report
}

fn switch_and_check(
    store: &Store,
    toplevel: &StorePath,
    remote: &dyn Remote,
    options: &RolloutOptions,
    output: &mut String,
) -> anyhow::Result<Outcome> {
    let copied = copy_closure(store, toplevel, remote, &options.remote_store)?;
    let out = run_switch(remote, &options.remote_store, toplevel, options.action)?;
    output.push_str(&out.stdout_text());
    let has_checks = store.physical(toplevel).join("bin/check-health").exists();
    if options.action == Action::Boot || !options.health_checks || !has_checks {
        return Ok(Outcome::Done { copied });
    }
    match check_health(remote, &options.remote_store, toplevel)? {
        Health::Passed(report) => {
            output.push_str(&report);
            Ok(Outcome::Done { copied })
        }
        Health::Failed(report) => {
            let back = roll_back(remote, &options.remote_store, toplevel, options.action)?;
            output.push_str(&back.stdout_text());
            Ok(Outcome::RolledBack { report })
        }
    }
}

/// The machine's running system (`/run/current-system`), when it has one.
fn running_system(remote: &dyn Remote) -> Option<String> {
    read_link(remote, "/run/current-system")
}

/// Whether the machine runs `toplevel` already (for `switch` and `test`)
/// and has it as its current generation (for `switch` and `boot`).
fn already_there(
    remote: &dyn Remote,
    toplevel: &StorePath,
    action: Action,
    running: Option<&str>,
) -> bool {
    let is_it = |path: Option<&str>| path.is_some_and(|p| p.ends_with(&format!("/{toplevel}")));
    let runs = || is_it(running);
    let current = || is_it(read_link(remote, &format!("{PROFILES}/system")).as_deref());
    match action {
        Action::Switch => runs() && current(),
        Action::Test => runs(),
        Action::Boot => current(),
    }
}

/// `readlink -f PATH` on the machine.
fn read_link(remote: &dyn Remote, path: &str) -> Option<String> {
    let out = remote
        .run(&format!("readlink -f {}", sh_quote(path)), None)
        .ok()?;
    let text = out.stdout_text();
    let text = text.trim();
    (out.success() && !text.is_empty()).then(|| text.to_owned())
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
