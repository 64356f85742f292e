//! The composer's store tests, one test binary (see tests/support for what they share).

#[path = "../support/mod.rs"]
mod support;

mod add;
mod archive;
mod cli;
mod concurrency;
mod crash;
mod gc;
