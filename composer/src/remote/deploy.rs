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
    let closure = store
        .closure_sorted(std::slice::from_ref(toplevel))
        .with_context(|| format!("computing the closure of {}", toplevel.to_absolute()))?;
    let present = present(remote, remote_store)?;
    let missing: Vec<StorePath> = closure
        .into_iter()
        .filter(|p| !present.contains(p.as_str()))
        .collect();
    if !missing.is_empty() {
        send(store, &missing, remote, remote_store)?;
    }
    Ok(missing.len())
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

/// Streams `missing` (references first) into the target's store.
fn send(
    store: &Store,
    missing: &[StorePath],
    remote: &dyn Remote,
    remote_store: &str,
) -> anyhow::Result<()> {
    let names: Vec<String> = missing.iter().map(|p| sh_quote(p.as_str())).collect();
    let script = format!(
        r#"set -e
store={store}
ro=false
if grep -q "^[^ ]* $store [^ ]* ro[, ]" /proc/mounts; then mount -o remount,bind,rw "$store"; ro=true; fi
tmp="$store/.imago-deploy-$$"
trap 'rm -rf "$tmp"; if $ro; then mount -o remount,bind,ro "$store"; fi' EXIT
mkdir "$tmp"
# The running system's own tar (busybox, in every Imago system's tools) when
# it has one, else the target's: a system need not install tar itself.
tar=/run/current-system/tools/bin/tar
[ -x "$tar" ] || tar=tar
if ! command -v "$tar" >/dev/null; then
  echo "no tar on this machine: neither its system's tools nor its PATH have one" >&2
  exit 127
fi
"$tar" --no-same-owner -x -f - -C "$tmp"
sync
for p in {names}; do [ -e "$store/$p" ] || mv "$tmp/$p" "$store/$p"; done
sync
"#,
        store = sh_quote(remote_store),
        names = names.join(" ")
    );
    let mut write = |out: &mut dyn Write| -> anyhow::Result<()> {
        super::stream::write_objects(store, missing, out)
    };
    let out = remote
        .run(&script, Some(&mut write))
        .with_context(|| format!("copying to {}", remote.name()))?;
    anyhow::ensure!(
        out.success(),
        "unpacking into {remote_store} on {} failed ({}){}; no incomplete object was moved into the store",
        remote.name(),
        out.describe_status(),
        stderr_suffix(&out)
    );
    Ok(())
}
