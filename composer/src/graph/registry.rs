//! The builders known by name. A step's `builder` attribute selects one;
//! a name missing here is an error naming the builder and the step (raised by
//! the scheduler before anything is built).
//!
//! It lives above the builders, not among them: it names the builders of
//! `builders/`, `boot/` and `debian/`, which all depend on `builders`.

use crate::boot::{InitrdBuilder, KernelBuilder};
use crate::builders::Builder;
use crate::builders::nftables::NftablesRulesetBuilder;
use crate::builders::path::PathBuilder;
use crate::builders::profile::ProfileBuilder;
use crate::builders::text::TextBuilder;
use crate::builders::tree::TreeBuilder;
use crate::debian::builder::{DEB, DEB_FILE};

/// The builder registered under `name`.
pub fn builder(name: &str) -> Option<&'static dyn Builder> {
    match name {
        "text" => Some(&TextBuilder),
        "path" => Some(&PathBuilder),
        "profile" => Some(&ProfileBuilder),
        "tree" => Some(&TreeBuilder),
        "deb" => Some(&DEB),
        "deb-file" => Some(&DEB_FILE),
        "kernel" => Some(&KernelBuilder),
        "initrd" => Some(&InitrdBuilder),
        "nftables-ruleset" => Some(&NftablesRulesetBuilder),
        _ => None,
    }
}

/// Every registered builder name, sorted.
pub fn names() -> &'static [&'static str] {
    &[
        "deb",
        "deb-file",
        "initrd",
        "kernel",
        "nftables-ruleset",
        "path",
        "profile",
        "text",
        "tree",
    ]
}
