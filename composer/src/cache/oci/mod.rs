//! A cache in an OCI registry's repository, `oci://HOST[:PORT]/REPO`
//! (docs/cache.md, "OCI registry"). Each file of the layout is a manifest
//! tagged after it whose config is the file: an object's metadata (with
//! its signatures) under `o-<hash>`, its archive the manifest's one layer;
//! a step record under `s-<key hex>`; the cache's information under
//! `imago-cache`. `imago copy --tag NAME` adds an image index of a
//! closure's object manifests. Every blob read is checked against its
//! SHA-256 digest, on top of the checks every cache gets.

mod auth;
mod client;
mod debs;
pub mod layout;
mod step_index;

use super::info::{ObjectInfo, archive_name};
use super::transfer::{consume_retrying, export_archive};
use super::{CacheError, MAX_METADATA_BYTES};
use crate::debian::fetch::{Http, HttpSettings};
use crate::store::{Blake3Digest, Store, StorePath};
use client::{Body, Client};
use layout::{
    ARCHIVE_ANNOTATION, ARCHIVE_TYPE, CLOSURE_ARTIFACT, Descriptor, Entry, INDEX_TYPE, Index,
    MANIFEST_TYPE, METADATA_TYPE, Manifest, OBJECT_ARTIFACT, OUTPUT_ANNOTATION, ROOTS_ANNOTATION,
    SIGNATURES_ANNOTATION, STEP_ARTIFACT, object_annotations,
};
use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::sync::{Mutex, MutexGuard};

