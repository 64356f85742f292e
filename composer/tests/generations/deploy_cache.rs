//! `imago deploy --target-substituter`: the "machine" (the stand-in for
//! ssh of `deploy.rs`, which runs the remote script locally) fetches the
//! closure's objects from a static HTTP cache instead of receiving them
//! over the connection; what the cache lacks, what differs from the
//! deployer's own archive, and what the machine fails to fetch goes over
//! ssh. Also the deployer's side alone: archives are deterministic, and an
//! archive whose digest is not the store's own is never offered.

#![allow(clippy::unwrap_used)]

use super::deploy::{Setup, same_tree, setup};
use crate::support::http::{Reply, Server};
use imago::remote::{CacheArchive, Plan, TargetCacheUrl, TargetSubstituter, local_archive};
use imago::store::{Blake3Digest, Store};
use serde_json::Value;
use std::fs;
use std::path::Path;
use std::process::{Command, Output};

/// Copies the system's closure into a directory cache (`imago copy --to`)
/// and serves it (metadata and archives) with the test HTTP server.
fn cache(s: &Setup) -> Server {
    let dir = s.path("cache");
    let out = Command::new(env!("CARGO_BIN_EXE_imago"))
        .arg("--store")
        .arg(s.path("store"))
        .args(["copy", "--to", &format!("file://{}", dir.display())])
        .arg(s.top.to_absolute())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let server = Server::start();
    for entry in walkdir::WalkDir::new(&dir) {
        let entry = entry.unwrap();
        if entry.file_type().is_file() {
            let rel = entry.path().strip_prefix(&dir).unwrap();
            server.route(
                &format!("/{}", rel.display()),
                Reply::Ok(fs::read(entry.path()).unwrap()),
            );
        }
    }
    server
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The cache's archive file of an object (from its metadata).
fn archive_of(s: &Setup, object: &imago::store::StorePath) -> String {
    let info: Value = serde_json::from_slice(
        &fs::read(
            s.path("cache")
                .join(format!("objects/{}.json", object.hash_part())),
        )
        .unwrap(),
    )
    .unwrap();
    info["archive"].as_str().unwrap().to_owned()
}

/// `imago deploy --json` to the stand-in machine.
fn deploy(s: &Setup, env_path: Option<&Path>, extra: &[&str]) -> Output {
    deploy_with(s, env_path, &[&["--json"], extra].concat())
}

fn deploy_with(s: &Setup, env_path: Option<&Path>, extra: &[&str]) -> Output {
    let mut cmd = s.deploy_command(extra);
    if let Some(path) = env_path {
        cmd.env("PATH", path);
    }
    cmd.output().unwrap()
}

fn host(out: &Output) -> Value {
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", text(&out.stdout)));
    doc["hosts"][0].clone()
}

/// Both objects in the machine's store, whole, and nothing else (no
/// temporary directory).
fn arrived(s: &Setup) {
    let mut names: Vec<String> = fs::read_dir(s.path("remote"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut want = vec![s.dep.to_string(), s.top.to_string()];
    want.sort();
    assert_eq!(names, want, "no temporary directory is left");
    for p in [&s.dep, &s.top] {
        same_tree(
            &s.path("store").join(p.to_string()),
            &s.path("remote").join(p.to_string()),
        );
    }
}

#[test]
fn the_machine_fetches_the_closure_from_the_cache() {
    let s = setup();
    let server = cache(&s);
    let out = deploy(&s, None, &["--target-substituter", &server.url()]);
    let host = host(&out);
    assert_eq!(host["result"], "done", "{host}");
    assert_eq!(host["copied"], 2, "{host}");
    let transfer = &host["transfer"];
    assert_eq!(transfer["cache"]["objects"], 2, "{host}");
    assert_eq!(transfer["ssh"]["objects"], 0, "{host}");
    assert_eq!(transfer["ssh"]["bytes"], 0, "{host}");
    assert!(transfer["cache"]["bytes"].as_u64().unwrap() > 0, "{host}");
    assert_eq!(transfer["fallbacks"], Value::Array(vec![]), "{host}");
    for p in [&s.dep, &s.top] {
        assert_eq!(server.hits(&format!("/{}", archive_of(&s, p))), 1);
    }
    arrived(&s);
    assert_eq!(fs::read_to_string(s.path("marker")).unwrap(), "switch\n");

    // Without the flag, as before: everything over ssh.
    let s = setup();
    let host = self::host(&deploy(&s, None, &[]));
    assert_eq!(host["transfer"]["ssh"]["objects"], 2, "{host}");
    assert_eq!(host["transfer"]["cache"]["objects"], 0, "{host}");
    arrived(&s);
}

/// A corrupted archive in the cache: the machine refuses it (its SHA-256
/// is not the deployer's) and that object comes over ssh; an object the
/// cache lacks too.
#[test]
fn what_the_machine_cannot_fetch_comes_over_ssh() {
    let s = setup();
    let server = cache(&s);
    let top_archive = format!("/{}", archive_of(&s, &s.top));
    let mut bytes = fs::read(s.path("cache").join(&top_archive[1..])).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    server.route(&top_archive, Reply::Ok(bytes));
    let out = deploy(&s, None, &["--target-substituter", &server.url()]);
    let host = host(&out);
    let transfer = &host["transfer"];
    assert_eq!(transfer["cache"]["objects"], 1, "{host}");
    assert_eq!(transfer["ssh"]["objects"], 1, "{host}");
    assert!(transfer["ssh"]["bytes"].as_u64().unwrap() > 0, "{host}");
    let fallbacks = transfer["fallbacks"].as_array().unwrap();
    assert_eq!(fallbacks.len(), 1, "{host}");
    assert_eq!(fallbacks[0]["object"], s.top.to_string().as_str());
    let reason = fallbacks[0]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("the machine could not fetch it: ") && reason.contains("SHA-256"),
        "{reason}"
    );
    arrived(&s);

    // The text report says it too; an archive the server does not have.
    let s = setup();
    let server = cache(&s);
    server.route(&format!("/{}", archive_of(&s, &s.dep)), Reply::Status(404));
    let out = deploy_with(
        &s,
        None,
        &["--copy-only", "--target-substituter", &server.url()],
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        stdout.contains("root@test-machine: 1 objects (")
            && stdout.contains(") from the cache, 1 (")
            && stdout.contains(&format!(
                "root@test-machine: {} over ssh: the machine could not fetch it: fetching",
                s.dep
            )),
        "{stdout}"
    );
    arrived(&s);
}

/// A directory of links to the host's commands but `without`, for a
/// machine's PATH.
fn bin_without(s: &Setup, without: &[&str]) -> std::path::PathBuf {
    let bin = s.path("bin-without");
    fs::create_dir(&bin).unwrap();
    for dir in ["/usr/bin", "/bin"] {
        for entry in fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name();
            if without.iter().any(|w| name == *w) || bin.join(&name).symlink_metadata().is_ok() {
                continue;
            }
            std::os::unix::fs::symlink(entry.path(), bin.join(&name)).unwrap();
        }
    }
    bin
}

/// A machine without zstd fetches nothing; everything comes over ssh and
/// the report says which tool was missing.
#[test]
fn a_machine_without_zstd_gets_everything_over_ssh() {
    let s = setup();
    let server = cache(&s);
    let bin = bin_without(&s, &["zstd"]);
    let local = format!("file://{}", s.path("cache").display());
    let out = deploy(
        &s,
        Some(&bin),
        &[
            "--target-substituter",
            &server.url(),
            "--target-substituter-local",
            &local,
        ],
    );
    let host = host(&out);
    let transfer = &host["transfer"];
    assert_eq!(transfer["cache"]["objects"], 0, "{host}");
    assert_eq!(transfer["ssh"]["objects"], 2, "{host}");
    let fallbacks = transfer["fallbacks"].as_array().unwrap();
    assert_eq!(fallbacks.len(), 2, "{host}");
    for f in fallbacks {
        assert_eq!(
            f["reason"], "the machine cannot fetch: no zstd on this machine",
            "{host}"
        );
    }
    arrived(&s);
}

/// A machine whose PATH has neither wget, curl nor sha256sum fetches with
/// a busybox's applets.
#[test]
fn a_busybox_fetches_when_the_machine_has_no_wget() {
    let s = setup();
    let server = cache(&s);
    let bin = bin_without(&s, &["wget", "curl", "sha256sum"]);
    let host = host(&deploy(
        &s,
        Some(&bin),
        &["--target-substituter", &server.url()],
    ));
    assert_eq!(host["transfer"]["cache"]["objects"], 2, "{host}");
    arrived(&s);
}

#[test]
fn a_bad_target_substituter_is_refused() {
    let s = setup();
    let out = deploy(&s, None, &["--target-substituter", "file:///srv/cache"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("error[E1107]: --target-substituter `file:///srv/cache`: expected http(s)://HOST/PATH or oci://"),
        "{stderr}"
    );
}

/// The same object exports to the same bytes (the cache's archive, written
/// by `imago copy --to`, included), and an object whose cache archive has
/// another digest is sent over ssh, never offered to the machines.
#[test]
fn the_deployer_offers_only_its_own_bytes() {
    let s = setup();
    let _server = cache(&s);
    let store = Store::open(s.path("store")).unwrap();
    for p in [&s.dep, &s.top] {
        let a = local_archive(&store, p).unwrap();
        let b = local_archive(&store, p).unwrap();
        assert_eq!(a, b, "{p}");
        let cached = s.path("cache").join(archive_of(&s, p));
        let bytes = fs::read(&cached).unwrap();
        assert_eq!(a.blake3, Blake3Digest::of(&bytes), "{p}");
        assert_eq!(a.size, bytes.len() as u64);
    }

    let url = TargetCacheUrl::parse("http://10.0.2.2:8080/c").unwrap();
    let top = s.top.clone();
    let own = local_archive(&store, &s.top).unwrap();
    let substituter = TargetSubstituter::new(
        url,
        Box::new(move |p| {
            Ok((*p == top).then_some(CacheArchive {
                blake3: Blake3Digest([7; 32]),
                size: own.size,
            }))
        }),
    );
    match substituter.plan(&store, &s.top) {
        Plan::Ssh(reason) => assert!(
            reason.starts_with("the cache's archive (blake3:0707")
                && reason.contains("is not this store's"),
            "{reason}"
        ),
        plan => panic!("{plan:?}"),
    }
    match substituter.plan(&store, &s.dep) {
        Plan::Ssh(reason) => {
            assert_eq!(reason, "the cache http://10.0.2.2:8080/c does not have it")
        }
        plan => panic!("{plan:?}"),
    }

    let own = local_archive(&store, &s.top).unwrap();
    let digest = own.blake3;
    let size = own.size;
    let substituter = TargetSubstituter::new(
        TargetCacheUrl::parse("http://10.0.2.2:8080/c").unwrap(),
        Box::new(move |_| {
            Ok(Some(CacheArchive {
                blake3: digest,
                size,
            }))
        }),
    );
    match substituter.plan(&store, &s.top) {
        Plan::Fetch(fetch) => {
            assert_eq!(
                fetch.url,
                format!(
                    "http://10.0.2.2:8080/c/archives/{}.tar.zst",
                    digest.to_hex()
                )
            );
            assert_eq!(fetch.sha256, own.sha256);
            assert_eq!(fetch.size, own.size);
            assert_eq!(fetch.object, s.top);
        }
        plan => panic!("{plan:?}"),
    }
}
