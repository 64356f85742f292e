//! The .debs a lock names in a binary cache: `imago copy --to CACHE --lock
//! FILE` sends them by SHA-256 (only those the cache lacks), and every
//! substituter is then a package source — to a directory cache and to a
//! registry, with the mirrors unreachable and the snapshot archive off, so
//! nothing but the cache can deliver.
#![allow(clippy::unwrap_used)]

use crate::registry::Registry;
use crate::support::cli::{stderr, stdout};
use crate::support::deb::{Comp, Entry, deb, lock_entry};
use imago::debian::lock::{Lock, LockEntry};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use tempfile::TempDir;

/// A home (configuration and caches) whose download cache holds two small
/// .debs, and a lock naming them.
struct Home {
    dir: TempDir,
    entries: Vec<(LockEntry, Vec<u8>)>,
}

impl Home {
    /// A home whose mirrors are unreachable and whose snapshot archive is
    /// off; with `debs`, its download cache holds the lock's files.
    fn new(debs: bool) -> Home {
        Home::with(&["alpha", "beta"], debs)
    }

    /// [`Home::new`] with the packages `names`.
    fn with(names: &[&str], debs: bool) -> Home {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config/imago");
        std::fs::create_dir_all(&config).unwrap();
        std::fs::write(
            config.join("config.toml"),
            "snapshot = \"\"\n[mirrors]\ndebian = [\"http://127.0.0.1:9/debian\"]\n",
        )
        .unwrap();
        let mut entries = Vec::new();
        for name in names {
            let bytes = deb(
                name,
                Comp::Gz,
                &[
                    Entry::dir("./usr/"),
                    Entry::dir("./usr/share/"),
                    Entry::file(format!("./usr/share/{name}"), name.repeat(100)),
                ],
            );
            entries.push((lock_entry(name, &bytes), bytes));
        }
        let home = Home { dir, entries };
        std::fs::create_dir_all(home.debs()).unwrap();
        if debs {
            for (e, bytes) in &home.entries {
                std::fs::write(home.debs().join(e.deb_file_name()), bytes).unwrap();
            }
        }
        let mut lock = Lock::new(imago::debian::platform::Platform::DEFAULT);
        for (e, _) in &home.entries {
            lock.packages.insert(e.name.clone(), e.clone());
        }
        lock.write(&home.lock()).unwrap();
        home
    }

    fn debs(&self) -> PathBuf {
        self.dir.path().join("cache/imago/debs")
    }

    fn lock(&self) -> PathBuf {
        self.dir.path().join("imago.lock")
    }

    /// `imago ARGS` with this home's configuration and caches.
    fn imago(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_imago"));
        cmd.args(args)
            .env("XDG_CONFIG_HOME", self.dir.path().join("config"))
            .env("XDG_CACHE_HOME", self.dir.path().join("cache"))
            .env("HOME", self.dir.path())
            .env_remove("IMAGO_PACKAGE_CACHES")
            .env_remove("IMAGO_SUBSTITUTERS");
        for proxy in ["http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"] {
            cmd.env_remove(proxy);
        }
        cmd.output().unwrap()
    }

