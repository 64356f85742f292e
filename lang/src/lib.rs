//! The Imago configuration language.
//!
//! A small, lazily evaluated, Nix-flavoured language. The pipeline is:
//!
//! ```text
//! text --(parser)--> ast::Expr (+ parse errors) --(eval)--> Value --(modules)--> config
//! ```
//!
//! This crate never touches the file system, the clock, the environment or the
//! network. Files are read through the injected [`io::EvalIo`] trait, and store
//! objects (generated files, imported paths, packages) are created through the
//! injected [`hook::StoreHook`] trait, which the composer implements. The same
//! inputs therefore always give the same value.

pub mod ast;
pub mod diag;
pub mod eval;
pub mod hook;
pub mod io;
pub mod modules;
pub mod parser;
pub mod printer;
pub mod source;
