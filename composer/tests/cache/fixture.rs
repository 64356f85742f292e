//! A source store with a small closure, keys, and `imago copy` runs.
#![allow(clippy::unwrap_used)]

use crate::support::cli::{command, stderr, stdout};
use crate::support::store::{add_closure, temp_leftovers, top_level_objects};
use imago::cache::ObjectInfo;
use imago::store::{Store, StorePath};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;
use tempfile::TempDir;

/// A source store holding lib ← bin ← top, a cache directory beside it,
/// and a key pair `ci-1`.
pub struct Fixture {
    pub dir: TempDir,
    pub store: Store,
    pub lib: StorePath,
    pub bin: StorePath,
    pub top: StorePath,
}

impl Fixture {
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("src")).unwrap();
        let [lib, bin, top] = add_closure(&store);
        let f = Fixture {
            dir,
            store,
            lib,
            bin,
            top,
        };
        f.generate_key("ci-1", &f.keys());
        f
    }

    /// `imago key generate NAME --dir DIR`, which must succeed.
    pub fn generate_key(&self, name: &str, dir: &Path) {
        let out = self.imago(&["key", "generate", name, "--dir", dir.to_str().unwrap()]);
        assert!(out.status.success(), "{}", stderr(&out));
    }

    pub fn keys(&self) -> PathBuf {
        self.dir.path().to_owned()
    }

    pub fn key(&self, file: &str) -> String {
        self.dir.path().join(file).display().to_string()
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    pub fn cache_url(&self) -> String {
        format!("file://{}", self.cache_dir().display())
    }

    /// `imago` with `args`, without trusted keys from the environment.
    pub fn imago(&self, args: &[&str]) -> Output {
        self.imago_env(args, &[])
    }

    /// [`Fixture::imago`] with the variables `envs`.
    pub fn imago_env(&self, args: &[&str], envs: &[(&str, &str)]) -> Output {
        let mut cmd = command(args);
        cmd.env_remove("IMAGO_TRUSTED_PUBLIC_KEYS");
        for proxy in [
            "http_proxy",
            "HTTP_PROXY",
            "https_proxy",
            "HTTPS_PROXY",
            "all_proxy",
            "ALL_PROXY",
        ] {
            cmd.env_remove(proxy);
        }
        cmd.envs(envs.iter().copied());
        cmd.output().unwrap()
    }

    /// `imago --store STORE copy --DIRECTION CACHE TOP [extra] --json`.
    pub fn copy(&self, store: &Path, direction: &str, extra: &[&str]) -> Output {
        self.copy_at(store, direction, &self.cache_url(), extra)
    }

    /// [`Fixture::copy`] with the cache at `url`.
    pub fn copy_at(&self, store: &Path, direction: &str, url: &str, extra: &[&str]) -> Output {
        let top = self.top.to_absolute();
        let store = store.to_str().unwrap();
        let mut args = vec!["--store", store, "copy", direction, url, &top, "--json"];
        args.extend_from_slice(extra);
        self.imago(&args)
    }

    /// Copies the closure of top to the cache, which must succeed; returns
    /// the JSON summary.
    pub fn push(&self, extra: &[&str]) -> serde_json::Value {
        let out = self.copy(&self.dir.path().join("src"), "--to", extra);
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_str(&stdout(&out)).unwrap()
    }

    /// `imago --store DST copy --from CACHE TOP`, with the variables `envs`
    /// and a summary in words.
    pub fn pull_env(&self, dst: &Path, envs: &[(&str, &str)]) -> Output {
        let (url, top) = (self.cache_url(), self.top.to_absolute());
        let dst = dst.to_str().unwrap();
        self.imago_env(&["--store", dst, "copy", "--from", &url, &top], envs)
    }

    /// Copies the closure of top from the cache into the store `dst`.
    pub fn pull(&self, dst: &Path, extra: &[&str]) -> Output {
        self.copy(dst, "--from", extra)
    }

    /// The metadata file of `path` in the cache.
    pub fn info_file(&self, path: &StorePath) -> PathBuf {
        self.cache_dir()
            .join(format!("objects/{}.json", path.hash_part()))
    }

    pub fn info(&self, path: &StorePath) -> ObjectInfo {
        serde_json::from_slice(&fs::read(self.info_file(path)).unwrap()).unwrap()
    }

    /// The metadata of `path` a web server holds under `/c/`.
    pub fn info_at(&self, server: &crate::support::http::Server, path: &StorePath) -> ObjectInfo {
        let file = format!("/c/objects/{}.json", path.hash_part());
        serde_json::from_slice(&server.body(&file).unwrap()).unwrap()
    }

    /// Copies the closure of top from the cache at `url` into a new store,
    /// trusting `ci-1`, which must succeed; returns the store's directory
    /// and the summary.
    pub fn pull_new(&self, url: &str) -> (TempDir, serde_json::Value) {
        let dst = tempfile::tempdir().unwrap();
        let trust = self.key("ci-1.public");
        let out = self.copy_at(dst.path(), "--from", url, &["--trusted-public-key", &trust]);
        assert!(out.status.success(), "{}", stderr(&out));
        let summary = serde_json::from_str(&stdout(&out)).unwrap();
        (dst, summary)
    }

    pub fn write_info(&self, info: &ObjectInfo) {
        fs::write(
            self.info_file(info.path()),
            serde_json::to_vec_pretty(info).unwrap(),
        )
        .unwrap();
    }
}

/// [`refused`], trusting the fixture's key `ci-1`.
pub fn refused_trusting(f: &Fixture, code: &str, want: &[&str]) -> String {
    refused_trusting_at(f, &f.cache_url(), code, want)
}

/// [`refused_trusting`] with the cache at `url`.
pub fn refused_trusting_at(f: &Fixture, url: &str, code: &str, want: &[&str]) -> String {
    let trust = f.key("ci-1.public");
    refused_at(f, url, &["--trusted-public-key", &trust], code, want)
}

/// Runs a pull into a fresh store that must fail with `code` and a message
/// holding every string of `want`; checks that nothing was registered or
/// left behind. Returns the message.
pub fn refused(f: &Fixture, extra: &[&str], code: &str, want: &[&str]) -> String {
    refused_at(f, &f.cache_url(), extra, code, want)
}

/// [`refused`] with the cache at `url`.
pub fn refused_at(f: &Fixture, url: &str, extra: &[&str], code: &str, want: &[&str]) -> String {
    let dst = tempfile::tempdir().unwrap();
    let out = f.copy_at(dst.path(), "--from", url, extra);
    let text = stderr(&out);
    assert!(
        !out.status.success(),
        "the copy succeeded: {}",
        stdout(&out)
    );
    assert!(text.contains(&format!("error[{code}]")), "{text}");
    for w in want {
        assert!(text.contains(w), "`{text}` lacks `{w}`");
    }
    assert!(
        top_level_objects(dst.path()).is_empty(),
        "objects left: {:?}",
        top_level_objects(dst.path())
    );
    let store = Store::open(dst.path()).unwrap();
    assert_eq!(store.verify(false).unwrap().checked, 0, "registered");
    assert!(
        temp_leftovers(dst.path()).is_empty(),
        "{:?}",
        temp_leftovers(dst.path())
    );
    text
}
