//! The builders known by name. A step's `builder` attribute selects one;
//! a name missing here is an error naming the builder and the step (raised by
//! the scheduler before anything is built).

use super::Builder;
use super::nftables::NftablesRulesetBuilder;
use super::path::PathBuilder;
use super::profile::ProfileBuilder;
use super::text::TextBuilder;
use super::tree::TreeBuilder;
use crate::boot::{InitrdBuilder, KernelBuilder};
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
