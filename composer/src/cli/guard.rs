//! Test systems stay out of production: a toplevel built with the VM test
//! backdoor (`testing.backdoor.enable`, which gives root to whoever holds a
//! virtio-serial port) carries a `testing-backdoor` file, and the commands
//! that put a system on real disks or machines refuse it unless the user
//! says `--allow-test-backdoor`.

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
    let marked = store
        .physical(toplevel)
        .join(BACKDOOR_MARKER)
        .symlink_metadata()
        .is_ok();
    if marked && !allowed {
        anyhow::bail!(
            "{} has the VM test backdoor (testing.backdoor.enable), which gives root to whoever holds its virtio-serial port; refusing to {verb} it. Pass --allow-test-backdoor to do it on purpose.",
            toplevel.to_absolute()
        );
    }
    Ok(())
}
