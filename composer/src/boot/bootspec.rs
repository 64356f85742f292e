//! `boot.json`: how a system toplevel tells boot loaders and runners what to
//! boot. Format (version 1), documented in docs/system-layout.md:
//!
//! ```json
//! { "version": 1, "label": "...", "system_name": "...",
//!   "architecture": "amd64",
//!   "kernel": "/imago/store/...-kernel/bzImage",
//!   "initrd": "/imago/store/...-initrd",
//!   "kernel_params": ["console=ttyS0"], "init": "init" }
//! ```
//!
//! [`BootSpec::read`] parses and validates it; every error names the file.
//! `architecture` (`amd64`, `arm64`) says which machine runs the system;
//! a `boot.json` without it was written before systems had a choice and is
//! amd64's.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::arch::Architecture;
use crate::store::STORE_PREFIX;
use crate::store::StorePath;

/// The only `boot.json` version this code reads.
pub const BOOT_SPEC_VERSION: u32 = 1;

/// A parsed, validated `boot.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootSpec {
    pub version: u32,
    pub label: String,
    pub system_name: String,
    /// The CPU architecture of the system (amd64 when absent).
    #[serde(default = "amd64")]
    pub architecture: Architecture,
    /// Logical store path of the kernel image.
    pub kernel: String,
    /// Logical store path of the initrd file.
    pub initrd: String,
    pub kernel_params: Vec<String>,
    /// Stage 2, relative to the toplevel.
    pub init: String,
}

#[derive(Debug, thiserror::Error)]
pub enum BootSpecError {
    #[error("{path} does not exist: is this a system toplevel?")]
    Missing { path: PathBuf },
    #[error("cannot read {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid boot.json")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: unsupported version {found} (this imago reads version {BOOT_SPEC_VERSION})")]
    Version { path: PathBuf, found: u32 },
    #[error("{path}: field `{field}` {reason}")]
    Invalid {
        path: PathBuf,
        field: &'static str,
        reason: String,
    },
}

impl BootSpecError {
    /// The stable code of this error (docs/errors.md, E08xx).
    pub fn code(&self) -> crate::codes::Code {
        crate::codes::BOOT_SPEC
    }
}

fn amd64() -> Architecture {
    Architecture::Amd64
}

