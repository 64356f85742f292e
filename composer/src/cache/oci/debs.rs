//! The .debs a lock names in a registry cache: each one a blob whose
//! digest is its SHA-256 (`sha256:<hex>`), kept by a manifest tagged
//! `d-<hex>` (artifact type `application/vnd.imago.deb.v1`) whose one
//! layer is the .deb and whose config says which package it is. A build
//! fetches the blob by the lock's SHA-256 alone, as from a package cache
//! (docs/cache.md, "Debian packages").

use super::Registry;
use super::client::Body;
use super::layout::{
    DEB_ARTIFACT, DEB_INFO_TYPE, DEB_TYPE, Descriptor, MANIFEST_TYPE, Manifest, TITLE_ANNOTATION,
    deb_tag, sha256_digest,
};
use crate::cache::{CacheError, MAX_METADATA_BYTES};
use crate::debian::fetch::{Failure, HashedSource};
use crate::debian::lock::LockEntry;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

impl Registry {
    /// Whether the repository keeps the .deb whose SHA-256 is `sha256`
    /// (its manifest `d-<hex>` is there).
    pub fn has_deb(&self, sha256: &str) -> Result<bool, CacheError> {
        let found = self
            .client
            .get_manifest(&deb_tag(sha256), MAX_METADATA_BYTES)?;
        Ok(found.is_some())
    }

    /// Uploads the .deb `file` of `entry` (unless the repository has its
    /// blob) and tags its manifest `d-<hex>`: the blob first, so a
    /// manifest never names a blob that is not there.
    pub fn write_deb(&self, entry: &LockEntry, file: &Path) -> Result<(), CacheError> {
        let digest = format!("sha256:{}", entry.sha256);
        if !self.client.has_blob(&digest)? {
            self.client.upload_blob(&digest, Body::File(file))?;
        }
        let info = serde_json::json!({
            "package": entry.name,
            "version": entry.version,
            "architecture": entry.architecture,
            "sha256": entry.sha256,
            "size": entry.size,
        });
        let config = serde_json::to_vec(&info).unwrap_or_default();
        let config_desc = Descriptor {
            media_type: DEB_INFO_TYPE.to_owned(),
            digest: sha256_digest(&config),
            size: config.len() as u64,
            annotations: BTreeMap::new(),
            data: None,
        };
        self.client
            .upload_blob(&config_desc.digest, Body::Bytes(&config))?;
        let title = BTreeMap::from([(TITLE_ANNOTATION.to_owned(), entry.deb_file_name())]);
        let manifest = Manifest {
            schema_version: 2,
            media_type: MANIFEST_TYPE.to_owned(),
            artifact_type: Some(DEB_ARTIFACT.to_owned()),
            config: config_desc,
            layers: vec![Descriptor {
                media_type: DEB_TYPE.to_owned(),
                digest,
                size: entry.size,
                annotations: title.clone(),
                data: None,
            }],
            annotations: title,
        };
        self.put_manifest(
            &deb_tag(&entry.sha256),
            MANIFEST_TYPE,
            &manifest,
            BTreeMap::new(),
        )
    }
}

/// A registry's blobs as a source of locked .debs: `GET …/blobs/sha256:<hex>`.
/// What the registry answers is judged by the fetcher (the lock's size
/// and SHA-256); an answer the protocol does not expect is a failure of
/// this source, and the next one is tried.
impl HashedSource for Registry {
    fn url(&self) -> String {
        self.url.clone()
    }

    fn get(
        &self,
        sha256: &str,
        consume: &mut dyn FnMut(&mut dyn Read) -> Result<(), Failure>,
    ) -> Result<(), Failure> {
        let desc = Descriptor {
            media_type: DEB_TYPE.to_owned(),
            digest: format!("sha256:{sha256}"),
            size: 0,
            annotations: BTreeMap::new(),
            data: None,
        };
        let own = std::cell::RefCell::new(None);
        let result = self.client.get_blob(&desc, &own, consume).map(|_| ());
        match (result, own.take()) {
            (Err(_), Some(e)) => Err(Failure::Transport(e.to_string())),
            (result, _) => result,
        }
    }

    fn head(&self, sha256: &str) -> Result<Option<Option<u64>>, Failure> {
        match self.client.has_blob(&format!("sha256:{sha256}")) {
            Ok(true) => Ok(Some(None)),
            Ok(false) => Ok(None),
            Err(e) => Err(Failure::Transport(e.to_string())),
        }
    }
}
