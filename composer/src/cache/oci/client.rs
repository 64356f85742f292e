//! The few endpoints of the OCI distribution spec a cache needs, on the
//! HTTP client Debian fetching uses (ureq with rustls, its proxies,
//! timeouts and retries): manifests (HEAD, GET, PUT), blobs (HEAD, GET,
//! a monolithic upload by POST then PUT `?digest=`), and the registry's
//! authentication (`Basic`, or a `Bearer` token from its token service).

use super::auth::{Credentials, credentials_for, parse_challenge, token_in};
use super::layout::{Descriptor, INDEX_TYPE, MANIFEST_TYPE, sha256_digest};
use crate::cache::CacheError;
use crate::debian::fetch::http::transport_failure;
use crate::debian::fetch::{Failure, Http};
use std::cell::RefCell;
use std::io::Read;
use std::path::Path;
use std::sync::Mutex;
use ureq::http::Response;

type Reply = Response<ureq::Body>;

/// Builds and sends one request with the `Authorization` header given.
type Send<'a> = dyn FnMut(&ureq::Agent, Option<&str>) -> Result<Reply, ureq::Error> + 'a;

/// The most of an error answer's body quoted in a message.
const QUOTED_BYTES: u64 = 2048;

/// A repository of a registry.
pub struct Client {
    http: Http,
    /// The cache's URL, for messages.
    cache: String,
    /// `http(s)://host[:port]`.
    base: String,
    repo: String,
    credentials: Option<Credentials>,
    /// The `Authorization` header that last worked.
    authorization: Mutex<Option<String>>,
}

