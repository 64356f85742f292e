//! Closure export and import: round trips, and every way a hostile or broken
//! archive must be refused without registering anything
//! (reliability.md 1–15), and that archives carry no owner (case 28).

// Test helpers outside #[test] functions panic on failure too.
#![allow(clippy::unwrap_used)]

use crate::support::store as store_support;

use imago::store::archive::tar::{Reader, Writer};
use imago::store::archive::{MANIFEST_NAME, Manifest};
use imago::store::{ImportLimits, Store, StorePath};
use std::fs;
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::Path;
use store_support::{add_closure, temp_leftovers, top_level_objects};
use tempfile::TempDir;

/// A source store with a three-object closure: lib ← bin ← top
/// (`add_closure`).
struct Source {
    _dir: TempDir,
    store: Store,
    lib: StorePath,
    bin: StorePath,
    top: StorePath,
}

fn source() -> Source {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let [lib, bin, top] = add_closure(&store);
    Source {
        _dir: dir,
        store,
        lib,
        bin,
        top,
    }
}

fn export(src: &Source, paths: &[StorePath]) -> Vec<u8> {
    let mut out = Vec::new();
    src.store.export(paths, &mut out).unwrap();
    out
}

/// The entries of an archive: (header, data).
fn entries(archive: &[u8]) -> Vec<(imago::store::archive::tar::Header, Vec<u8>)> {
    let tar = zstd::decode_all(archive).unwrap();
    let mut r = Reader::new(tar.as_slice());
    let mut out = Vec::new();
    while let Some(h) = r.next_entry().unwrap() {
        let mut data = Vec::new();
        r.copy_data(&mut data).unwrap();
        out.push((h, data));
    }
    out
}

fn manifest_of(archive: &[u8]) -> Manifest {
    serde_json::from_slice(&entries(archive)[0].1).unwrap()
}

/// Writes an archive from a manifest and a body.
fn craft(manifest: &Manifest, body: impl FnOnce(&mut Writer<&mut Vec<u8>>)) -> Vec<u8> {
    let mut tar = Vec::new();
    let mut w = Writer::new(&mut tar);
    let json = serde_json::to_vec(manifest).unwrap();
    w.file(
        MANIFEST_NAME.as_bytes(),
        false,
        json.len() as u64,
        &mut json.as_slice(),
    )
    .unwrap();
    body(&mut w);
    w.finish().unwrap();
    zstd::encode_all(tar.as_slice(), 1).unwrap()
}

/// Re-writes an export's entries (after the manifest) into a crafted archive.
fn rewrite(
    archive: &[u8],
    manifest: &Manifest,
    mut edit: impl FnMut(&mut imago::store::archive::tar::Header, &mut Vec<u8>) -> bool,
) -> Vec<u8> {
    let all = entries(archive);
    craft(manifest, |w| {
        for (mut h, mut data) in all.into_iter().skip(1) {
            if !edit(&mut h, &mut data) {
                continue;
            }
            write_entry(w, &h, &data);
        }
    })
}

fn write_entry(w: &mut Writer<&mut Vec<u8>>, h: &imago::store::archive::tar::Header, data: &[u8]) {
    use imago::store::archive::tar::Kind;
    match h.kind {
        Kind::Dir => w.dir(h.path.strip_suffix(b"/").unwrap_or(&h.path)).unwrap(),
        Kind::Symlink => w.symlink(&h.path, &h.link).unwrap(),
        Kind::File { executable } => w
            .file(&h.path, executable, data.len() as u64, &mut &data[..])
            .unwrap(),
    }
}

/// A fresh target store.
fn target() -> (TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    (dir, store)
}

/// Imports `archive` into a fresh store, expecting an error that contains
/// every string of `want`; checks that nothing was registered or left.
fn refused(archive: &[u8], want: &[&str]) -> String {
    refused_with(archive, ImportLimits::default(), want)
}

