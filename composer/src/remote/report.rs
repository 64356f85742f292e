//! What a rollout did on each machine: the report `imago deploy` prints,
//! as text or as JSON (docs/deploy.md, "The report"). The field names and
//! the `result` words are the JSON document's stable shape.

use serde::Serialize;

/// A machine's systems at one moment, as far as they could be read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HostState {
    /// The running system (`/run/current-system`).
    pub running: Option<String>,
    /// The system of the profile's current generation (the boot default).
    pub profile: Option<String>,
    /// The number of the profile's current generation (`system-<N>-link`).
    pub generation: Option<u32>,
}

/// A health check that failed: its name and what it printed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailedCheck {
    pub name: String,
    /// The `FAILED` line (status, limit, command) and the check's last
    /// output lines.
    pub output: String,
}

/// Objects and bytes that travelled one way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Transfer {
    pub objects: usize,
    /// Over ssh, the tar stream's bytes; from a cache, the archives'
    /// (compressed).
    pub bytes: u64,
}

/// An object that went over ssh although a cache was given, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fallback {
    pub object: String,
    pub reason: String,
}

/// How a machine's missing objects reached it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Copied {
    /// Fetched by the machine from the cache (`--target-substituter`).
    pub cache: Transfer,
    /// Sent through the ssh connection.
    pub ssh: Transfer,
    /// With a cache: the objects that went over ssh instead, and why.
    pub fallbacks: Vec<Fallback>,
}

impl Copied {
    /// Objects copied, either way.
    pub fn objects(&self) -> usize {
        self.cache.objects + self.ssh.objects
    }
}

/// What became of one machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It switched (and passed its checks); the objects copied.
    Done { copied: Copied },
    /// It already ran the system: nothing was done.
    AlreadyThere,
    /// It failed its health checks and was returned to its previous
    /// system: the checks that failed, and the checks' whole report.
    RolledBack {
        checks: Vec<FailedCheck>,
        report: String,
    },
    /// Copying or switching (or rolling back) failed; the error.
    Failed { error: String },
    /// The rollout stopped (or was interrupted) before this machine.
    NotStarted,
}

impl Outcome {
    /// Whether the machine counts against `max_failures`.
    pub fn failed(&self) -> bool {
        matches!(self, Outcome::RolledBack { .. } | Outcome::Failed { .. })
    }

    /// The result's word in the JSON report.
    pub fn key(&self) -> &'static str {
        match self {
            Outcome::Done { .. } => "done",
            Outcome::AlreadyThere => "already-there",
            Outcome::RolledBack { .. } => "rolled-back",
            Outcome::Failed { .. } => "failed",
            Outcome::NotStarted => "not-started",
        }
    }

    /// The result in words, for the text report.
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

/// One machine's part of the report.
#[derive(Debug, Clone)]
pub struct HostReport {
    /// The machine's name (`root@web1`).
    pub target: String,
    /// Its wave, from 0.
    pub wave: usize,
    /// The system it was to get, as a path on the machine.
    pub system: String,
    /// Its systems before and after (`None` for a machine not started).
    pub before: Option<HostState>,
    pub after: Option<HostState>,
    pub seconds: f64,
    /// What `switch-to-configuration` and the passing checks printed.
    pub output: String,
    pub outcome: Outcome,
}

/// The failed checks of a `check-health` report: each `FAILED NAME (…)`
/// line with the indented output lines after it.
pub fn failed_checks(report: &str) -> Vec<FailedCheck> {
    let mut checks: Vec<FailedCheck> = Vec::new();
    let mut current: Option<FailedCheck> = None;
    for line in report.lines() {
        if let Some(rest) = line.strip_prefix("FAILED ") {
            checks.extend(current.take());
            let name = rest.split([' ', ':']).next().unwrap_or_default().to_owned();
            current = Some(FailedCheck {
                name,
                output: format!("{line}\n"),
            });
        } else if line.starts_with("  ")
            && let Some(check) = current.as_mut()
        {
            check.output.push_str(line);
            check.output.push('\n');
        } else {
            checks.extend(current.take());
        }
    }
    checks.extend(current);
    checks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_checks_are_named_with_their_output() {
        let report = "ok settled: the system is running\nFAILED web (exit status 1, limit 5 s): check-web\n  connection refused\n  twice\nok db\nFAILED settled: the system is degraded\n  foo.service loaded failed\n";
        let checks = failed_checks(report);
        assert_eq!(
            checks,
            vec![
                FailedCheck {
                    name: "web".to_owned(),
                    output: "FAILED web (exit status 1, limit 5 s): check-web\n  connection refused\n  twice\n".to_owned(),
                },
                FailedCheck {
                    name: "settled".to_owned(),
                    output: "FAILED settled: the system is degraded\n  foo.service loaded failed\n".to_owned(),
                },
            ]
        );
        assert!(failed_checks("ok web\n").is_empty());
    }
}
