//! Every object without a trusted signature, or whose archive or metadata
//! do not match, is refused with a clear error, and nothing is registered.
#![allow(clippy::unwrap_used)]

use crate::fixture::{Fixture, refused, refused_trusting};
use imago::cache::SecretKey;
use imago::store::Blake3Digest;
use std::fs;

#[test]
fn an_unsigned_object_is_refused() {
    let f = Fixture::new();
    f.push(&[]);
    let text = refused_trusting(
        &f,
        "E1006",
        &[f.top.as_str(), &f.cache_url(), "no signature"],
    );
    assert!(text.contains("no signature"), "{text}");
}

#[test]
fn no_trusted_key_accepts_nothing() {
    let f = Fixture::new();
    f.push(&["--sign", &f.key("ci-1.secret")]);
    refused(
        &f,
        &[],
        "E1006",
        &[f.top.as_str(), "no public key is trusted"],
    );
}

#[test]
fn a_signature_by_an_untrusted_key_is_refused() {
    let f = Fixture::new();
    f.push(&["--sign", &f.key("ci-1.secret")]);
    f.generate_key("other", &f.keys());
    refused(
        &f,
        &["--trusted-public-key", &f.key("other.public")],
        "E1006",
        &[f.top.as_str(), &f.cache_url(), "not trusted: ci-1"],
    );
    // A different key under the trusted name does not verify.
    let impostor = f.dir.path().join("impostor");
    fs::create_dir(&impostor).unwrap();
    f.generate_key("ci-1", &impostor);
    let trust = impostor.join("ci-1.public").display().to_string();
    refused(
        &f,
        &["--trusted-public-key", &trust],
        "E1006",
        &[f.top.as_str(), "`ci-1` does not verify"],
    );
}

#[test]
fn changed_metadata_no_longer_verifies() {
    let f = Fixture::new();
    f.push(&["--sign", &f.key("ci-1.secret")]);
    let mut info = f.info(&f.top);
    info.object.size += 1;
    f.write_info(&info);
    refused_trusting(&f, "E1006", &[f.top.as_str(), "does not verify"]);
}

/// Re-signs the metadata of `path` after `edit`, as a cache holding the
/// trusted key could.
fn resign(
    f: &Fixture,
    path: &imago::store::StorePath,
    edit: impl FnOnce(&mut imago::cache::ObjectInfo),
) {
    let key = SecretKey::read(&f.dir.path().join("ci-1.secret")).unwrap();
    let mut info = f.info(path);
    edit(&mut info);
    info.signatures.clear();
    info.sign(&key);
    f.write_info(&info);
}

/// Replaces the archive of `path` by `bytes`, and makes the (unsigned)
/// archive fields of its metadata match them.
fn replace_archive(f: &Fixture, path: &imago::store::StorePath, bytes: &[u8]) {
    let mut info = f.info(path);
    let digest = Blake3Digest::of(bytes);
    let name = format!("archives/{}.tar.zst", digest.to_hex());
    fs::write(f.cache_dir().join(&name), bytes).unwrap();
    info.archive = name;
    info.archive_digest = digest;
    info.archive_size = bytes.len() as u64;
    f.write_info(&info);
}

#[test]
fn an_archive_whose_contents_do_not_hash_to_the_store_name_is_refused() {
    let f = Fixture::new();
    f.push(&["--sign", &f.key("ci-1.secret")]);
    let info = f.info(&f.lib);
    let archive = fs::read(f.cache_dir().join(&info.archive)).unwrap();
    let mut tar = zstd::decode_all(archive.as_slice()).unwrap();
    let at = tar
        .windows(16)
        .position(|w| w == b"library contents")
        .unwrap();
    tar[at] = b'L';
    replace_archive(&f, &f.lib, &zstd::encode_all(tar.as_slice(), 1).unwrap());
    refused_trusting(
        &f,
        "E0516",
        &[f.lib.as_str(), &f.cache_url(), "hash mismatch"],
    );
}

#[test]
fn archive_bytes_that_differ_from_the_metadata_are_refused() {
    let f = Fixture::new();
    f.push(&["--sign", &f.key("ci-1.secret")]);
    let info = f.info(&f.bin);
    let file = f.cache_dir().join(&info.archive);
    let mut bytes = fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&file, &bytes).unwrap();
    refused_trusting(&f, "E1007", &[f.bin.as_str(), &info.archive, "hashes to"]);
}

#[test]
fn a_truncated_archive_is_refused() {
    let f = Fixture::new();
    f.push(&["--sign", &f.key("ci-1.secret")]);
    let info = f.info(&f.bin);
    let file = f.cache_dir().join(&info.archive);
    let bytes = fs::read(&file).unwrap();
    fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    refused_trusting(&f, "E1007", &[f.bin.as_str(), "truncated"]);
    // The same truncated archive with metadata to match: the import finds it.
    replace_archive(&f, &f.bin, &bytes[..bytes.len() / 2]);
    refused_trusting(&f, "E0515", &[f.bin.as_str(), "truncated"]);
}

#[test]
fn metadata_that_invents_a_reference_is_refused() {
    let f = Fixture::new();
    f.push(&["--sign", &f.key("ci-1.secret")]);
    resign(&f, &f.top, |info| {
        info.object.references.insert(f.lib.clone());
    });
    refused_trusting(&f, "E1007", &[f.top.as_str(), "the metadata says"]);
}

#[test]
fn metadata_that_hides_a_reference_is_refused() {
    let f = Fixture::new();
    f.push(&["--sign", &f.key("ci-1.secret")]);
    resign(&f, &f.bin, |info| {
        info.object.references.clear();
    });
    refused_trusting(&f, "E0516", &[f.bin.as_str(), f.lib.as_str()]);
}

#[test]
fn a_missing_object_is_refused_before_anything_travels() {
    let f = Fixture::new();
    f.push(&["--sign", &f.key("ci-1.secret")]);
    fs::remove_file(f.info_file(&f.lib)).unwrap();
    refused_trusting(&f, "E1005", &[f.lib.as_str(), &f.cache_url()]);
}

#[test]
fn an_unreachable_http_cache_is_named_when_written() {
    let f = Fixture::new();
    let src = f.dir.path().join("src");
    let top = f.top.to_absolute();
    let url = "http://127.0.0.1:9/c";
    let out = f.imago(&["--store", src.to_str().unwrap(), "copy", "--to", url, &top]);
    assert!(!out.status.success());
    let text = crate::support::cli::stderr(&out);
    assert!(
        text.contains("error[E1004]") && text.contains(url),
        "{text}"
    );
}
