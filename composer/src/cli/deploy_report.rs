//! What `imago deploy` prints: the live progress of a rollout on stderr
//! (a line per wave and per machine as it starts and ends), each machine's
//! output when it is done, and the final report, as text or as one JSON
//! document (`--json`, docs/deploy.md "The report").

use crate::remote::{Copied, Event, FailedCheck, HostReport, HostState, Outcome, Rollout, Stop};
use serde::Serialize;

/// How a deploy talks while it runs.
#[derive(Debug, Clone, Copy)]
pub struct Printer {
    /// Several machines: prefix their output with their names, show waves.
    pub many: bool,
    /// `--json`: print nothing while running; the document at the end.
    pub json: bool,
}

impl Printer {
    /// Prints what a rollout event means to the user.
    pub fn event(&self, event: Event<'_>) {
        if self.json {
            return;
        }
        match event {
            Event::Wave {
                wave,
                waves,
                targets,
            } if self.many => {
                eprintln!("wave {}/{waves}: {}", wave + 1, targets.join(", "));
            }
            Event::Started { target } if self.many => eprintln!("{target}: started"),
            Event::Done(report) => {
                print_host(report, self.many);
                if self.many {
                    eprintln!("{}: {}", report.target, ended(report));
                }
            }
            Event::Stopped {
                reason: Stop::Failures { failed },
            } => eprintln!(
                "rollout stopped: {failed} machine(s) failed, more than --max-failures allows"
            ),
            Event::Stopped {
                reason: Stop::Interrupted,
            } => eprintln!("rollout interrupted: no further machine is started"),
            Event::Wave { .. } | Event::Started { .. } => {}
        }
    }

    /// The final report: a line per machine as text (with several
    /// machines), or the JSON document.
    pub fn report(&self, action: &str, rollout: &Rollout) -> anyhow::Result<()> {
        if self.json {
            let doc = document(action, rollout);
            println!("{}", serde_json::to_string_pretty(&doc)?);
        } else if self.many {
            print!("{}", summary(&rollout.hosts));
        }
        Ok(())
    }
}

/// "done in 1.2 s, generation 3 -> 4" and the like: how a machine ended.
fn ended(report: &HostReport) -> String {
    let generation = |s: &Option<HostState>| {
        s.as_ref()
            .and_then(|s| s.generation)
            .map_or("-".to_owned(), |n| n.to_string())
    };
    let mut text = format!("{} in {:.1} s", report.outcome.word(), report.seconds);
    match &report.outcome {
        Outcome::Done { .. } | Outcome::RolledBack { .. } => text.push_str(&format!(
            ", generation {} -> {}",
            generation(&report.before),
            generation(&report.after)
        )),
        Outcome::AlreadyThere | Outcome::Failed { .. } | Outcome::NotStarted => {}
    }
    if let Outcome::RolledBack { checks, .. } = &report.outcome {
        text.push_str(&format!("; failed checks: {}", check_names(checks)));
    }
    text
}

fn check_names(checks: &[FailedCheck]) -> String {
    if checks.is_empty() {
        return "(none named)".to_owned();
    }
    let names: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
    names.join(", ")
}

/// "copied N objects to T" or "T has the whole closure"; with a cache,
/// how many objects and bytes came from it and how many over ssh, and why
/// objects did not come from it (the first few; `--json` lists all).
pub fn copied_lines(target: &str, copied: &Copied) -> String {
    const SHOWN: usize = 10;
    let total = copied.objects();
    let mut text = if total == 0 {
        format!("{target} has the whole closure\n")
    } else {
        format!("copied {total} objects to {target}\n")
    };
    if copied.cache.objects > 0 || !copied.fallbacks.is_empty() {
        text.push_str(&format!(
            "{target}: {} objects ({} bytes) from the cache, {} ({} bytes) over ssh\n",
            copied.cache.objects, copied.cache.bytes, copied.ssh.objects, copied.ssh.bytes
        ));
    }
    for fallback in copied.fallbacks.iter().take(SHOWN) {
        text.push_str(&format!(
            "{target}: {} over ssh: {}\n",
            fallback.object, fallback.reason
        ));
    }
    if copied.fallbacks.len() > SHOWN {
        text.push_str(&format!(
            "{target}: and {} more over ssh (--json lists them)\n",
            copied.fallbacks.len() - SHOWN
        ));
    }
    text
}

