//! A cache in an OCI registry: Debian's `docker-registry` on 127.0.0.1,
//! started by the test with a temporary storage directory. A closure
//! travels through it, a second push copies nothing, and every way its
//! content can lie is refused without registering anything.
#![allow(clippy::unwrap_used)]

use crate::fixture::{Fixture, refused_at, refused_trusting_at};
use crate::support::cli::{stderr, stdout};
use crate::support::store::add_file;
use imago::cache::{ObjectInfo, SecretKey};
use imago::store::{Store, StorePath};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tempfile::TempDir;

const REGISTRY: &str = "/usr/bin/docker-registry";
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// A registry serving from a temporary directory; stopped when dropped.
pub struct Registry {
    child: Child,
    dir: TempDir,
    pub port: u16,
}

impl Registry {
    pub fn start() -> Registry {
        assert!(
            Path::new(REGISTRY).exists(),
            "{REGISTRY} is missing: run `.ci/host-tools.sh test` to install Debian's docker-registry"
        );
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.path().join("storage").display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("log")).unwrap();
        let child = Command::new(REGISTRY)
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let registry = Registry { child, dir, port };
        let deadline = Instant::now() + Duration::from_secs(20);
        while ureq::get(&format!("{}/v2/", registry.http()))
            .call()
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "the registry did not answer: {}",
                std::fs::read_to_string(registry.dir.path().join("log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        registry
    }

    /// `http://127.0.0.1:PORT`.
    pub fn http(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The cache URL of the repository `imago/cache`.
    pub fn url(&self) -> String {
        format!("oci://127.0.0.1:{}/imago/cache", self.port)
    }

    /// The file of the blob `digest` in the registry's storage.
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap();
        self.dir.path().join(format!(
            "storage/docker/registry/v2/blobs/sha256/{}/{hex}/data",
            &hex[..2]
        ))
    }

    /// Every file of the registry's storage.
    pub fn stored_files(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            for e in std::fs::read_dir(dir).unwrap().flatten() {
                if e.path().is_dir() {
                    walk(&e.path(), out);
                } else {
                    out.push(e.path());
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.dir.path().join("storage"), &mut out);
        out.sort();
        out
    }

    fn repo_url(&self, tail: &str) -> String {
        format!("{}/v2/imago/cache/{tail}", self.http())
    }

    /// The manifest (or index) tagged `tag`, as JSON.
    pub fn manifest(&self, tag: &str) -> serde_json::Value {
        let body = ureq::get(&self.repo_url(&format!("manifests/{tag}")))
            .header("Accept", format!("{MANIFEST}, {INDEX}"))
            .call()
            .unwrap()
            .into_body()
            .read_to_vec()
            .unwrap();
        serde_json::from_slice(&body).unwrap()
    }

    pub fn blob(&self, digest: &str) -> Vec<u8> {
        ureq::get(&self.repo_url(&format!("blobs/{digest}")))
            .call()
            .unwrap()
            .into_body()
            .with_config()
            .limit(1 << 30)
            .read_to_vec()
            .unwrap()
    }

    /// Uploads `bytes` as a blob; returns its descriptor's digest.
    pub fn put_blob(&self, bytes: &[u8]) -> String {
        use sha2::Digest;
        let digest = format!("sha256:{:x}", sha2::Sha256::digest(bytes));
        let reply = ureq::post(&self.repo_url("blobs/uploads/"))
            .send_empty()
            .unwrap();
        let location = reply.headers()["location"].to_str().unwrap().to_owned();
        let sep = if location.contains('?') { '&' } else { '?' };
        ureq::put(&format!("{location}{sep}digest={digest}"))
            .send(bytes)
            .unwrap();
        digest
    }

    pub fn put_manifest(&self, tag: &str, manifest: &serde_json::Value) {
        ureq::put(&self.repo_url(&format!("manifests/{tag}")))
            .header("Content-Type", MANIFEST)
            .send(serde_json::to_vec(manifest).unwrap())
            .unwrap();
    }

    /// The metadata of `path` (its manifest's config).
    pub fn info(&self, path: &StorePath) -> ObjectInfo {
        let manifest = self.manifest(&object_tag(path));
        let config = manifest["config"]["digest"].as_str().unwrap();
        serde_json::from_slice(&self.blob(config)).unwrap()
    }

    /// Replaces the metadata of `info`'s object, keeping its manifest's
    /// layer unless `layer` is given.
    pub fn write_info(&self, info: &ObjectInfo, layer: Option<serde_json::Value>) {
        let tag = object_tag(info.path());
        let mut manifest = self.manifest(&tag);
        let bytes = serde_json::to_vec(info).unwrap();
        let digest = self.put_blob(&bytes);
        manifest["config"]["digest"] = digest.into();
        manifest["config"]["size"] = bytes.len().into();
        if let Some(layer) = layer {
            manifest["layers"][0] = layer;
        }
        self.put_manifest(&tag, &manifest);
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn object_tag(path: &StorePath) -> String {
    format!("o-{}", path.hash_part())
}

/// Pushes the fixture's closure to the registry, signed with `ci-1` if
/// `sign`; returns the copy's summary.
fn push(f: &Fixture, r: &Registry, sign: bool, extra: &[&str]) -> serde_json::Value {
    let key = f.key("ci-1.secret");
    let mut args = extra.to_vec();
    if sign {
        args.extend(["--sign", key.as_str()]);
    }
    let out = f.copy_at(&f.dir.path().join("src"), "--to", &r.url(), &args);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_str(&stdout(&out)).unwrap()
}

fn trust(f: &Fixture) -> [String; 2] {
    ["--trusted-public-key".into(), f.key("ci-1.public")]
}

#[test]
fn a_closure_travels_through_a_registry() {
    let f = Fixture::new();
    let r = Registry::start();
    let pushed = push(&f, &r, true, &["--tag", "top-gen1"]);
    assert_eq!(pushed["objects_copied"], 3, "{pushed}");
    // The tag names an index of the closure's object manifests, each
    // annotated with its store path and references.
    let index = r.manifest("top-gen1");
    assert_eq!(index["mediaType"], INDEX, "{index}");
    let mut listed: Vec<String> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            m["annotations"]["org.imago.store-path"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    listed.sort();
    let mut want: Vec<String> = [&f.lib, &f.bin, &f.top]
        .iter()
        .map(|p| p.to_absolute())
        .collect();
    want.sort();
    assert_eq!(listed, want, "{index}");

    let dst = tempfile::tempdir().unwrap();
    let trust = trust(&f);
    let out = f.copy_at(dst.path(), "--from", &r.url(), &[&trust[0], &trust[1]]);
    assert!(out.status.success(), "{}", stderr(&out));
    let pulled: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(pulled["objects_copied"], 3, "{pulled}");
    let store = Store::open(dst.path()).unwrap();
    let report = store.verify(false).unwrap();
    assert_eq!(report.checked, 3);
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    for p in [&f.lib, &f.bin, &f.top] {
        let (got, had) = (
            store.info(p).unwrap().unwrap(),
            f.store.info(p).unwrap().unwrap(),
        );
        assert_eq!(
            (got.digest, got.size, got.references, got.deriver),
            (had.digest, had.size, had.references, had.deriver),
            "{p}"
        );
    }

    // A second push, signed again: nothing travels, nothing changes.
    let before = r.stored_files();
    let again = push(&f, &r, true, &[]);
    assert_eq!(again["objects_copied"], 0, "{again}");
    assert_eq!(again["bytes_copied"], 0, "{again}");
    assert_eq!(again["objects_already_there"], 3, "{again}");
    assert_eq!(again["signatures_added"], 0, "{again}");
    assert_eq!(r.stored_files(), before);
}

#[test]
fn unsigned_and_untrusted_objects_are_refused() {
    let f = Fixture::new();
    let r = Registry::start();
    push(&f, &r, false, &[]);
    refused_trusting_at(
        &f,
        &r.url(),
        "E1006",
        &[f.top.as_str(), &r.url(), "no signature"],
    );

    let f = Fixture::new();
    let r = Registry::start();
    push(&f, &r, true, &[]);
    f.generate_key("other", &f.keys());
    let other = f.key("other.public");
    refused_at(
        &f,
        &r.url(),
        &["--trusted-public-key", &other],
        "E1006",
        &[f.top.as_str(), "not trusted: ci-1"],
    );
}

#[test]
fn a_blob_that_is_not_its_object_is_refused() {
    let f = Fixture::new();
    let r = Registry::start();
    push(&f, &r, true, &[]);
    // Another store's object in the same repository.
    let other_dir = f.dir.path().join("other");
    let other = Store::open(&other_dir).unwrap();
    let evil = add_file(&other, "evil", b"not top", &[]);
    let key = f.key("ci-1.secret");
    let out = f.imago(&[
        "--store",
        other_dir.to_str().unwrap(),
        "copy",
        "--to",
        &r.url(),
        &evil.to_absolute(),
        "--sign",
        &key,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // top's signed metadata with evil's archive: the signature covers the
    // object, not the archive's file, so the contents must be checked.
    let mut info = r.info(&f.top);
    let theirs = r.info(&evil);
    info.archive = theirs.archive.clone();
    info.archive_digest = theirs.archive_digest;
    info.archive_size = theirs.archive_size;
    let layer = r.manifest(&object_tag(&evil))["layers"][0].clone();
    r.write_info(&info, Some(layer));
    refused_trusting_at(
        &f,
        &r.url(),
        "E1007",
        &[f.top.as_str(), "its archive holds", evil.as_str()],
    );
}

#[test]
fn metadata_that_lies_about_references_is_refused() {
    let f = Fixture::new();
    let r = Registry::start();
    push(&f, &r, true, &[]);
    // Signed again by the trusted key, so only the contents can tell.
    let mut info = r.info(&f.bin);
    info.object.references.clear();
    info.signatures.clear();
    info.sign(&SecretKey::read(Path::new(&f.key("ci-1.secret"))).unwrap());
    r.write_info(&info, None);
    let trust = trust(&f);
    let dst = tempfile::tempdir().unwrap();
    let bin = f.bin.to_absolute();
    let out = f.imago(&[
        "--store",
        dst.path().to_str().unwrap(),
        "copy",
        "--from",
        &r.url(),
        &bin,
        &trust[0],
        &trust[1],
    ]);
    let text = stderr(&out);
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(text.contains(f.bin.as_str()), "{text}");
    assert!(
        text.contains("error[E05") || text.contains("error[E1007]"),
        "{text}"
    );
    assert_eq!(
        Store::open(dst.path())
            .unwrap()
            .verify(false)
            .unwrap()
            .checked,
        0
    );
}

#[test]
fn a_truncated_blob_is_refused() {
    let f = Fixture::new();
    let r = Registry::start();
    push(&f, &r, true, &[]);
    let layer = r.manifest(&object_tag(&f.top))["layers"][0].clone();
    let file = r.blob_file(layer["digest"].as_str().unwrap());
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    refused_trusting_at(
        &f,
        &r.url(),
        "E1007",
        &[f.top.as_str(), &r.url(), "hash to"],
    );
}

/// A proxy in front of the registry that forwards `good` requests, one
/// per connection, and answers every later one with 500.
fn failing_proxy(registry: u16, good: usize) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let served = Arc::new(AtomicUsize::new(0));
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let served = served.clone();
            std::thread::spawn(move || relay(conn, registry, &served, good));
        }
    });
    port
}

fn relay(conn: TcpStream, registry: u16, served: &AtomicUsize, good: usize) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut request = Vec::new();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
        if lower.starts_with("connection:") {
            continue;
        }
        if line == "\r\n" {
            request.extend_from_slice(b"Connection: close\r\n\r\n");
            break;
        }
        request.extend_from_slice(line.as_bytes());
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    request.extend_from_slice(&body);
    let mut out = conn;
    if served.fetch_add(1, Ordering::SeqCst) >= good {
        let _ = out.write_all(
            b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
        return;
    }
    let mut upstream = TcpStream::connect(("127.0.0.1", registry)).unwrap();
    upstream.write_all(&request).unwrap();
    let _ = std::io::copy(&mut upstream, &mut out);
}

#[test]
fn a_registry_that_fails_halfway_registers_nothing() {
    let f = Fixture::new();
    let r = Registry::start();
    push(&f, &r, true, &[]);
    // Six requests read the three objects' manifests and metadata; the
    // archives fail.
    let port = failing_proxy(r.port, 7);
    let url = format!("oci://127.0.0.1:{port}/imago/cache");
    refused_trusting_at(&f, &url, "E1004", &[&url, "HTTP 500"]);
}

#[test]
fn bad_urls_and_tags_are_refused() {
    let f = Fixture::new();
    let src = f.dir.path().join("src");
    for (url, want) in [
        ("oci://127.0.0.1:1", "REPOSITORY"),
        ("oci://127.0.0.1:1/Upper/Case", "not a repository name"),
        ("oci://user:pw@127.0.0.1:1/r", "credentials"),
    ] {
        let out = f.copy_at(&src, "--to", url, &[]);
        assert!(stderr(&out).contains("error[E1001]"), "{}", stderr(&out));
        assert!(stderr(&out).contains(want), "{}", stderr(&out));
    }
    let out = f.copy_at(&src, "--to", "oci://127.0.0.1:1/r", &["--tag", "o-x"]);
    assert!(stderr(&out).contains("the cache's own"), "{}", stderr(&out));
    let out = f.copy(&src, "--to", &["--tag", "x"]);
    assert!(
        stderr(&out).contains("only a registry cache"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn signing_later_adds_signatures_and_annotations_are_not_trusted() {
    let f = Fixture::new();
    let r = Registry::start();
    push(&f, &r, false, &[]);
    // A manifest claiming a signature by ci-1 that its config lacks: the
    // copy verifies the claim itself, and signs.
    let tag = object_tag(&f.top);
    let mut manifest = r.manifest(&tag);
    manifest["annotations"]["org.imago.signatures"] = "ci-1:AAAA".into();
    r.put_manifest(&tag, &manifest);
    let signed = push(&f, &r, true, &[]);
    assert_eq!(signed["objects_copied"], 0, "{signed}");
    assert_eq!(signed["signatures_added"], 3, "{signed}");
    assert_eq!(r.info(&f.top).signatures.len(), 1);
    let again = push(&f, &r, true, &[]);
    assert_eq!(again["signatures_added"], 0, "{again}");
    let dst = tempfile::tempdir().unwrap();
    let trust = f.key("ci-1.public");
    let out = f.copy_at(
        dst.path(),
        "--from",
        &r.url(),
        &["--trusted-public-key", &trust],
    );
    assert!(out.status.success(), "{}", stderr(&out));
}
