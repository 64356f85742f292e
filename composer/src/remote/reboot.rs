//! Rebooting a machine into its new boot default and waiting for it to
//! come back over the same connection (`imago deploy --reboot`): the
//! machine's boot id (`/proc/sys/kernel/random/boot_id`) before, a detached
//! `reboot`, then polls until a different boot id answers.

use super::Remote;
use std::time::{Duration, Instant};

/// The time between two attempts to reach a rebooting machine.
const POLL: Duration = Duration::from_secs(2);

/// Reboots `remote` and waits (at most `timeout`) until it answers from a
/// new boot.
pub fn reboot_and_wait(remote: &dyn Remote, timeout: Duration) -> anyhow::Result<()> {
    let before = boot_id(remote).ok_or_else(|| {
        anyhow::anyhow!(
            "cannot read the boot id of {} before rebooting it",
            remote.name()
        )
    })?;
    // Detached, after a second: the connection ends before the machine
    // goes down. Its status means nothing (the connection may be cut).
    let _ = remote.run("(sleep 1; reboot) </dev/null >/dev/null 2>&1 &", None);
    // The connection kept for the deploy's scripts dies with this boot.
    remote.disconnect();
    let started = Instant::now();
    loop {
        std::thread::sleep(POLL);
        if boot_id(remote).is_some_and(|id| id != before) {
            return Ok(());
        }
        if started.elapsed() > timeout {
            anyhow::bail!(
                "{} did not come back within {} s of the reboot (--reboot-timeout); it may still be booting, or its boot loader fell back",
                remote.name(),
                timeout.as_secs()
            );
        }
    }
}

/// The machine's boot id, when it answers.
fn boot_id(remote: &dyn Remote) -> Option<String> {
    let out = remote.probe("cat /proc/sys/kernel/random/boot_id").ok()?;
    let id = out.stdout_text().trim().to_owned();
    (out.success() && !id.is_empty()).then_some(id)
}
