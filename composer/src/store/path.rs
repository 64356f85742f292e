//! Store paths: `<hash>-<name>` under the logical prefix `/imago/store`.
//!
//! [`StorePath`] is validated once, by [`validate`], whichever way it is
//! built (`FromStr`, `TryFrom<&str>`, [`StorePath::from_absolute`],
//! [`StorePath::from_digest`]), so holding one proves the text is legal:
//! - hash: exactly [`HASH_LEN`] characters of the Nix base-32 alphabet
//!   `0123456789abcdfghijklmnpqrsvwxyz` (no `e`, `o`, `t`, `u`);
//! - then `-`;
//! - name: 1 to [`MAX_NAME_LEN`] characters of `[A-Za-z0-9+-._?=]`, not
//!   starting with `.` (so `.` and `..` are impossible, and the store's own
//!   state directory `.imago` can never be mistaken for an object).
//!
//! [`StorePathRef`] is the borrowed form for hot paths (scanning directory
//! listings) that validates without allocating.

use super::digest::Blake3Digest;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The logical store prefix: where the store is inside every built system
/// (the physical directory may differ for unprivileged builds).
pub const STORE_PREFIX: &str = "/imago/store";

/// Length of the hash part, in base-32 characters (160 bits).
pub const HASH_LEN: usize = 32;
/// Longest allowed name part.
pub const MAX_NAME_LEN: usize = 200;
/// Nix's base-32 alphabet.
pub const NIX_BASE32_ALPHABET: &str = "0123456789abcdfghijklmnpqrsvwxyz";

/// The base-32 encoding used for hashes (MSB first, no padding).
pub(crate) fn nix_base32() -> data_encoding::Encoding {
    let mut spec = data_encoding::Specification::new();
    spec.symbols.push_str(NIX_BASE32_ALPHABET);
    // The alphabet has 32 distinct ASCII symbols and no padding, which the
    // specification always accepts; fall back to a panic-free default.
    spec.encoding().unwrap_or(data_encoding::BASE32_NOPAD)
}

impl Blake3Digest {
    /// The hash part of a store path made from this digest: the first
    /// [`HASH_LEN`] characters of its Nix-alphabet base-32 encoding.
    pub fn store_hash(&self) -> String {
        let mut text = nix_base32().encode(&self.0);
        text.truncate(HASH_LEN);
        text
    }
}

/// Why a store path's text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid store path `{text}`: {reason}")]
pub struct StorePathError {
    /// The offending text (truncated to 300 characters).
    pub text: String,
    pub reason: String,
}

impl StorePathError {
    /// The stable code of this error (docs/errors.md, E05xx).
    pub fn code(&self) -> crate::codes::Code {
        crate::codes::STORE_BAD_PATH
    }
}

impl StorePathError {
    fn new(text: &str, reason: impl Into<String>) -> Self {
        let text: String = text.chars().take(300).collect();
        StorePathError {
            text,
            reason: reason.into(),
        }
    }
}

/// Checks a base name `<hash>-<name>`; the one place the rules live.
pub fn validate(text: &str) -> Result<(), StorePathError> {
    let bytes = text.as_bytes();
    if bytes.len() < HASH_LEN + 1 {
        return Err(StorePathError::new(
            text,
            format!("expected `<{HASH_LEN}-character hash>-<name>`"),
        ));
    }
    let (hash, rest) = bytes.split_at(HASH_LEN);
    if let Some(pos) = hash
        .iter()
        .position(|b| !NIX_BASE32_ALPHABET.as_bytes().contains(b))
    {
        return Err(StorePathError::new(
            text,
            format!(
                "character {} of the hash is not in the base-32 alphabet {NIX_BASE32_ALPHABET}",
                pos + 1
            ),
        ));
    }
    if rest[0] != b'-' {
        return Err(StorePathError::new(
            text,
            format!("expected `-` after the {HASH_LEN}-character hash"),
        ));
    }
    validate_name(&text[HASH_LEN + 1..]).map_err(|reason| StorePathError::new(text, reason))
}

