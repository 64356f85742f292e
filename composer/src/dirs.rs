//! Imago's per-user directories outside the store, after the XDG base
//! directory specification.

use std::path::PathBuf;

/// `$VAR/imago` when `VAR` is set and not empty, else `~/<fallback>/imago`
/// (`/root` when `HOME` is unset).
fn xdg(var: &str, fallback: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os(var).filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("imago");
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(fallback).join("imago")
}

/// Imago's cache root: `$XDG_CACHE_HOME/imago`, default `~/.cache/imago`.
/// What is in it can always be made again (downloads, package lists, the
/// uncompressed kernels of direct boots).
pub fn cache_root() -> PathBuf {
    xdg("XDG_CACHE_HOME", ".cache")
}

/// Imago's configuration directory: `$XDG_CONFIG_HOME/imago`, default
/// `~/.config/imago`.
pub fn config_root() -> PathBuf {
    xdg("XDG_CONFIG_HOME", ".config")
}