    /// `imago copy --to CACHE --lock LOCK --json`, which must succeed.
    fn push(&self, cache: &str) -> serde_json::Value {
        let lock = self.lock();
        let out = self.imago(&[
            "copy",
            "--to",
            cache,
            "--lock",
            lock.to_str().unwrap(),
            "--json",
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_str(&stdout(&out)).unwrap()
    }

    /// Fetches the lock's .debs into this home's (empty) download cache
    /// with `substituters` as the only sources that can deliver.
    fn fetch(&self, substituters: &[&str]) -> Output {
        let lock = self.lock();
        let out_dir = self.dir.path().join("exported");
        let mut args = Vec::new();
        for s in substituters {
            args.extend(["--substituter", s]);
        }
        args.extend([
            "cache",
            "export",
            out_dir.to_str().unwrap(),
            "--lock",
            lock.to_str().unwrap(),
        ]);
        self.imago(&args)
    }

    /// Every .deb of the lock is in the download cache, byte for byte.
    fn assert_fetched(&self) {
        for (e, bytes) in &self.entries {
            let got = std::fs::read(self.debs().join(e.deb_file_name())).unwrap();
            assert_eq!(&got, bytes, "{}", e.name);
        }
    }
}

/// A new home with an empty download cache fetches the lock's .debs with
/// the cache `url` as its only source that can deliver.
fn serves_a_new_home(url: &str) {
    let dst = Home::new(false);
    let out = dst.fetch(&[url]);
    assert!(out.status.success(), "{}", stderr(&out));
    dst.assert_fetched();
}

fn file_url(dir: &Path) -> String {
    format!("file://{}", dir.display())
}

#[test]
fn a_directory_cache_holds_a_locks_debs_and_serves_them() {
    let src = Home::new(true);
    let cache = src.dir.path().join("team");
    let url = file_url(&cache);
    let pushed = src.push(&url);
    assert_eq!(pushed["debs_copied"], 2, "{pushed}");
    assert_eq!(pushed["objects_copied"], 0, "{pushed}");
    for (e, bytes) in &src.entries {
        let stored = std::fs::read(cache.join("sha256").join(&e.sha256)).unwrap();
        assert_eq!(&stored, bytes);
    }
    // The layout of a package cache, and a binary cache too.
    assert!(cache.join("imago-cache.json").is_file());
    let again = src.push(&url);
    assert_eq!(again["debs_copied"], 0, "{again}");
    assert_eq!(again["debs_already_there"], 2, "{again}");

    serves_a_new_home(&url);
}

#[test]
fn a_cache_serving_a_wrong_deb_is_refused_and_the_next_source_tried() {
    let src = Home::new(true);
    let (bad, good) = (src.dir.path().join("bad"), src.dir.path().join("good"));
    src.push(&file_url(&bad));
    src.push(&file_url(&good));
    // The bad cache serves other bytes of the same size for alpha.
    let (alpha, _) = &src.entries[0];
    let file = bad.join("sha256").join(&alpha.sha256);
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&file, &bytes).unwrap();

    let dst = Home::new(false);
    let out = dst.fetch(&[&file_url(&bad), &file_url(&good)]);
    assert!(out.status.success(), "{}", stderr(&out));
    dst.assert_fetched();

    let alone = Home::new(false);
    let out = alone.fetch(&[&file_url(&bad)]);
    assert!(!out.status.success(), "the wrong .deb was taken");
    let text = stderr(&out);
    for want in [
        "binary cache",
        "hash mismatch",
        alpha.sha256.as_str(),
        bad.to_str().unwrap(),
    ] {
        assert!(text.contains(want), "`{text}` lacks `{want}`");
    }
    assert!(
        !alone.debs().join(alpha.deb_file_name()).exists(),
        "the wrong bytes were cached"
    );
}

#[test]
fn a_registry_holds_a_locks_debs_and_serves_them() {
    let r = Registry::start();
    let src = Home::new(true);
    let pushed = src.push(&r.url());
    assert_eq!(pushed["debs_copied"], 2, "{pushed}");
    for (e, bytes) in &src.entries {
        // The blob's digest is the .deb's SHA-256, kept by a tagged
        // manifest whose one layer it is.
        assert_eq!(&r.blob(&format!("sha256:{}", e.sha256)), bytes);
        let manifest = r.manifest(&format!("d-{}", e.sha256));
        assert_eq!(
            manifest["artifactType"], "application/vnd.imago.deb.v1",
            "{manifest}"
        );
        assert_eq!(
            manifest["layers"][0]["digest"],
            format!("sha256:{}", e.sha256)
        );
    }
    let again = src.push(&r.url());
    assert_eq!(again["debs_copied"], 0, "{again}");
    assert_eq!(again["debs_already_there"], 2, "{again}");

    serves_a_new_home(&r.url());
}

#[test]
fn a_corrupt_download_is_never_sent() {
    let src = Home::new(true);
    let (alpha, _) = &src.entries[0];
    let cached = src.debs().join(alpha.deb_file_name());
    let mut bytes = std::fs::read(&cached).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(&cached, &bytes).unwrap();
    let cache = src.dir.path().join("team");
    let lock = src.lock();
    let out = src.imago(&[
        "copy",
        "--to",
        &file_url(&cache),
        "--lock",
        lock.to_str().unwrap(),
    ]);
    assert!(!out.status.success(), "{}", stdout(&out));
    let text = stderr(&out);
    assert!(text.contains("hash mismatch"), "{text}");
    assert!(!cache.join("sha256").join(&alpha.sha256).exists());
}

#[test]
fn a_debs_only_copy_to_a_web_server_that_takes_puts_serves_the_fetcher() {
    let server = crate::support::http::Server::start();
    server.accept_puts(None);
    let url = format!("{}/team", server.url());
    let src = Home::new(true);
    let pushed = src.push(&url);
    assert_eq!(pushed["debs_copied"], 2, "{pushed}");
    for (e, bytes) in &src.entries {
        let stored = server.body(&format!("/team/sha256/{}", e.sha256));
        assert_eq!(stored.as_ref(), Some(bytes));
    }
    let again = src.push(&url);
    assert_eq!(again["debs_already_there"], 2, "{again}");
    assert_eq!(server.put_log().len(), 3, "{:?}", server.put_log());

    serves_a_new_home(&url);
}

#[test]
fn a_build_fetches_its_locked_debs_from_a_substituter() {
    let name = "linux-image-cloud-amd64";
    let src = Home::with(&[name], true);
    let cache = src.dir.path().join("team");
    src.push(&file_url(&cache));

    let dst = Home::with(&[name], false);
    let file = dst.dir.path().join("sys.imago");
    std::fs::write(&file, "{ ... }: { }").unwrap();
    let store = dst.dir.path().join("store");
    let out = dst.imago(&[
        "--store",
        store.to_str().unwrap(),
        "--substituter",
        &file_url(&cache),
        "build",
        file.to_str().unwrap(),
        "-A",
        "config.boot.kernel.package",
    ]);
    let text = stderr(&out);
    assert!(!text.contains("could not be fetched"), "{text}");
    assert!(out.status.success(), "{text}");
    dst.assert_fetched();
}
