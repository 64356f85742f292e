//! Targets fetching objects from a binary cache (`imago deploy
//! --target-substituter URL`) instead of receiving them through the ssh
//! connection, so that the deployer's uplink is not what limits a rollout.
//!
//! Trust stays with the deployer, which has every object in its store:
//! for each object a target lacks it reads the cache's metadata (the
//! BLAKE3 of the cache's archive of the object), exports the same archive
//! itself with the code that wrote the cache's (`Store::export_objects`,
//! deterministic: same object, same bytes) and compares the digests. Only
//! an archive whose bytes are the deployer's own is offered to a target,
//! named by its URL as the target sees the cache, with the SHA-256 and
//! size of those bytes, which the target checks with `sha256sum` before
//! unpacking anything. The target needs no imago, no key and no BLAKE3
//! tool: `wget` or `curl`, `sha256sum`, `zstd` and a tar.
//!
//! The target fetches into a temporary directory of its store
//! (`.imago-fetch-<id>`) and unpacks each archive there; the objects are
//! renamed into the store with those that come over ssh, references
//! first, by the copy's second script ([`super::deploy`]). Whatever a
//! target could not fetch (no such file, another hash, a missing tool)
//! goes over ssh, and the copy's result says why.

use crate::store::{Blake3Digest, Store, StorePath};
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Mutex;

/// What a cache says of an object: the BLAKE3 and size of its archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheArchive {
    pub blake3: Blake3Digest,
    pub size: u64,
}

/// Reads the cache's metadata of an object: `Ok(None)` when the cache
/// lacks it, `Err` (a sentence) when the metadata cannot be read.
pub type Lookup = dyn Fn(&StorePath) -> Result<Option<CacheArchive>, String> + Send + Sync;

/// How the targets reach a cache's archives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetCacheUrl {
    /// A static cache, `http(s)://HOST/PATH`: `<base>/archives/<blake3>.tar.zst`.
    Static { base: String },
    /// An OCI registry's repository: `<scheme>://HOST/v2/<repo>/blobs/sha256:<hex>`.
    Registry { url: String, blobs: String },
}

impl TargetCacheUrl {
    /// Parses `http(s)://HOST/PATH` or `oci://HOST[:PORT]/REPO`
    /// (`oci+http://`, `oci+https://`; `oci://` is https, http for
    /// localhost, as for `imago copy`).
    pub fn parse(url: &str) -> Result<TargetCacheUrl, String> {
        let host_ok = |host: &str| {
            !host.is_empty()
                && !host.contains('@')
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-:[]_".contains(c))
        };
        if url.starts_with("http://") || url.starts_with("https://") {
            let base = url.trim_end_matches('/');
            let rest = base.split_once("://").map_or("", |(_, r)| r);
            let host = rest.split('/').next().unwrap_or_default();
            if !host_ok(host) || base.chars().any(|c| c.is_whitespace() || c == '\'') {
                return Err(format!("`{url}`: `{host}` is not a host name or address"));
            }
            return Ok(TargetCacheUrl::Static {
                base: base.to_owned(),
            });
        }
        let (scheme, rest) = if let Some(rest) = url.strip_prefix("oci+http://") {
            (Some("http"), rest)
        } else if let Some(rest) = url.strip_prefix("oci+https://") {
            (Some("https"), rest)
        } else if let Some(rest) = url.strip_prefix("oci://") {
            (None, rest)
        } else {
            return Err(format!(
                "`{url}`: expected http(s)://HOST/PATH or oci://HOST[:PORT]/REPOSITORY, a cache as the machines reach it"
            ));
        };
        let rest = rest.trim_end_matches('/');
        let Some((host, repo)) = rest.split_once('/') else {
            return Err(format!("`{url}`: expected oci://HOST[:PORT]/REPOSITORY"));
        };
        if !host_ok(host) {
            return Err(format!("`{url}`: `{host}` is not a host name or address"));
        }
        let component_ok = |c: &str| {
            !c.is_empty()
                && c.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        };
        if !repo.split('/').all(component_ok) {
            return Err(format!("`{url}`: `{repo}` is not a repository name"));
        }
        let name = host.rsplit_once(':').map_or(host, |(n, _)| n);
        let local = matches!(name, "localhost" | "127.0.0.1" | "[::1]");
        let scheme = scheme.unwrap_or(if local { "http" } else { "https" });
        Ok(TargetCacheUrl::Registry {
            url: url.trim_end_matches('/').to_owned(),
            blobs: format!("{scheme}://{host}/v2/{repo}/blobs"),
        })
    }

    /// The URL, for messages.
    pub fn url(&self) -> &str {
        match self {
            TargetCacheUrl::Static { base } => base,
            TargetCacheUrl::Registry { url, .. } => url,
        }
    }

    /// Where a target fetches the archive with these digests.
    pub fn archive_url(&self, blake3: &Blake3Digest, sha256_hex: &str) -> String {
        match self {
            TargetCacheUrl::Static { base } => {
                format!("{base}/archives/{}.tar.zst", blake3.to_hex())
            }
            TargetCacheUrl::Registry { blobs, .. } => format!("{blobs}/sha256:{sha256_hex}"),
        }
    }
}

