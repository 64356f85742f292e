//! `imago deploy FILE --target ssh://[user@]host[:port]`: build a system,
//! copy the part of its closure the target lacks, and run the new system's
//! `switch-to-configuration` there. The target needs no imago: the objects
//! travel as a plain tar stream over ssh into a temporary directory of the
//! target's store, unpacked by the target's tar, and are then renamed into
//! place one by one, references first (a rename is atomic, so an
//! interrupted deploy leaves only complete objects and a temporary
//! directory). The store, bind-mounted read-only by stage 1, is remounted
//! read-write for the copy and read-only again afterwards.

use super::GlobalArgs;
use super::build::SystemArgs;
use crate::debian::apt::default_deb_cache;
use crate::graph::BuildOptions;
use crate::graph::progress::ProgressMode;
use crate::store::{Store, StorePath};
use anyhow::Context;
use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, ExitCode, Stdio};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub system: SystemArgs,
    /// The machine: ssh://[user@]host[:port].
    #[arg(long, value_name = "URL", value_parser = parse_target)]
    pub target: SshTarget,
    /// Activate now and make it the boot default (the default).
    #[arg(long, group = "action")]
    pub switch: bool,
    /// Only make it the boot default.
    #[arg(long, group = "action")]
    pub boot: bool,
    /// Only activate it now.
    #[arg(long, group = "action")]
    pub test: bool,
    /// Only copy the closure.
    #[arg(long, group = "action")]
    pub copy_only: bool,
    /// The ssh program.
    #[arg(long, env = "IMAGO_SSH", default_value = "ssh", value_name = "PROGRAM")]
    pub ssh: String,
    /// The store directory on the target.
    #[arg(long, default_value = "/imago/store", value_name = "DIR")]
    pub remote_store: String,
}

/// A validated ssh destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    /// `user@host` or `host`.
    pub destination: String,
    pub port: Option<u16>,
}

fn parse_target(text: &str) -> Result<SshTarget, String> {
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
    let word_ok = |w: &str, extra: &str| {
        !w.is_empty()
            && !w.starts_with('-')
            && w.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c) || extra.contains(c))
    };
    if !word_ok(host, "") {
        return Err(format!("`{text}`: `{host}` is not a host name or address"));
    }
    if let Some(u) = user
        && !word_ok(u, "")
    {
        return Err(format!("`{text}`: `{u}` is not a user name"));
    }
    Ok(SshTarget {
        destination: dest.to_owned(),
        port,
    })
}

/// Quotes `s` for a POSIX shell.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

impl Args {
    pub fn run(self, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
        let store = super::store::open_store(global)?;
        let Some(toplevel) = self.system.toplevel(
            global,
            &store,
            BuildOptions {
                jobs: 0,
                keep_going: false,
                offline: false,
                deb_cache: default_deb_cache(),
                progress: ProgressMode::Auto,
            },
        )?
        else {
            return Ok(ExitCode::from(1));
        };
        let closure = store
            .closure_sorted(std::slice::from_ref(&toplevel))
            .with_context(|| format!("computing the closure of {}", toplevel.to_absolute()))?;
        let present = self.present()?;
        let missing: Vec<StorePath> = closure
            .into_iter()
            .filter(|p| !present.contains(&p.to_string()))
            .collect();
        if missing.is_empty() {
            println!("{} has the whole closure", self.target.destination);
        } else {
            self.copy(&store, &missing)?;
            println!(
                "copied {} objects to {}",
                missing.len(),
                self.target.destination
            );
        }
        if self.copy_only {
            return Ok(ExitCode::SUCCESS);
        }
        let action = if self.boot {
            "boot"
        } else if self.test {
            "test"
        } else {
            "switch"
        };
        let script = format!(
            "{}/{}/etc/imago/switch-to-configuration {action}",
            self.remote_store, toplevel
        );
        let status = self
            .ssh_command(&sh_quote_words(&script))
            .status()
            .with_context(|| format!("running {}", self.ssh))?;
        if !status.success() {
            eprintln!(
                "error: switch-to-configuration {action} failed on {} ({status})",
                self.target.destination
            );
            return Ok(ExitCode::from(1));
        }
        Ok(ExitCode::SUCCESS)
    }

    fn ssh_command(&self, remote_script: &str) -> Command {
        let mut cmd = Command::new(&self.ssh);
        if let Some(port) = self.target.port {
            cmd.arg("-p").arg(port.to_string());
        }
        cmd.arg("--")
            .arg(&self.target.destination)
            .arg(remote_script);
        cmd
    }

    /// The object names in the target's store.
    fn present(&self) -> anyhow::Result<BTreeSet<String>> {
        let script = format!("cd {} && ls -A", sh_quote(&self.remote_store));
        let out = self
            .ssh_command(&script)
            .stderr(Stdio::inherit())
            .output()
            .with_context(|| format!("running {}", self.ssh))?;
        anyhow::ensure!(
            out.status.success(),
            "listing {} on {} failed ({})",
            self.remote_store,
            self.target.destination,
            out.status
        );
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.parse::<StorePath>().is_ok())
            .map(str::to_owned)
            .collect())
    }

    /// Streams `missing` (references first) into the target's store.
    fn copy(&self, store: &Store, missing: &[StorePath]) -> anyhow::Result<()> {
        let names: Vec<String> = missing.iter().map(|p| sh_quote(&p.to_string())).collect();
        let script = format!(
            r#"set -e
store={store}
ro=false
if grep -q "^[^ ]* $store [^ ]* ro[, ]" /proc/mounts; then mount -o remount,bind,rw "$store"; ro=true; fi
tmp="$store/.imago-deploy-$$"
trap 'rm -rf "$tmp"; if $ro; then mount -o remount,bind,ro "$store"; fi' EXIT
mkdir "$tmp"
tar -x -f - -C "$tmp"
for p in {names}; do [ -e "$store/$p" ] || mv "$tmp/$p" "$store/$p"; done
sync
"#,
            store = sh_quote(&self.remote_store),
            names = names.join(" ")
        );
        let mut child = self
            .ssh_command(&script)
            .stdin(Stdio::piped())
            .spawn()
            .with_context(|| format!("running {}", self.ssh))?;
        let stdin = child.stdin.take().context("no stdin for ssh")?;
        let sent = (|| -> anyhow::Result<()> {
            let mut tar = tar::Builder::new(std::io::BufWriter::new(stdin));
            tar.follow_symlinks(false);
            for p in missing {
                let physical = store.physical(p);
                let name = p.to_string();
                if physical.symlink_metadata()?.is_dir() {
                    tar.append_dir_all(&name, &physical)
                } else {
                    tar.append_path_with_name(&physical, &name)
                }
                .with_context(|| format!("sending {}", p.to_absolute()))?;
            }
            tar.into_inner()?.flush()?;
            Ok(())
        })();
        let status = child
            .wait()
            .with_context(|| format!("waiting for {}", self.ssh))?;
        sent.with_context(|| format!("copying to {}", self.target.destination))?;
        anyhow::ensure!(
            status.success(),
            "unpacking into {} on {} failed ({status}); no incomplete object was moved into the store",
            self.remote_store,
            self.target.destination
        );
        Ok(())
    }
}

/// Quotes each space-separated word of `s` (store paths have no spaces).
fn sh_quote_words(s: &str) -> String {
    s.split(' ').map(sh_quote).collect::<Vec<_>>().join(" ")
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
    fn quoting() {
        assert_eq!(sh_quote("a'b"), r"'a'\''b'");
        assert_eq!(sh_quote_words("/s/x switch"), "'/s/x' 'switch'");
    }
}
