//! Which VM tests run: `IMAGO_VM_TESTS`.
//!
//! VM tests are slow, so each is marked `quick` (the fast subset run on every
//! change) or `full`. `IMAGO_VM_TESTS` selects: unset, `full` or `all` runs
//! every test; `quick` runs only quick ones; `none` or `off` runs none (for
//! hosts without QEMU). A skipped test passes, but it prints
//! `skipped (IMAGO_VM_TESTS=...)` straight to stderr, which the test harness
//! does not capture, so a skip never looks like a silent pass.
//!
//! Tests are declared with [`vm_test!`](crate::vm_test), which adds the check.

use std::io::Write as _;

/// The kind of a VM test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestKind {
    /// Part of the fast subset.
    Quick,
    /// Only in full runs.
    Full,
}

/// The selection made by `IMAGO_VM_TESTS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection {
    /// Every test.
    All,
    /// Quick tests only.
    Quick,
    /// No test.
    None,
}

impl Selection {
    /// Parses a value of `IMAGO_VM_TESTS` (`None` = unset).
    pub fn parse(value: Option<&str>) -> Result<Self, String> {
        match value.map(str::trim) {
            None | Some("" | "full" | "all") => Ok(Self::All),
            Some("quick") => Ok(Self::Quick),
            Some("none" | "off") => Ok(Self::None),
            Some(other) => Err(format!(
                "IMAGO_VM_TESTS={other:?} is not one of full, all, quick, none, off"
            )),
        }
    }

    /// Whether a test of `kind` runs.
    pub fn includes(self, kind: TestKind) -> bool {
        match self {
            Self::All => true,
            Self::Quick => kind == TestKind::Quick,
            Self::None => false,
        }
    }
}

/// Whether test `name` of `kind` runs; prints why not when it does not.
///
/// # Panics
/// On an invalid `IMAGO_VM_TESTS` value, so a typo does not skip everything.
pub fn should_run(name: &str, kind: TestKind) -> bool {
    let value = std::env::var("IMAGO_VM_TESTS").ok();
    let selection = match Selection::parse(value.as_deref()) {
        Ok(selection) => selection,
        Err(message) => panic!("{message}"),
    };
    let runs = selection.includes(kind);
    if !runs {
        let _ = writeln!(
            std::io::stderr().lock(),
            "test {name} ... skipped (IMAGO_VM_TESTS={})",
            value.unwrap_or_default()
        );
    }
    runs
}

/// Declares a VM test: `vm_test!(quick, fn boots() { ... Ok(()) })`.
///
/// The body returns `Result<(), Failure>`; the test is skipped (with a
/// printed reason) when `IMAGO_VM_TESTS` excludes its kind.
#[macro_export]
macro_rules! vm_test {
    (quick, $(#[$meta:meta])* fn $name:ident() $body:block) => {
        $crate::vm_test!(@ $crate::TestKind::Quick, $(#[$meta])* fn $name() $body);
    };
    (full, $(#[$meta:meta])* fn $name:ident() $body:block) => {
        $crate::vm_test!(@ $crate::TestKind::Full, $(#[$meta])* fn $name() $body);
    };
    (@ $kind:expr, $(#[$meta:meta])* fn $name:ident() $body:block) => {
        $(#[$meta])*
        #[test]
        fn $name() -> ::std::result::Result<(), $crate::Failure> {
            if !$crate::should_run(stringify!($name), $kind) {
                return Ok(());
            }
            $body
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_include() {
        assert_eq!(Selection::parse(None), Ok(Selection::All));
        assert_eq!(Selection::parse(Some("quick")), Ok(Selection::Quick));
        assert_eq!(Selection::parse(Some("off")), Ok(Selection::None));
        assert!(
            Selection::parse(Some("qiuck"))
                .unwrap_err()
                .contains("\"qiuck\"")
        );
        assert!(Selection::Quick.includes(TestKind::Quick));
        assert!(!Selection::Quick.includes(TestKind::Full));
        assert!(!Selection::None.includes(TestKind::Quick));
        assert!(Selection::All.includes(TestKind::Full));
    }
}
