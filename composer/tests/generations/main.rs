//! The composer's generations tests, one test binary (see tests/support for what they share).

#[path = "../support/mod.rs"]
mod support;

mod cli;
mod deploy;
mod deploy_cache;
mod parity;
mod rollout;
mod store_gc;
mod switch;
