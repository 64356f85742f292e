//! Step indexes (docs/cache.md, "OCI registry"). A copy that writes step
//! records first writes the list of them as one blob, which each of their
//! manifests lists as its layer (so a registry's garbage collection keeps
//! it as long as one of them is tagged). A build that reads one of those
//! manifests reads the index once; the other records of it then cost no
//! request. What an index says is informative, as the annotations are: a
//! build checks each record's signature as it checks the record's, and
//! reads the record itself when that fails.

use super::layout::{self, Descriptor, Entry, IndexedRecord, STEP_INDEX_TYPE, StepIndex};
use super::{Registry, lock, record_annotations};
use crate::cache::CacheError;
use crate::store::Blake3Digest;
use std::collections::BTreeMap;

impl Registry {
    /// Writes `index` as a blob: the step records this copy writes from
    /// now on list it as their layer.
    pub fn index_steps(&self, index: &StepIndex) -> Result<(), CacheError> {
        let json = serde_json::to_vec(index).map_err(|e| {
            self.client
                .bad_blob("the step index", format!("cannot be encoded: {e}"))
        })?;
        let digest = layout::sha256_digest(&json);
        self.client
            .upload_blob(&digest, super::client::Body::Bytes(&json))?;
        *lock(&self.step_index) = Some(Descriptor {
            media_type: STEP_INDEX_TYPE.to_owned(),
            digest,
            size: json.len() as u64,
            annotations: BTreeMap::new(),
            data: None,
        });
        Ok(())
    }

    /// The layers of the manifest of a step record this copy writes: the
    /// step index it wrote, if any.
    pub(super) fn step_layers(&self) -> Vec<Descriptor> {
        lock(&self.step_index).iter().cloned().collect()
    }

    /// The annotations of the manifest of the step record `rel`, as
    /// [`Registry::annotations`] has them, from a step index read before
    /// when one lists the record; otherwise its manifest is read, and the
    /// step index it lists with it.
    pub fn step_annotations(
        &self,
        rel: &str,
    ) -> Result<Option<BTreeMap<String, String>>, CacheError> {
        let Some(Entry::Tagged { tag, artifact }) = layout::entry(rel) else {
            return Err(self.not_in_layout(rel));
        };
        if let Some(known) = lock(&self.indexed).get(&tag) {
            return Ok(Some(known.clone()));
        }
        let Some(manifest) = self.manifest(&tag, artifact)? else {
            return Ok(None);
        };
        for layer in &manifest.layers {
            // Each index is read once, by the first to meet it; a bad one
            // fails that lookup (and no other).
            if layer.media_type == STEP_INDEX_TYPE
                && lock(&self.indexes_read).insert(layer.digest.clone())
            {
                self.read_step_index(layer, &tag)?;
            }
        }
        Ok(Some(manifest.annotations))
    }

    /// Reads the step index `desc` that the manifest `tag` lists, and
    /// notes the annotations of each of its records.
    fn read_step_index(&self, desc: &Descriptor, tag: &str) -> Result<(), CacheError> {
        let what = format!("the step index {} of manifest {tag}", desc.digest);
        let bytes = self.blob_bytes(desc, &what)?;
        let index: StepIndex = serde_json::from_slice(&bytes).map_err(|e| {
            self.client
                .bad_blob(&what, format!("not a step index: {e}"))
        })?;
        let mut learnt = Vec::with_capacity(index.records.len());
        for IndexedRecord {
            key,
            output,
            signatures,
        } in index.records
        {
            let Ok(digest) = key.parse::<Blake3Digest>() else {
                return Err(self
                    .client
                    .bad_blob(&what, format!("`{key}` is not a step key")));
            };
            learnt.push((
                layout::step_tag(&digest),
                record_annotations(&signatures, Some(output)),
            ));
        }
        let mut indexed = lock(&self.indexed);
        for (tag, annotations) in learnt {
            indexed.entry(tag).or_insert(annotations);
        }
        Ok(())
    }
}
