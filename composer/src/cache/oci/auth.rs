//! Registry credentials, as docker and podman store them, and the
//! challenges of the distribution spec's authentication: `Basic`, and
//! `Bearer` with a token from the registry's token service.
//!
//! Credentials are read from the `auths` of the first of these files that
//! names the registry's host (`host:port`): `$REGISTRY_AUTH_FILE`,
//! `$XDG_RUNTIME_DIR/containers/auth.json`,
//! `~/.config/containers/auth.json` (podman), `$DOCKER_CONFIG/config.json`
//! or `~/.docker/config.json` (docker). An entry's `auth` is the base64 of
//! `user:password`. Credential helpers (`credsStore`, `credHelpers`) are
//! not run.

use data_encoding::BASE64;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// A user name and password for a registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, …)", self.user)
    }
}

impl Credentials {
    /// The value of an `Authorization: Basic` header.
    pub fn basic(&self) -> String {
        format!(
            "Basic {}",
            BASE64.encode(format!("{}:{}", self.user, self.password).as_bytes())
        )
    }
}

/// The files credentials are looked up in, in order.
fn auth_files() -> Vec<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    let mut files = Vec::new();
    if let Some(f) = var("REGISTRY_AUTH_FILE") {
        files.push(PathBuf::from(f));
    }
    if let Some(dir) = var("XDG_RUNTIME_DIR") {
        files.push(PathBuf::from(dir).join("containers/auth.json"));
    }
    let home = var("HOME").map(PathBuf::from);
    if let Some(home) = &home {
        files.push(home.join(".config/containers/auth.json"));
    }
    match var("DOCKER_CONFIG") {
        Some(dir) => files.push(PathBuf::from(dir).join("config.json")),
        None => files.extend(home.map(|h| h.join(".docker/config.json"))),
    }
    files
}

/// The credentials for `host` (`name` or `name:port`) from the first auth
/// file naming it; files that are missing or unreadable are skipped.
pub fn credentials_for(host: &str) -> Option<Credentials> {
    auth_files().into_iter().find_map(|file| {
        let text = std::fs::read(&file).ok()?;
        credentials_in(&text, host)
    })
}

#[derive(serde::Deserialize)]
struct AuthFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
}

#[derive(serde::Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: String,
}

/// The credentials for `host` in an auth file's text. Keys may be a bare
/// `host[:port]` or a URL (`https://host/v1/`, as docker writes for its
/// own hub).
fn credentials_in(text: &[u8], host: &str) -> Option<Credentials> {
    let file: AuthFile = serde_json::from_slice(text).ok()?;
    file.auths.iter().find_map(|(key, entry)| {
        let bare = key
            .trim_start_matches("https://")
            .trim_start_matches("http://");
        let bare = bare.split('/').next().unwrap_or(bare);
        if !bare.eq_ignore_ascii_case(host) {
            return None;
        }
        let decoded = BASE64.decode(entry.auth.trim().as_bytes()).ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (user, password) = text.split_once(':')?;
        Some(Credentials {
            user: user.to_owned(),
            password: password.to_owned(),
        })
    })
}

/// A `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// `basic` or `bearer`, lowercase.
    pub scheme: String,
    /// Its parameters (`realm`, `service`, `scope`), names lowercase.
    pub params: BTreeMap<String, String>,
}

/// Parses `Scheme key="value", key=value`.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    if scheme.is_empty() {
        return None;
    }
    let mut params = BTreeMap::new();
    let mut rest = rest.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let after = after.trim_start();
        let (value, tail) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"')?;
            (&quoted[..end], &quoted[end + 1..])
        } else {
            after.split_at(after.find(',').unwrap_or(after.len()))
        };
        params.insert(key.trim().to_ascii_lowercase(), value.to_owned());
        rest = tail.trim_start().trim_start_matches(',').trim_start();
    }
    Some(Challenge {
        scheme: scheme.to_ascii_lowercase(),
        params,
    })
}

/// The token in a token service's answer (`token`, or OAuth's
/// `access_token`).
pub fn token_in(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Answer {
        token: Option<String>,
        access_token: Option<String>,
    }
    let answer: Answer = serde_json::from_slice(body).ok()?;
    answer
        .token
        .or(answer.access_token)
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_found_by_host() {
        let text = br#"{"auths":{"https://reg.example:5000/v1/":{"auth":"dTpwdzpwdw=="},"other":{"auth":"eDp5"}}}"#;
        let c = credentials_in(text, "reg.example:5000").unwrap();
        assert_eq!((c.user.as_str(), c.password.as_str()), ("u", "pw:pw"));
        assert_eq!(c.basic(), "Basic dTpwdzpwdw==");
        assert_eq!(credentials_in(text, "reg.example"), None);
        assert_eq!(credentials_in(b"not json", "other"), None);
    }

    #[test]
    fn challenges_are_parsed() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="reg",scope="repository:a/b:pull,push""#,
        )
        .unwrap();
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.params["realm"], "https://auth.example/token");
        assert_eq!(c.params["scope"], "repository:a/b:pull,push");
        let basic = parse_challenge(r#"Basic realm=registry"#).unwrap();
        assert_eq!(basic.scheme, "basic");
        assert_eq!(basic.params["realm"], "registry");
        assert_eq!(token_in(br#"{"access_token":"t"}"#).as_deref(), Some("t"));
        assert_eq!(token_in(br#"{}"#), None);
    }
}
