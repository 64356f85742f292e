//! Debian's `docker-registry`, started by a test on 127.0.0.1 with a
//! random port and a temporary storage directory, a raw client of it to
//! read and craft manifests, and proxies in front of it that fail or ask
//! for credentials.
#![allow(clippy::unwrap_used)]

use imago::cache::ObjectInfo;
use imago::store::StorePath;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tempfile::TempDir;

const REGISTRY: &str = "/usr/bin/docker-registry";
pub const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const INDEX: &str = "application/vnd.oci.image.index.v1+json";

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
        let port = crate::support::free_port();
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

    /// Every tag of the repository.
    pub fn tags(&self) -> Vec<String> {
        let body = ureq::get(&self.repo_url("tags/list"))
            .call()
            .unwrap()
            .into_body()
            .read_to_vec()
            .unwrap();
        let list: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let tags = list["tags"].as_array().unwrap();
        tags.iter()
            .map(|t| t.as_str().unwrap().to_owned())
            .collect()
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
        // Without the embedded copy: read from the blob, as a manifest
        // that another writer made would be.
        if let Some(config) = manifest["config"].as_object_mut() {
            config.remove("data");
        }
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

/// What a proxy in front of the registry ([`proxy`]) lets through.
#[derive(Debug, Clone, Copy)]
pub enum Gate {
    /// Every request.
    Open,
    /// This many requests, then 500 for every one.
    FailAfter(usize),
    /// 500 for every third request (a retry gets through, and so does a
    /// retried pair of requests).
    FailEveryThird,
    /// Requests with `Authorization: Basic` of `u:pw` only; others get a
    /// `Basic` challenge.
    Basic,
    /// Requests with the token `t0k` only; others get a `Bearer`
    /// challenge whose realm, `/token` on the proxy, hands the token out
    /// for `Basic` `u:pw`.
    Bearer,
}

/// `u:pw`, as an `Authorization: Basic` header and a docker config's
/// `auth` carry it.
pub const USER_PASSWORD: &str = "dTpwdw==";

/// A proxy on 127.0.0.1 in front of the registry at `registry`, one
/// request per connection, that lets through what `gate` lets through.
pub fn proxy(registry: u16, gate: Gate) -> u16 {
    proxy_logged(registry, gate).0
}

/// Every request a proxy received, as `METHOD PATH`, in order.
pub type Requests = Arc<Mutex<Vec<String>>>;

/// [`proxy`], and the requests it receives.
pub fn proxy_logged(registry: u16, gate: Gate) -> (u16, Requests) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let served = Arc::new(AtomicUsize::new(0));
    let log = Requests::default();
    let requests = log.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let (served, log) = (served.clone(), log.clone());
            std::thread::spawn(move || relay(conn, registry, port, (&served, &log), gate));
        }
    });
    (port, requests)
}

fn relay(
    conn: TcpStream,
    registry: u16,
    own: u16,
    (served, log): (&AtomicUsize, &Mutex<Vec<String>>),
    gate: Gate,
) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut request = Vec::new();
    let (mut length, mut path, mut auth) = (0usize, String::new(), String::new());
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        if path.is_empty() {
            let mut words = line.split_whitespace();
            let method = words.next().unwrap_or("");
            path = words.next().unwrap_or("").to_owned();
            log.lock().unwrap().push(format!("{method} {path}"));
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
        if lower.starts_with("authorization:") {
            auth = line["authorization:".len()..].trim().to_owned();
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
    let mut answer = |status: &str, headers: &str, body: &str| {
        let _ = write!(
            out,
            "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    };
    let basic = format!("Basic {USER_PASSWORD}");
    match gate {
        Gate::FailAfter(good) if served.fetch_add(1, Ordering::SeqCst) >= good => {
            return answer("500 Internal Server Error", "", "");
        }
        Gate::FailEveryThird if served.fetch_add(1, Ordering::SeqCst) % 3 == 2 => {
            return answer("500 Internal Server Error", "", "");
        }
        Gate::Basic if auth != basic => {
            return answer(
                "401 Unauthorized",
                "WWW-Authenticate: Basic realm=\"imago-test\"\r\n",
                "",
            );
        }
        Gate::Bearer if path.starts_with("/token") => {
            return if auth == basic {
                answer("200 OK", "", r#"{"token":"t0k"}"#)
            } else {
                answer("401 Unauthorized", "", "")
            };
        }
        Gate::Bearer if auth != "Bearer t0k" => {
            let challenge = format!(
                "WWW-Authenticate: Bearer realm=\"http://127.0.0.1:{own}/token\",service=\"test\",scope=\"repository:imago/cache:pull,push\"\r\n"
            );
            return answer("401 Unauthorized", &challenge, "");
        }
        _ => {}
    }
    let mut upstream = TcpStream::connect(("127.0.0.1", registry)).unwrap();
    upstream.write_all(&request).unwrap();
    let _ = std::io::copy(&mut upstream, &mut out);
}
