//! Module-system errors and their diagnostics (codes E03xx, docs/errors.md).
//!
//! Every error names the option path involved and points at the places that
//! matter: where the offending definition was written, where the option is
//! declared, every conflicting definition. Errors raised while the evaluator
//! forces a configuration value (inside a lazily merged option) travel through
//! the evaluator as [`ErrorKind::External`] carrying the finished diagnostic,
//! so they keep their code and labels wherever they surface.

use crate::diag::{Code, Diagnostic, IntoDiagnostic};
use crate::eval::error::{ErrorKind, EvalError};
use crate::modules::path::OptionPath;
use crate::modules::problems::{self, Problem};
use crate::source::{FileId, Span};
use std::rc::Rc;

/// Where something was written: a file (or a display name such as
/// `<command line>`) and, when known, the exact span.
#[derive(Debug, Clone, PartialEq)]
pub struct Site {
    pub file: Rc<str>,
    pub span: Option<Span>,
}

impl Site {
    pub fn new(file: impl Into<Rc<str>>, span: Option<Span>) -> Self {
        Site {
            file: file.into(),
            span,
        }
    }
}

/// One definition in a conflict: where it is and what it says (shortened).
#[derive(Debug, Clone, PartialEq)]
pub struct ConflictingDef {
    pub site: Site,
    pub value: String,
}

/// One step of a cycle through the configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct CycleStep {
    pub option: OptionPath,
    /// The definition (or declaration) being evaluated when the next option
    /// was needed.
    pub site: Site,
}

#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    #[error("the option `{path}` does not exist")]
    UndefinedOption {
        path: OptionPath,
        site: Site,
        suggestions: Vec<String>,
    },
    #[error("the option `{path}` is of type `{expected}`, but it is defined as {got}")]
    TypeMismatch {
        path: OptionPath,
        expected: String,
        got: String,
        site: Site,
        /// The option's declaration.
        declared: Option<Box<Site>>,
    },
    #[error("the option `{path}` has conflicting definitions")]
    Conflict {
        path: OptionPath,
        defs: Vec<ConflictingDef>,
    },
    #[error("the option `{path}` is used but not defined, and it has no default")]
    NoValue { path: OptionPath, declared: Site },
    #[error("cannot import {what}: {reason}")]
    BadImport {
        what: String,
        reason: String,
        site: Site,
        #[source]
        source: Option<EvalError>,
    },
    #[error("infinite recursion through the configuration: {}", chain_text(.chain))]
    Cycle {
        chain: Vec<CycleStep>,
        hint: Option<String>,
    },
    #[error("the option `{path}` is read-only, but it is defined {} times", .defs.len())]
    ReadOnly { path: OptionPath, defs: Vec<Site> },
    #[error("{message}")]
    BadModule {
        message: String,
        site: Site,
        hint: Option<String>,
    },
    #[error("{message}")]
    BadDeclaration {
        path: OptionPath,
        message: String,
        sites: Vec<Site>,
    },
    #[error("{message}")]
    BadDefinition {
        path: OptionPath,
        message: String,
        site: Site,
    },
    /// Everything one pass over the definitions found (problems.rs): the
    /// problems, and the error that stopped the pass early, if any.
    #[error("{}", problems_text(.problems, .stopped.as_deref()))]
    Problems {
        problems: Vec<Problem>,
        stopped: Option<Box<ModuleError>>,
    },
    /// A removed, unsupported or ignored name was read.
    #[error("the option `{path}` cannot be read: {reason}")]
    Unreadable {
        path: OptionPath,
        reason: String,
        /// Whether the name was removed (E0311) rather than one Imago does
        /// not have (E0312).
        removed: bool,
        declared: Site,
    },
    #[error(transparent)]
    Eval(#[from] EvalError),
}

fn problems_text(problems: &[Problem], stopped: Option<&ModuleError>) -> String {
    let errors: Vec<&Problem> = problems.iter().filter(|p| p.is_error()).collect();
    match (errors.first(), stopped) {
        (Some(first), _) => {
            let more = errors.len() - 1 + usize::from(stopped.is_some());
            if more == 0 {
                first.message()
            } else {
                format!(
                    "{} (and {more} more error{})",
                    first.message(),
                    if more == 1 { "" } else { "s" }
                )
            }
        }
        (None, Some(e)) => e.to_string(),
        (None, None) => "the configuration has warnings".to_string(),
    }
}

fn chain_text(chain: &[CycleStep]) -> String {
    chain
        .iter()
        .map(|s| format!("`{}`", s.option))
        .collect::<Vec<_>>()
        .join(" → ")
}

impl ModuleError {
    pub fn code(&self) -> Code {
        match self {
            ModuleError::UndefinedOption { .. } => Code("E0301"),
            ModuleError::TypeMismatch { .. } => Code("E0302"),
            ModuleError::Conflict { .. } => Code("E0303"),
            ModuleError::NoValue { .. } => Code("E0304"),
            ModuleError::BadImport { .. } => Code("E0305"),
            ModuleError::Cycle { .. } => Code("E0306"),
            ModuleError::ReadOnly { .. } => Code("E0307"),
            ModuleError::BadModule { .. } => Code("E0308"),
            ModuleError::BadDeclaration { .. } => Code("E0309"),
            ModuleError::BadDefinition { .. } => Code("E0310"),
            ModuleError::Problems { problems, stopped } => {
                match (problems.iter().find(|p| p.is_error()), stopped) {
                    (Some(p), _) => p.code(),
                    (None, Some(e)) => e.code(),
                    (None, None) => Code("E0301"),
                }
            }
            ModuleError::Unreadable { removed: true, .. } => Code("E0311"),
            ModuleError::Unreadable { removed: false, .. } => Code("E0312"),
            ModuleError::Eval(e) => e.code(),
        }
    }