/// Checks the name part alone; returns the reason it is refused.
pub fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the name is empty".to_owned());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!(
            "the name is {} characters long (at most {MAX_NAME_LEN})",
            name.len()
        ));
    }
    if name.starts_with('.') {
        return Err("the name starts with `.`".to_owned());
    }
    if let Some(c) = name.chars().find(|c| !is_name_char(*c)) {
        return Err(format!(
            "the name contains {c:?}; allowed are A-Z a-z 0-9 and + - . _ ? ="
        ));
    }
    Ok(())
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.' | '_' | '?' | '=')
}

/// A validated store path (its base name `<hash>-<name>`).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StorePath(String);

/// A borrowed, validated store path.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StorePathRef<'a>(&'a str);

impl<'a> StorePathRef<'a> {
    pub fn parse(text: &'a str) -> Result<Self, StorePathError> {
        validate(text)?;
        Ok(StorePathRef(text))
    }
    pub fn as_str(&self) -> &'a str {
        self.0
    }
    pub fn to_owned(&self) -> StorePath {
        StorePath(self.0.to_owned())
    }
}

impl StorePath {
    /// The path for an object with this content digest and name.
    pub fn from_digest(digest: &Blake3Digest, name: &str) -> Result<Self, StorePathError> {
        StorePath::try_from(format!("{}-{name}", digest.store_hash()).as_str())
    }

    /// Parses `/imago/store/<hash>-<name>[/sub/path]`, returning the object
    /// and the (possibly empty) sub path inside it.
    pub fn from_absolute(text: &str) -> Result<(Self, &str), StorePathError> {
        let rest = text
            .strip_prefix(STORE_PREFIX)
            .and_then(|r| r.strip_prefix('/'))
            .ok_or_else(|| StorePathError::new(text, format!("not inside {STORE_PREFIX}/")))?;
        let (base, sub) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if sub.split('/').any(|c| c == "." || c == "..") {
            return Err(StorePathError::new(
                text,
                "the sub path contains `.` or `..`",
            ));
        }
        Ok((StorePath::try_from(base)?, sub))
    }

    /// Where `text`, a path as the system sees it
    /// (`/imago/store/<hash>-<name>[/sub/path]`), is in the store at
    /// `store_dir`, wherever that store is on this machine.
    pub fn physical_in(store_dir: &Path, text: &str) -> Result<PathBuf, StorePathError> {
        let (object, sub) = StorePath::from_absolute(text)?;
        let mut path = store_dir.join(object.as_str());
        if !sub.is_empty() {
            path.push(sub.trim_start_matches('/'));
        }
        Ok(path)
    }

    /// The base name `<hash>-<name>`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn as_ref(&self) -> StorePathRef<'_> {
        StorePathRef(&self.0)
    }

    /// The 32-character hash part.
    pub fn hash_part(&self) -> &str {
        &self.0[..HASH_LEN]
    }

    /// The name part.
    pub fn name(&self) -> &str {
        &self.0[HASH_LEN + 1..]
    }

    /// The logical absolute path `/imago/store/<hash>-<name>`.
    pub fn to_absolute(&self) -> String {
        format!("{STORE_PREFIX}/{}", self.0)
    }
}

impl TryFrom<&str> for StorePath {
    type Error = StorePathError;
    fn try_from(text: &str) -> Result<Self, Self::Error> {
        validate(text)?;
        Ok(StorePath(text.to_owned()))
    }
}

impl TryFrom<String> for StorePath {
    type Error = StorePathError;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        validate(&text)?;
        Ok(StorePath(text))
    }
}

impl FromStr for StorePath {
    type Err = StorePathError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        StorePath::try_from(text)
    }
}

impl fmt::Display for StorePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for StorePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StorePath({})", self.0)
    }
}

impl fmt::Display for StorePathRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl fmt::Debug for StorePathRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StorePathRef({})", self.0)
    }
}

