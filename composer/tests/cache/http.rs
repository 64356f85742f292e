//! Reading a cache over HTTP: the same layout served by a web server.
#![allow(clippy::unwrap_used)]

use crate::fixture::{Fixture, refused_at};
use crate::support::http::{Reply, Server};
use imago::store::Store;
use std::fs;
use std::path::Path;

/// Serves every file of the fixture's cache under `/c/`.
pub fn serve(f: &Fixture) -> Server {
    let server = Server::start();
    fn walk(server: &Server, root: &Path, dir: &Path) {
        for e in fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(server, root, &p);
            } else {
                let rel = p.strip_prefix(root).unwrap().display().to_string();
                server.route(&format!("/c/{rel}"), Reply::Ok(fs::read(&p).unwrap()));
            }
        }
    }
    walk(&server, &f.cache_dir(), &f.cache_dir());
    server
}

#[test]
fn a_closure_comes_from_an_http_cache() {
    let f = Fixture::new();
    f.push(&["--sign", &f.key("ci-1.secret")]);
    let server = serve(&f);
    let url = format!("{}/c/", server.url());
    let (dst, summary) = f.pull_new(&url);
    assert_eq!(summary["objects_copied"], 3, "{summary}");
    let store = Store::open(dst.path()).unwrap();
    let report = store.verify(false).unwrap();
    assert_eq!(report.checked, 3);
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

#[test]
fn a_transfer_that_breaks_off_once_is_unpacked_again_from_the_start() {
    let f = Fixture::new();
    f.push(&["--sign", &f.key("ci-1.secret")]);
    let server = serve(&f);
    let url = format!("{}/c", server.url());
    // The archive is unpacked as it arrives: the first body breaks off
    // halfway through, and the second attempt starts over in a fresh
    // staging directory.
    let archive = format!("/c/{}", f.info(&f.bin).archive);
    let bytes = fs::read(f.cache_dir().join(&f.info(&f.bin).archive)).unwrap();
    server.route(
        &archive,
        Reply::Once(
            Box::new(Reply::Truncated(bytes.clone(), bytes.len() / 2)),
            Box::new(Reply::Ok(bytes)),
        ),
    );
    let (dst, summary) = f.pull_new(&url);
    assert_eq!(summary["objects_copied"], 3, "{summary}");
    assert_eq!(server.hits(&archive), 2);
    let store = Store::open(dst.path()).unwrap();
    let report = store.verify(false).unwrap();
    assert_eq!(report.checked, 3);
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    // Nothing of the broken attempt is left behind.
    let tmp = dst.path().join(".imago/tmp");
    let left: Vec<_> = walk_files(&tmp);
    assert!(left.is_empty(), "left in {}: {left:?}", tmp.display());
}

/// The files (not directories) under `dir`, if it exists.
fn walk_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return files;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() && !p.is_symlink() {
            files.extend(walk_files(&p));
        } else {
            files.push(p);
        }
    }
    files
}

#[test]
fn broken_transfers_register_nothing() {
    let f = Fixture::new();
    f.push(&["--sign", &f.key("ci-1.secret")]);
    let server = serve(&f);
    let url = format!("{}/c", server.url());
    let trust = f.key("ci-1.public");
    let archive = format!("/c/{}", f.info(&f.bin).archive);
    let bytes = fs::read(f.cache_dir().join(&f.info(&f.bin).archive)).unwrap();

    // A body that breaks off every time: tried again, then refused.
    server.route(&archive, Reply::Truncated(bytes.clone(), bytes.len() / 2));
    refused_at(
        &f,
        &url,
        &["--trusted-public-key", &trust],
        "E1004",
        &[&url, f.bin.as_str()],
    );
    assert!(server.hits(&archive) > 1, "not retried");

    // A server error on one object.
    server.route(&archive, Reply::Status(500));
    refused_at(
        &f,
        &url,
        &["--trusted-public-key", &trust],
        "E1004",
        &["HTTP 500", f.bin.as_str()],
    );

    // Metadata that is not there is a missing object.
    server.route(
        &format!("/c/objects/{}.json", f.lib.hash_part()),
        Reply::Status(404),
    );
    refused_at(
        &f,
        &url,
        &["--trusted-public-key", &trust],
        "E1005",
        &[f.lib.as_str()],
    );
}
