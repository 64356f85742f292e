//! Where a locked .deb can come from, in the order they are tried (the
//! local download cache comes before all of them):
//!
//! 1. package caches the user configures, laid out by content hash
//!    (`<base>/sha256/<hex>`), the way Nix's hashed mirrors are: a
//!    directory or an HTTP(S) base URL;
//! 2. binary caches (the substituters), which hold .debs by SHA-256 too:
//!    a directory or web server as a package cache, a registry as blobs
//!    (a [`HashedSource`] the cache module provides);
//! 3. the archive's mirrors (`<mirror>/<filename>`): from configuration,
//!    then the host's apt sources, then deb.debian.org;
//! 4. snapshot.debian.org at the time the package was locked
//!    (`<snapshot>/archive/<archive>/<time>/<filename>`).
//!
//! The first source that delivers the exact bytes (size and SHA-256 of the
//! lock) wins; see `download.rs`.

use super::error::Failure;
use crate::debian::archive;
use crate::debian::lock::LockEntry;
use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

/// A place that serves files by their SHA-256 through a protocol of its
/// own (a registry's blobs). Its bytes are judged as every source's are.
pub trait HashedSource: Send + Sync {
    /// The source's URL, for messages.
    fn url(&self) -> String;
    /// Hands the body of the file whose SHA-256 is `sha256` (lowercase
    /// hex) to `consume`; [`Failure::NotFound`] when the source lacks it.
    fn get(
        &self,
        sha256: &str,
        consume: &mut dyn FnMut(&mut dyn Read) -> Result<(), Failure>,
    ) -> Result<(), Failure>;
    /// The size of that file when the source has it (`None` inside when
    /// it does not say), `None` when it lacks it.
    fn head(&self, sha256: &str) -> Result<Option<Option<u64>>, Failure>;
}

/// A shared [`HashedSource`], compared by its URL.
#[derive(Clone)]
pub struct Hashed(pub Arc<dyn HashedSource>);

impl fmt::Debug for Hashed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hashed({})", self.0.url())
    }
}

impl PartialEq for Hashed {
    fn eq(&self, other: &Hashed) -> bool {
        self.0.url() == other.0.url()
    }
}

impl Eq for Hashed {}

/// A place files are read from: a local directory, an HTTP(S) URL, or a
/// file of a [`HashedSource`] (its SHA-256; empty for the source itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Dir(PathBuf),
    Url(String),
    Hashed(Hashed, String),
}

impl Location {
    /// `http://…` and `https://…` are URLs, `file:///dir` and anything else
    /// a directory. Trailing slashes are dropped.
    pub fn parse(text: &str) -> Result<Location, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("an empty package cache location".into());
        }
        if text.starts_with("http://") || text.starts_with("https://") {
            let url = text.trim_end_matches('/');
            if url.contains(char::is_whitespace) {
                return Err(format!("`{text}` is not a URL"));
            }
            return Ok(Location::Url(url.to_string()));
        }
        if let Some((scheme, _)) = text.split_once("://")
            && scheme != "file"
        {
            return Err(format!(
                "`{text}`: unsupported scheme `{scheme}` (use a directory, file://, http:// or https://)"
            ));
        }
        let path = text.strip_prefix("file://").unwrap_or(text);
        Ok(Location::Dir(PathBuf::from(path)))
    }

    /// This location with `rel` (a `/`-separated relative path) appended.
    pub fn join(&self, rel: &str) -> Location {
        match self {
            Location::Dir(d) => Location::Dir(d.join(rel)),
            Location::Url(u) => Location::Url(format!("{u}/{rel}")),
            Location::Hashed(h, _) => Location::Hashed(h.clone(), rel.to_owned()),
        }
    }

    /// The file whose SHA-256 is `sha256` in this source laid out by
    /// hash: `<base>/sha256/<hex>`, or the source's own file.
    pub fn by_hash(&self, sha256: &str) -> Location {
        match self {
            Location::Hashed(h, _) => Location::Hashed(h.clone(), sha256.to_owned()),
            base => base.join(&hashed_path(sha256)),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Dir(d) => write!(f, "{}", d.display()),
            Location::Url(u) => f.write_str(u),
            Location::Hashed(h, sha) if sha.is_empty() => f.write_str(&h.0.url()),
            Location::Hashed(h, sha) => write!(f, "{} (blob sha256:{sha})", h.0.url()),
        }
    }
}

/// The kinds of source, as errors and reports name them.
pub const PACKAGE_CACHE: &str = "package cache";
pub const BINARY_CACHE: &str = "binary cache";
pub const MIRROR: &str = "mirror";
pub const SNAPSHOT: &str = "snapshot";

/// One place to try for one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// [`PACKAGE_CACHE`], [`BINARY_CACHE`], [`MIRROR`] or [`SNAPSHOT`].
    pub source: &'static str,
    pub location: Location,
}