fn refused_with(archive: &[u8], limits: ImportLimits, want: &[&str]) -> String {
    let (dir, store) = target();
    let err = store
        .import_with_limits(archive, limits)
        .expect_err("import should fail");
    let text = format!("{:#}", anyhow::Error::from(err));
    for w in want {
        assert!(text.contains(w), "`{text}` lacks `{w}`");
    }
    assert!(
        top_level_objects(dir.path()).is_empty(),
        "objects left: {:?}",
        top_level_objects(dir.path())
    );
    assert_eq!(
        store.verify(false).unwrap().checked,
        0,
        "something was registered"
    );
    assert!(
        temp_leftovers(dir.path()).is_empty(),
        "{:?}",
        temp_leftovers(dir.path())
    );
    // Nothing escaped next to the store either.
    let parent_entries: Vec<_> = fs::read_dir(dir.path().parent().unwrap().join("x"))
        .map(|d| d.count())
        .into_iter()
        .collect();
    assert!(parent_entries.is_empty());
    text
}

#[test]
fn round_trip_into_a_second_store() {
    let src = source();
    let archive = export(&src, std::slice::from_ref(&src.top));
    let m = manifest_of(&archive);
    let order: Vec<_> = m.objects.iter().map(|o| o.path.clone()).collect();
    assert_eq!(
        order,
        vec![src.lib.clone(), src.bin.clone(), src.top.clone()]
    );

    let (_dir, dst) = target();
    let imported = dst.import(archive.as_slice()).unwrap();
    assert_eq!(imported, order);
    for p in &order {
        let a = src.store.info(p).unwrap().unwrap();
        let b = dst.info(p).unwrap().unwrap();
        assert_eq!(
            (a.digest, a.size, &a.references),
            (b.digest, b.size, &b.references)
        );
    }
    assert_eq!(
        fs::read(dst.physical(&src.bin).join("m")).unwrap(),
        b"lower".to_vec()
    );
    assert_eq!(
        fs::read_link(dst.physical(&src.bin).join("link")).unwrap(),
        Path::new("bin/tool")
    );
    let report = dst.verify(false).unwrap();
    assert_eq!(report.checked, 3);
    assert!(report.problems.is_empty());
    // Importing again is harmless.
    assert_eq!(dst.import(archive.as_slice()).unwrap(), order);
    // A partial closure onto a store that already has the rest works too.
    let (_d2, dst2) = target();
    dst2.import(export(&src, std::slice::from_ref(&src.lib)).as_slice())
        .unwrap();
    dst2.import(archive.as_slice()).unwrap();
    assert_eq!(dst2.verify(false).unwrap().checked, 3);
}

#[test]
fn a_tampered_byte_is_a_hash_mismatch_naming_the_object() {
    let src = source();
    let archive = export(&src, std::slice::from_ref(&src.top));
    let m = manifest_of(&archive);
    let bad = rewrite(&archive, &m, |h, data| {
        if h.path
            == src
                .bin
                .as_str()
                .as_bytes()
                .iter()
                .chain(b"/M")
                .copied()
                .collect::<Vec<_>>()
        {
            data[0] ^= 1;
        }
        true
    });
    let text = refused(&bad, &["hash mismatch", src.bin.as_str()]);
    assert!(text.contains(&m.objects[1].digest.to_string()), "{text}");
}

#[test]
fn a_truncated_stream_is_refused() {
    let src = source();
    let archive = export(&src, std::slice::from_ref(&src.top));
    for cut in [0, 10, archive.len() / 2, archive.len() - 1] {
        refused(&archive[..cut], &[]);
    }
    // Truncated inside the tar, with a valid zstd frame.
    let tar = zstd::decode_all(archive.as_slice()).unwrap();
    let cut = zstd::encode_all(&tar[..tar.len() - 1100], 1).unwrap();
    refused(&cut, &["truncated"]);
}

#[test]
fn trailing_garbage_and_bad_padding_are_refused() {
    let src = source();
    let archive = export(&src, std::slice::from_ref(&src.lib));
    let mut tar = zstd::decode_all(archive.as_slice()).unwrap();
    let mut garbage = archive.clone();
    garbage.extend_from_slice(b"garbage after the frame");
    refused(&garbage, &[]);
    let mut inner = tar.clone();
    inner.extend_from_slice(b"junk");
    refused(
        &zstd::encode_all(inner.as_slice(), 1).unwrap(),
        &["trailing garbage"],
    );
    // The lib file's data starts at block 3 (manifest header, manifest data
    // fits in one block, lib header); "library contents" is 16 bytes, so its
    // padding follows.
    let data_start = tar
        .windows(16)
        .position(|w| w == b"library contents")
        .unwrap();
    tar[data_start + 20] = 1;
    refused(
        &zstd::encode_all(tar.as_slice(), 1).unwrap(),
        &["non-zero padding"],
    );
}

