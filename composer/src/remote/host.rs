//! One machine's part of a rollout: read its systems, skip it when it runs
//! the system already, copy, switch, run the health checks and roll back
//! when they fail; read its systems again. `stop` is looked at between
//! the steps: a machine whose copy is done when the rollout is interrupted
//! is not switched (it is `not started`), one that switched finishes its
//! checks (and rollback) whatever happens. With `--reboot` the machine is
//! rebooted after `boot` ([`super::reboot`]) and must come back running
//! the new system before its checks run.

use super::deploy::{Action, Health, check_health, copy_closure_via, roll_back, run_switch};
use super::reboot::reboot_and_wait;
use super::report::{HostReport, HostState, Outcome, failed_checks};
use super::substitute::TargetSubstituter;
use super::{PROFILES, Remote, sh_quote};
use crate::store::{Store, StorePath};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

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
    /// After `boot`, reboot each machine and wait at most this long for it
    /// to come back on the new system (`--reboot`).
    pub reboot: Option<Duration>,
    /// The cache the machines fetch objects from (`--target-substituter`);
    /// `None`: everything goes over ssh.
    pub substituter: Option<Arc<TargetSubstituter>>,
}

impl RolloutOptions {
    /// What the machine runs afterwards: with a reboot, the new system is
    /// running and current, as after `switch`.
    pub fn effect(&self) -> Action {
        if self.reboot.is_some() {
            Action::Switch
        } else {
            self.action
        }
    }
}

/// A machine of a rollout and the system it is to get.
#[derive(Clone, Copy)]
pub struct Host<'a> {
    pub remote: &'a (dyn Remote + Sync),
    pub toplevel: &'a StorePath,
}

impl Host<'_> {
    /// The report of this machine when nothing was done on it.
    pub fn not_started(&self, wave: usize, options: &RolloutOptions) -> HostReport {
        HostReport {
            target: self.remote.name(),
            wave,
            system: format!("{}/{}", options.remote_store, self.toplevel),
            before: None,
            after: None,
            seconds: 0.0,
            output: String::new(),
            outcome: Outcome::NotStarted,
        }
    }

    /// Copies, switches and checks this machine (see the module's text).
    pub fn deploy(
        &self,
        store: &Store,
        wave: usize,
        options: &RolloutOptions,
        stop: &AtomicBool,
    ) -> HostReport {
        let started = Instant::now();
        let mut report = self.not_started(wave, options);
        if stop.load(Ordering::SeqCst) {
            return report;
        }
        let before = read_state(self.remote);
        report.outcome = if already_there(&before, &report.system, options.effect()) {
            Outcome::AlreadyThere
        } else {
            match self.switch_and_check(store, options, stop, &report.system, &mut report.output) {
                Ok(outcome) => outcome,
                Err(e) => Outcome::Failed {
                    error: format!("{e:#}"),
                },
            }
        };
        report.before = Some(before);
        if report.outcome != Outcome::NotStarted {
            report.after = Some(read_state(self.remote));
        }
        report.seconds = started.elapsed().as_secs_f64();
        report
    }

    fn switch_and_check(
        &self,
        store: &Store,
        options: &RolloutOptions,
        stop: &AtomicBool,
        system: &str,
        output: &mut String,
    ) -> anyhow::Result<Outcome> {
        let (remote, toplevel) = (self.remote, self.toplevel);
        let copied = copy_closure_via(
            store,
            toplevel,
            remote,
            &options.remote_store,
            options.substituter.as_deref(),
        )?;
        if stop.load(Ordering::SeqCst) {
            return Ok(Outcome::NotStarted);
        }
        let out = run_switch(remote, &options.remote_store, toplevel, options.action)?;
        output.push_str(&out.stdout_text());
        if let Some(timeout) = options.reboot {
            reboot_and_wait(remote, timeout)?;
            let state = read_state(remote);
            if !is_system(&state.running, system) {
                return Ok(Outcome::Failed {
                    error: came_back_on_another(remote, &state, system),
                });
            }
        }
        let effect = options.effect();
        // A symlink into the store, which need not be at its own path on
        // this machine: its presence is what counts.
        let has_checks = store
            .physical(toplevel)
            .join("bin/check-health")
            .symlink_metadata()
            .is_ok();
        if effect == Action::Boot || !options.health_checks || !has_checks {
            return Ok(Outcome::Done { copied });
        }
        match check_health(remote, &options.remote_store, toplevel)? {
            Health::Passed(report) => {
                output.push_str(&report);
                Ok(Outcome::Done { copied })
            }
            Health::Failed(report) => {
                let back = roll_back(remote, &options.remote_store, toplevel, effect)?;
                output.push_str(&back.stdout_text());
                Ok(Outcome::RolledBack {
                    checks: failed_checks(&report),
                    report,
                })
            }
        }
    }
}