/// An archive a target can fetch: the object, its URL, and the SHA-256
/// (hex) and size of the deployer's own export of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetch {
    pub object: StorePath,
    pub url: String,
    pub sha256: String,
    pub size: u64,
}

/// How an object reaches the targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// From the cache.
    Fetch(Fetch),
    /// Over ssh, and why not from the cache.
    Ssh(String),
}

/// The cache the targets fetch from, and what the deployer found out
/// about each object (once per rollout, whatever the number of machines).
pub struct TargetSubstituter {
    pub url: TargetCacheUrl,
    lookup: Box<Lookup>,
    plans: Mutex<BTreeMap<StorePath, Plan>>,
}

impl std::fmt::Debug for TargetSubstituter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TargetSubstituter({})", self.url.url())
    }
}

/// What an object's archive is, as the deployer exports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalArchive {
    pub blake3: Blake3Digest,
    /// Hex.
    pub sha256: String,
    pub size: u64,
}

/// Exports `path` alone as a closure archive (as a cache holds it) and
/// hashes the bytes, keeping none of them.
pub fn local_archive(store: &Store, path: &StorePath) -> anyhow::Result<LocalArchive> {
    struct Hashing {
        blake3: blake3::Hasher,
        sha256: sha2::Sha256,
        len: u64,
    }
    impl Write for Hashing {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.blake3.update(buf);
            sha2::Digest::update(&mut self.sha256, buf);
            self.len += buf.len() as u64;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut out = Hashing {
        blake3: blake3::Hasher::new(),
        sha256: <sha2::Sha256 as sha2::Digest>::new(),
        len: 0,
    };
    store.export_objects(std::slice::from_ref(path), &mut out)?;
    Ok(LocalArchive {
        blake3: Blake3Digest::from(out.blake3.finalize()),
        sha256: format!("{:x}", sha2::Digest::finalize(out.sha256)),
        size: out.len,
    })
}

impl TargetSubstituter {
    pub fn new(url: TargetCacheUrl, lookup: Box<Lookup>) -> TargetSubstituter {
        TargetSubstituter {
            url,
            lookup,
            plans: Mutex::default(),
        }
    }

    /// How `path` reaches the targets: from the cache when the cache's
    /// archive of it is, byte for byte, the one this store exports.
    pub fn plan(&self, store: &Store, path: &StorePath) -> Plan {
        if let Some(plan) = self.plans.lock().ok().and_then(|p| p.get(path).cloned()) {
            return plan;
        }
        let plan = self.decide(store, path);
        if let Ok(mut plans) = self.plans.lock() {
            plans.insert(path.clone(), plan.clone());
        }
        plan
    }

    fn decide(&self, store: &Store, path: &StorePath) -> Plan {
        let cache = self.url.url();
        let remote = match (self.lookup)(path) {
            Ok(Some(archive)) => archive,
            Ok(None) => return Plan::Ssh(format!("the cache {cache} does not have it")),
            Err(e) => return Plan::Ssh(format!("the cache's metadata could not be read: {e}")),
        };
        let local = match local_archive(store, path) {
            Ok(local) => local,
            Err(e) => return Plan::Ssh(format!("exporting it here failed: {e:#}")),
        };
        if local.blake3 != remote.blake3 || local.size != remote.size {
            return Plan::Ssh(format!(
                "the cache's archive ({}, {} bytes) is not this store's ({}, {} bytes)",
                remote.blake3, remote.size, local.blake3, local.size
            ));
        }
        Plan::Fetch(Fetch {
            object: path.clone(),
            url: self.url.archive_url(&local.blake3, &local.sha256),
            sha256: local.sha256,
            size: local.size,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_urls() {
        let d = Blake3Digest([0xab; 32]);
        let s = TargetCacheUrl::parse("http://10.0.2.2:8080/cache/").unwrap();
        assert_eq!(
            s.archive_url(&d, "ff"),
            format!("http://10.0.2.2:8080/cache/archives/{}.tar.zst", d.to_hex())
        );
        let r = TargetCacheUrl::parse("oci://registry.example/imago/cache").unwrap();
        assert_eq!(
            r.archive_url(&d, "ff"),
            "https://registry.example/v2/imago/cache/blobs/sha256:ff"
        );
        let r = TargetCacheUrl::parse("oci+http://10.0.2.2:5000/c").unwrap();
        assert_eq!(
            r.archive_url(&d, "ff"),
            "http://10.0.2.2:5000/v2/c/blobs/sha256:ff"
        );
        assert_eq!(r.url(), "oci+http://10.0.2.2:5000/c");
        for bad in [
            "file:///srv/cache",
            "ftp://x",
            "http://",
            "http://a b/",
            "http://user@host/",
            "oci://host",
            "oci://host/Upper",
        ] {
            assert!(TargetCacheUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
