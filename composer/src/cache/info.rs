//! An object's metadata in a cache (`objects/<hash>.json`) and the byte
//! string its signatures cover.

use super::keys::{PublicKey, SecretKey};
use crate::store::archive::ManifestObject;
use crate::store::{Blake3Digest, STORE_PREFIX, StorePath};
use std::collections::BTreeSet;

/// Version written in (and required of) object metadata.
pub const INFO_VERSION: u32 = 1;

/// What a cache records of one object (docs/cache.md, "Layout").
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectInfo {
    pub version: u32,
    /// The object as a closure archive's manifest lists it: store name,
    /// digest and size of its canonical serialization, references,
    /// deriver.
    pub object: ManifestObject,
    /// The archive's file, relative to the cache: `archives/<hex>.tar.zst`,
    /// named by the BLAKE3 of its bytes.
    pub archive: String,
    /// The BLAKE3 digest of the archive file's bytes.
    pub archive_digest: Blake3Digest,
    pub archive_size: u64,
    /// `NAME:BASE64` signatures of [`ObjectInfo::fingerprint`].
    #[serde(default)]
    pub signatures: Vec<String>,
}

/// The archive file name of an archive with digest `digest`.
pub fn archive_name(digest: &Blake3Digest) -> String {
    format!("archives/{}.tar.zst", digest.to_hex())
}

/// The metadata file name of `path`.
pub fn info_name(path: &StorePath) -> String {
    format!("objects/{}.json", path.hash_part())
}

/// The signed byte string of an object:
/// `1;/imago/store/<hash>-<name>;blake3:<hex>;<size>;<ref>,<ref>…`, the
/// references as absolute store paths, sorted, separated by commas.
pub fn fingerprint(
    path: &StorePath,
    digest: &Blake3Digest,
    size: u64,
    references: &BTreeSet<StorePath>,
) -> String {
    let refs: Vec<String> = references.iter().map(StorePath::to_absolute).collect();
    format!(
        "1;{STORE_PREFIX}/{};{digest};{size};{}",
        path.as_str(),
        refs.join(",")
    )
}

/// Why no signature of an object was accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Distrust {
    Unsigned,
    NoTrustedKeys,
    /// Signed only by keys of these names, none of them trusted.
    UntrustedKeys(Vec<String>),
    /// A signature by a trusted key's name that does not verify with it.
    BadSignature(String),
}

impl std::fmt::Display for Distrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Distrust::Unsigned => write!(f, "it carries no signature"),
            Distrust::NoTrustedKeys => write!(
                f,
                "no public key is trusted (--trusted-public-key FILE, IMAGO_TRUSTED_PUBLIC_KEYS)"
            ),
            Distrust::UntrustedKeys(names) => write!(
                f,
                "it is signed only by keys that are not trusted: {}",
                names.join(", ")
            ),
            Distrust::BadSignature(name) => write!(
                f,
                "its signature by the trusted key `{name}` does not verify (the metadata was changed after signing, or the key is another one of the same name)"
            ),
        }
    }
}

impl ObjectInfo {
    /// The metadata of an object of a store, without signatures.
    pub fn new(object: ManifestObject, archive_digest: Blake3Digest, archive_size: u64) -> Self {
        ObjectInfo {
            version: INFO_VERSION,
            object,
            archive: archive_name(&archive_digest),
            archive_digest,
            archive_size,
            signatures: Vec::new(),
        }
    }

    /// The object's store name.
    pub fn path(&self) -> &StorePath {
        &self.object.path
    }

    pub fn fingerprint(&self) -> String {
        let o = &self.object;
        fingerprint(&o.path, &o.digest, o.size, &o.references)
    }

    /// Adds `key`'s signature unless one by a key of its name is there;
    /// returns whether it added one.
    pub fn sign(&mut self, key: &SecretKey) -> bool {
        let fingerprint = self.fingerprint();
        add_signature(&mut self.signatures, &fingerprint, key)
    }

    /// The name of a trusted key whose signature verifies, or why there
    /// is none.
    pub fn trusted_by(&self, trusted: &[PublicKey]) -> Result<String, Distrust> {
        trusted_signer(&self.signatures, &self.fingerprint(), trusted)
    }
}

/// Adds `key`'s signature of `fingerprint` to `signatures` unless one by a
/// key of its name verifies already (one that does not is replaced);
/// returns whether it added one.
pub(super) fn add_signature(
    signatures: &mut Vec<String>,
    fingerprint: &str,
    key: &SecretKey,
) -> bool {
    let own = key.public();
    let prefix = format!("{}:", key.name());
    if let Some(sig) = signatures
        .iter()
        .find_map(|s| s.strip_prefix(prefix.as_str()))
        && own.verifies(fingerprint.as_bytes(), sig)
    {
        return false;
    }
    signatures.retain(|s| !s.starts_with(prefix.as_str()));
    signatures.push(key.sign(fingerprint.as_bytes()));
    true
}

/// The name of a trusted key whose signature among `signatures` verifies
/// `fingerprint`, or why there is none.
pub(super) fn trusted_signer(
    signatures: &[String],
    fingerprint: &str,
    trusted: &[PublicKey],
) -> Result<String, Distrust> {
    if signatures.is_empty() {
        return Err(Distrust::Unsigned);
    }
    if trusted.is_empty() {
        return Err(Distrust::NoTrustedKeys);
    }
    let mut bad = None;
    let mut untrusted = Vec::new();
    for s in signatures {
        let (name, sig) = s.split_once(':').unwrap_or((s.as_str(), ""));
        let mut known = false;
        for key in trusted.iter().filter(|k| k.name() == name) {
            known = true;
            if key.verifies(fingerprint.as_bytes(), sig) {
                return Ok(name.to_owned());
            }
        }
        if known {
            bad.get_or_insert_with(|| name.to_owned());
        } else {
            untrusted.push(name.to_owned());
        }
    }
    match bad {
        Some(name) => Err(Distrust::BadSignature(name)),
        None => Err(Distrust::UntrustedKeys(untrusted)),
    }
}
