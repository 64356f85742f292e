//! The composer's cli tests, one test binary (see tests/support for what they share).

#[path = "../support/mod.rs"]
mod support;

mod config;
mod error_codes;
mod errors;
mod eval;
mod examples_build;
mod examples_eval;
mod help;
mod options_doc;
mod run_arm64;
mod run_forward;
mod test_hooks;
