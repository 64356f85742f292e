//! Fault injection for crash-safety tests.
//!
//! `IMAGO_FAULT_INJECT` is read once when a store is opened. Its value names
//! a point in [`Store::add`](super::Store::add) or the import commit:
//! `after-hash`, `after-fsync`, `after-rename`, `before-commit`,
//! `after-commit`. Plain `<point>` aborts the process there
//! (`std::process::abort()`, as abrupt as SIGKILL for the store's purposes);
//! `enospc:<point>` makes the operation fail there with "No space left on
//! device" instead, to test disk-full handling. Unset or empty: no faults.
//!
//! Only builds with debug assertions (the test and dev profiles) honour it:
//! a release binary, what users run, ignores the variable and says so once
//! on stderr, so a stray variable can never crash a real store.

use super::error::{Result, StoreError};

/// The environment variable that arms a fault.
pub const FAULT_ENV: &str = "IMAGO_FAULT_INJECT";

/// Every named point, in the order an add reaches them.
pub const POINTS: [&str; 5] = [
    "after-hash",
    "after-fsync",
    "after-rename",
    "before-commit",
    "after-commit",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fault {
    None,
    Abort(String),
    Enospc(String),
}

impl Fault {
    pub(crate) fn from_env() -> Fault {
        if !cfg!(debug_assertions) {
            if std::env::var_os(FAULT_ENV).is_some_and(|v| !v.is_empty()) {
                static SAID: std::sync::Once = std::sync::Once::new();
                SAID.call_once(|| {
                    eprintln!(
                        "imago: {FAULT_ENV} is ignored: fault injection exists only in test builds (debug assertions on)"
                    );
                });
            }
            return Fault::None;
        }
        match std::env::var(FAULT_ENV) {
            Ok(v) if !v.is_empty() => match v.strip_prefix("enospc:") {
                Some(point) => Fault::Enospc(point.to_owned()),
                None => Fault::Abort(v),
            },
            _ => Fault::None,
        }
    }

    /// Called at each named point.
    pub(crate) fn hit(&self, point: &'static str) -> Result<()> {
        match self {
            Fault::Abort(p) if p == point => {
                eprintln!("imago: injected crash at `{point}`");
                std::process::abort()
            }
            Fault::Enospc(p) if p == point => Err(StoreError::InjectedFault {
                point,
                source: std::io::Error::from_raw_os_error(28),
            }),
            _ => Ok(()),
        }
    }
}
