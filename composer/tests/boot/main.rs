//! The composer's boot tests, one test binary (see tests/support for what they share).

#[path = "../support/mod.rs"]
mod support;

mod image_build;
mod image_owner;
mod kernel_index;
mod vm;