impl BootSpec {
    /// Reads `<toplevel>/boot.json`.
    pub fn read(toplevel: &Path) -> Result<Self, BootSpecError> {
        let path = toplevel.join("boot.json");
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(BootSpecError::Missing { path });
            }
            Err(source) => return Err(BootSpecError::Io { path, source }),
        };
        Self::parse(&text, &path)
    }

    /// Parses and validates `text`, naming `path` in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, BootSpecError> {
        // Check the version first, so a future format gets a version error
        // rather than a complaint about its new fields.
        #[derive(Deserialize)]
        struct Versioned {
            version: u32,
        }
        let json = |source| BootSpecError::Json {
            path: path.to_owned(),
            source,
        };
        let Versioned { version } = serde_json::from_str(text).map_err(json)?;
        if version != BOOT_SPEC_VERSION {
            return Err(BootSpecError::Version {
                path: path.to_owned(),
                found: version,
            });
        }
        let spec: BootSpec = serde_json::from_str(text).map_err(json)?;
        let invalid = |field, reason: String| BootSpecError::Invalid {
            path: path.to_owned(),
            field,
            reason,
        };
        for (field, value) in [("kernel", &spec.kernel), ("initrd", &spec.initrd)] {
            StorePath::from_absolute(value).map_err(|e| {
                invalid(field, format!("must be a path inside {STORE_PREFIX}: {e}"))
            })?;
        }
        if spec.init.is_empty()
            || spec.init.starts_with('/')
            || spec.init.split('/').any(|c| c == ".." || c.is_empty())
        {
            return Err(invalid(
                "init",
                format!(
                    "must be a relative path inside the toplevel, not `{}`",
                    spec.init
                ),
            ));
        }
        if let Some(bad) = spec
            .kernel_params
            .iter()
            .find(|p| p.is_empty() || p.chars().any(char::is_whitespace))
        {
            return Err(invalid(
                "kernel_params",
                format!("entries must be single words without spaces, not `{bad}`"),
            ));
        }
        Ok(spec)
    }

    /// The kernel command line for booting `toplevel` (its logical path):
    /// the spec's parameters, then `imago.system=` and `extra`.
    pub fn cmdline(&self, toplevel: &str, extra: &[String]) -> String {
        let mut words = self.kernel_params.clone();
        words.push(format!("imago.system={toplevel}"));
        words.extend(extra.iter().cloned());
        words.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{ "version": 1, "label": "test", "system_name": "vm",
        "kernel": "/imago/store/0000000000000000000000000000000a-kernel/bzImage", "initrd": "/imago/store/0000000000000000000000000000000b-initrd",
        "kernel_params": ["console=ttyS0", "quiet"], "init": "init" }"#;

    fn parse(text: &str) -> Result<BootSpec, BootSpecError> {
        BootSpec::parse(text, Path::new("/t/boot.json"))
    }

    #[test]
    fn parses_a_valid_spec_and_builds_the_cmdline() {
        let spec = parse(GOOD).unwrap();
        assert_eq!(
            spec.kernel,
            "/imago/store/0000000000000000000000000000000a-kernel/bzImage"
        );
        assert_eq!(
            spec.cmdline(
                "/imago/store/0000000000000000000000000000000c-system",
                &["imago.store=9p:imago-store".into()]
            ),
            "console=ttyS0 quiet imago.system=/imago/store/0000000000000000000000000000000c-system imago.store=9p:imago-store"
        );
    }

    #[test]
    fn the_architecture_is_amd64_unless_named() {
        assert_eq!(parse(GOOD).unwrap().architecture, Architecture::Amd64);
        let arm = GOOD.replace("\"label\"", "\"architecture\": \"arm64\", \"label\"");
        assert_eq!(parse(&arm).unwrap().architecture, Architecture::Arm64);
        let bad = GOOD.replace("\"label\"", "\"architecture\": \"mips\", \"label\"");
        let err = parse(&bad).unwrap_err();
        let source = std::error::Error::source(&err).unwrap().to_string();
        assert!(
            source.contains("`mips` is not an architecture Imago supports"),
            "{source}"
        );
    }

    #[test]
    fn missing_file_says_what_it_expected() {
        let dir = tempfile::tempdir().unwrap();
        let err = BootSpec::read(dir.path()).unwrap_err().to_string();
        assert!(
            err.ends_with("boot.json does not exist: is this a system toplevel?"),
            "{err}"
        );
    }

    #[test]
    fn invalid_json_names_the_file_and_position() {
        let err = parse("{ \"version\": 1, ").unwrap_err();
        assert_eq!(err.to_string(), "/t/boot.json is not a valid boot.json");
        let source = std::error::Error::source(&err).unwrap().to_string();
        assert!(source.contains("line 1"), "{source}");
    }

    #[test]
    fn unknown_and_missing_fields_are_named() {
        let extra = GOOD.replace("\"init\": \"init\"", "\"init\": \"init\", \"initt\": 1");
        let err = parse(&extra).unwrap_err();
        let source = std::error::Error::source(&err).unwrap().to_string();
        assert!(source.contains("unknown field `initt`"), "{source}");
        let missing = GOOD.replace("\"label\": \"test\",", "");
        let err = parse(&missing).unwrap_err();
        let source = std::error::Error::source(&err).unwrap().to_string();
        assert!(source.contains("missing field `label`"), "{source}");
    }

    #[test]
    fn other_versions_are_refused() {
        let err = parse(r#"{ "version": 2, "whatever": true }"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "/t/boot.json: unsupported version 2 (this imago reads version 1)"
        );
    }

    #[test]
    fn paths_outside_the_store_are_refused() {
        for (from, to, field) in [
            (
                "/imago/store/0000000000000000000000000000000a-kernel/bzImage",
                "/boot/vmlinuz",
                "kernel",
            ),
            (
                "/imago/store/0000000000000000000000000000000b-initrd",
                "/imago/store/../etc/shadow",
                "initrd",
            ),
            ("\"init\": \"init\"", "\"init\": \"/sbin/init\"", "init"),
            ("\"init\": \"init\"", "\"init\": \"../x\"", "init"),
            ("\"quiet\"", "\"a b\"", "kernel_params"),
        ] {
            let err = parse(&GOOD.replace(from, to)).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("/t/boot.json: field `{field}`")),
                "{err}"
            );
        }
    }
}