/// What one machine did, as soon as it is done: the copy, the switch's and
/// the checks' output on stdout, a failure on stderr. With several
/// machines each line is prefixed with the machine's name.
fn print_host(report: &HostReport, many: bool) {
    let prefix = |text: &str| -> String {
        if many {
            text.lines()
                .map(|l| format!("{}: {l}\n", report.target))
                .collect()
        } else {
            text.to_owned()
        }
    };
    let mut out = String::new();
    let mut err = String::new();
    match &report.outcome {
        Outcome::Done { copied } => {
            out.push_str(&copied_lines(&report.target, copied));
            out.push_str(&prefix(&report.output));
        }
        Outcome::AlreadyThere => {
            out.push_str(&format!("{} runs this system already\n", report.target));
        }
        Outcome::RolledBack { report: checks, .. } => {
            out.push_str(&prefix(&report.output));
            err.push_str(&prefix(checks));
        }
        Outcome::Failed { error } if many => {
            out.push_str(&prefix(&report.output));
            err.push_str(&format!("{}: {error}\n", report.target));
        }
        Outcome::Failed { .. } | Outcome::NotStarted => out.push_str(&prefix(&report.output)),
    }
    print!("{out}");
    eprint!("{err}");
}

/// The rollout's text report: a line per machine (wave, name, result,
/// time, generation and system before and after), and the failed checks
/// of a rolled-back one.
fn summary(reports: &[HostReport]) -> String {
    let mut text = String::from("rollout:\n");
    for r in reports {
        let state = |s: &Option<HostState>| {
            let Some(s) = s else {
                return "-".to_owned();
            };
            let name = s
                .running
                .as_deref()
                .and_then(|p| p.rsplit('/').next())
                .unwrap_or("-");
            match s.generation {
                Some(n) => format!("{name} (generation {n})"),
                None => name.to_owned(),
            }
        };
        text.push_str(&format!(
            "  wave {} {}: {} ({:.1} s) {} -> {}\n",
            r.wave + 1,
            r.target,
            r.outcome.word(),
            r.seconds,
            state(&r.before),
            state(&r.after)
        ));
        if let Outcome::RolledBack { checks, .. } = &r.outcome {
            text.push_str(&format!("    failed checks: {}\n", check_names(checks)));
        }
    }
    text
}

/// The JSON report (version 1; docs/deploy.md lists its fields).
#[derive(Serialize)]
struct Document<'a> {
    version: u32,
    action: &'a str,
    /// `ok`, `failed` (a machine failed or was rolled back, the rollout may
    /// have stopped), or `interrupted`.
    result: &'static str,
    /// Why no further wave ran: `failures`, `interrupted`, or null.
    stopped: Option<&'static str>,
    hosts: Vec<JsonHost<'a>>,
}

#[derive(Serialize)]
struct JsonHost<'a> {
    target: &'a str,
    /// From 1.
    wave: usize,
    system: &'a str,
    result: &'static str,
    seconds: f64,
    before: Option<&'a HostState>,
    after: Option<&'a HostState>,
    /// Objects copied (`done` only).
    copied: Option<usize>,
    /// How they travelled (`done` only): `cache` and `ssh`, each
    /// `objects` and `bytes`, and `fallbacks` (`object`, `reason`).
    transfer: Option<&'a Copied>,
    /// Why it failed (`failed` only).
    error: Option<&'a str>,
    /// The checks that failed (`rolled-back` only).
    failed_checks: &'a [FailedCheck],
    /// What the switch and the checks printed.
    output: &'a str,
}

fn document<'a>(action: &'a str, rollout: &'a Rollout) -> Document<'a> {
    let hosts: Vec<JsonHost<'a>> = rollout
        .hosts
        .iter()
        .map(|r| JsonHost {
            target: &r.target,
            wave: r.wave + 1,
            system: &r.system,
            result: r.outcome.key(),
            seconds: (r.seconds * 1000.0).round() / 1000.0,
            before: r.before.as_ref(),
            after: r.after.as_ref(),
            copied: match &r.outcome {
                Outcome::Done { copied } => Some(copied.objects()),
                _ => None,
            },
            transfer: match &r.outcome {
                Outcome::Done { copied } => Some(copied),
                _ => None,
            },
            error: match &r.outcome {
                Outcome::Failed { error } => Some(error),
                _ => None,
            },
            failed_checks: match &r.outcome {
                Outcome::RolledBack { checks, .. } => checks,
                _ => &[],
            },
            output: &r.output,
        })
        .collect();
    let result = match rollout.stopped {
        Some(Stop::Interrupted) => "interrupted",
        _ if rollout.hosts.iter().any(|h| h.outcome.failed()) => "failed",
        _ => "ok",
    };
    Document {
        version: 1,
        action,
        result,
        stopped: rollout.stopped.map(|s| match s {
            Stop::Failures { .. } => "failures",
            Stop::Interrupted => "interrupted",
        }),
        hosts,
    }
}