#[test]
fn a_manifest_that_lies_about_references_is_refused() {
    let src = source();
    let archive = export(&src, std::slice::from_ref(&src.top));
    let m = manifest_of(&archive);
    // Hides bin's reference to lib.
    let mut hiding = m.clone();
    hiding.objects[1].references.clear();
    let text = refused(
        &rewrite(&archive, &hiding, |_, _| true),
        &["lies about its references", src.bin.as_str()],
    );
    assert!(text.contains(src.lib.as_str()), "{text}");
    // Claims a reference that does not occur.
    let mut claiming = m.clone();
    claiming.objects[2].references.insert(src.lib.clone());
    refused(
        &rewrite(&archive, &claiming, |_, _| true),
        &["lies about its references", src.top.as_str()],
    );
    // A wrong digest.
    let mut digest = m.clone();
    digest.objects[0].digest = m.objects[1].digest;
    refused(
        &rewrite(&archive, &digest, |_, _| true),
        &["hash mismatch", src.lib.as_str()],
    );
    // A reference that is nowhere.
    let only_bin = Manifest {
        version: 1,
        objects: vec![m.objects[1].clone()],
    };
    let bin_prefix = src.bin.as_str().as_bytes().to_vec();
    refused(
        &rewrite(&archive, &only_bin, |h, _| h.path.starts_with(&bin_prefix)),
        &["neither in the archive nor in this store", src.lib.as_str()],
    );
}

#[test]
fn manifest_problems_are_refused() {
    let src = source();
    let archive = export(&src, std::slice::from_ref(&src.top));
    let m = manifest_of(&archive);
    // Out of dependency order.
    let mut reordered = m.clone();
    reordered.objects.swap(0, 1);
    refused(
        &rewrite(&archive, &reordered, |_, _| true),
        &["dependency order"],
    );
    // An object the archive does not contain.
    let lib_prefix = src.lib.as_str().as_bytes().to_vec();
    refused(
        &rewrite(&archive, &m, |h, _| !h.path.starts_with(&lib_prefix)),
        &[src.bin.as_str()],
    );
    // An object the manifest does not list.
    let mut fewer = m.clone();
    fewer.objects.pop();
    refused(
        &rewrite(&archive, &fewer, |_, _| true),
        &["not part of any object"],
    );
    // Listed twice.
    let mut twice = m.clone();
    twice.objects.push(m.objects[0].clone());
    refused(&rewrite(&archive, &twice, |_, _| true), &["listed twice"]);
    // Not JSON / unknown fields / wrong version / not first.
    let mut tar = Vec::new();
    let mut w = Writer::new(&mut tar);
    w.file(MANIFEST_NAME.as_bytes(), false, 5, &mut &b"{oops"[..])
        .unwrap();
    w.finish().unwrap();
    refused(
        &zstd::encode_all(tar.as_slice(), 1).unwrap(),
        &["manifest is invalid"],
    );
    let mut tar = Vec::new();
    let mut w = Writer::new(&mut tar);
    let json = br#"{"version":1,"objects":[],"extra":1}"#;
    w.file(
        MANIFEST_NAME.as_bytes(),
        false,
        json.len() as u64,
        &mut &json[..],
    )
    .unwrap();
    w.finish().unwrap();
    refused(
        &zstd::encode_all(tar.as_slice(), 1).unwrap(),
        &["unknown field"],
    );
    let mut v2 = m.clone();
    v2.version = 2;
    refused(&rewrite(&archive, &v2, |_, _| true), &["version 2"]);
    let mut tar = Vec::new();
    let mut w = Writer::new(&mut tar);
    w.dir(b"x").unwrap();
    w.finish().unwrap();
    refused(
        &zstd::encode_all(tar.as_slice(), 1).unwrap(),
        &["first entry"],
    );
}

/// A manifest with just `bin` (which references lib, pre-imported into
/// nothing: hostile entry tests fail before references are checked).
fn bin_only(src: &Source) -> (Manifest, Vec<u8>) {
    let archive = export(src, std::slice::from_ref(&src.bin));
    let m = manifest_of(&archive);
    (m, archive)
}

