//! Imago's composer: everything after evaluation.
//!
//! ```text
//! config (imago-lang) --hook--> steps --graph--> validated DAG --scheduler--> builders --> store
//!                                                                            (text, path, profile,
//!                                                                             deb, kernel, initrd, ...)
//! ```
//!
//! See docs/ARCHITECTURE.md for who owns what.

pub mod arch;
pub mod boot;
pub mod builders;
pub mod cache;
pub mod cli;
pub mod codes;
pub mod debian;
pub mod dirs;
pub mod fsio;
pub mod generations;
pub mod graph;
pub mod image;
pub mod pipeline;
pub mod remote;
pub mod settings;
pub mod store;
pub mod system_eval;
pub mod utc;
