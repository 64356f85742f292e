//! [`Blake3Digest`]: the 32-byte BLAKE3 digest that names store contents and
//! build steps, printed as `blake3:<64 lowercase hex digits>` and parsed back
//! strictly (no upper case, no missing prefix, no other length). The hash
//! part of a store path made from a digest is store-path business:
//! `Blake3Digest::store_hash` is defined in `path.rs`.

use std::fmt;
use std::str::FromStr;

/// The prefix of a digest's printed form.
pub const DIGEST_PREFIX: &str = "blake3:";

/// A BLAKE3 digest (32 bytes).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Blake3Digest(pub [u8; 32]);

impl Blake3Digest {
    /// Hashes a byte string in one go.
    pub fn of(bytes: &[u8]) -> Self {
        Blake3Digest(*blake3::hash(bytes).as_bytes())
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The 64-digit lowercase hex form, without prefix.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl From<blake3::Hash> for Blake3Digest {
    fn from(hash: blake3::Hash) -> Self {
        Blake3Digest(*hash.as_bytes())
    }
}

impl fmt::Display for Blake3Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{DIGEST_PREFIX}{}", self.to_hex())
    }
}

impl fmt::Debug for Blake3Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a digest's text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid digest `{text}`: {reason}")]
pub struct DigestParseError {
    pub text: String,
    pub reason: &'static str,
}

impl DigestParseError {
    /// The stable code of this error (docs/errors.md, E05xx).
    pub fn code(&self) -> crate::codes::Code {
        crate::codes::STORE_BAD_PATH
    }
}

impl FromStr for Blake3Digest {
    type Err = DigestParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let fail = |reason| DigestParseError {
            text: text.to_owned(),
            reason,
        };
        let hex_part = text
            .strip_prefix(DIGEST_PREFIX)
            .ok_or_else(|| fail("expected the prefix `blake3:`"))?;
        if hex_part.len() != 64 {
            return Err(fail("expected 64 hex digits"));
        }
        if !hex_part
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(fail("expected lowercase hex digits"));
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(hex_part, &mut out).map_err(|_| fail("expected hex digits"))?;
        Ok(Blake3Digest(out))
    }
}

impl serde::Serialize for Blake3Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Blake3Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_round_trips() {
        let d = Blake3Digest::of(b"hello");
        let text = d.to_string();
        assert_eq!(
            text,
            "blake3:ea8f163db38682925e4491c5e58d4bb3506ef8c14eb78a86e908c5624a67200f"
        );
        assert_eq!(text.parse::<Blake3Digest>().unwrap(), d);
    }

    #[test]
    fn parse_is_strict() {
        let good = Blake3Digest::of(b"x").to_string();
        for bad in [
            good.trim_start_matches("blake3:").to_owned(),
            good.to_uppercase(),
            format!("{good}0"),
            good[..good.len() - 1].to_owned(),
            good.replace("blake3:", "sha256:"),
            format!("{}g", &good[..good.len() - 1]),
            String::new(),
        ] {
            assert!(bad.parse::<Blake3Digest>().is_err(), "accepted `{bad}`");
        }
    }
}