    /// Every diagnostic of this error: all the problems of a pass over the
    /// definitions (problems.rs), all the syntax errors of a file that
    /// failed to parse, or the one error.
    pub fn diagnostics(&self) -> Vec<Diagnostic> {
        match self {
            ModuleError::Problems { problems, stopped } => {
                problems::diagnostics(problems, stopped.as_deref())
            }
            ModuleError::Eval(e) => match e.parse_diagnostics() {
                Some(d) => d.to_vec(),
                None => vec![e.to_diagnostic()],
            },
            other => vec![other.to_diagnostic()],
        }
    }

    /// This error as an evaluator error, for code that runs inside a lazily
    /// computed value. An evaluator error stays what it was.
    pub fn into_eval(self) -> EvalError {
        match self {
            ModuleError::Eval(e) => e,
            other => {
                let d = other.to_diagnostic();
                let span = d
                    .labels
                    .first()
                    .map_or(Span::new(FileId(0), 0, 0), |l| l.span);
                EvalError::new(ErrorKind::External(Box::new(d)), span)
            }
        }
    }
}

/// Adds `site` as a label when it has a span, else as a note naming the file.
pub(crate) fn label(d: Diagnostic, site: &Site, primary: bool, message: String) -> Diagnostic {
    match site.span {
        Some(span) if primary => d.with_primary(span, message),
        Some(span) => d.with_secondary(span, message),
        None => d.with_note(format!("{message} (in {})", site.file)),
    }
}

impl IntoDiagnostic for ModuleError {
    fn to_diagnostic(&self) -> Diagnostic {
        match self {
            ModuleError::Eval(e) => return e.to_diagnostic(),
            // One diagnostic (inside a lazily computed value): the first,
            // and how many more there are.
            ModuleError::Problems { .. } => {
                let mut all = self.diagnostics();
                let errors = all
                    .iter()
                    .position(|d| d.severity == crate::diag::Severity::Error)
                    .unwrap_or(0);
                if all.is_empty() {
                    return Diagnostic::error(self.code(), self.to_string());
                }
                let more = all.len() - 1;
                let mut d = all.swap_remove(errors);
                if more > 0 {
                    d = d.with_note(format!("... and {more} more problems"));
                }
                return d;
            }
            _ => {}
        }
        let mut d = Diagnostic::error(self.code(), self.to_string());
        match self {
            ModuleError::UndefinedOption {
                site, suggestions, ..
            } => {
                // Without a span the path came from the command line.
                if site.span.is_some() {
                    d = label(d, site, true, "defined here".into());
                }
                if let Some(h) = crate::diag::did_you_mean(suggestions) {
                    d = d.with_hint(h);
                } else {
                    d = d.with_hint("`imago options` lists every declared option");
                }
            }
            ModuleError::TypeMismatch {
                site,
                got,
                declared,
                ..
            } => {
                d = label(d, site, true, format!("defined as {got} here"));
                if let Some(decl) = declared
                    && decl.span.is_some()
                    && decl.span != site.span
                {
                    d = label(d, decl, false, "the option is declared here".into());
                }
            }
            ModuleError::Conflict { defs, .. } => {
                for (i, def) in defs.iter().enumerate() {
                    d = label(d, &def.site, i == 0, format!("defined as {}", def.value));
                }
                d = d.with_hint(
                    "give one definition a higher priority with `lib.mkForce`, \
                     or make the definitions equal",
                );
            }
            ModuleError::NoValue { declared, .. } => {
                d = label(d, declared, true, "declared here".into())
                    .with_hint("define it in your configuration, or give the option a `default`");
            }
            ModuleError::BadImport { site, .. } => {
                d = label(d, site, true, "imported here".into());
            }
            ModuleError::Cycle { chain, hint } => {
                // The last step repeats the first: label each option once.
                let steps = match chain.split_last() {
                    Some((last, rest)) if !rest.is_empty() && rest[0].option == last.option => rest,
                    _ => &chain[..],
                };
                for (i, step) in steps.iter().enumerate() {
                    let next = chain
                        .get(i + 1)
                        .map_or(String::new(), |n| format!(", which needs `{}`", n.option));
                    d = label(
                        d,
                        &step.site,
                        i == 0,
                        format!("evaluating `{}`{next}", step.option),
                    );
                }
                d = d.with_note(
                    "an option's value depends on itself; \
                     break the chain (for example with `lib.mkIf` on a different option)",
                );
                if let Some(h) = hint {
                    d = d.with_hint(h.clone());
                }
            }
            ModuleError::ReadOnly { defs, .. } => {
                for (i, site) in defs.iter().enumerate() {
                    d = label(d, site, i == 0, "defined here".into());
                }
            }
            ModuleError::BadModule { site, hint, .. } => {
                d = label(d, site, true, "in this module".into());
                if let Some(h) = hint {
                    d = d.with_hint(h.clone());
                }
            }
            ModuleError::BadDeclaration { sites, .. } => {
                for (i, site) in sites.iter().enumerate() {
                    d = label(d, site, i == 0, "declared here".into());
                }
            }
            ModuleError::BadDefinition { site, .. } => {
                d = label(d, site, true, "defined here".into());
            }
            ModuleError::Unreadable { declared, .. } => {
                d = label(d, declared, true, "this name is declared here".into());
            }
            ModuleError::Problems { .. } | ModuleError::Eval(_) => {}
        }
        d
    }
}
