//! How commands that build fetch Debian packages: the sources from the
//! command line, the environment and the configuration files, with a
//! progress bar on a terminal.

use super::GlobalArgs;
use crate::debian::fetch::{FetchOptions, HttpSettings};
use crate::settings::configured_sources;
use std::path::{Path, PathBuf};

/// Fetch options for `cache_dir`; `config` (the configuration being built)
/// makes the hint in errors a command the user can paste.
pub fn fetch_options(
    global: &GlobalArgs,
    cache_dir: PathBuf,
    offline: bool,
    config: Option<&Path>,
) -> anyhow::Result<FetchOptions> {
    let sources = configured_sources(&global.package_caches)?;
    Ok(FetchOptions {
        cache_dir,
        sources,
        http: HttpSettings::default(),
        offline,
        progress: true,
        lock_command: config.map(|c| format!("imago lock {}", c.display())),
    })
}