/// A crafted archive: the bin object's root entry, then `hostile`.
fn hostile(src: &Source, hostile: impl FnOnce(&mut Writer<&mut Vec<u8>>, &str)) -> Vec<u8> {
    let (m, _) = bin_only(src);
    let root = src.bin.as_str().to_owned();
    craft(&m, |w| {
        w.file(
            src.lib.as_str().as_bytes(),
            false,
            16,
            &mut &b"library contents"[..],
        )
        .unwrap();
        w.dir(root.as_bytes()).unwrap();
        hostile(w, &root);
    })
}

#[test]
fn dot_dot_and_absolute_entries_are_refused() {
    let src = source();
    for (path, want) in [
        ("{}/../x", "`.` and `..`"),
        ("{}/bin/../../x", "`.` and `..`"),
        ("{}/./x", "`.` and `..`"),
        ("{}//x", "empty path component"),
        ("/etc/passwd", "absolute"),
        ("../x", "`.` and `..`"),
    ] {
        let archive = hostile(&src, |w, root| {
            w.dir(format!("{root}/bin").as_bytes()).unwrap();
            let p = path.replace("{}", root);
            w.file(p.as_bytes(), false, 1, &mut &b"x"[..]).unwrap();
        });
        refused(&archive, &[want, &path.replace("{}", src.bin.as_str())]);
    }
}

#[test]
fn nul_in_a_name_is_refused() {
    let src = source();
    let archive = hostile(&src, |w, root| {
        // Longer than 100 bytes, so the name travels in a PAX record intact.
        let p = format!("{root}/{}\0x", "n".repeat(100));
        w.file(p.as_bytes(), false, 1, &mut &b"x"[..]).unwrap();
    });
    refused(&archive, &["NUL"]);
}

#[test]
fn symlinks_are_never_parents() {
    let src = source();
    let outside = tempfile::tempdir().unwrap();
    for target in ["..", "/tmp", outside.path().to_str().unwrap()] {
        let archive = hostile(&src, |w, root| {
            w.symlink(format!("{root}/l").as_bytes(), target.as_bytes())
                .unwrap();
            w.file(format!("{root}/l/x").as_bytes(), false, 1, &mut &b"x"[..])
                .unwrap();
        });
        refused(&archive, &["parent is not a directory", "/l/x"]);
        // A symlink, then a directory entry of the same name.
        let archive = hostile(&src, |w, root| {
            w.symlink(format!("{root}/d").as_bytes(), target.as_bytes())
                .unwrap();
            w.dir(format!("{root}/d").as_bytes()).unwrap();
        });
        refused(&archive, &["duplicate entry", "/d"]);
    }
    assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
}

#[test]
fn duplicates_are_refused_never_overwritten() {
    let src = source();
    let archive = hostile(&src, |w, root| {
        w.file(format!("{root}/f").as_bytes(), false, 1, &mut &b"a"[..])
            .unwrap();
        w.file(format!("{root}/f").as_bytes(), false, 1, &mut &b"b"[..])
            .unwrap();
    });
    refused(&archive, &["duplicate entry", "/f"]);
    let archive = hostile(&src, |w, root| {
        w.symlink(format!("{root}/f").as_bytes(), b"/etc/passwd")
            .unwrap();
        w.file(format!("{root}/f").as_bytes(), false, 1, &mut &b"b"[..])
            .unwrap();
    });
    refused(&archive, &["duplicate entry"]);
    let archive = hostile(&src, |w, root| {
        w.dir(root.as_bytes()).unwrap();
    });
    refused(&archive, &["duplicate entry"]);
}

/// Names that differ only in Unicode normalization collide on file systems
/// that normalize: refused, naming both (catalogue case 7).
#[test]
fn names_equal_under_unicode_normalization_are_refused() {
    let src = source();
    let archive = hostile(&src, |w, root| {
        w.file(
            format!("{root}/caf\u{e9}").as_bytes(),
            false,
            1,
            &mut &b"a"[..],
        )
        .unwrap();
        w.file(
            format!("{root}/cafe\u{301}").as_bytes(),
            false,
            1,
            &mut &b"b"[..],
        )
        .unwrap();
    });
    refused(
        &archive,
        &["only in Unicode normalization", "caf\u{e9}", "cafe\u{301}"],
    );
}

