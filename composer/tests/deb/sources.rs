//! Fetching locked .debs by hash from many sources, against a local HTTP
//! server that plays the package cache, the mirror and the snapshot
//! service and misbehaves on request. No test here touches the network.

// Test helpers outside #[test] functions panic on failure too.
#![allow(clippy::unwrap_used)]

use crate::support::http;

use http::{Reply, Server};
use imago::debian::fetch::{
    FetchError, FetchOptions, HttpSettings, Location, Sources, ensure_cached, sha256_file,
};
use imago::debian::lock::{Lock, LockEntry};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const TIME: &str = "20261120T000000Z";

fn bytes(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

fn entry(name: &str, content: &[u8]) -> LockEntry {
    LockEntry {
        filename: format!("pool/updates/main/{name}/{name}_1.0-1_amd64.deb"),
        archive: Some("debian-security".into()),
        snapshot: Some(TIME.into()),
        ..crate::support::deb::lock_entry(name, content)
    }
}

fn mirror_path(e: &LockEntry) -> String {
    format!("/debian-security/{}", e.filename)
}

fn snapshot_path(e: &LockEntry) -> String {
    format!("/archive/debian-security/{TIME}/{}", e.filename)
}

fn cache_path(base: &str, e: &LockEntry) -> String {
    format!("{base}/sha256/{}", e.sha256)
}

fn sources(server: &Server, caches: &[&str]) -> Sources {
    Sources {
        package_caches: caches
            .iter()
            .map(|c| Location::Url(format!("{}{c}", server.url())))
            .collect(),
        binary_caches: Vec::new(),
        mirrors: BTreeMap::from([(
            "debian-security".to_string(),
            vec![format!("{}/debian-security", server.url())],
        )]),
        snapshot: Some(server.url()),
    }
}

fn options(cache: &Path, sources: Sources) -> FetchOptions {
    FetchOptions {
        http: HttpSettings {
            connect_timeout: Duration::from_secs(2),
            stall_timeout: Duration::from_millis(700),
            attempts: 2,
            backoff: Duration::from_millis(10),
            parallel: 3,
        },
        lock_command: Some("imago lock sys.imago".into()),
        ..FetchOptions::new(cache.to_path_buf(), sources)
    }
}

/// The names in the download cache: only complete, verified files.
fn cache_listing(cache: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(cache)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn a_file_gone_from_the_mirror_comes_from_the_snapshot() {
    let server = Server::start();
    let content = bytes(1, 10_000);
    let e = entry("kernel", &content);
    server.route(&snapshot_path(&e), Reply::Ok(content.clone()));
    let cache = tempfile::tempdir().unwrap();
    let paths = ensure_cached(
        std::slice::from_ref(&e),
        &options(cache.path(), sources(&server, &[])),
    )
    .unwrap();
    assert_eq!(std::fs::read(&paths[0]).unwrap(), content);
    assert_eq!(
        server.hits(&mirror_path(&e)),
        1,
        "the mirror is asked first"
    );
    assert_eq!(server.hits(&snapshot_path(&e)), 1);
    assert_eq!(cache_listing(cache.path()), [e.deb_file_name()]);
}

#[test]
fn a_package_cache_comes_before_the_mirror() {
    let server = Server::start();
    let content = bytes(2, 5000);
    let e = entry("tool", &content);
    server.route(&cache_path("/team", &e), Reply::Ok(content.clone()));
    server.route(&mirror_path(&e), Reply::Ok(content.clone()));
    let cache = tempfile::tempdir().unwrap();
    ensure_cached(
        std::slice::from_ref(&e),
        &options(cache.path(), sources(&server, &["/team"])),
    )
    .unwrap();
    assert_eq!(server.hits(&cache_path("/team", &e)), 1);
    assert_eq!(server.hits(&mirror_path(&e)), 0);
}

/// Every way a source can fail, each on its own package in the team cache,
/// with a good mirror behind: every package arrives intact, and the cache
/// never holds anything else.
#[test]
fn each_bad_source_falls_through_to_the_next() {
    let server = Server::start();
    let cache = tempfile::tempdir().unwrap();
    let mut entries = Vec::new();
    type Bad = Box<dyn Fn(&[u8]) -> Reply>;
    let cases: Vec<(&str, Bad)> = vec![
        ("wrong-bytes", Box::new(|c| Reply::Ok(bytes(99, c.len())))),
        ("too-long", Box::new(|c| Reply::Ok([c, b"extra"].concat()))),
        (
            "truncated",
            Box::new(|c| Reply::Truncated(c.to_vec(), c.len() / 3)),
        ),
        ("partial", Box::new(|c| Reply::Partial(c.to_vec()))),
        ("error-500", Box::new(|_| Reply::Status(500))),
        (
            "stall",
            Box::new(|c| Reply::Stall(c.to_vec(), Duration::from_secs(3))),
        ),
        ("loop", Box::new(|_| Reply::Redirect("/loop".into()))),
        ("forbidden", Box::new(|_| Reply::Status(403))),
    ];
    server.route("/loop", Reply::Redirect("/loop".into()));
    for (i, (name, bad)) in cases.iter().enumerate() {
        let content = bytes(i as u8, 20_000 + i);
        let e = entry(name, &content);
        server.route(&cache_path("/team", &e), bad(&content));
        server.route(&mirror_path(&e), Reply::Ok(content));
        entries.push(e);
    }
    let paths = ensure_cached(
        &entries,
        &options(cache.path(), sources(&server, &["/team"])),
    )
    .unwrap();
    for (e, path) in entries.iter().zip(&paths) {
        assert_eq!(sha256_file(path).unwrap(), e.sha256, "{}", e.name);
        assert_eq!(server.hits(&mirror_path(e)), 1, "{}", e.name);
    }
    let mut expected: Vec<String> = entries.iter().map(LockEntry::deb_file_name).collect();
    expected.sort();
    assert_eq!(cache_listing(cache.path()), expected);
}

#[test]
fn when_every_source_fails_the_error_names_each_source_and_the_fix() {
    let server = Server::start();
    let content = bytes(7, 30_000);
    let e = entry("gone", &content);
    let replies = [
        ("/c1", Reply::Ok(bytes(8, content.len()))),
        ("/c2", Reply::Truncated(content.clone(), 100)),
        ("/c3", Reply::Partial(content.clone())),
        ("/c4", Reply::Status(500)),
        ("/c5", Reply::Stall(content.clone(), Duration::from_secs(3))),
        ("/c6", Reply::Redirect("/c6-loop".into())),
    ];
    server.route("/c6-loop", Reply::Redirect("/c6-loop".into()));
    for (base, reply) in &replies {
        server.route(&cache_path(base, &e), reply.clone());
    }
    let cache = tempfile::tempdir().unwrap();
    let caches: Vec<&str> = replies.iter().map(|(b, _)| *b).collect();
    let err = ensure_cached(
        std::slice::from_ref(&e),
        &options(cache.path(), sources(&server, &caches)),
    )
    .unwrap_err();
    let msg = err.to_string();
    let FetchError::Unavailable { missing, .. } = &err else {
        panic!("{msg}")
    };
    assert_eq!(missing.len(), 1);
    assert_eq!(missing[0].attempts.len(), 8, "{msg}");
    for needle in [
        "1 locked package could not be fetched from any source",
        "gone 1.0-1 (pool/updates/main/gone/gone_1.0-1_amd64.deb)",
        "hash mismatch: expected sha256",
        "the body broke off after 100 of 30000 bytes",
        "partial content (206)",
        "HTTP 500",
        "too many redirects",
        &format!("mirror {}/debian-security/pool", server.url()),
        &format!(
            "snapshot {}/archive/debian-security/{TIME}/pool",
            server.url()
        ),
        "imago lock sys.imago --update gone",
    ] {
        assert!(msg.contains(needle), "`{needle}` missing from:\n{msg}");
    }
    let stall = &missing[0].attempts[4];
    assert!(stall.location.contains("/c5/"), "{stall:?}");
    assert!(
        stall.failure.to_string().contains("timed out")
            || stall.failure.to_string().contains("timeout"),
        "{msg}"
    );
    // The server error was retried, the missing ones were not.
    assert_eq!(server.hits(&cache_path("/c4", &e)), 2);
    assert_eq!(server.hits(&mirror_path(&e)), 1);
    assert!(
        cache_listing(cache.path()).is_empty(),
        "nothing half-written stays: {:?}",
        cache_listing(cache.path())
    );
}

#[test]
fn a_local_directory_cache_is_read_by_hash() {
    let dir = tempfile::tempdir().unwrap();
    let content = bytes(3, 4096);
    let e = entry("local", &content);
    let team = dir.path().join("team");
    std::fs::create_dir_all(team.join("sha256")).unwrap();
    std::fs::write(team.join("sha256").join(&e.sha256), &content).unwrap();
    let cache = dir.path().join("cache");
    let sources = Sources {
        package_caches: vec![Location::Dir(team)],
        binary_caches: Vec::new(),
        // A mirror nobody answers at: never asked.
        mirrors: BTreeMap::from([(
            "debian-security".to_string(),
            vec!["http://127.0.0.1:9/debian-security".to_string()],
        )]),
        snapshot: None,
    };
    ensure_cached(std::slice::from_ref(&e), &options(&cache, sources)).unwrap();
    assert_eq!(
        std::fs::read(cache.join(e.deb_file_name())).unwrap(),
        content
    );
}

/// Runs the imago binary with its configuration and caches under `home`.
fn imago(home: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_imago"))
        .args(args)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_CACHE_HOME", home.join("cache"))
        .env_remove("IMAGO_PACKAGE_CACHES")
        .output()
        .unwrap()
}

fn configure(home: &Path, server: &Server) {
    let dir = home.join("config/imago");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("config.toml"),
        format!(
            "snapshot = \"{0}\"\n[mirrors]\ndebian-security = [\"{0}/debian-security\"]\n",
            server.url()
        ),
    )
    .unwrap();
}

#[test]
fn lock_check_tells_present_from_rotting_from_gone() {
    let server = Server::start();
    let home = tempfile::tempdir().unwrap();
    configure(home.path(), &server);
    let (here, rotting, gone) = (
        entry("here", &bytes(1, 100)),
        entry("rotting", &bytes(2, 200)),
        entry("gone", &bytes(3, 300)),
    );
    server.route(&mirror_path(&here), Reply::Ok(bytes(1, 100)));
    server.route(&snapshot_path(&rotting), Reply::Ok(bytes(2, 200)));
    let mut lock = Lock::new(imago::debian::platform::Platform::DEFAULT);
    for e in [&here, &rotting, &gone] {
        lock.packages.insert(e.name.clone(), e.clone());
    }
    let project = home.path().join("project");
    std::fs::create_dir(&project).unwrap();
    lock.write(&project.join("imago.lock")).unwrap();
    let file = project.join("sys.imago");
    std::fs::write(&file, "{ ... }: { }").unwrap();
    let out = imago(home.path(), &["lock", file.to_str().unwrap(), "--check"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("3 packages: 1 on a mirror, 1 only in a package cache or the snapshot archive, 1 nowhere"),
        "{stdout}"
    );
    assert!(
        stdout.contains("rotting 1.0-1: gone from the mirrors; still at snapshot"),
        "{stdout}"
    );
    assert!(stdout.contains("gone 1.0-1: no source has it"), "{stdout}");
    assert!(stdout.contains("--update gone rotting"), "{stdout}");
    // No downloads: HEAD requests only, and nothing in the cache.
    assert!(
        !home
            .path()
            .join("cache/imago/debs")
            .join(here.deb_file_name())
            .exists()
    );

    // Once the gone package is back somewhere, the check passes.
    server.route(&mirror_path(&gone), Reply::Ok(bytes(3, 300)));
    let out = imago(home.path(), &["lock", file.to_str().unwrap(), "--check"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn cache_export_writes_a_package_cache_that_serves_the_fetcher() {
    let server = Server::start();
    let home = tempfile::tempdir().unwrap();
    configure(home.path(), &server);
    let content = bytes(5, 2048);
    let e = entry("exported", &content);
    let debs = home.path().join("cache/imago/debs");
    std::fs::create_dir_all(debs.join("rejected")).unwrap();
    std::fs::write(debs.join(e.deb_file_name()), &content).unwrap();
    std::fs::write(debs.join("rejected/bad.deb"), b"bad").unwrap();
    let out_dir = home.path().join("team-cache");
    let out = imago(home.path(), &["cache", "export", out_dir.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: Vec<String> = std::fs::read_dir(out_dir.join("sha256"))
        .unwrap()
        .flatten()
        .map(|d| d.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        listed,
        vec![e.sha256.clone()],
        "only verified .debs, by hash"
    );
    // Exporting again writes nothing new.
    let again = imago(home.path(), &["cache", "export", out_dir.to_str().unwrap()]);
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("0 files written"),
        "{}",
        String::from_utf8_lossy(&again.stdout)
    );
    // The export serves a fresh machine whose mirror has lost the file.
    let fresh = tempfile::tempdir().unwrap();
    let sources = Sources {
        package_caches: vec![Location::parse(&format!("file://{}", out_dir.display())).unwrap()],
        ..sources(&server, &[])
    };
    ensure_cached(std::slice::from_ref(&e), &options(fresh.path(), sources)).unwrap();
    assert_eq!(server.hits(&mirror_path(&e)), 0);
}

/// A build whose locked package no source has fails once, naming the
/// package, every source and the command that fixes the lock — not with a
/// builder error per step — and leaves no output and nothing in the cache.
#[test]
fn a_build_with_a_rotted_package_names_every_source_and_the_fix() {
    let server = Server::start();
    let home = tempfile::tempdir().unwrap();
    configure(home.path(), &server);
    let mut kernel = entry("linux-image-cloud-amd64", &bytes(9, 1000));
    kernel.archive = Some("debian-security".into());
    let mut lock = Lock::new(imago::debian::platform::Platform::DEFAULT);
    lock.packages.insert(kernel.name.clone(), kernel.clone());
    let project = home.path().join("project");
    std::fs::create_dir(&project).unwrap();
    lock.write(&project.join("imago.lock")).unwrap();
    let file = project.join("sys.imago");
    std::fs::write(&file, "{ ... }: { }").unwrap();
    let store = home.path().join("store");
    let out = imago(
        home.path(),
        &[
            "--store",
            store.to_str().unwrap(),
            "build",
            file.to_str().unwrap(),
            "-A",
            "config.boot.kernel.package",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for needle in [
        "fetching Debian packages: 1 locked package could not be fetched from any source",
        &format!(
            "mirror {}/debian-security/{}: not found",
            server.url(),
            kernel.filename
        ),
        &format!("snapshot {}/archive/debian-security/{TIME}/", server.url()),
        &format!(
            "imago lock {} --update linux-image-cloud-amd64",
            file.display()
        ),
    ] {
        assert!(
            stderr.contains(needle),
            "`{needle}` missing from:\n{stderr}"
        );
    }
    assert_eq!(
        stderr.matches("could not be fetched").count(),
        1,
        "said once:\n{stderr}"
    );
    assert!(cache_listing(&home.path().join("cache/imago/debs")).is_empty());
}
