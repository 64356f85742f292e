//! How a cache's layout maps onto a registry's repository: the OCI types
//! Imago writes (image manifests, an image index, descriptors), their
//! media types, and the tag of each file of the layout (docs/cache.md,
//! "OCI registry").

use crate::cache::info::ObjectInfo;
use std::collections::BTreeMap;

pub const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub const INDEX_TYPE: &str = "application/vnd.oci.image.index.v1+json";
/// The artifact types of the manifests of a cache's files.
pub const OBJECT_ARTIFACT: &str = "application/vnd.imago.object.v1";
pub const STEP_ARTIFACT: &str = "application/vnd.imago.step.v1";
pub const CACHE_ARTIFACT: &str = "application/vnd.imago.cache.v1";
/// The artifact type of a tagged closure's index.
pub const CLOSURE_ARTIFACT: &str = "application/vnd.imago.closure.v1";
/// A manifest's config: the file of the layout (metadata, a step record,
/// the cache's information), JSON.
pub const METADATA_TYPE: &str = "application/vnd.imago.metadata.v1+json";
/// An object's layer: its closure archive.
pub const ARCHIVE_TYPE: &str = "application/vnd.imago.archive.v1.tar+zstd";

/// Annotations: the archive's name in the layout (on the layer), the
/// object's store path and references (on the manifest, and on its entry
/// in a closure's index). Informative: a pull trusts only the signed
/// metadata, a copy to the cache only signatures it verifies itself.
pub const ARCHIVE_ANNOTATION: &str = "org.imago.archive";
pub const PATH_ANNOTATION: &str = "org.imago.store-path";
pub const REFERENCES_ANNOTATION: &str = "org.imago.references";
pub const ROOTS_ANNOTATION: &str = "org.imago.roots";
/// On the manifest of an object or a step record: a copy of its
/// signatures, comma-separated, so that a copy sees without fetching the
/// config that the file carries a signature it can check itself.
pub const SIGNATURES_ANNOTATION: &str = "org.imago.signatures";
/// On the manifest of a step record: a copy of its output, so that a
/// build checks the record's signature without fetching it.
pub const OUTPUT_ANNOTATION: &str = "org.imago.output";

/// A step index: the step records one copy wrote, a layer of each of
/// their manifests, so that a build that reads one of them learns the
/// others without asking for them (docs/cache.md, "OCI registry").
pub const STEP_INDEX_TYPE: &str = "application/vnd.imago.step-index.v1+json";

/// The content of a step index.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StepIndex {
    pub records: Vec<IndexedRecord>,
}

/// A step record in a step index, as its file has it: informative, like
/// the annotations (a build checks its signature as it checks the
/// record's, and reads the record itself when that fails).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IndexedRecord {
    /// `blake3:<hex>`.
    pub key: String,
    /// `<hash>-<name>`.
    pub output: String,
    #[serde(default)]
    pub signatures: Vec<String>,
}

