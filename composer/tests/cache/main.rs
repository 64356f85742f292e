//! Binary caches: signing keys, `imago copy` to and from a directory
//! cache, a web server and an OCI registry, and every way a cache's
//! object must be refused without registering anything (see tests/support for what the areas share).

#[path = "../support/mod.rs"]
mod support;

mod debs;
mod fixture;
mod http;
mod keys;
mod oci;
mod put;
mod refusals;
mod registry;
mod round_trip;
mod substitute;
