//! Copying a closure to a machine and switching it there.
//!
//! The objects travel as a plain tar stream ([`super::stream`]: no local
//! owners) into a temporary directory of the target's store, unpacked by
//! the target's tar with `--no-same-owner` (so every object is owned by
//! the user the script runs as, root, whatever the stream says), and are
//! then renamed into place one by one, references first (a rename is
//! atomic, so an interrupted copy leaves only complete objects and a
//! temporary directory).
//! The store, bind-mounted read-only by stage 1, is remounted read-write for
//! the copy and read-only again afterwards.
//!
//! With a cache for the targets ([`super::substitute`]) a first script has
//! the target fetch the archives the deployer vouches for into a temporary
//! directory of the store; the second moves them into place with the
//! stream's objects, in the same order, and removes both directories.

use super::fetch::{fetch_dir_name, fetch_on_target};
use super::preamble::store_preamble;
use super::report::{Copied, Fallback};
use super::substitute::{Plan, TargetSubstituter};
use super::{Remote, sh_quote, stderr_suffix};
use crate::store::{Store, StorePath};
use anyhow::Context;
use std::collections::BTreeSet;
use std::io::Write;

/// What `switch-to-configuration` does on the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Activate now and make it the boot default.
    Switch,
    /// Only make it the boot default.
    Boot,
    /// Only activate it now.
    Test,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Switch => "switch",
            Self::Boot => "boot",
            Self::Test => "test",
        }
    }
}

/// Copies the part of `toplevel`'s closure that `remote_store` on `remote`
/// lacks; returns how many objects were copied.
pub fn copy_closure(
    store: &Store,
    toplevel: &StorePath,
    remote: &dyn Remote,
    remote_store: &str,
) -> anyhow::Result<usize> {
    Ok(copy_closure_via(store, toplevel, remote, remote_store, None)?.objects())
}

/// Copies the part of `toplevel`'s closure that `remote_store` on `remote`
/// lacks: with `substituter`, the machine fetches what it can from that
/// cache ([`super::substitute`]) and the rest goes over the connection;
/// without, everything does. Returns what travelled which way.
pub fn copy_closure_via(
    store: &Store,
    toplevel: &StorePath,
    remote: &dyn Remote,
    remote_store: &str,
    substituter: Option<&TargetSubstituter>,
) -> anyhow::Result<Copied> {
    let closure = store
        .closure_sorted(std::slice::from_ref(toplevel))
        .with_context(|| format!("computing the closure of {}", toplevel.to_absolute()))?;
    let present = present(remote, remote_store)?;
    let missing: Vec<StorePath> = closure
        .into_iter()
        .filter(|p| !present.contains(p.as_str()))
        .collect();
    let mut copied = Copied::default();
    if missing.is_empty() {
        return Ok(copied);
    }
    let mut fetched_dir = None;
    let mut fetched = BTreeSet::new();
    if let Some(substituter) = substituter {
        let mut fetches = Vec::new();
        for p in &missing {
            match substituter.plan(store, p) {
                Plan::Fetch(fetch) => fetches.push(fetch),
                Plan::Ssh(reason) => copied.fallbacks.push(Fallback {
                    object: p.to_string(),
                    reason,
                }),
            }
        }
        if !fetches.is_empty() {
            let dir = fetch_dir_name();
            let results = fetch_on_target(remote, remote_store, &dir, &fetches);
            for fetch in &fetches {
                match results.get(fetch.object.as_str()) {
                    Some(None) => {
                        fetched.insert(fetch.object.clone());
                        copied.cache.objects += 1;
                        copied.cache.bytes += fetch.size;
                    }
                    Some(Some(reason)) => copied.fallbacks.push(Fallback {
                        object: fetch.object.to_string(),
                        reason: format!("the machine could not fetch it: {reason}"),
                    }),
                    None => copied.fallbacks.push(Fallback {
                        object: fetch.object.to_string(),
                        reason: results
                            .get("")
                            .cloned()
                            .flatten()
                            .unwrap_or_else(|| "the machine said nothing of it".to_owned()),
                    }),
                }
            }
            fetched_dir = Some(dir);
        }
    }
    let over_ssh: Vec<StorePath> = missing
        .iter()
        .filter(|p| !fetched.contains(*p))
        .cloned()
        .collect();
    copied.ssh.objects = over_ssh.len();
    copied.ssh.bytes = send(
        store,
        &missing,
        &over_ssh,
        fetched_dir.as_deref(),
        remote,
        remote_store,
    )?;
    Ok(copied)
}

/// Runs `<toplevel>/bin/switch-to-configuration ACTION` on `remote`.
pub fn run_switch(
    remote: &dyn Remote,
    remote_store: &str,
    toplevel: &StorePath,
    action: Action,
) -> anyhow::Result<super::RemoteOutput> {
    super::run_script_tool(
        remote,
        &format!("{remote_store}/{toplevel}/bin/switch-to-configuration"),
        &[action.as_str().to_owned()],
    )
}

/// What the system's health checks said on the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Every check passed (the script's report).
    Passed(String),
    /// One failed, or the system did not settle (the script's report).
    Failed(String),
}

