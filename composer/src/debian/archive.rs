//! Debian's archives and where their files live.
//!
//! Debian publishes its packages in separate archives: `debian` (the
//! release and its `-updates` suite) and `debian-security` (the security
//! suite). A package's `filename` (`pool/…`) is relative to its archive's
//! root, on every mirror and on snapshot.debian.org
//! (`/archive/<archive>/<timestamp>/<filename>`). The lock records each
//! package's archive and the time it was resolved ([`SnapshotTime`]), so its
//! file can be found again after the archive has moved on.

use super::control;
use std::collections::BTreeMap;
use std::fmt;

/// The archive that holds the release and its updates.
pub const DEBIAN: &str = "debian";
/// The archive that holds security updates.
pub const DEBIAN_SECURITY: &str = "debian-security";
/// The public mirror network's front door.
pub const DEFAULT_MIRROR_HOST: &str = "http://deb.debian.org";
/// Debian's snapshot archive.
pub const DEFAULT_SNAPSHOT: &str = "https://snapshot.debian.org";

/// The archive a suite is published in: `bookworm-security` →
/// `debian-security`, anything else (`bookworm`, `bookworm-updates`) →
/// `debian`.
pub fn archive_of_suite(suite: &str) -> &'static str {
    if suite.ends_with("-security") {
        DEBIAN_SECURITY
    } else {
        DEBIAN
    }
}

/// The archive a pool file belongs to when the lock does not say (locks
/// of format 1): the security archive keeps its pool under `pool/updates/`.
pub fn archive_of_filename(filename: &str) -> &'static str {
    if filename.starts_with("pool/updates/") {
        DEBIAN_SECURITY
    } else {
        DEBIAN
    }
}

/// Whether `name` can be an archive name (lowercase letters, digits, `-`).
pub fn is_archive_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// The default mirror of an archive: `http://deb.debian.org/<archive>`.
pub fn default_mirror(archive: &str) -> String {
    format!("{DEFAULT_MIRROR_HOST}/{archive}")
}

/// Mirror base URLs per archive from a deb822 sources file (the host's
/// `/etc/apt/sources.list.d/debian.sources`): each enabled `deb` paragraph's
/// URIs serve the archives of its suites. Unreadable text gives nothing.
pub fn mirrors_from_sources(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let Ok(paragraphs) = control::parse_paragraphs(text) else {
        return out;
    };
    for (_, uris, suites) in binary_sources(&paragraphs) {
        for suite in suites.split_whitespace() {
            let list = out.entry(archive_of_suite(suite).to_string()).or_default();
            for uri in uris.split_whitespace() {
                let uri = uri.trim_end_matches('/').to_string();
                if (uri.starts_with("http://") || uri.starts_with("https://"))
                    && !list.contains(&uri)
                {
                    list.push(uri);
                }
            }
        }
    }
    out
}

/// The enabled `deb` paragraphs of a deb822 sources file, with their
/// `URIs` and `Suites` values.
pub(crate) fn binary_sources(
    paragraphs: &[control::Paragraph],
) -> impl Iterator<Item = (&control::Paragraph, &str, &str)> {
    paragraphs.iter().filter_map(|p| {
        let is_deb = p
            .get("Types")
            .is_some_and(|t| t.split_whitespace().any(|t| t == "deb"));
        let enabled = p.get("Enabled").is_none_or(|e| e != "no");
        let (uris, suites) = (p.get("URIs")?, p.get("Suites")?);
        (is_deb && enabled).then_some((p, uris, suites))
    })
}

/// A moment as snapshot.debian.org names it: `YYYYMMDDTHHMMSSZ` (UTC).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SnapshotTime(String);

impl SnapshotTime {
    /// Parses `YYYYMMDDTHHMMSSZ`, checking each field's range.
    pub fn parse(text: &str) -> Result<SnapshotTime, String> {
        let bad = || format!("`{text}` is not a snapshot time of the form YYYYMMDDTHHMMSSZ");
        let b = text.as_bytes();
        if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
            return Err(bad());
        }
        let digits = |r: std::ops::Range<usize>| -> Result<u32, String> {
            let s = &text[r];
            if s.bytes().all(|c| c.is_ascii_digit()) {
                s.parse().map_err(|_| bad())
            } else {
                Err(bad())
            }
        };
        let (month, day) = (digits(4..6)?, digits(6..8)?);
        let (hour, minute, second) = (digits(9..11)?, digits(11..13)?, digits(13..15)?);
        digits(0..4)?;
        if !(1..=12).contains(&month)
            || !(1..=31).contains(&day)
            || hour > 23
            || minute > 59
            || second > 59
        {
            return Err(bad());
        }
        Ok(SnapshotTime(text.to_string()))
    }

    /// The current time.
    pub fn now() -> SnapshotTime {
        let t = crate::utc::UtcTime::now();
        SnapshotTime(format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
            t.year, t.month, t.day, t.hour, t.minute, t.second
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SnapshotTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suites_and_filenames_name_their_archive() {
        assert_eq!(archive_of_suite("bookworm"), DEBIAN);
        assert_eq!(archive_of_suite("bookworm-updates"), DEBIAN);
        assert_eq!(archive_of_suite("trixie-security"), DEBIAN_SECURITY);
        assert_eq!(
            archive_of_filename("pool/updates/main/l/linux/x.deb"),
            DEBIAN_SECURITY
        );
        assert_eq!(archive_of_filename("pool/main/b/bash/x.deb"), DEBIAN);
    }

    #[test]
    fn snapshot_times_are_checked() {
        assert!(SnapshotTime::parse("20261206T031053Z").is_ok());
        for bad in [
            "",
            "20261206T031053",
            "2026-12-06T03:10:53Z",
            "20261306T031053Z",
            "20261206T241053Z",
            "2026120aT031053Z",
        ] {
            assert!(SnapshotTime::parse(bad).is_err(), "{bad}");
        }
        let now = SnapshotTime::now();
        assert_eq!(SnapshotTime::parse(now.as_str()), Ok(now));
    }

    #[test]
    fn host_sources_give_mirrors_per_archive() {
        let host = "Types: deb\nURIs: http://mirror.example/debian/\nSuites: bookworm bookworm-updates\nComponents: main\n\nTypes: deb\nURIs: https://sec.example/debian-security\nSuites: bookworm-security\nComponents: main\n\nTypes: deb-src\nURIs: http://src.example\nSuites: bookworm\n\nTypes: deb\nEnabled: no\nURIs: http://off.example\nSuites: bookworm\n";
        let m = mirrors_from_sources(host);
        assert_eq!(m[DEBIAN], ["http://mirror.example/debian"]);
        assert_eq!(m[DEBIAN_SECURITY], ["https://sec.example/debian-security"]);
    }
}
