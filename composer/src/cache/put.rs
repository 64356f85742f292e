//! Writing an HTTP(S) cache: each file of the layout stored with `PUT
//! <base>/<rel>`, on the client Debian fetching uses (its proxies,
//! timeouts and retries). HTTP has no rename, so the order alone keeps
//! readers safe: a push writes an archive before the metadata that names
//! it, and references before referrers (docs/cache.md, "Writing over
//! HTTP").

use super::CacheError;
use super::info::archive_name;
use super::transfer::export_archive;
use crate::debian::fetch::http::transport_failure;
use crate::debian::fetch::{Failure, Http};
use crate::store::{Blake3Digest, Store, StorePath};
use std::cell::RefCell;
use std::io::Read;
use std::path::Path;

/// What a PUT sends.
pub(super) enum Upload<'a> {
    Bytes(&'a [u8]),
    File(&'a Path),
}

/// Stores `body` as `<base>/<rel>`; `cache` names the cache in errors. A
/// server that refuses writes (401, 403, 405, 501) is
/// [`CacheError::WriteRefused`]; a server error or a broken connection
/// is tried again, then [`CacheError::HttpWrite`].
pub(super) fn put(
    client: &Http,
    cache: &str,
    base: &str,
    rel: &str,
    body: Upload<'_>,
) -> Result<(), CacheError> {
    let url = format!("{base}/{rel}");
    let own = RefCell::new(None);
    let result = client.retrying(|| {
        let request = client
            .agent_for(&url)
            .put(&url)
            .header("Content-Type", "application/octet-stream");
        let reply = match &body {
            Upload::Bytes(bytes) => request.send(*bytes),
            Upload::File(path) => {
                let file = std::fs::File::open(path).map_err(|e| {
                    let e = super::io_error(cache.to_owned(), "reading", path)(e);
                    stash(&own, e)
                })?;
                let len = file.metadata().map(|m| m.len()).unwrap_or_default();
                request.header("Content-Length", len.to_string()).send(file)
            }
        }
        .map_err(transport_failure)?;
        let status = reply.status().as_u16();
        let _ = std::io::copy(
            &mut reply.into_body().into_reader().take(64 * 1024),
            &mut std::io::sink(),
        );
        match status {
            200 | 201 | 204 => Ok(()),
            401 | 403 | 405 | 501 => Err(stash(
                &own,
                CacheError::WriteRefused {
                    cache: cache.to_owned(),
                    url: url.clone(),
                    status,
                },
            )),
            other => Err(Failure::Status(other)),
        }
    });
    result.map_err(|failure| match own.take() {
        Some(e) => e,
        None => CacheError::HttpWrite {
            cache: cache.to_owned(),
            url: url.clone(),
            failure: failure.to_string(),
        },
    })
}

/// Exports the archive of `path` alone to the store's temporary area,
/// then stores it as `<base>/archives/<blake3>.tar.zst` unless the server
/// has it; returns its BLAKE3 digest and size.
pub(super) fn put_archive(
    store: &Store,
    client: &Http,
    cache: &str,
    base: &str,
    path: &StorePath,
) -> Result<(Blake3Digest, u64), CacheError> {
    let tmp = store.temp_output().map_err(|source| CacheError::Store {
        cache: cache.to_owned(),
        source: Box::new(source),
    })?;
    let what = format!("the archive of {path}");
    let file = std::fs::File::create(tmp.out()).map_err(super::io_error(
        cache.to_owned(),
        "creating",
        &what,
    ))?;
    let exported = export_archive(store, path, file, false, cache, &what)?;
    let rel = archive_name(&exported.blake3);
    let there = client
        .head(&format!("{base}/{rel}"))
        .is_ok_and(|found| found.is_some_and(|len| len.is_none_or(|n| n == exported.size)));
    if !there {
        put(client, cache, base, &rel, Upload::File(&tmp.out()))?;
    }
    Ok((exported.blake3, exported.size))
}

/// Keeps `e` as the error and ends the attempts.
fn stash(own: &RefCell<Option<CacheError>>, e: CacheError) -> Failure {
    let text = e.to_string();
    *own.borrow_mut() = Some(e);
    Failure::Local(text)
}