/// Runs `<toplevel>/bin/check-health` on `remote`: waits for the system to
/// settle and runs its `system.healthChecks`.
pub fn check_health(
    remote: &dyn Remote,
    remote_store: &str,
    toplevel: &StorePath,
) -> anyhow::Result<Health> {
    let script = format!("{remote_store}/{toplevel}/bin/check-health");
    let out = remote.run(&format!("{} 2>&1", sh_quote(&script)), None)?;
    let report = out.stdout_text();
    Ok(match out.status {
        Some(0) => Health::Passed(report),
        Some(1) => Health::Failed(report),
        _ => anyhow::bail!(
            "running the health checks on {} failed ({}){}",
            remote.name(),
            out.describe_status(),
            stderr_suffix(&out)
        ),
    })
}

/// Returns a target that switched to `toplevel` with `action` (and then
/// failed its health checks) to the system it ran before: after `switch`,
/// the generation before becomes current again (`rollback switch`, which
/// runs that generation's own script); after `test`, which left the profile
/// alone, the profile's system is activated again.
pub fn roll_back(
    remote: &dyn Remote,
    remote_store: &str,
    toplevel: &StorePath,
    action: Action,
) -> anyhow::Result<super::RemoteOutput> {
    match action {
        Action::Switch => super::run_script_tool(
            remote,
            &format!("{remote_store}/{toplevel}/bin/switch-to-configuration"),
            &["rollback".to_owned(), "switch".to_owned()],
        ),
        Action::Test | Action::Boot => super::run_generation_tool(remote, &["test".to_owned()]),
    }
}

/// The object names in the target's store.
fn present(remote: &dyn Remote, remote_store: &str) -> anyhow::Result<BTreeSet<String>> {
    let out = remote.run(&format!("cd {} && ls -A", sh_quote(remote_store)), None)?;
    anyhow::ensure!(
        out.success(),
        "listing {remote_store} on {} failed ({}){}",
        remote.name(),
        out.describe_status(),
        stderr_suffix(&out)
    );
    Ok(out
        .stdout_text()
        .lines()
        .filter(|l| l.parse::<StorePath>().is_ok())
        .map(str::to_owned)
        .collect())
}

/// A writer that counts what passes through it.
struct Counting<'a> {
    inner: &'a mut dyn Write,
    bytes: u64,
}

impl Write for Counting<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Streams `over_ssh` into the target's store and moves every object of
/// `missing` (references first) into place: from the stream, or from the
/// directory `fetched` (in the store) a fetch left. Returns the bytes sent.
fn send(
    store: &Store,
    missing: &[StorePath],
    over_ssh: &[StorePath],
    fetched: Option<&str>,
    remote: &dyn Remote,
    remote_store: &str,
) -> anyhow::Result<u64> {
    let names: Vec<String> = missing.iter().map(|p| sh_quote(p.as_str())).collect();
    let unpack = if over_ssh.is_empty() {
        String::new()
    } else {
        r#"if ! command -v "$tar" >/dev/null; then
  echo "no tar on this machine: neither its system's tools nor its PATH have one" >&2
  exit 127
fi
"$tar" --no-same-owner -x -f - -C "$tmp"
sync
"#
        .to_owned()
    };
    let script = format!(
        r#"set -e
{preamble}tmp="$store/.imago-deploy-$$"
fetched={fetched}
trap 'rm -rf "$tmp"; [ -z "$fetched" ] || rm -rf "$store/$fetched"; restore' EXIT
mkdir "$tmp"
{unpack}for p in {names}; do
  if [ -e "$store/$p" ] || [ -L "$store/$p" ]; then continue; fi
  if [ -e "$tmp/$p" ] || [ -L "$tmp/$p" ]; then mv "$tmp/$p" "$store/$p"
  elif [ -n "$fetched" ] && {{ [ -e "$store/$fetched/$p" ] || [ -L "$store/$fetched/$p" ]; }}; then mv "$store/$fetched/$p" "$store/$p"
  else echo "$p did not arrive" >&2; exit 1
  fi
done
sync
"#,
        preamble = store_preamble(remote_store),
        fetched = sh_quote(fetched.unwrap_or_default()),
        names = names.join(" ")
    );
    let mut sent = 0;
    let mut write = |out: &mut dyn Write| -> anyhow::Result<()> {
        let mut counting = Counting {
            inner: out,
            bytes: 0,
        };
        let result = super::stream::write_objects(store, over_ssh, &mut counting);
        sent = counting.bytes;
        result
    };
    let input: Option<super::Input<'_>> = if over_ssh.is_empty() {
        None
    } else {
        Some(&mut write)
    };
    let out = remote
        .run(&script, input)
        .with_context(|| format!("copying to {}", remote.name()))?;
    anyhow::ensure!(
        out.success(),
        "unpacking into {remote_store} on {} failed ({}){}; no incomplete object was moved into the store",
        remote.name(),
        out.describe_status(),
        stderr_suffix(&out)
    );
    Ok(sent)
}