/// Builds an archive with the tar crate, for entry types our writer never
/// produces.
fn with_tar_crate(src: &Source, add: impl FnOnce(&mut tar::Builder<Vec<u8>>, &str)) -> Vec<u8> {
    let (m, _) = bin_only(src);
    let json = serde_json::to_vec(&m).unwrap();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(json.len() as u64);
    h.set_mode(0o444);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, MANIFEST_NAME, json.as_slice())
        .unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_size(16);
    h.set_mode(0o444);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, src.lib.as_str(), &b"library contents"[..])
        .unwrap();
    let root = src.bin.as_str().to_owned();
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o555);
    h.set_size(0);
    b.append_data(&mut h, format!("{root}/"), std::io::empty())
        .unwrap();
    add(&mut b, &root);
    let tar = b.into_inner().unwrap();
    zstd::encode_all(tar.as_slice(), 1).unwrap()
}

#[test]
fn hard_links_devices_and_fifos_are_refused() {
    let src = source();
    for (kind, want) in [
        (tar::EntryType::Link, "hard link"),
        (tar::EntryType::Char, "character device"),
        (tar::EntryType::Block, "block device"),
        (tar::EntryType::Fifo, "FIFO"),
        (tar::EntryType::XGlobalHeader, "global PAX header"),
        (tar::EntryType::GNULongName, "GNU long name"),
    ] {
        let archive = with_tar_crate(&src, |b, root| {
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(kind);
            h.set_size(0);
            h.set_mode(0o644);
            if kind == tar::EntryType::Link {
                h.set_link_name("/etc/shadow").unwrap();
            }
            b.append_data(&mut h, format!("{root}/x"), std::io::empty())
                .unwrap();
        });
        refused(&archive, &[want, "/x"]);
    }
}

#[test]
fn the_pax_size_counts_against_quotas() {
    let src = source();
    let archive = with_tar_crate(&src, |b, root| {
        b.append_pax_extensions([("size", &b"50000000"[..])])
            .unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(1);
        h.set_mode(0o644);
        b.append_data(&mut h, format!("{root}/x"), &b"x"[..])
            .unwrap();
    });
    let limits = ImportLimits {
        max_bytes: 1 << 20,
        ..ImportLimits::default()
    };
    refused_with(&archive, limits, &["limit of 1048576 bytes"]);
    // Without a quota in the way, the stream is short of what PAX promised.
    refused(&archive, &["truncated"]);
}

#[test]
fn deep_nesting_is_a_bounded_error() {
    let src = source();
    let archive = hostile(&src, |w, root| {
        let deep = format!("{root}/{}", vec!["d"; 100_000].join("/"));
        w.dir(deep.as_bytes()).unwrap();
    });
    refused(&archive, &["nested deeper than 256"]);
}

#[test]
fn decompression_bombs_hit_the_caps() {
    let src = source();
    // Highly compressible: 200 MB of zeros.
    let archive = hostile(&src, |w, root| {
        let size = 200u64 << 20;
        w.file(
            format!("{root}/zeros").as_bytes(),
            false,
            size,
            &mut std::io::repeat(0).take_n(size),
        )
        .unwrap();
    });
    assert!(archive.len() < 1 << 20, "{}", archive.len());
    let limits = ImportLimits {
        max_bytes: 100 << 20,
        ..ImportLimits::default()
    };
    refused_with(&archive, limits, &["limit of 104857600 bytes"]);
    // Very many entries.
    let archive = hostile(&src, |w, root| {
        for i in 0..5000 {
            w.file(
                format!("{root}/f{i}").as_bytes(),
                false,
                0,
                &mut std::io::empty(),
            )
            .unwrap();
        }
    });
    let limits = ImportLimits {
        max_entries: 1000,
        ..ImportLimits::default()
    };
    refused_with(&archive, limits, &["limit of 1000 entries"]);
}

trait TakeN: std::io::Read + Sized {
    fn take_n(self, n: u64) -> std::io::Take<Self> {
        std::io::Read::take(self, n)
    }
}
impl<R: std::io::Read> TakeN for R {}

