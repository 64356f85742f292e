//! Prefetching: the Debian packages a graph needs start downloading in the
//! background while the build runs (a `deb` step waits for its own file
//! only).

use crate::cache::Location;
use crate::debian::fetch::{Background, FetchOptions, HttpSettings};
use crate::debian::lock::{Lock, LockEntry};
use crate::graph::{BuildOptions, ValidatedGraph};
use crate::settings::configured_sources;
use anyhow::Context;
use std::path::{Path, PathBuf};

/// Fetch options for `cache_dir`, with the package caches given (before
/// those of the environment and the configuration files) and the binary
/// caches `substituters` (asked after the package caches, before the
/// mirrors); `config` (the configuration being built) makes the hint in
/// errors a command the user can paste.
pub fn fetch_options(
    package_caches: &[String],
    substituters: &[Location],
    cache_dir: PathBuf,
    offline: bool,
    config: Option<&Path>,
) -> anyhow::Result<FetchOptions> {
    let mut sources = configured_sources(package_caches)?;
    sources.binary_caches = substituters.iter().map(Location::package_source).collect();
    Ok(FetchOptions {
        cache_dir,
        sources,
        http: HttpSettings::default(),
        offline,
        progress: true,
        lock_command: config.map(|c| format!("imago lock {}", c.display())),
    })
}

/// Starts fetching every Debian package the graph needs that the download
/// cache lacks; `None` when the build uses no locked package.
pub(super) fn start(
    graph: &ValidatedGraph,
    lock: Option<&Lock>,
    options: &BuildOptions,
    package_caches: &[String],
    substituters: &[Location],
    file: &Path,
) -> anyhow::Result<Option<Background>> {
    let Some(lock) = lock else { return Ok(None) };
    let entries: Vec<LockEntry> = graph
        .topological()
        .iter()
        .map(|id| graph.step(*id))
        .filter(|s| s.builder == crate::graph::table::DEB_BUILDER)
        .filter_map(|s| lock.packages.get(&s.name).cloned())
        .collect();
    if entries.is_empty() {
        return Ok(None);
    }
    let fetch = fetch_options(
        package_caches,
        substituters,
        options.deb_cache.clone(),
        options.offline,
        Some(file),
    )?;
    let background = Background::start(&entries, &fetch).context("fetching Debian packages")?;
    Ok(Some(background))
}
