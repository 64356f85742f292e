//! The composer's deb tests, one test binary (see tests/support for what they share).

#[path = "../support/mod.rs"]
mod support;

mod fetch;
mod hostile;
mod index;
mod lock;
mod platform;
mod real;
mod sources;
mod unpack;
