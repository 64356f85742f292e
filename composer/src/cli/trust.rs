//! Which binary caches a command reads, and the keys it trusts them with:
//! the flags (or their environment variables) first, then the
//! configuration files (docs/cache.md, "Trust" and "Substitution").

use super::GlobalArgs;
use crate::cache::{Location, PublicKey};
use crate::settings::Settings;
use std::path::Path;

/// The trusted public keys: `--trusted-public-key` files (or
/// `IMAGO_TRUSTED_PUBLIC_KEYS`), then the configuration's
/// `trusted-public-keys`. A malformed key anywhere is an error.
pub fn trusted_keys(global: &GlobalArgs, config: &Settings) -> anyhow::Result<Vec<PublicKey>> {
    let mut trusted = global
        .trusted_public_keys
        .iter()
        .filter(|p| !p.as_os_str().is_empty())
        .map(|p| PublicKey::read(p))
        .collect::<Result<Vec<_>, _>>()?;
    let origin = Path::new("the configuration's trusted-public-keys");
    for text in &config.trusted_public_keys {
        trusted.push(PublicKey::parse(text, origin)?);
    }
    Ok(trusted)
}

/// The substituters: `--substituter` (or `IMAGO_SUBSTITUTERS`), then the
/// configuration's `substituters`, each once, in that order.
pub fn substituters(global: &GlobalArgs, config: &Settings) -> anyhow::Result<Vec<Location>> {
    let mut seen = std::collections::BTreeSet::new();
    let mut caches = Vec::new();
    let urls = global
        .substituters
        .iter()
        .chain(&config.substituters)
        .filter(|u| !u.is_empty());
    for url in urls {
        let key = url.trim_end_matches('/');
        if seen.insert(key.to_owned()) {
            caches.push(Location::parse(url)?);
        }
    }
    Ok(caches)
}
