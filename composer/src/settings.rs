//! Configuration files: `/etc/imago/config.toml` for the machine, then
//! `$XDG_CONFIG_HOME/imago/config.toml` (default `~/.config/imago/`) for
//! the user. Both are optional; the user's settings come first.
//!
//! ```toml
//! # Package caches laid out by SHA-256 (`<base>/sha256/<hex>`), tried
//! # before the mirrors: directories or HTTP(S) base URLs.
//! package-caches = ["https://debs.example.com"]
//! # snapshot.debian.org's base URL, or "" to never ask it.
//! snapshot = "https://snapshot.debian.org"
//! # Public keys whose signatures `imago copy --from` accepts, as the key
//! # files hold them (`NAME:BASE64`; docs/cache.md). Both files' keys count.
//! trusted-public-keys = ["ci.example.com-1:MeOBQmFSAPeomKPdHKV/e+t5zpj28h2LdN1O4/lK4oo="]
//! # Binary caches builds take step outputs from (`file:///DIR`,
//! # http(s)://… or oci://HOST/REPOSITORY), after `--substituter`; the
//! # user's before the machine's.
//! substituters = ["https://cache.example.com"]
//! # Mirror base URLs per Debian archive.
//! [mirrors]
//! debian = ["http://ftp.de.debian.org/debian"]
//! debian-security = ["http://security.debian.org/debian-security"]
//! ```

use crate::debian::archive;
use crate::debian::fetch::{Location, Sources};
use crate::debian::lock::line_col;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const SYSTEM_FILE: &str = "/etc/imago/config.toml";

/// One configuration file's contents.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Settings {
    #[serde(default)]
    pub package_caches: Vec<String>,
    #[serde(default)]
    pub mirrors: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub snapshot: Option<String>,
    /// Public keys as their files hold them, `NAME:BASE64` (read by
    /// `cache::PublicKey::parse`).
    #[serde(default)]
    pub trusted_public_keys: Vec<String>,
    /// Binary cache URLs (read by `cache::Location::parse`).
    #[serde(default)]
    pub substituters: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("reading {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl SettingsError {
    /// The stable code of this error (docs/errors.md, E04xx).
    pub fn code(&self) -> crate::codes::Code {
        crate::codes::SETTINGS
    }
}

/// The user's configuration file.
pub fn user_file() -> PathBuf {
    crate::dirs::config_root().join("config.toml")
}

impl Settings {
    /// Reads and checks one file; a missing file is empty settings.
    pub fn read(path: &Path) -> Result<Settings, SettingsError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Settings::default()),
            Err(source) => {
                return Err(SettingsError::Read {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        Settings::parse(&text, path)
    }

    /// Parses settings text; `path` names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Settings, SettingsError> {
        let settings: Settings = toml::from_str(text).map_err(|e| {
            let (line, column) = line_col(text, e.span().map_or(0, |s| s.start));
            SettingsError::Syntax {
                path: path.to_path_buf(),
                line,
                column,
                message: e.message().to_string(),
            }
        })?;
        let invalid = |message: String| SettingsError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        for cache in &settings.package_caches {
            Location::parse(cache).map_err(|m| invalid(format!("package-caches: {m}")))?;
        }
        for (name, urls) in &settings.mirrors {
            if !archive::is_archive_name(name) {
                return Err(invalid(format!("mirrors: `{name}` is not an archive name")));
            }
            for url in urls {
                if !matches!(Location::parse(url), Ok(Location::Url(_))) {
                    return Err(invalid(format!(
                        "mirrors.{name}: `{url}` is not an http:// or https:// URL"
                    )));
                }
            }
        }
        for url in &settings.substituters {
            let dir = url
                .strip_prefix("file://")
                .is_some_and(|p| p.starts_with('/'));
            let remote = [
                "http://",
                "https://",
                "oci://",
                "oci+http://",
                "oci+https://",
            ];
            if !(dir || remote.iter().any(|s| url.starts_with(s))) {
                return Err(invalid(format!(
                    "substituters: `{url}` is not a binary cache (file:///DIR, http(s)://… or oci://HOST/REPOSITORY)"
                )));
            }
        }
        if let Some(url) = settings.snapshot.as_deref().filter(|u| !u.is_empty())
            && !matches!(Location::parse(url), Ok(Location::Url(_)))
        {
            return Err(invalid(format!(
                "snapshot: `{url}` is not an http:// or https:// URL"
            )));
        }
        Ok(settings)
    }

    /// The machine's settings, then the user's, merged: the user's package
    /// caches first, the user's mirrors and snapshot over the machine's,
    /// the trusted keys of both.
    pub fn load() -> Result<Settings, SettingsError> {
        let system = Settings::read(Path::new(SYSTEM_FILE))?;
        let user = Settings::read(&user_file())?;
        Ok(system.under(user))
    }

    /// `self` overridden by `over`.
    fn under(self, over: Settings) -> Settings {
        let mut package_caches = over.package_caches;
        package_caches.extend(self.package_caches);
        let mut mirrors = self.mirrors;
        mirrors.extend(over.mirrors);
        let mut trusted_public_keys = over.trusted_public_keys;
        trusted_public_keys.extend(self.trusted_public_keys);
        let mut substituters = over.substituters;
        substituters.extend(self.substituters);
        Settings {
            package_caches,
            mirrors,
            snapshot: over.snapshot.or(self.snapshot),
            trusted_public_keys,
            substituters,
        }
    }

    /// The package sources: `extra_caches` (the command line and
    /// `IMAGO_PACKAGE_CACHES`) before the configured caches; mirrors from
    /// configuration, then from the host's apt sources (`host_sources`, the
    /// text of its debian.sources), then deb.debian.org; the snapshot
    /// archive unless configured to "".
    pub fn sources(
        &self,
        extra_caches: &[String],
        host_sources: Option<&str>,
    ) -> Result<Sources, String> {
        let package_caches = extra_caches
            .iter()
            .chain(&self.package_caches)
            .map(|c| Location::parse(c))
            .collect::<Result<Vec<_>, _>>()?;
        let mut mirrors = host_sources
            .map(archive::mirrors_from_sources)
            .unwrap_or_default();
        for (name, urls) in &self.mirrors {
            mirrors.insert(
                name.clone(),
                urls.iter()
                    .map(|u| u.trim_end_matches('/').to_string())
                    .collect(),
            );
        }
        let snapshot = match self.snapshot.as_deref() {
            Some("") => None,
            Some(url) => Some(url.trim_end_matches('/').to_string()),
            None => Some(archive::DEFAULT_SNAPSHOT.to_string()),
        };
        Ok(Sources {
            package_caches,
            binary_caches: Vec::new(),
            mirrors,
            snapshot,
        })
    }
}