/// A repository of a registry, and what this process learnt of it.
pub struct Registry {
    url: String,
    client: Client,
    /// The blob of each archive (by its name in the layout) of the object
    /// manifests read or written.
    archives: Mutex<HashMap<String, Descriptor>>,
    /// The manifest of each tag read or written.
    manifests: Mutex<HashMap<String, Descriptor>>,
    /// Whether the repository has the tag `imago-cache`, once asked.
    is_cache: std::sync::OnceLock<bool>,
    /// The step index this copy wrote, which the step records it writes
    /// list ([`step_index`]).
    step_index: Mutex<Option<Descriptor>>,
    /// The annotations of the step records of the step indexes read, by
    /// tag, and those indexes' digests.
    indexed: Mutex<HashMap<String, BTreeMap<String, String>>>,
    indexes_read: Mutex<std::collections::HashSet<String>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Registry {
    /// Parses `oci://HOST[:PORT]/REPO` (https, but plain http for
    /// `localhost`, `127.0.0.1` and `[::1]`), `oci+http://…` or
    /// `oci+https://…`; `None` for a URL of another scheme.
    pub fn parse(url: &str) -> Option<Result<Registry, String>> {
        let (scheme, rest) = if let Some(rest) = url.strip_prefix("oci://") {
            (None, rest)
        } else if let Some(rest) = url.strip_prefix("oci+http://") {
            (Some("http"), rest)
        } else {
            (Some("https"), url.strip_prefix("oci+https://")?)
        };
        Some(Self::parse_rest(url, scheme, rest))
    }

    fn parse_rest(url: &str, scheme: Option<&str>, rest: &str) -> Result<Registry, String> {
        let rest = rest.trim_end_matches('/');
        let (host, repo) = rest
            .split_once('/')
            .ok_or("expected oci://HOST[:PORT]/REPOSITORY")?;
        if host.is_empty() || host.contains('@') {
            return Err("expected oci://HOST[:PORT]/REPOSITORY (credentials come from the docker or podman configuration, not the URL)".into());
        }
        let component_ok = |c: &str| {
            !c.is_empty()
                && c.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
                && c.as_bytes()[0].is_ascii_alphanumeric()
                && c.as_bytes()[c.len() - 1].is_ascii_alphanumeric()
        };
        if !repo.split('/').all(component_ok) {
            return Err(format!(
                "`{repo}` is not a repository name: lowercase letters and digits, separated by `.`, `_`, `-` or `/`"
            ));
        }
        let name = host
            .rsplit_once(':')
            .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
            .map_or(host, |(name, _)| name);
        let local = matches!(name, "localhost" | "127.0.0.1" | "[::1]");
        let scheme = scheme.unwrap_or(if local { "http" } else { "https" });
        let http = Http::new(HttpSettings::default())?;
        Ok(Registry {
            url: url.trim_end_matches('/').to_owned(),
            client: Client::new(
                http,
                url.trim_end_matches('/').to_owned(),
                scheme,
                host,
                repo,
            ),
            archives: Mutex::default(),
            manifests: Mutex::default(),
            is_cache: std::sync::OnceLock::new(),
            step_index: Mutex::default(),
            indexed: Mutex::default(),
            indexes_read: Mutex::default(),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Whether the repository is a cache (has the tag `imago-cache`);
    /// asked once.
    pub fn is_cache(&self) -> Result<bool, CacheError> {
        if let Some(known) = self.is_cache.get() {
            return Ok(*known);
        }
        let known = self.read(super::CACHE_INFO_NAME)?.is_some();
        Ok(*self.is_cache.get_or_init(|| known))
    }

    fn not_in_layout(&self, rel: &str) -> CacheError {
        CacheError::BadLocation {
            url: self.url.clone(),
            reason: format!("a registry cache has no file `{rel}`"),
        }
    }

    /// The file `rel` of the layout (at most [`MAX_METADATA_BYTES`]), or
    /// `None` if the repository lacks it.
    pub fn read(&self, rel: &str) -> Result<Option<Vec<u8>>, CacheError> {
        match layout::entry(rel) {
            Some(Entry::Tagged { tag, artifact }) => self.read_tagged(&tag, artifact),
            _ => Err(self.not_in_layout(rel)),
        }
    }

    fn read_tagged(&self, tag: &str, artifact: &str) -> Result<Option<Vec<u8>>, CacheError> {
        let Some(manifest) = self.manifest(tag, artifact)? else {
            return Ok(None);
        };
        let what = format!("the config of manifest {tag}");
        self.blob_bytes(&manifest.config, &what).map(Some)
    }

    /// The manifest tagged `tag`, which must be an image manifest of
    /// `artifact`; its layers' archives and its descriptor are noted.
    fn manifest(&self, tag: &str, artifact: &str) -> Result<Option<Manifest>, CacheError> {
        let Some((bytes, digest)) = self.client.get_manifest(tag, MAX_METADATA_BYTES)? else {
            return Ok(None);
        };
        let what = format!("manifest {tag}");
        let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| {
            self.client
                .bad_blob(&what, format!("not an image manifest: {e}"))
        })?;
        if manifest.media_type != MANIFEST_TYPE
            || manifest.artifact_type.as_deref() != Some(artifact)
        {
            return Err(self.client.bad_blob(
                &what,
                format!(
                    "it is a {} of artifact type {}, expected an image manifest of {artifact}",
                    manifest.media_type,
                    manifest.artifact_type.as_deref().unwrap_or("none")
                ),
            ));
        }
        let mut archives = lock(&self.archives);
        for layer in &manifest.layers {
            if let Some(name) = layer.annotations.get(ARCHIVE_ANNOTATION) {
                archives.insert(name.clone(), layer.clone());
            }
        }
        drop(archives);
        lock(&self.manifests).insert(
            tag.to_owned(),
            Descriptor {
                media_type: MANIFEST_TYPE.to_owned(),
                digest,
                size: bytes.len() as u64,
                annotations: manifest.annotations.clone(),
                data: None,
            },
        );
        Ok(Some(manifest))
    }

    /// The annotations of the manifest of the file `rel` (informative:
    /// its signatures, and a step record's output), or `None` if the
    /// repository lacks it: enough to see that the file is there, with a
    /// signature the reader verifies itself, without fetching the file.
    pub fn annotations(&self, rel: &str) -> Result<Option<BTreeMap<String, String>>, CacheError> {
        let Some(Entry::Tagged { tag, artifact }) = layout::entry(rel) else {
            return Err(self.not_in_layout(rel));
        };
        Ok(self.manifest(&tag, artifact)?.map(|m| m.annotations))
    }

    /// The bytes of a small blob, checked against its descriptor: those it
    /// embeds, or else fetched.
    fn blob_bytes(&self, desc: &Descriptor, what: &str) -> Result<Vec<u8>, CacheError> {
        if let Some(data) = &desc.data {
            let bytes = data_encoding::BASE64.decode(data.as_bytes()).map_err(|e| {
                self.client
                    .bad_blob(what, format!("its embedded data is not base64: {e}"))
            })?;
            let digest = layout::sha256_digest(&bytes);
            if bytes.len() as u64 != desc.size || digest != desc.digest {
                return Err(self.client.bad_blob(
                    what,
                    format!(
                        "its {} embedded bytes hash to {digest}, the manifest says {} bytes of {}",
                        bytes.len(),
                        desc.size,
                        desc.digest
                    ),
                ));
            }
            return Ok(bytes);
        }
        if desc.size > MAX_METADATA_BYTES {
            return Err(self.client.bad_blob(
                what,
                format!(
                    "{} bytes, more than the {MAX_METADATA_BYTES} allowed for metadata",
                    desc.size
                ),
            ));
        }
        let bytes = self
            .fetch_blob(desc, what, |r| {
                let mut bytes = Vec::new();
                r.take(desc.size + 1)
                    .read_to_end(&mut bytes)
                    .map_err(super::io_error(self.url.clone(), "reading", what))?;
                Ok(bytes)
            })?
            .ok_or_else(|| {
                self.client
                    .bad_blob(what, format!("the registry lacks its blob {}", desc.digest))
            })?;
        Ok(bytes)
    }

    /// Hands the blob of `desc` to `consume` (retrying broken transfers),
    /// then checks that what was read has the descriptor's size and
    /// digest.
    fn fetch_blob<T>(
        &self,
        desc: &Descriptor,
        what: &str,
        consume: impl FnMut(&mut dyn Read) -> Result<T, CacheError>,
    ) -> Result<Option<T>, CacheError> {
        let own = std::cell::RefCell::new(None);
        let got = consume_retrying(
            &self.url,
            what,
            |c| self.client.get_blob(desc, &own, c),
            consume,
        )
        .map_err(|e| match (e, own.take()) {
            (CacheError::Http { .. }, Some(registry)) => registry,
            (e, _) => e,
        })?;
        let Some((t, len, digest)) = got else {
            return Ok(None);
        };
        if len != desc.size || digest != desc.digest {
            return Err(self.client.bad_blob(
                what,
                format!(
                    "its {len} bytes hash to {digest}, the manifest says {} bytes of {}",
                    desc.size, desc.digest
                ),
            ));
        }
        Ok(Some(t))
    }

    /// Hands a reader of the file `rel` to `consume`; `None` if the
    /// repository lacks it. An archive is found through the manifest of
    /// its object, which must have been read (or written) first.
    pub fn fetch<T>(
        &self,
        rel: &str,
        mut consume: impl FnMut(&mut dyn Read) -> Result<T, CacheError>,
    ) -> Result<Option<T>, CacheError> {
        match layout::entry(rel) {
            Some(Entry::Archive) => {
                let Some(desc) = lock(&self.archives).get(rel).cloned() else {
                    return Ok(None);
                };
                self.fetch_blob(&desc, rel, consume)
            }
            Some(Entry::Tagged { tag, artifact }) => match self.read_tagged(&tag, artifact)? {
                Some(bytes) => consume(&mut bytes.as_slice()).map(Some),
                None => Ok(None),
            },
            None => Err(self.not_in_layout(rel)),
        }
    }

    /// Writes the file `rel` of the layout: its bytes as a config blob, a
    /// manifest of them tagged after `rel`. An object's manifest has its
    /// archive as its layer, which must have been written (or read)
    /// first.
    pub fn write(&self, rel: &str, bytes: &[u8]) -> Result<(), CacheError> {
        let Some(Entry::Tagged { tag, artifact }) = layout::entry(rel) else {
            return Err(self.not_in_layout(rel));
        };
        let (layers, mut annotations) = if artifact == OBJECT_ARTIFACT {
            let info: ObjectInfo = serde_json::from_slice(bytes).map_err(|e| {
                self.client
                    .bad_blob(rel, format!("not an object's metadata: {e}"))
            })?;
            let layer = lock(&self.archives)
                .get(&info.archive)
                .cloned()
                .ok_or_else(|| {
                    self.client.bad_blob(
                        rel,
                        format!("its archive {} is not in the registry", info.archive),
                    )
                })?;
            (vec![layer], object_annotations(&info))
        } else if artifact == STEP_ARTIFACT {
            (self.step_layers(), BTreeMap::new())
        } else {
            (Vec::new(), BTreeMap::new())
        };
        annotations.extend(signed_annotations(bytes));
        // The metadata travels inside the manifest too: a reader needs one
        // request for it, not two (the blob stays, for other readers).
        let config = Descriptor {
            media_type: METADATA_TYPE.to_owned(),
            digest: layout::sha256_digest(bytes),
            size: bytes.len() as u64,
            annotations: BTreeMap::new(),
            data: Some(data_encoding::BASE64.encode(bytes)),
        };
        self.client
            .upload_blob(&config.digest, Body::Bytes(bytes))?;
        let manifest = Manifest {
            schema_version: 2,
            media_type: MANIFEST_TYPE.to_owned(),
            artifact_type: Some(artifact.to_owned()),
            config,
            layers,
            annotations,
        };
        self.put_manifest(&tag, MANIFEST_TYPE, &manifest, manifest.annotations.clone())
    }

    fn put_manifest(
        &self,
        tag: &str,
        media_type: &str,
        value: &impl serde::Serialize,
        annotations: BTreeMap<String, String>,
    ) -> Result<(), CacheError> {
        let json = serde_json::to_vec(value)
            .map_err(|e| self.client.bad_blob(tag, format!("cannot be encoded: {e}")))?;
        let digest = self.client.put_manifest(tag, media_type, &json)?;
        lock(&self.manifests).insert(
            tag.to_owned(),
            Descriptor {
                media_type: media_type.to_owned(),
                digest,
                size: json.len() as u64,
                annotations,
                data: None,
            },
        );
        Ok(())
    }

    /// Writes the archive of `path` as a blob (unless the repository has
    /// it); returns its BLAKE3 digest and size.
    pub fn write_archive(
        &self,
        store: &Store,
        path: &StorePath,
    ) -> Result<(Blake3Digest, u64), CacheError> {
        let store_err = |source| CacheError::Store {
            cache: self.url.clone(),
            source: Box::new(source),
        };
        let tmp = store.temp_output().map_err(store_err)?;
        let what = format!("the archive of {path}");
        let file = std::fs::File::create(tmp.out()).map_err(super::io_error(
            self.url.clone(),
            "creating",
            &what,
        ))?;
        let exported = export_archive(store, path, file, true, &self.url, &what)?;
        let sha256 = exported.sha256.unwrap_or_default();
        if !self.client.has_blob(&sha256)? {
            self.client.upload_blob(&sha256, Body::File(&tmp.out()))?;
        }
        let name = archive_name(&exported.blake3);
        let layer = Descriptor {
            media_type: ARCHIVE_TYPE.to_owned(),
            digest: sha256,
            size: exported.size,
            annotations: BTreeMap::from([(ARCHIVE_ANNOTATION.to_owned(), name.clone())]),
            data: None,
        };
        lock(&self.archives).insert(name, layer);
        Ok((exported.blake3, exported.size))
    }

    /// Tags an image index of the object manifests of `closure` (every
    /// object of the closures of `roots`, all in the repository) as `tag`.
    pub fn tag_closure(
        &self,
        tag: &str,
        roots: &[StorePath],
        closure: &[StorePath],
    ) -> Result<(), CacheError> {
        let mut manifests = Vec::with_capacity(closure.len());
        for path in closure {
            let rel = super::info::info_name(path);
            let Some(Entry::Tagged {
                tag: object_tag, ..
            }) = layout::entry(&rel)
            else {
                return Err(self.not_in_layout(&rel));
            };
            let known = lock(&self.manifests).get(&object_tag).cloned();
            let desc = match known {
                Some(desc) => desc,
                None => {
                    self.manifest(&object_tag, OBJECT_ARTIFACT)?
                        .ok_or_else(|| CacheError::Missing {
                            cache: self.url.clone(),
                            path: path.clone(),
                        })?;
                    lock(&self.manifests)
                        .get(&object_tag)
                        .cloned()
                        .ok_or_else(|| CacheError::Missing {
                            cache: self.url.clone(),
                            path: path.clone(),
                        })?
                }
            };
            manifests.push(desc);
        }
        let roots: Vec<String> = roots.iter().map(StorePath::to_absolute).collect();
        let annotations = BTreeMap::from([(ROOTS_ANNOTATION.to_owned(), roots.join(","))]);
        let index = Index {
            schema_version: 2,
            media_type: INDEX_TYPE.to_owned(),
            artifact_type: Some(CLOSURE_ARTIFACT.to_owned()),
            manifests,
            annotations: annotations.clone(),
        };
        self.put_manifest(tag, INDEX_TYPE, &index, annotations)
    }
}

/// The annotations that copy a file of the layout (metadata, a step
/// record): its signatures, and a step record's output.
fn signed_annotations(bytes: &[u8]) -> BTreeMap<String, String> {
    #[derive(serde::Deserialize)]
    struct Signed {
        #[serde(default)]
        signatures: Vec<String>,
        output: Option<String>,
    }
    let Ok(file) = serde_json::from_slice::<Signed>(bytes) else {
        return BTreeMap::new();
    };
    record_annotations(&file.signatures, file.output)
}

/// The annotations of a file of `signatures` (and a step record's
/// `output`), as its manifest carries them.
fn record_annotations(signatures: &[String], output: Option<String>) -> BTreeMap<String, String> {
    let mut annotations =
        BTreeMap::from([(SIGNATURES_ANNOTATION.to_owned(), signatures.join(","))]);
    if let Some(output) = output {
        annotations.insert(OUTPUT_ANNOTATION.to_owned(), output);
    }
    annotations
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(url: &str) -> Result<String, String> {
        match Registry::parse(url) {
            Some(Ok(r)) => Ok(r.client.url("x")),
            Some(Err(e)) => Err(e),
            None => Err("not a registry URL".to_owned()),
        }
    }

    #[test]
    fn local_registries_speak_http_others_https() {
        let ok = |url: &str| endpoint(url).unwrap();
        assert_eq!(
            ok("oci://127.0.0.1:5000/a/b"),
            "http://127.0.0.1:5000/v2/a/b/x"
        );
        assert_eq!(ok("oci://localhost/a/"), "http://localhost/v2/a/x");
        assert_eq!(ok("oci://[::1]:5000/a"), "http://[::1]:5000/v2/a/x");
        assert_eq!(
            ok("oci://reg.example/team/cache"),
            "https://reg.example/v2/team/cache/x"
        );
        assert_eq!(
            ok("oci+http://reg.lan:5000/c"),
            "http://reg.lan:5000/v2/c/x"
        );
        assert_eq!(ok("oci+https://127.0.0.1/c"), "https://127.0.0.1/v2/c/x");
        for bad in [
            "oci://reg.example",
            "oci://reg.example/",
            "oci://reg.example/Cache",
            "oci://reg.example/a//b",
            "oci://reg.example/-a",
            "oci://u:p@reg.example/a",
        ] {
            assert!(endpoint(bad).is_err(), "{bad}");
        }
        assert!(Registry::parse("https://reg.example/a").is_none());
    }
}