impl serde::Serialize for StorePath {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for StorePath {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        StorePath::try_from(text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HASH: &str = "0123456789abcdfghijklmnpqrsvwxyz";

    #[test]
    fn accepts_valid_paths() {
        for name in [
            "hello",
            "a",
            "busybox-1.35+dfsg?x=y",
            "A.b_c",
            &"n".repeat(200),
        ] {
            let text = format!("{HASH}-{name}");
            let p: StorePath = text.parse().unwrap();
            assert_eq!(p.as_str(), text);
            assert_eq!(p.hash_part(), HASH);
            assert_eq!(p.name(), name);
            assert_eq!(p.to_absolute(), format!("/imago/store/{text}"));
        }
    }

    #[test]
    fn rejects_invalid_paths() {
        let cases = [
            (format!("{HASH}-"), "empty"),
            (format!("{HASH}-."), "starts with `.`"),
            (format!("{HASH}-.."), "starts with `.`"),
            (format!("{HASH}-a/b"), "contains '/'"),
            (format!("{HASH}-a b"), "contains ' '"),
            (format!("{HASH}-a\0b"), "contains '\\0'"),
            (format!("{HASH}-caf\u{e9}"), "contains"),
            (format!("{HASH}-{}", "n".repeat(201)), "201 characters"),
            (format!("{HASH}_name"), "expected `-`"),
            (format!("{}-name", &HASH[1..]), "character 32 of the hash"),
            (format!("e{}-name", &HASH[1..]), "character 1 of the hash"),
            (format!("{}U-name", &HASH[..31]), "character 32 of the hash"),
            ("short".to_owned(), "expected `<32"),
            (String::new(), "expected `<32"),
        ];
        for (text, want) in cases {
            let err = text.parse::<StorePath>().unwrap_err();
            assert!(
                err.to_string().contains(want),
                "`{text}`: `{err}` lacks `{want}`"
            );
        }
    }

    #[test]
    fn absolute_paths_split_sub_path() {
        let text = format!("/imago/store/{HASH}-x/bin/sh");
        let (p, sub) = StorePath::from_absolute(&text).unwrap();
        assert_eq!(p.name(), "x");
        assert_eq!(sub, "/bin/sh");
        assert!(StorePath::from_absolute(&format!("/nix/store/{HASH}-x")).is_err());
        assert!(StorePath::from_absolute(&format!("/imago/store/{HASH}-x/../y")).is_err());
        assert!(StorePath::from_absolute("/imago/store").is_err());
    }

    #[test]
    fn digest_hash_uses_nix_alphabet() {
        let d = Blake3Digest([0xff; 32]);
        assert_eq!(d.store_hash(), "z".repeat(32));
        let d = Blake3Digest([0; 32]);
        assert_eq!(d.store_hash(), "0".repeat(32));
        // 0x08 = 00001 000..: MSB first.
        let mut bytes = [0u8; 32];
        bytes[0] = 0x08;
        assert_eq!(&Blake3Digest(bytes).store_hash()[..2], "10");
    }

    proptest! {
        #[test]
        fn valid_names_round_trip(hash in "[0-9a-df-np-sv-z]{32}", name in "[A-Za-z0-9+_?=-][A-Za-z0-9+._?=-]{0,199}") {
            let text = format!("{hash}-{name}");
            let p: StorePath = text.parse().unwrap();
            prop_assert_eq!(p.to_string(), text.clone());
            let abs = p.to_absolute();
            let (back, sub) = StorePath::from_absolute(&abs).unwrap();
            prop_assert_eq!(back, p);
            prop_assert_eq!(sub, "");
        }

        #[test]
        fn arbitrary_text_never_panics(text in ".{0,300}") {
            if let Ok(p) = text.parse::<StorePath>() {
                prop_assert_eq!(p.as_str(), text.as_str());
                prop_assert!(p.name().len() <= MAX_NAME_LEN);
                prop_assert!(!p.name().starts_with('.'));
            }
        }
    }
}
