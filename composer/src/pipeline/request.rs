//! What a build is asked to do, and the plain settings it runs with.

use crate::cache::{Location, PublicKey};
use crate::graph::BuildOptions;
use anyhow::Context;
use imago_lang::diag::{self, Diagnostic};
use imago_lang::source::SourceMap;
use std::path::PathBuf;

/// What `imago build` builds when no attribute is given.
pub const DEFAULT_ATTR: &str = "config.system.build.toplevel";

/// A request to build one attribute of a file.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    pub file: PathBuf,
    /// `config.<option path>` for a system, or a path into the file's own
    /// value.
    pub attr: String,
    /// The module library directory (`None`: the default one).
    pub modules: Option<PathBuf>,
    pub options: BuildOptions,
}

/// What the pipeline needs from its caller besides the store and the
/// request.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Show every frame of an evaluation error's trace.
    pub show_trace: bool,
    /// Package caches tried before the mirrors (directories or URLs).
    pub package_caches: Vec<String>,
    /// How diagnostics are rendered.
    pub diagnostics: DiagnosticStyle,
    /// Binary caches asked, in order, for the output of each step the
    /// local build cache lacks (HTTP ones not when offline).
    pub substituters: Vec<Location>,
    /// The keys whose signatures the substituters are trusted with.
    pub trusted_public_keys: Vec<PublicKey>,
    /// Binary caches asked for the locked .debs, after the package caches
    /// and before the mirrors: every substituter, trusted keys or not (a
    /// .deb is checked against its lock's SHA-256).
    pub package_substituters: Vec<Location>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            show_trace: false,
            package_caches: Vec::new(),
            diagnostics: DiagnosticStyle::Text { color: false },
            substituters: Vec::new(),
            trusted_public_keys: Vec::new(),
            package_substituters: Vec::new(),
        }
    }
}

/// How diagnostics are rendered: as text (with or without colour) or as
/// one JSON array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiagnosticStyle {
    Text { color: bool },
    Json,
}

impl DiagnosticStyle {
    /// `diags` rendered in this style (JSON ends with a newline).
    pub fn render(self, diags: &[Diagnostic], sources: &SourceMap) -> anyhow::Result<String> {
        Ok(match self {
            DiagnosticStyle::Text { color } => diag::render(diags, sources, color),
            DiagnosticStyle::Json => format!(
                "{}\n",
                serde_json::to_string_pretty(&diag::to_json(diags, sources))
                    .context("cannot encode the diagnostics")?
            ),
        })
    }
}
