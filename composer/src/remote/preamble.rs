//! The start of every script that writes into a target's store.

use super::sh_quote;

/// The start of a script that writes into the target's store: `store` set,
/// the store remounted read-write when it is mounted read-only (stage 1
/// bind-mounts it so) and `restore` to undo that, for the script's trap.
pub(super) fn store_preamble(remote_store: &str) -> String {
    format!(
        r#"store={store}
ro=false
if grep -q "^[^ ]* $store [^ ]* ro[, ]" /proc/mounts; then mount -o remount,bind,rw "$store"; ro=true; fi
restore() {{ if $ro; then mount -o remount,bind,ro "$store"; fi; }}
# The running system's own tar (busybox, in every Imago system's tools) when
# it has one, else the target's: a system need not install tar itself.
tar=/run/current-system/tools/bin/tar
[ -x "$tar" ] || tar=tar
"#,
        store = sh_quote(remote_store)
    )
}
