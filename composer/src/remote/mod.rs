//! Machines reached by a shell: the target side of `imago deploy`,
//! `imago rollback --target` and `imago generations --target`.
//!
//! A [`Remote`] runs a POSIX shell script on a machine, optionally feeding it
//! a byte stream, and returns its exit status and output. [`SshRemote`] is
//! the one the command line uses; the VM tests implement it over their
//! backdoor, so they exercise the same copying and switching code. Targets
//! need no imago binary: the scripts use the target's shell, tar and the
//! system's own `switch-to-configuration`.

mod deploy;
mod error;
mod fetch;
mod host;
mod preamble;
mod reboot;
mod report;
mod rollout;
mod ssh;
mod stream;
mod substitute;
mod targets;

pub use deploy::{
    Action, Health, check_health, copy_closure, copy_closure_via, roll_back, run_switch,
};
pub use error::DeployError;
pub use host::{Host, RolloutOptions, read_state};
pub use report::{
    Copied, FailedCheck, Fallback, HostReport, HostState, Outcome, Transfer, failed_checks,
};
pub use rollout::{Event, Rollout, Stop, roll_out, waves};
pub use ssh::{Multiplex, SshRemote, SshTarget, parse_target};
pub use substitute::{
    CacheArchive, Fetch, LocalArchive, Lookup, Plan, TargetCacheUrl, TargetSubstituter,
    local_archive,
};
pub use targets::{TargetEntry, check_unique, parse_targets, read_targets_file};

use std::io::Write;

/// A writer of a script's standard input.
pub type Input<'a> = &'a mut dyn FnMut(&mut dyn Write) -> anyhow::Result<()>;

/// What a script printed, and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteOutput {
    /// The exit status; `None` when the script was killed by a signal.
    pub status: Option<i32>,
    pub stdout: Vec<u8>,
    /// What the remote side did not pass straight to the user.
    pub stderr: Vec<u8>,
}

impl RemoteOutput {
    pub fn success(&self) -> bool {
        self.status == Some(0)
    }

    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// "exit status N" or "killed by a signal".
    pub fn describe_status(&self) -> String {
        match self.status {
            Some(code) => format!("exit status {code}"),
            None => "killed by a signal".to_owned(),
        }
    }
}

/// A machine that runs shell scripts.
pub trait Remote {
    /// The machine's name in messages (e.g. `root@web`).
    fn name(&self) -> String;

    /// Runs `script` with `sh -c`, feeding `input` (if any) to its standard
    /// input. An error means the script could not be run at all; a script
    /// that fails is an `Ok` with its status.
    fn run(&self, script: &str, input: Option<Input<'_>>) -> anyhow::Result<RemoteOutput>;

    /// Runs `script` like [`Remote::run`] without input, keeping what the
    /// connection and the script say on stderr from the user: for probing
    /// a machine that may be down (a reboot).
    fn probe(&self, script: &str) -> anyhow::Result<RemoteOutput> {
        self.run(script, None)
    }

    /// Ends a connection kept open between scripts (the machine is going
    /// down); the next script opens a new one.
    fn disconnect(&self) {}
}

/// Quotes `word` for a POSIX shell.
pub fn sh_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// The profile directory on a target.
pub const PROFILES: &str = "/imago/var/profiles";

/// Runs the current generation's `switch-to-configuration` with `args` on
/// `remote` (rollback, list-generations, delete-generations); its output
/// goes to the user, a failure names the machine and the status.
pub fn run_generation_tool(remote: &dyn Remote, args: &[String]) -> anyhow::Result<RemoteOutput> {
    run_script_tool(
        remote,
        &format!("{PROFILES}/system/bin/switch-to-configuration"),
        args,
    )
}

/// Runs the `switch-to-configuration` at `script` with `args` on `remote`;
/// a failure names the arguments, the machine, the status and what the
/// script printed on stderr (when the remote side captured it).
fn run_script_tool(
    remote: &dyn Remote,
    script: &str,
    args: &[String],
) -> anyhow::Result<RemoteOutput> {
    let mut words = vec![sh_quote(script)];
    words.extend(args.iter().map(|a| sh_quote(a)));
    let out = remote.run(&words.join(" "), None)?;
    if !out.success() {
        anyhow::bail!(
            "switch-to-configuration {} failed on {} ({}){}",
            args.join(" "),
            remote.name(),
            out.describe_status(),
            stderr_suffix(&out)
        );
    }
    Ok(out)
}

/// ": <stderr>" when the remote side captured any.
fn stderr_suffix(out: &RemoteOutput) -> String {
    let text = String::from_utf8_lossy(&out.stderr);
    let text = text.trim();
    if text.is_empty() {
        String::new()
    } else {
        format!(": {text}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(sh_quote("a'b"), r"'a'\''b'");
        assert_eq!(sh_quote(""), "''");
    }
}
