//! `imago key generate`: the files, their modes and format, and refusing
//! to overwrite.

use crate::support::cli::{imago, stderr};
use imago::cache::{PublicKey, SecretKey};
use std::fs;
use std::os::unix::fs::PermissionsExt;

#[test]
fn generate_writes_a_private_secret_and_a_public_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let out = imago(&["key", "generate", "ci.example.com-1", "--dir", d]);
    assert!(out.status.success(), "{}", stderr(&out));
    let secret = dir.path().join("ci.example.com-1.secret");
    let public = dir.path().join("ci.example.com-1.public");
    let mode = |p: &std::path::Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&secret), 0o600);
    assert_eq!(
        mode(&public) & 0o077,
        mode(&public) & 0o044,
        "public is not writable by others"
    );
    // NAME:BASE64 of 64 and 32 bytes.
    let text = fs::read_to_string(&secret).unwrap();
    let (name, b64) = text.trim().split_once(':').unwrap();
    assert_eq!(name, "ci.example.com-1");
    assert_eq!(data_len(b64), 64);
    let text = fs::read_to_string(&public).unwrap();
    let (name, b64) = text.trim().split_once(':').unwrap();
    assert_eq!(name, "ci.example.com-1");
    assert_eq!(data_len(b64), 32);
    // The files are a pair: what the secret signs, the public verifies.
    let s = SecretKey::read(&secret).unwrap();
    let p = PublicKey::read(&public).unwrap();
    assert_eq!(s.public(), p);
    let sig = s.sign(b"message");
    let sig = sig.strip_prefix("ci.example.com-1:").unwrap();
    assert!(p.verifies(b"message", sig));
    assert!(!p.verifies(b"massage", sig));
}

fn data_len(b64: &str) -> usize {
    // Standard base64 with padding.
    b64.len() / 4 * 3 - b64.bytes().rev().take_while(|b| *b == b'=').count()
}

#[test]
fn generate_never_overwrites_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    assert!(
        imago(&["key", "generate", "k", "--dir", d])
            .status
            .success()
    );
    let before = fs::read(dir.path().join("k.secret")).unwrap();
    let out = imago(&["key", "generate", "k", "--dir", d]);
    assert!(!out.status.success());
    let text = stderr(&out);
    assert!(
        text.contains("error[E1003]") && text.contains("k.secret"),
        "{text}"
    );
    assert_eq!(fs::read(dir.path().join("k.secret")).unwrap(), before);
    // Only the public half present: still refused, and no secret written.
    fs::remove_file(dir.path().join("k.secret")).unwrap();
    let out = imago(&["key", "generate", "k", "--dir", d]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("k.public"), "{}", stderr(&out));
    assert!(!dir.path().join("k.secret").exists());
}

#[test]
fn bad_names_and_bad_key_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    for name in ["", "a/b", ".hidden", "a:b"] {
        let out = imago(&["key", "generate", name, "--dir", d]);
        assert!(!out.status.success(), "{name}");
        assert!(stderr(&out).contains("error[E1002]"), "{}", stderr(&out));
    }
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    let bad = dir.path().join("bad.public");
    for text in ["no colon", "k:not base64!", "k:AAAA"] {
        fs::write(&bad, text).unwrap();
        let err = PublicKey::read(&bad).unwrap_err();
        assert_eq!(err.code().0, "E1002", "{err}");
    }
}

/// The signed byte string and the signature format are a specification
/// (docs/cache.md, "What a signature covers"): a fixed key signs a fixed
/// fingerprint to the same text forever.
#[test]
fn the_fingerprint_and_its_signature_are_stable() {
    use imago::store::{Blake3Digest, StorePath};
    let digest: Blake3Digest =
        "blake3:ec9cdaf5f9df0f2c894e89d10e24961db8cd879c4386d7a4dd55757bbb969c9c"
            .parse()
            .unwrap();
    let lib = StorePath::from_digest(&digest, "hello").unwrap();
    let top: StorePath = "0c3s0000000000000000000000000000-top".parse().unwrap();
    let refs = [top.clone(), lib.clone()].into_iter().collect();
    let fp = imago::cache::fingerprint(&lib, &digest, 63, &Default::default());
    assert_eq!(
        fp,
        "1;/imago/store/xjfdmxgrvw7jr2afi78hw94n3nwcv1ww-hello;blake3:ec9cdaf5f9df0f2c894e89d10e24961db8cd879c4386d7a4dd55757bbb969c9c;63;"
    );
    let fp2 = imago::cache::fingerprint(&top, &digest, 7, &refs);
    assert!(
        fp2.ends_with(";7;/imago/store/0c3s0000000000000000000000000000-top,/imago/store/xjfdmxgrvw7jr2afi78hw94n3nwcv1ww-hello"),
        "{fp2}"
    );
    // A fixed key: the seed 0, 1, …, 31.
    let seed: [u8; 32] = std::array::from_fn(|i| i as u8);
    let pair = ed25519_dalek::SigningKey::from_bytes(&seed).to_keypair_bytes();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fixed.secret");
    let text = format!("fixed:{}\n", data_encoding::BASE64.encode(&pair));
    fs::write(&file, text).unwrap();
    let key = SecretKey::read(&file).unwrap();
    let sig = key.sign(fp.as_bytes());
    assert_eq!(
        sig, GOLDEN_SIGNATURE,
        "the signature of the fingerprint changed"
    );
    let raw = sig.strip_prefix("fixed:").unwrap();
    assert!(key.public().verifies(fp.as_bytes(), raw));
    assert!(!key.public().verifies(fp2.as_bytes(), raw));
}

/// Checked with an independent implementation (Python's `cryptography`:
/// `Ed25519PrivateKey.from_private_bytes(bytes(range(32))).sign(fp)`).
const GOLDEN_SIGNATURE: &str = "fixed:f3zGqA0foSjAR+mvFPT1qHzFmlhIryOVYCCe2fdEc3X7nJHv3o6r20G0/7vuGx32deoHTzJYepXsFx9o21ZTCA==";