/// The sources after the local download cache, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sources {
    pub package_caches: Vec<Location>,
    /// Binary caches (the substituters), asked by hash after the package
    /// caches.
    pub binary_caches: Vec<Location>,
    /// Mirror base URLs per archive name (`debian`, `debian-security`);
    /// an archive with none listed falls back to deb.debian.org.
    pub mirrors: BTreeMap<String, Vec<String>>,
    /// snapshot.debian.org's base URL; `None` skips that source.
    pub snapshot: Option<String>,
}

impl Sources {
    /// Debian's public services only: deb.debian.org and
    /// snapshot.debian.org.
    pub fn public() -> Sources {
        Sources {
            package_caches: Vec::new(),
            binary_caches: Vec::new(),
            mirrors: BTreeMap::new(),
            snapshot: Some(archive::DEFAULT_SNAPSHOT.to_string()),
        }
    }

    /// Where to look for `entry`'s file, in order.
    pub fn candidates(&self, entry: &LockEntry) -> Vec<Candidate> {
        let by_hash = |source, bases: &[Location]| {
            bases
                .iter()
                .map(|base| Candidate {
                    source,
                    location: base.by_hash(&entry.sha256),
                })
                .collect::<Vec<_>>()
        };
        let mut out = by_hash(PACKAGE_CACHE, &self.package_caches);
        out.extend(by_hash(BINARY_CACHE, &self.binary_caches));
        if entry.filename.is_empty() {
            return out;
        }
        let archive = entry.archive();
        let defaults = [archive::default_mirror(archive)];
        let mirrors = match self.mirrors.get(archive) {
            Some(list) if !list.is_empty() => list.as_slice(),
            _ => &defaults[..],
        };
        out.extend(mirrors.iter().map(|base| Candidate {
            source: MIRROR,
            location: Location::Url(format!("{}/{}", base.trim_end_matches('/'), entry.filename)),
        }));
        if let (Some(base), Some(time)) = (&self.snapshot, &entry.snapshot) {
            out.push(Candidate {
                source: SNAPSHOT,
                location: Location::Url(format!(
                    "{}/archive/{archive}/{time}/{}",
                    base.trim_end_matches('/'),
                    entry.filename
                )),
            });
        }
        out
    }
}

/// `sha256/<hex>`: a file's path in a package cache.
pub fn hashed_path(sha256: &str) -> String {
    format!("sha256/{sha256}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(filename: &str, archive: Option<&str>, snapshot: Option<&str>) -> LockEntry {
        LockEntry {
            name: "p".into(),
            version: "1".into(),
            architecture: "amd64".into(),
            size: 1,
            sha256: "ab".repeat(32),
            filename: filename.into(),
            archive: archive.map(str::to_string),
            snapshot: snapshot.map(str::to_string),
            depends: vec![],
        }
    }

    #[test]
    fn locations_parse() {
        assert_eq!(
            Location::parse("https://cache.example/debs/").unwrap(),
            Location::Url("https://cache.example/debs".into())
        );
        assert_eq!(
            Location::parse("file:///srv/debs").unwrap(),
            Location::Dir("/srv/debs".into())
        );
        assert_eq!(
            Location::parse("./debs").unwrap(),
            Location::Dir("./debs".into())
        );
        assert!(Location::parse("ftp://x").is_err());
        assert!(Location::parse(" ").is_err());
    }

    #[test]
    fn candidates_come_in_order() {
        let sources = Sources {
            package_caches: vec![
                Location::Dir("/c".into()),
                Location::Url("http://team/c".into()),
            ],
            binary_caches: vec![Location::Dir("/b".into())],
            mirrors: BTreeMap::from([(
                "debian-security".to_string(),
                vec!["http://m1/sec/".to_string(), "http://m2/sec".to_string()],
            )]),
            snapshot: Some("http://snap".into()),
        };
        let e = entry(
            "pool/updates/main/k/k.deb",
            Some("debian-security"),
            Some("20261206T000000Z"),
        );
        let got: Vec<String> = sources
            .candidates(&e)
            .iter()
            .map(|c| format!("{}: {}", c.source, c.location))
            .collect();
        let hex = "ab".repeat(32);
        assert_eq!(
            got,
            [
                format!("package cache: /c/sha256/{hex}"),
                format!("package cache: http://team/c/sha256/{hex}"),
                format!("binary cache: /b/sha256/{hex}"),
                "mirror: http://m1/sec/pool/updates/main/k/k.deb".to_string(),
                "mirror: http://m2/sec/pool/updates/main/k/k.deb".to_string(),
                "snapshot: http://snap/archive/debian-security/20261206T000000Z/pool/updates/main/k/k.deb"
                    .to_string(),
            ]
        );
    }

    #[test]
    fn format_one_entries_infer_the_archive_and_skip_the_snapshot() {
        let got: Vec<String> = Sources::public()
            .candidates(&entry("pool/main/b/b.deb", None, None))
            .iter()
            .map(|c| c.location.to_string())
            .collect();
        assert_eq!(got, ["http://deb.debian.org/debian/pool/main/b/b.deb"]);
    }
}