/// The machine's running system and its profile's current generation, in
/// one script: three lines, each empty when its link is missing.
pub fn read_state(remote: &dyn Remote) -> HostState {
    let current = sh_quote(&format!("{PROFILES}/system"));
    let script = format!(
        "printf '%s\\n' \"$(readlink -f /run/current-system 2>/dev/null)\" \"$(readlink {current} 2>/dev/null)\" \"$(readlink -f {current} 2>/dev/null)\""
    );
    let Ok(out) = remote.run(&script, None) else {
        return HostState::default();
    };
    let text = out.stdout_text();
    let mut lines = text
        .lines()
        .map(|l| Some(l.trim()).filter(|l| !l.is_empty()));
    let mut next = || lines.next().flatten();
    let (running, link, profile) = (next(), next(), next());
    HostState {
        running: running.map(str::to_owned),
        profile: profile.map(str::to_owned),
        generation: link.and_then(link_number),
    }
}

/// The number of a generation link `system-<N>-link`.
fn link_number(link: &str) -> Option<u32> {
    let digits = link
        .rsplit('/')
        .next()?
        .strip_prefix("system-")?
        .strip_suffix("-link")?;
    digits.parse().ok()
}

/// Whether `path` (a machine's running or current system) is `system`.
fn is_system(path: &Option<String>, system: &str) -> bool {
    let name = system.rsplit('/').next().unwrap_or(system);
    path.as_deref()
        .is_some_and(|p| p.rsplit('/').next() == Some(name))
}

/// Why a machine that came back from its reboot failed.
fn came_back_on_another(remote: &dyn Remote, state: &HostState, system: &str) -> String {
    let generation = state
        .generation
        .map_or(String::new(), |n| format!(" (current generation {n})"));
    format!(
        "{} came back from its reboot running {}{generation}, not {system}: the new system did not boot, and the boot loader fell back",
        remote.name(),
        state.running.as_deref().unwrap_or("an unknown system")
    )
}

/// Whether the machine runs `system` already (for `switch` and `test`) and
/// has it as its current generation (for `switch` and `boot`).
fn already_there(state: &HostState, system: &str, action: Action) -> bool {
    let (runs, current) = (
        is_system(&state.running, system),
        is_system(&state.profile, system),
    );
    match action {
        Action::Switch => runs && current,
        Action::Test => runs,
        Action::Boot => current,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_numbers_and_already_there() {
        assert_eq!(link_number("system-12-link"), Some(12));
        assert_eq!(link_number("/imago/var/profiles/system-3-link"), Some(3));
        assert_eq!(link_number("other-3-link"), None);
        let state = HostState {
            running: Some("/imago/store/aaa-sys".to_owned()),
            profile: Some("/imago/store/bbb-sys".to_owned()),
            generation: Some(2),
        };
        assert!(already_there(&state, "/imago/store/aaa-sys", Action::Test));
        assert!(!already_there(
            &state,
            "/imago/store/aaa-sys",
            Action::Switch
        ));
        assert!(already_there(&state, "/imago/store/bbb-sys", Action::Boot));
    }
}
