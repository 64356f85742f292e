//! Step records (`steps/<key hex>.json`): which object a step's build
//! produced, signed, so that a build that knows only a step's key can take
//! its output from a cache (substitution; docs/cache.md, "Step records").

use super::info::{Distrust, add_signature, trusted_signer};
use super::keys::{PublicKey, SecretKey};
use super::oci::layout::{OUTPUT_ANNOTATION, listed_signatures};
use super::{CacheError, CopyReport, Location};
use crate::store::{Blake3Digest, STORE_PREFIX, Store, StorePath};

/// Version written in (and required of) step records.
pub const STEP_VERSION: u32 = 1;

/// What a cache records of one step's build.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepRecord {
    pub version: u32,
    /// The step's cache key, `blake3:<hex>`.
    pub key: Blake3Digest,
    /// The object its build produced, `<hash>-<name>`.
    pub output: StorePath,
    /// `NAME:BASE64` signatures of [`StepRecord::fingerprint`].
    #[serde(default)]
    pub signatures: Vec<String>,
}

/// The record file name of the step `key`.
pub fn step_name(key: &Blake3Digest) -> String {
    format!("steps/{}.json", key.to_hex())
}

/// The signed byte string of a step record:
/// `1;step;<key hex>;/imago/store/<hash>-<name>`.
pub fn step_fingerprint(key: &Blake3Digest, output: &StorePath) -> String {
    format!("1;step;{};{STORE_PREFIX}/{}", key.to_hex(), output.as_str())
}

impl StepRecord {
    /// The record of `key` building `output`, without signatures.
    pub fn new(key: Blake3Digest, output: StorePath) -> StepRecord {
        StepRecord {
            version: STEP_VERSION,
            key,
            output,
            signatures: Vec::new(),
        }
    }

    pub fn fingerprint(&self) -> String {
        step_fingerprint(&self.key, &self.output)
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

/// Parses and checks the record of the step `key`.
pub(super) fn parse_record(
    cache: &Location,
    key: &Blake3Digest,
    bytes: &[u8],
) -> Result<StepRecord, CacheError> {
    let bad = |reason: String| CacheError::BadStepRecord {
        key: *key,
        cache: cache.url(),
        reason,
    };
    let record: StepRecord = serde_json::from_slice(bytes)
        .map_err(|e| bad(format!("{} is not valid: {e}", step_name(key))))?;
    if record.version != STEP_VERSION {
        return Err(bad(format!(
            "version {} (this imago reads version {STEP_VERSION})",
            record.version
        )));
    }
    if record.key != *key {
        return Err(bad(format!(
            "{} is the record of step {}",
            step_name(key),
            record.key
        )));
    }
    Ok(record)
}

/// The record of the step `key` in `cache`, if it has one, checked and
/// carrying a signature that verifies with one of `trusted` (an error
/// otherwise). Fetches no object.
pub fn lookup(
    cache: &Location,
    key: &Blake3Digest,
    trusted: &[PublicKey],
) -> Result<Option<StepRecord>, CacheError> {
    cache.check_is_cache()?;
    match peek(cache, key)? {
        Peek::Absent => return Ok(None),
        Peek::Record(record) if record.trusted_by(trusted).is_ok() => return Ok(Some(record)),
        Peek::Record(_) | Peek::Unknown => {}
    }
    let Some(bytes) = cache.read(&step_name(key))? else {
        return Ok(None);
    };
    let record = parse_record(cache, key, &bytes)?;
    record
        .trusted_by(trusted)
        .map_err(|reason| CacheError::UntrustedStep {
            key: *key,
            cache: cache.url(),
            reason,
        })?;
    Ok(Some(record))
}

/// What a registry's manifest says of a step record.
enum Peek {
    /// The repository has no record of the step.
    Absent,
    /// The record its annotations describe (output and signatures):
    /// taken if a trusted signature verifies, as it would in the record.
    Record(StepRecord),
    /// Another cache, or a manifest without those annotations: read the
    /// record.
    Unknown,
}

/// For a registry, the record of the step `key` its manifest's
/// annotations describe, one request instead of two.
fn peek(cache: &Location, key: &Blake3Digest) -> Result<Peek, CacheError> {
    let Location::Oci(registry) = cache else {
        return Ok(Peek::Unknown);
    };
    let Some(annotations) = registry.step_annotations(&step_name(key))? else {
        return Ok(Peek::Absent);
    };
    let output = annotations.get(OUTPUT_ANNOTATION).map(|o| o.parse());
    let Some(Ok(output)) = output else {
        return Ok(Peek::Unknown);
    };
    let mut record = StepRecord::new(*key, output);
    record.signatures = listed_signatures(&annotations);
    Ok(Peek::Record(record))
}

/// Copies the closure of `output`, the output of the step `key` (a record
/// [`lookup`] accepted), from `cache` into `store` as [`super::pull`]
/// copies it (every object signed by one of `trusted`, rehashed, its
/// references checked), and registers the objects and the build-cache
/// entry `key` → `output` in one transaction, or nothing.
pub fn fetch_output(
    store: &Store,
    cache: &Location,
    key: &Blake3Digest,
    output: &StorePath,
    trusted: &[PublicKey],
) -> Result<CopyReport, CacheError> {
    let (batch, report) = super::pull::stage(
        store,
        cache,
        std::slice::from_ref(output),
        trusted,
        &super::Progress::hidden(),
    )?;
    store
        .commit_import_step(batch, key, output)
        .map_err(|source| CacheError::Store {
            cache: cache.url(),
            source: Box::new(source),
        })?;
    Ok(report)
}