#[test]
fn import_replaces_an_unregistered_symlink_at_the_destination_without_following_it() {
    let src = source();
    let archive = export(&src, std::slice::from_ref(&src.lib));
    let (dir, dst) = target();
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("keep"), b"keep").unwrap();
    symlink(outside.path(), dir.path().join(src.lib.as_str())).unwrap();
    drop(dst);
    // Reopening removes the unregistered leftover already; plant it again
    // while the store is open to exercise the import path itself.
    let dst = Store::open(dir.path()).unwrap();
    symlink(outside.path(), dir.path().join(src.lib.as_str())).unwrap();
    dst.import(archive.as_slice()).unwrap();
    assert!(
        fs::symlink_metadata(dst.physical(&src.lib))
            .unwrap()
            .is_file()
    );
    assert_eq!(fs::read(outside.path().join("keep")).unwrap(), b"keep");
    assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 1);
    assert!(dst.verify(false).unwrap().problems.is_empty());
}

#[test]
fn import_never_overwrites_a_valid_object() {
    let src = source();
    let archive = export(&src, std::slice::from_ref(&src.lib));
    let (_dir, dst) = target();
    dst.import(archive.as_slice()).unwrap();
    let before = fs::metadata(dst.physical(&src.lib)).unwrap();
    dst.import(archive.as_slice()).unwrap();
    let after = fs::metadata(dst.physical(&src.lib)).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(before.ino(), after.ino());
}

/// The uncompressed tar stream `tar` with every header claiming `uid` (and
/// gid) and the names "mallory", checksums fixed.
fn claim_owner(tar: &[u8], uid: u32) -> Vec<u8> {
    let mut out = tar.to_vec();
    let mut at = 0;
    while at + 512 <= out.len() && out[at..at + 512].iter().any(|b| *b != 0) {
        let h = &mut out[at..at + 512];
        let size_text = String::from_utf8_lossy(&h[124..135]).trim().to_owned();
        let size = u64::from_str_radix(&size_text, 8).unwrap() as usize;
        h[108..116].copy_from_slice(format!("{uid:07o}\0").as_bytes());
        h[116..124].copy_from_slice(format!("{uid:07o}\0").as_bytes());
        for field in [265..297, 297..329] {
            h[field.clone()].fill(0);
            h[field.start..field.start + 7].copy_from_slice(b"mallory");
        }
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        at += 512 + size.div_ceil(512) * 512;
    }
    out
}

/// Reliability catalogue case 28 (a closure moved by an ordinary user): an
/// export of a store whose files belong to another uid records no owner
/// (uid/gid 0, no user or group names, read with the `tar` crate), and
/// import never takes an owner from the stream, even one it claims: every
/// imported file is the importing user's (root's, run as root).
#[test]
fn exports_record_no_owner_and_imports_restore_none() {
    let src = source();
    let me = rustix::process::geteuid().as_raw();
    if me == 0 {
        for e in walkdir::WalkDir::new(src._dir.path()) {
            std::os::unix::fs::lchown(e.unwrap().path(), Some(100_001), Some(100_001)).unwrap();
        }
    }
    let archive = export(&src, std::slice::from_ref(&src.top));
    let tar_bytes = zstd::decode_all(archive.as_slice()).unwrap();
    let mut entries = 0;
    for e in tar::Archive::new(tar_bytes.as_slice()).entries().unwrap() {
        let e = e.unwrap();
        let h = e.header();
        let path = e.path().unwrap().display().to_string();
        assert_eq!((h.uid().unwrap(), h.gid().unwrap()), (0, 0), "{path}");
        assert_eq!(h.username_bytes().unwrap_or_default(), b"", "{path}");
        assert_eq!(h.groupname_bytes().unwrap_or_default(), b"", "{path}");
        entries += 1;
    }
    assert!(entries >= 9, "{entries} entries");

    let claimed = zstd::encode_all(claim_owner(&tar_bytes, 4242).as_slice(), 1).unwrap();
    for archive in [archive, claimed] {
        let (dir, dst) = target();
        dst.import(archive.as_slice()).unwrap();
        for e in walkdir::WalkDir::new(dir.path()) {
            let e = e.unwrap();
            let m = e.path().symlink_metadata().unwrap();
            assert_eq!(m.uid(), me, "{}", e.path().display());
            if me == 0 {
                assert_eq!(m.gid(), 0, "{}", e.path().display());
            }
        }
    }
}