/// What a blob upload sends.
pub enum Body<'a> {
    Bytes(&'a [u8]),
    File(&'a Path),
}

impl Client {
    pub fn new(http: Http, cache: String, scheme: &str, host: &str, repo: &str) -> Client {
        Client {
            http,
            cache,
            base: format!("{scheme}://{host}"),
            repo: repo.to_owned(),
            credentials: credentials_for(host),
            authorization: Mutex::new(None),
        }
    }

    pub(super) fn url(&self, tail: &str) -> String {
        format!("{}/v2/{}/{tail}", self.base, self.repo)
    }

    fn registry_err(&self, what: &str, answer: String) -> CacheError {
        CacheError::Registry {
            cache: self.cache.clone(),
            what: what.to_owned(),
            answer,
        }
    }

    fn http_err(&self, what: &str, failure: Failure) -> CacheError {
        CacheError::RegistryIo {
            cache: self.cache.clone(),
            what: what.to_owned(),
            failure: failure.to_string(),
        }
    }

    /// An answer of a status the request did not expect, as an error
    /// quoting the registry's explanation.
    fn unexpected(&self, what: &str, reply: Reply) -> CacheError {
        let status = reply.status().as_u16();
        let mut text = String::new();
        let _ = reply
            .into_body()
            .into_reader()
            .take(QUOTED_BYTES)
            .read_to_string(&mut text);
        let hint = match status {
            401 | 403 => {
                " (credentials come from the docker or podman configuration: `docker login` or `podman login`)"
            }
            _ => "",
        };
        self.registry_err(
            what,
            format!("HTTP {status}{hint}: {}", text.trim())
                .trim_end_matches(": ")
                .to_owned(),
        )
    }

    /// One attempt of a request `send` builds (called again, with the
    /// `Authorization` header to use, after a challenge is answered).
    /// Server errors (5xx, 429) are failures worth retrying; other
    /// answers are returned as they are.
    fn attempt(
        &self,
        own: &RefCell<Option<CacheError>>,
        what: &str,
        send: &mut Send<'_>,
    ) -> Result<Reply, Failure> {
        let agent = self.http.agent_for(&self.base);
        let mut answered = false;
        loop {
            let authorization = self.lock_authorization().clone();
            let reply = send(agent, authorization.as_deref()).map_err(transport_failure)?;
            let status = reply.status().as_u16();
            if status == 401 && !answered {
                answered = true;
                let challenge = header(&reply, "www-authenticate");
                drain(reply);
                if let Err(e) = self.authenticate(what, challenge.as_deref()) {
                    return Err(stash(own, e));
                }
                continue;
            }
            if status >= 500 || status == 429 {
                drain(reply);
                return Err(Failure::Status(status));
            }
            return Ok(reply);
        }
    }

    /// [`Client::attempt`] retried, with errors as cache errors.
    fn call(
        &self,
        what: &str,
        mut send: impl FnMut(&ureq::Agent, Option<&str>) -> Result<Reply, ureq::Error>,
    ) -> Result<Reply, CacheError> {
        let own = RefCell::new(None);
        let result = self.http.retrying(|| self.attempt(&own, what, &mut send));
        result.map_err(|failure| match own.take() {
            Some(e) => e,
            None => self.http_err(what, failure),
        })
    }

    fn lock_authorization(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.authorization
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Answers a `WWW-Authenticate` challenge: with the credentials for
    /// `Basic`, with a token from the realm for `Bearer`.
    fn authenticate(&self, what: &str, challenge: Option<&str>) -> Result<(), CacheError> {
        let refuse = |why: &str| self.registry_err(what, format!("HTTP 401: {why}"));
        let challenge = challenge
            .and_then(parse_challenge)
            .ok_or_else(|| refuse("it asks for credentials without a usable challenge"))?;
        let header = match challenge.scheme.as_str() {
            "basic" => self
                .credentials
                .as_ref()
                .ok_or_else(|| refuse("it asks for credentials and none are configured for the host (`docker login` or `podman login`)"))?
                .basic(),
            "bearer" => format!("Bearer {}", self.token(what, &challenge.params)?),
            other => return Err(refuse(&format!("unsupported authentication `{other}`"))),
        };
        *self.lock_authorization() = Some(header);
        Ok(())
    }

    /// A token from the realm of a `Bearer` challenge, asked with the
    /// credentials if there are some (anonymously otherwise).
    fn token(
        &self,
        what: &str,
        params: &std::collections::BTreeMap<String, String>,
    ) -> Result<String, CacheError> {
        let realm = params
            .get("realm")
            .ok_or_else(|| self.registry_err(what, "a Bearer challenge without a realm".into()))?;
        let default_scope = format!("repository:{}:pull,push", self.repo);
        let scope = params.get("scope").unwrap_or(&default_scope);
        let mut url = format!("{realm}?scope={}", encode(scope));
        if let Some(service) = params.get("service") {
            url.push_str(&format!("&service={}", encode(service)));
        }
        let token_what = format!("asking for a token ({what})");
        let reply = self
            .http
            .retrying(|| {
                let mut request = self.http.agent_for(&url).get(&url);
                if let Some(c) = &self.credentials {
                    request = request.header("Authorization", c.basic());
                }
                let reply = request.call().map_err(transport_failure)?;
                match reply.status().as_u16() {
                    s if s >= 500 || s == 429 => Err(Failure::Status(s)),
                    _ => Ok(reply),
                }
            })
            .map_err(|f| self.http_err(&token_what, f))?;
        if reply.status().as_u16() != 200 {
            return Err(self.unexpected(&token_what, reply));
        }
        let body = read_limited(reply, QUOTED_BYTES * 32)
            .map_err(|e| self.http_err(&token_what, Failure::Transport(e.to_string())))?;
        token_in(&body)
            .ok_or_else(|| self.registry_err(&token_what, "an answer without a token".into()))
    }

    /// The manifest `reference` (a tag or digest) and its digest, or
    /// `None` if the repository lacks it. Its bytes must hash to the
    /// digest the registry names.
    pub fn get_manifest(
        &self,
        reference: &str,
        max: u64,
    ) -> Result<Option<(Vec<u8>, String)>, CacheError> {
        let what = format!("fetching manifest {reference}");
        let url = self.url(&format!("manifests/{reference}"));
        let accept = format!("{MANIFEST_TYPE}, {INDEX_TYPE}");
        let reply = self.call(&what, |agent, auth| {
            with_auth(agent.get(&url).header("Accept", &accept), auth).call()
        })?;
        match reply.status().as_u16() {
            200 => {}
            404 => {
                drain(reply);
                return Ok(None);
            }
            _ => return Err(self.unexpected(&what, reply)),
        }
        let named = header(&reply, "docker-content-digest");
        let bytes = read_limited(reply, max + 1)
            .map_err(|e| self.http_err(&what, Failure::Transport(e.to_string())))?;
        let manifest = format!("manifest {reference}");
        if bytes.len() as u64 > max {
            return Err(self.bad_blob(&manifest, format!("longer than {max} bytes")));
        }
        let digest = sha256_digest(&bytes);
        if let Some(named) = named.filter(|n| *n != digest) {
            return Err(self.bad_blob(
                &manifest,
                format!("it hashes to {digest}, the registry says {named}"),
            ));
        }
        Ok(Some((bytes, digest)))
    }

    /// Stores `bytes` (of `media_type`) as the manifest `tag`; returns its
    /// digest.
    pub fn put_manifest(
        &self,
        tag: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<String, CacheError> {
        let what = format!("storing manifest {tag}");
        let url = self.url(&format!("manifests/{tag}"));
        let reply = self.call(&what, |agent, auth| {
            with_auth(agent.put(&url).header("Content-Type", media_type), auth).send(bytes)
        })?;
        if reply.status().as_u16() != 201 {
            return Err(self.unexpected(&what, reply));
        }
        drain(reply);
        Ok(sha256_digest(bytes))
    }

    /// Whether the repository has the blob `digest`.
    pub fn has_blob(&self, digest: &str) -> Result<bool, CacheError> {
        let what = format!("asking for blob {digest}");
        let url = self.url(&format!("blobs/{digest}"));
        let reply = self.call(&what, |agent, auth| {
            with_auth(agent.head(&url), auth).call()
        })?;
        match reply.status().as_u16() {
            200 => {
                drain(reply);
                Ok(true)
            }
            404 => {
                drain(reply);
                Ok(false)
            }
            _ => Err(self.unexpected(&what, reply)),
        }
    }

    /// Uploads `body` as the blob `digest` in one piece: a new upload
    /// session and the whole body for every attempt, since a failed PUT
    /// may have ended its session.
    pub fn upload_blob(&self, digest: &str, body: Body<'_>) -> Result<(), CacheError> {
        let what = format!("uploading blob {digest}");
        let start = self.url("blobs/uploads/");
        let own = RefCell::new(None);
        let open_err = |e: std::io::Error| ureq::Error::Io(e);
        let result = self.http.retrying(|| {
            let reply = self.attempt(&own, &what, &mut |agent, auth| {
                with_auth(agent.post(&start), auth).send_empty()
            })?;
            if reply.status().as_u16() != 202 {
                return Err(self.stash(&own, &what, reply));
            }
            let Some(location) = header(&reply, "location") else {
                let e = self.registry_err(&what, "HTTP 202 without a Location".into());
                return Err(stash(&own, e));
            };
            drain(reply);
            let mut url = if location.starts_with('/') {
                format!("{}{location}", self.base)
            } else {
                location
            };
            url.push(if url.contains('?') { '&' } else { '?' });
            url.push_str(&format!("digest={}", encode(digest)));
            let reply = self.attempt(&own, &what, &mut |agent, auth| {
                let request = with_auth(agent.put(&url), auth)
                    .header("Content-Type", "application/octet-stream");
                match &body {
                    Body::Bytes(b) => request.send(*b),
                    Body::File(p) => request.send(std::fs::File::open(p).map_err(open_err)?),
                }
            })?;
            if reply.status().as_u16() != 201 {
                return Err(self.stash(&own, &what, reply));
            }
            drain(reply);
            Ok(())
        });
        result.map_err(|failure| match own.take() {
            Some(e) => e,
            None => self.http_err(&what, failure),
        })
    }

    /// An answer the protocol does not expect, left in `own` as the
    /// error, and the failure that ends the attempts.
    fn stash(&self, own: &RefCell<Option<CacheError>>, what: &str, reply: Reply) -> Failure {
        stash(own, self.unexpected(what, reply))
    }

    /// GETs the blob of `desc` and hands its body to `consume`, retrying
    /// broken transfers; returns what `consume` returned, the bytes it
    /// read and their digest. An error of the registry's own (an answer
    /// the protocol does not expect) is left in `own`.
    pub fn get_blob<T>(
        &self,
        desc: &Descriptor,
        own: &RefCell<Option<CacheError>>,
        consume: &mut dyn FnMut(&mut dyn Read) -> Result<T, Failure>,
    ) -> Result<(T, u64, String), Failure> {
        let what = format!("fetching blob {}", desc.digest);
        let url = self.url(&format!("blobs/{}", desc.digest));
        self.http.retrying(|| {
            let reply = self.attempt(own, &what, &mut |agent, auth| {
                with_auth(agent.get(&url), auth).call()
            })?;
            match reply.status().as_u16() {
                200 => {}
                404 => return Err(Failure::NotFound),
                _ => return Err(self.stash(own, &what, reply)),
            }
            let mut body = Sha256Reader {
                inner: reply.into_body().into_reader(),
                sha: <sha2::Sha256 as sha2::Digest>::new(),
                len: 0,
            };
            let t = consume(&mut body)?;
            let digest = format!("sha256:{:x}", sha2::Digest::finalize(body.sha));
            Ok((t, body.len, digest))
        })
    }

    /// A blob's bytes that do not match its descriptor.
    pub fn bad_blob(&self, what: &str, reason: String) -> CacheError {
        CacheError::BadBlob {
            cache: self.cache.clone(),
            what: what.to_owned(),
            reason,
        }
    }
}

/// Leaves `e` in `own` and returns the failure that ends the attempts.
fn stash(own: &RefCell<Option<CacheError>>, e: CacheError) -> Failure {
    let text = e.to_string();
    *own.borrow_mut() = Some(e);
    Failure::Local(text)
}

/// A reader that hashes and counts what it reads.
struct Sha256Reader<R> {
    inner: R,
    sha: sha2::Sha256,
    len: u64,
}

impl<R: Read> Read for Sha256Reader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        sha2::Digest::update(&mut self.sha, &buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
}

fn with_auth<B>(request: ureq::RequestBuilder<B>, auth: Option<&str>) -> ureq::RequestBuilder<B> {
    match auth {
        Some(a) => request.header("Authorization", a),
        None => request,
    }
}

fn header(reply: &Reply, name: &str) -> Option<String> {
    reply
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Reads the rest of an answer so its connection returns to the pool.
fn drain(reply: Reply) {
    let _ = std::io::copy(
        &mut reply.into_body().into_reader().take(64 * 1024),
        &mut std::io::sink(),
    );
}

fn read_limited(reply: Reply, max: u64) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    reply
        .into_body()
        .into_reader()
        .take(max)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Percent-encodes a query parameter's value.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
