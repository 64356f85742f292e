//! Which Debian a system is made of: a release (`bookworm`, `trixie`) and a
//! CPU architecture (`amd64`, `arm64`), as the options
//! `system.debian.release` and `system.architecture` choose them. The lock
//! records both; the private apt resolves against that release's suites
//! for that architecture (docs/releases.md).

use std::fmt;

/// The architecture half of a platform, and every per-architecture boot
/// fact, live in [`crate::arch`].
pub use crate::arch::Architecture;

/// A Debian release Imago can lock and build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Release {
    Bookworm,
    Trixie,
}

impl Release {
    pub const ALL: [Release; 2] = [Release::Bookworm, Release::Trixie];

    /// Debian's code name, as in `Suites:` and the lock.
    pub fn name(self) -> &'static str {
        match self {
            Release::Bookworm => "bookworm",
            Release::Trixie => "trixie",
        }
    }

    /// The release's number (`12`, `13`).
    pub fn number(self) -> u32 {
        match self {
            Release::Bookworm => 12,
            Release::Trixie => 13,
        }
    }

    pub fn parse(name: &str) -> Option<Release> {
        Release::ALL.into_iter().find(|r| r.name() == name)
    }

    /// The suites locked from: the release, its updates and its security
    /// updates (`bookworm`, `bookworm-updates`, `bookworm-security`).
    pub fn suites(self) -> [String; 3] {
        let n = self.name();
        [
            n.to_string(),
            format!("{n}-updates"),
            format!("{n}-security"),
        ]
    }
}

/// A release and an architecture: what one lock holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Platform {
    pub release: Release,
    pub architecture: Architecture,
}

impl Platform {
    /// What a definition gets when it sets neither option: Debian's stable
    /// release on amd64.
    pub const DEFAULT: Platform = Platform {
        release: Release::Trixie,
        architecture: Architecture::Amd64,
    };

    /// From the options' values; the error names a value that is neither.
    pub fn parse(release: &str, architecture: &str) -> Result<Platform, String> {
        let release = Release::parse(release).ok_or_else(|| {
            format!("`{release}` is not a Debian release Imago supports (bookworm, trixie)")
        })?;
        let architecture = Architecture::parse(architecture).ok_or_else(|| {
            format!("`{architecture}` is not an architecture Imago supports (amd64, arm64)")
        })?;
        Ok(Platform {
            release,
            architecture,
        })
    }

    /// The name of this platform's private apt directory (`trixie-amd64`).
    pub fn dir_name(self) -> String {
        format!("{}-{}", self.release.name(), self.architecture.name())
    }
}

impl Default for Platform {
    fn default() -> Self {
        Platform::DEFAULT
    }
}

impl fmt::Display for Platform {
    /// `bookworm (amd64)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.release.name(), self.architecture.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_suites() {
        for r in Release::ALL {
            assert_eq!(Release::parse(r.name()), Some(r));
        }
        for a in Architecture::ALL {
            assert_eq!(Architecture::parse(a.name()), Some(a));
        }
        assert_eq!(
            Release::Trixie.suites(),
            ["trixie", "trixie-updates", "trixie-security"].map(String::from)
        );
        assert_eq!(Platform::DEFAULT.to_string(), "trixie (amd64)");
        assert!(Platform::parse("sid", "amd64").unwrap_err().contains("sid"));
        assert!(
            Platform::parse("trixie", "i386")
                .unwrap_err()
                .contains("i386")
        );
    }
}
