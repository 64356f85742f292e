//! How commands that build fetch Debian packages: the sources from the
//! command line, the environment and the configuration files, with a
//! progress bar on a terminal.

use super::GlobalArgs;
use crate::debian::fetch::FetchOptions;
use std::path::{Path, PathBuf};

/// Fetch options for `cache_dir` with the `--package-cache` flags and the
/// substituters (`--substituter`, `IMAGO_SUBSTITUTERS`, configuration) as
/// package sources ([`crate::pipeline::prefetch::fetch_options`]).
pub fn fetch_options(
    global: &GlobalArgs,
    cache_dir: PathBuf,
    offline: bool,
    config: Option<&Path>,
) -> anyhow::Result<FetchOptions> {
    let substituters = super::trust::substituters(global, &crate::settings::Settings::load()?)?;
    crate::pipeline::prefetch::fetch_options(
        &global.package_caches,
        &substituters,
        cache_dir,
        offline,
        config,
    )
}
