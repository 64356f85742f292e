//! The ssh remote: `ssh [-p PORT] -- DESTINATION SCRIPT`, optionally
//! sharing one connection per machine between the scripts it runs.

use super::{Input, Remote, RemoteOutput};
use anyhow::Context;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;

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

impl SshTarget {
    /// ssh's arguments that name the machine: `[-p PORT] -- DESTINATION`.
    fn ssh_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(port) = self.port {
            args.extend(["-p".to_owned(), port.to_string()]);
        }
        args.extend(["--".to_owned(), self.destination.clone()]);
        args
    }
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
    /// The ssh program (`ssh`, or a wrapper taking ssh's arguments).
    pub program: String,
    /// Run ssh in a process group of its own, so that a Ctrl-C on the
    /// terminal reaches imago only, which lets a script under way finish
    /// (a rollout's interruption).
    pub own_group: bool,
    /// The shared connection, when the scripts run over one.
    pub multiplex: Option<Arc<Multiplex>>,
}

/// One ssh connection to a machine that every script of a deploy shares
/// (OpenSSH's `ControlMaster`), as nixos-rebuild and deploy tools do: a
/// deploy runs half a dozen short scripts, and each connection of its own
/// costs a key exchange and an authentication on both sides. The master
/// listens on a socket in a private temporary directory, starts with the
/// first script, and is told to exit when the last user of this value is
/// gone (or exits by itself after a minute without a script).
#[derive(Debug)]
pub struct Multiplex {
    /// Holds the control socket; mode 0700, removed on drop.
    dir: tempfile::TempDir,
    program: String,
    target: SshTarget,
}

impl Multiplex {
    /// A shared connection to `target` through `program`, not yet open.
    pub fn new(program: &str, target: &SshTarget) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("imago-ssh-")
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .tempdir()
            .context("creating a directory for the ssh control socket")?;
        Ok(Self {
            dir,
            program: program.to_owned(),
            target: target.clone(),
        })
    }

    /// The control socket's path.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("control")
    }

    /// The options that make an ssh use (or start) the shared connection.
    fn options(&self) -> Vec<String> {
        vec![
            "-o".to_owned(),
            "ControlMaster=auto".to_owned(),
            "-o".to_owned(),
            format!("ControlPath={}", self.socket().display()),
            "-o".to_owned(),
            "ControlPersist=60".to_owned(),
        ]
    }

    /// Asks the master (if one runs) to exit; its scripts have ended.
    pub fn close(&self) {
        if !self.socket().exists() {
            return;
        }
        let mut cmd = Command::new(&self.program);
        cmd.args(["-o", &format!("ControlPath={}", self.socket().display())])
            .args(["-O", "exit"])
            .args(self.target.ssh_args());
        // Nothing to report: a master that is already gone is what we want.
        let _ = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Multiplex {
    fn drop(&mut self) {
        self.close();
    }
}

impl SshRemote {
    /// A machine whose scripts share one connection.
    pub fn multiplexed(
        target: SshTarget,
        program: String,
        own_group: bool,
    ) -> anyhow::Result<Self> {
        let multiplex = Multiplex::new(&program, &target)?;
        Ok(Self {
            target,
            program,
            own_group,
            multiplex: Some(Arc::new(multiplex)),
        })
    }

    /// The argument list after the program: `shared` says whether the
    /// script may use (or start) the shared connection.
    fn arguments(&self, script: &str, shared: bool) -> Vec<String> {
        let mut args = Vec::new();
        match &self.multiplex {
            Some(m) if shared => args.extend(m.options()),
            // A probe of a machine that may be rebooting never waits on a
            // connection that died with its old boot.
            Some(_) => args.extend(["-o".to_owned(), "ControlPath=none".to_owned()]),
            None => {}
        }
        args.extend(self.target.ssh_args());
        args.push(script.to_owned());
        args
    }

    fn command(&self, script: &str, shared: bool) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(self.arguments(script, shared));
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
        self.run_with(script, input, Stdio::inherit(), true)
    }

    fn probe(&self, script: &str) -> anyhow::Result<RemoteOutput> {
        self.run_with(script, None, Stdio::null(), false)
    }

    fn disconnect(&self) {
        if let Some(m) = &self.multiplex {
            m.close();
        }
    }
}

impl SshRemote {
    /// Runs `script` with ssh's stderr going to `stderr`, over the shared
    /// connection when `shared`.
    fn run_with(
        &self,
        script: &str,
        input: Option<Input<'_>>,
        stderr: Stdio,
        shared: bool,
    ) -> anyhow::Result<RemoteOutput> {
        let mut cmd = self.command(script, shared);
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

    #[test]
    fn scripts_share_a_connection_and_probes_do_not() {
        let target = parse_target("ssh://root@web:2222").unwrap();
        let remote = SshRemote::multiplexed(target.clone(), "ssh".to_owned(), true).unwrap();
        let socket = remote.multiplex.as_ref().unwrap().socket();
        let shared = remote.arguments("true", true);
        assert_eq!(
            shared,
            [
                "-o",
                "ControlMaster=auto",
                "-o",
                &format!("ControlPath={}", socket.display()),
                "-o",
                "ControlPersist=60",
                "-p",
                "2222",
                "--",
                "root@web",
                "true"
            ]
        );
        // The socket's directory is private to this user.
        let dir = socket.parent().unwrap();
        let mode =
            std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(dir).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o700);
        assert_eq!(
            remote.arguments("true", false)[..2],
            ["-o", "ControlPath=none"]
        );
        // Dropping the last user removes the directory (no master ran).
        drop(remote);
        assert!(!dir.exists());
        let plain = SshRemote {
            target,
            program: "ssh".to_owned(),
            own_group: false,
            multiplex: None,
        };
        assert_eq!(
            plain.arguments("true", true),
            ["-p", "2222", "--", "root@web", "true"]
        );
    }
}