/// The package sources of this machine and user, plus `extra_caches`
/// (the command line): the configuration files, the host's apt sources,
/// Debian's public services.
pub fn configured_sources(extra_caches: &[String]) -> Result<Sources, SettingsError> {
    let settings = Settings::load()?;
    let host = std::fs::read_to_string(crate::debian::apt::HOST_SOURCES).ok();
    settings
        .sources(extra_caches, host.as_deref())
        .map_err(|message| SettingsError::Invalid {
            path: PathBuf::from("--package-cache / IMAGO_PACKAGE_CACHES"),
            message,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_file_parses_and_orders_its_sources() {
        let s = Settings::parse(
            "package-caches = [\"/srv/debs\"]\nsnapshot = \"http://snap.example/\"\n[mirrors]\ndebian = [\"http://m.example/debian/\"]\n",
            Path::new("c.toml"),
        )
        .unwrap();
        let host = "Types: deb\nURIs: http://host.example/debian\nSuites: bookworm\n\nTypes: deb\nURIs: http://host.example/sec\nSuites: bookworm-security\n";
        let src = s
            .sources(&["https://team.example/c".to_string()], Some(host))
            .unwrap();
        assert_eq!(
            src.package_caches,
            [
                Location::Url("https://team.example/c".into()),
                Location::Dir("/srv/debs".into())
            ]
        );
        assert_eq!(src.mirrors["debian"], ["http://m.example/debian"]);
        assert_eq!(src.mirrors["debian-security"], ["http://host.example/sec"]);
        assert_eq!(src.snapshot.as_deref(), Some("http://snap.example"));
        let off = Settings::parse("snapshot = \"\"", Path::new("c.toml")).unwrap();
        assert_eq!(off.sources(&[], None).unwrap().snapshot, None);
    }

    #[test]
    fn bad_files_name_the_place() {
        let err = Settings::parse("package-caches = [\n  \"ftp://x\"]", Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("c.toml") && err.contains("ftp"), "{err}");
        let err = Settings::parse("\n\nmirors = 1", Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("c.toml:3:1:"), "{err}");
        let err = Settings::parse("[mirrors]\nDebian = [\"http://x\"]", Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`Debian` is not an archive name"), "{err}");
        let err = Settings::parse("substituters = [\"file://rel\"]", Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("c.toml: substituters: `file://rel`"), "{err}");
    }

    #[test]
    fn the_user_comes_before_the_machine() {
        let machine = Settings {
            package_caches: vec!["/m".into()],
            mirrors: BTreeMap::from([("debian".into(), vec!["http://m".into()])]),
            snapshot: Some("http://ms".into()),
            trusted_public_keys: vec!["m:AAAA".into()],
            substituters: vec!["file:///m".into()],
        };
        let user = Settings {
            package_caches: vec!["/u".into()],
            mirrors: BTreeMap::new(),
            snapshot: None,
            trusted_public_keys: vec!["u:AAAA".into()],
            substituters: vec!["https://u.example".into()],
        };
        let merged = machine.under(user);
        assert_eq!(merged.package_caches, ["/u", "/m"]);
        assert_eq!(merged.mirrors["debian"], ["http://m"]);
        assert_eq!(merged.snapshot.as_deref(), Some("http://ms"));
        assert_eq!(merged.trusted_public_keys, ["u:AAAA", "m:AAAA"]);
        assert_eq!(merged.substituters, ["https://u.example", "file:///m"]);
    }
}
