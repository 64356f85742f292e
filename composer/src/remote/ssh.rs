//! The ssh remote: `ssh [-p PORT] -- DESTINATION SCRIPT`.

use super::{Input, Remote, RemoteOutput};
use anyhow::Context;
use std::io::Write;
use std::process::{Command, Stdio};

/// A validated ssh destination from `ssh://[user@]host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    /// `user@host` or `host`.
    pub destination: String,
    pub port: Option<u16>,
}

/// Parses `ssh://[user@]host[:port]`, refusing anything ssh could read as
/// an option.
pub fn parse_target(text: &str) -> Result<SshTarget, String> {
    let rest = text
        .strip_prefix("ssh://")
        .ok_or_else(|| format!("`{text}`: the target must be ssh://[user@]host[:port]"))?;
    let (dest, port) = match rest.rsplit_once(':') {
        Some((d, p)) => {
            let port = p
                .parse::<u16>()
                .ok()
                .filter(|&p| p > 0)
                .ok_or_else(|| format!("`{text}`: `{p}` is not a port number"))?;
            (d, Some(port))
        }
        None => (rest, None),
    };
    let (user, host) = match dest.split_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, dest),
    };
    let word_ok = |w: &str| {
        !w.is_empty()
            && !w.starts_with('-')
            && w.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    };
    if !word_ok(host) {
        return Err(format!("`{text}`: `{host}` is not a host name or address"));
    }
    if let Some(u) = user
        && !word_ok(u)
    {
        return Err(format!("`{text}`: `{u}` is not a user name"));
    }
    Ok(SshTarget {
        destination: dest.to_owned(),
        port,
    })
}

impl std::fmt::Display for SshTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ssh://{}", self.destination)?;
        match self.port {
            Some(port) => write!(f, ":{port}"),
            None => Ok(()),
        }
    }
}

/// A machine reached with an ssh program. The script's standard error goes
/// straight to the user's terminal.
#[derive(Debug, Clone)]
pub struct SshRemote {
    pub target: SshTarget,
    /// The ssh program (`ssh`, or a wrapper).
    pub program: String,
    /// Run ssh in a process group of its own, so that a Ctrl-C on the
    /// terminal reaches imago only, which lets a script under way finish
    /// (a rollout's interruption).
    pub own_group: bool,
}

impl SshRemote {
    fn command(&self, script: &str) -> Command {
        let mut cmd = Command::new(&self.program);
        if let Some(port) = self.target.port {
            cmd.arg("-p").arg(port.to_string());
        }
        cmd.arg("--").arg(&self.target.destination).arg(script);
        if self.own_group {
            std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        }
        cmd
    }
}

impl Remote for SshRemote {
    /// `user@host`, with `:port` when one was given (machines behind one
    /// address on several ports are told apart).
    fn name(&self) -> String {
        match self.target.port {
            Some(port) => format!("{}:{port}", self.target.destination),
            None => self.target.destination.clone(),
        }
    }

    fn run(&self, script: &str, input: Option<Input<'_>>) -> anyhow::Result<RemoteOutput> {
        self.run_with(script, input, Stdio::inherit())
    }

    fn probe(&self, script: &str) -> anyhow::Result<RemoteOutput> {
        self.run_with(script, None, Stdio::null())
    }
}

impl SshRemote {
    /// Runs `script` with ssh's stderr going to `stderr`.
    fn run_with(
        &self,
        script: &str,
        input: Option<Input<'_>>,
        stderr: Stdio,
    ) -> anyhow::Result<RemoteOutput> {
        let mut cmd = self.command(script);
        cmd.stdout(Stdio::piped()).stderr(stderr);
        cmd.stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let mut child = cmd
            .spawn()
            .with_context(|| format!("running {}", self.program))?;
        // Read stdout while writing stdin, so neither pipe can fill up and
        // block both sides.
        let mut stdout = child.stdout.take().context("no stdout for ssh")?;
        let reader = std::thread::spawn(move || {
            let mut buf = Vec::new();
            std::io::Read::read_to_end(&mut stdout, &mut buf).map(|_| buf)
        });
        let sent = match (input, child.stdin.take()) {
            (Some(write), Some(stdin)) => {
                let mut stdin = std::io::BufWriter::new(stdin);
                let result = write(&mut stdin).and_then(|()| Ok(stdin.flush()?));
                drop(stdin);
                result
            }
            _ => Ok(()),
        };
        let status = child
            .wait()
            .with_context(|| format!("waiting for {}", self.program))?;
        let stdout = reader
            .join()
            .map_err(|_| anyhow::anyhow!("the reader of {}'s output panicked", self.program))?
            .with_context(|| format!("reading the output of {}", self.program))?;
        // A remote side that stopped reading explains itself by its status.
        if status.success() {
            sent.with_context(|| format!("sending data to {}", self.name()))?;
        }
        Ok(RemoteOutput {
            status: status.code(),
            stdout,
            stderr: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(
            parse_target("ssh://root@web.example:2222").unwrap(),
            SshTarget {
                destination: "root@web.example".to_owned(),
                port: Some(2222)
            }
        );
        assert_eq!(parse_target("ssh://10.0.2.2").unwrap().port, None);
        for (bad, why) in [
            ("web", "must be ssh://"),
            ("ssh://", "not a host"),
            ("ssh://-oProxyCommand=x", "not a host"),
            ("ssh://a b", "not a host"),
            ("ssh://-x@h", "not a user"),
            ("ssh://h:0", "not a port"),
            ("ssh://h:x", "not a port"),
        ] {
            let err = parse_target(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}
