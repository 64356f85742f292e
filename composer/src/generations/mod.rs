//! Generations of a system, host side: the profile directory
//! (`/imago/var/profiles/system-<N>-link` → toplevel, `system` → the current
//! link) and the boot entries on an EFI system partition
//! (`loader/entries/imago-<name>-<N>[+tries[-done]].conf`, kernels and
//! initrds under `EFI/imago/`). The target itself adds generations with the
//! `switch-to-configuration` script (modules/system/); these helpers list,
//! delete and roll back generations in a profile directory and an ESP that
//! are reachable as local directories (a mounted image, a test directory),
//! by the same rules as the script: the current, booted and running
//! generations are never deleted, and changes are made under the machine's
//! lock (`run`). Both implementations stay (see "Why two implementations"
//! in docs/generations.md); composer/tests/generations_parity.rs runs both
//! on the same trees and compares the results.
//! Every change is a single rename or unlink, so an interruption leaves
//! either the old or the new state. See docs/generations.md.

mod age;
mod error;
mod esp;
mod profile;
mod run;

pub use age::{format_utc_date, parse_age};
pub use error::GenerationsError;
pub use esp::{EntryFile, Esp};
pub use profile::{Generation, Profile};
pub use run::{GUARD_NAME, LOCK_NAME, SwitchLock, in_use_systems};