/// The signatures [`SIGNATURES_ANNOTATION`] lists in `annotations`.
pub fn listed_signatures(annotations: &BTreeMap<String, String>) -> Vec<String> {
    annotations
        .get(SIGNATURES_ANNOTATION)
        .map(|l| {
            l.split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// A .deb a lock names: the artifact type of its manifest, its config
/// (which package it is, JSON) and its one layer (the .deb, by the media
/// type Debian registered for it).
pub const DEB_ARTIFACT: &str = "application/vnd.imago.deb.v1";
pub const DEB_INFO_TYPE: &str = "application/vnd.imago.deb.v1+json";
pub const DEB_TYPE: &str = "application/vnd.debian.binary-package";
/// The .deb's file name, on its manifest and its layer.
pub const TITLE_ANNOTATION: &str = "org.opencontainers.image.title";

/// The tag of the manifest that keeps the .deb whose SHA-256 is `sha256`.
pub fn deb_tag(sha256: &str) -> String {
    format!("d-{sha256}")
}

/// The tag of the record of the step `key`, `steps/<key hex>.json`.
pub fn step_tag(key: &crate::store::Blake3Digest) -> String {
    format!("{STEP_TAG_PREFIX}{}", key.to_hex())
}

const STEP_TAG_PREFIX: &str = "s-";

/// The tag of the cache's information, `imago-cache.json`.
pub const CACHE_TAG: &str = "imago-cache";

/// An OCI content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    /// `sha256:<hex>`.
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// The content itself, base64 (the image spec's `data`, for small
    /// blobs): a reader takes it without another request once it matches
    /// the digest and size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

/// An OCI image manifest.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    pub media_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// An OCI image index.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    pub media_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{:x}", sha2::Sha256::digest(bytes))
}

/// What a file of the layout is in a registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A manifest under this tag whose config is the file.
    Tagged { tag: String, artifact: &'static str },
    /// `archives/<blake3>.tar.zst`: a blob, found through the manifest of
    /// the object whose layer it is.
    Archive,
}

/// The entry of the layout's file `rel`, or `None` for a name the layout
/// does not have.
pub fn entry(rel: &str) -> Option<Entry> {
    if rel == crate::cache::CACHE_INFO_NAME {
        return Some(Entry::Tagged {
            tag: CACHE_TAG.to_owned(),
            artifact: CACHE_ARTIFACT,
        });
    }
    if rel.starts_with("archives/") && rel.ends_with(".tar.zst") {
        return Some(Entry::Archive);
    }
    let (dir, stem) = rel.strip_suffix(".json")?.split_once('/')?;
    let (prefix, artifact) = match dir {
        "objects" => ("o-", OBJECT_ARTIFACT),
        "steps" => (STEP_TAG_PREFIX, STEP_ARTIFACT),
        _ => return None,
    };
    let ok =
        !stem.is_empty() && stem.len() <= 126 && stem.bytes().all(|b| b.is_ascii_alphanumeric());
    ok.then(|| Entry::Tagged {
        tag: format!("{prefix}{stem}"),
        artifact,
    })
}

/// Why `tag` cannot name a closure (`imago copy --tag`), if it cannot:
/// the tag grammar of the distribution spec, and the tags the layout
/// uses itself.
pub fn closure_tag_problem(tag: &str) -> Option<String> {
    let mut bytes = tag.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_');
    let rest_ok = bytes.all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if !first_ok || !rest_ok || tag.len() > 128 {
        return Some(
            "a tag is 1 to 128 letters, digits, `_`, `.` and `-`, not starting with `.` or `-`"
                .to_owned(),
        );
    }
    if tag == CACHE_TAG || ["o-", "s-", "d-"].iter().any(|p| tag.starts_with(p)) {
        return Some(format!(
            "`{CACHE_TAG}` and tags starting with `o-`, `s-` or `d-` are the cache's own"
        ));
    }
    None
}

/// The annotations of an object's manifest and of its entry in an index.
pub fn object_annotations(info: &ObjectInfo) -> BTreeMap<String, String> {
    let refs: Vec<String> = info
        .object
        .references
        .iter()
        .map(|r| r.to_absolute())
        .collect();
    BTreeMap::from([
        (PATH_ANNOTATION.to_owned(), info.path().to_absolute()),
        (REFERENCES_ANNOTATION.to_owned(), refs.join(",")),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_files_map_to_tags() {
        let tag = |rel: &str| match entry(rel) {
            Some(Entry::Tagged { tag, .. }) => Some(tag),
            _ => None,
        };
        assert_eq!(tag("imago-cache.json").as_deref(), Some("imago-cache"));
        assert_eq!(tag("objects/abc123.json").as_deref(), Some("o-abc123"));
        assert_eq!(tag("steps/00ff.json").as_deref(), Some("s-00ff"));
        assert_eq!(entry("archives/00.tar.zst"), Some(Entry::Archive));
        assert_eq!(tag("objects/../x.json"), None);
        assert_eq!(tag("steps/x-z.json"), None);
        assert_eq!(entry("other"), None);
    }

    #[test]
    fn closure_tags_follow_the_grammar() {
        assert_eq!(closure_tag_problem("web-gen2"), None);
        assert_eq!(closure_tag_problem("_x.1"), None);
        assert!(closure_tag_problem("").is_some());
        assert!(closure_tag_problem("-x").is_some());
        assert!(closure_tag_problem("a/b").is_some());
        assert!(closure_tag_problem(&"a".repeat(129)).is_some());
        assert!(closure_tag_problem("o-web").is_some());
        assert!(closure_tag_problem("d-web").is_some());
        assert!(closure_tag_problem("imago-cache").is_some());
    }
}
