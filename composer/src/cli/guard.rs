//! Test systems stay out of production: a toplevel built with a test hook
//! — the VM test backdoor (`testing.backdoor.enable`, which gives root to
//! whoever holds a virtio-serial port) or the switch pause hook
//! (`testing.switchPauseHook`) — carries a `testing-backdoor` file naming
//! them, one a line, and the commands that put a system on real disks or
//! machines refuse it unless the user says `--allow-test-backdoor`.

use crate::store::{Store, StorePath};

/// The marker file in a test system's toplevel.
pub const BACKDOOR_MARKER: &str = "testing-backdoor";

/// Refuses `toplevel` if it has the test backdoor and `allowed` is false.
pub fn refuse_test_backdoor(
    store: &Store,
    toplevel: &StorePath,
    allowed: bool,
    verb: &str,
) -> anyhow::Result<()> {
    let marker = store.physical(toplevel).join(BACKDOOR_MARKER);
    if allowed || marker.symlink_metadata().is_err() {
        return Ok(());
    }
    // The marker names the hooks; an unreadable one still refuses.
    let hooks = std::fs::read_to_string(&marker)
        .map(|text| text.lines().collect::<Vec<_>>().join("; "))
        .unwrap_or_default();
    let hooks = if hooks.is_empty() {
        "test hooks".to_owned()
    } else {
        hooks
    };
    anyhow::bail!(
        "{} is a test system, with {hooks}; refusing to {verb} it. Pass --allow-test-backdoor to do it on purpose.",
        toplevel.to_absolute()
    )
}
