//! What one pass over the definitions finds, reported together.
//!
//! Checking a configuration does not stop at the first definition of an
//! option that does not exist: every namespace is split by name, and each
//! name that is not declared becomes a [`Problem`], as does each definition
//! of a renamed, removed, unsupported or ignored name (declare.rs,
//! `Alias`). Submodule evaluations (`users.users.alice`) record theirs in
//! the same [`Report`], and so do the eager checks of a system evaluation
//! (check.rs: type errors and other errors in the user's definitions), so a
//! whole configuration's mistakes come out in one run. Errors fail the
//! evaluation (at most [`MAX_REPORTED`] are shown, then a count); warnings
//! are shown and evaluation goes on.

use crate::diag::{Code, Diagnostic, Severity};
use crate::modules::error::{ModuleError, Site};
use crate::modules::path::OptionPath;
use std::collections::HashSet;

/// How many errors (and, separately, warnings) are shown; the rest are
/// counted.
pub const MAX_REPORTED: usize = 20;

/// One thing wrong (or worth a warning) about a definition.
#[derive(Debug, Clone, PartialEq)]
pub enum Problem {
    /// A definition of an option no module declares (E0301).
    Undefined {
        path: OptionPath,
        site: Site,
        suggestions: Vec<String>,
    },
    /// A definition of a removed option (E0311).
    Removed {
        path: OptionPath,
        message: String,
        site: Site,
    },
    /// A definition of an option Imago does not have (E0312).
    Unsupported {
        path: OptionPath,
        message: String,
        site: Site,
    },
    /// A definition of a renamed option: it applies to `to` (W0301).
    Renamed {
        path: OptionPath,
        to: OptionPath,
        site: Site,
    },
    /// A definition Imago accepts and ignores (W0302).
    Ignored {
        path: OptionPath,
        message: String,
        site: Site,
    },
    /// Any other error met while checking (a type error in a definition,
    /// an evaluation error...), as its finished diagnostic.
    Other(Box<Diagnostic>),
}

impl Problem {
    pub fn code(&self) -> Code {
        match self {
            Problem::Undefined { .. } => Code("E0301"),
            Problem::Removed { .. } => Code("E0311"),
            Problem::Unsupported { .. } => Code("E0312"),
            Problem::Renamed { .. } => Code("W0301"),
            Problem::Ignored { .. } => Code("W0302"),
            Problem::Other(d) => d.code,
        }
    }

    pub fn is_error(&self) -> bool {
        match self {
            Problem::Undefined { .. } | Problem::Removed { .. } | Problem::Unsupported { .. } => {
                true
            }
            Problem::Renamed { .. } | Problem::Ignored { .. } => false,
            Problem::Other(d) => d.severity == Severity::Error,
        }
    }

    /// Where the problem is: the definition, or the primary label.
    fn place(&self) -> (u32, u32, String) {
        let site = match self {
            Problem::Undefined { site, .. }
            | Problem::Removed { site, .. }
            | Problem::Unsupported { site, .. }
            | Problem::Renamed { site, .. }
            | Problem::Ignored { site, .. } => site,
            Problem::Other(d) => {
                return match d.labels.iter().find(|l| l.primary) {
                    Some(l) => (l.span.file.0, l.span.start, String::new()),
                    None => (u32::MAX, 0, d.message.clone()),
                };
            }
        };
        match site.span {
            Some(s) => (s.file.0, s.start, site.file.to_string()),
            None => (u32::MAX, 0, site.file.to_string()),
        }
    }

    pub fn message(&self) -> String {
        match self {
            Problem::Undefined { path, .. } => format!("the option `{path}` does not exist"),
            Problem::Removed { path, .. } => {
                format!("the option `{path}` has been removed: this definition has no effect")
            }
            Problem::Unsupported { path, .. } => format!("Imago has no option `{path}`"),
            Problem::Renamed { path, to, .. } => {
                format!("Imago spells the option `{path}` as `{to}`")
            }
            Problem::Ignored { path, .. } => {
                format!("Imago ignores the option `{path}`")
            }
            Problem::Other(d) => d.message.clone(),
        }
    }

    pub fn to_diagnostic(&self) -> Diagnostic {
        let site = match self {
            Problem::Other(d) => return (**d).clone(),
            Problem::Undefined { site, .. }
            | Problem::Removed { site, .. }
            | Problem::Unsupported { site, .. }
            | Problem::Renamed { site, .. }
            | Problem::Ignored { site, .. } => site,
        };
        let message = self.message();
        let mut d = if self.is_error() {
            Diagnostic::error(self.code(), message)
        } else {
            Diagnostic::warning(self.code(), message)
        };
        let label = match self {
            Problem::Renamed { to, .. } => format!("this definition applies to `{to}`"),
            _ => "defined here".to_string(),
        };
        d = crate::modules::error::label(d, site, true, label);
        let hint = match self {
            Problem::Undefined { suggestions, .. } => Some(
                crate::diag::did_you_mean(suggestions)
                    .unwrap_or_else(|| "`imago options` lists every declared option".into()),
            ),
            Problem::Removed { message, .. } => Some(if message.is_empty() {
                "remove this definition".to_string()
            } else {
                message.clone()
            }),
            Problem::Unsupported { message, .. } | Problem::Ignored { message, .. } => {
                (!message.is_empty()).then(|| message.clone())
            }
            Problem::Renamed { to, .. } => Some(format!("write `{to}` instead")),
            Problem::Other(_) => None,
        };
        if let Some(h) = hint {
            d = d.with_hint(h);
        }
        d
    }
}

/// Every problem found by an evaluation and its submodule evaluations,
/// each once.
#[derive(Default)]
pub struct Report {
    seen: HashSet<String>,
    problems: Vec<Problem>,
}

impl Report {
    /// Adds a problem unless the same one (same code, message and place) is
    /// already there — also when it came back as an error's diagnostic.
    /// Returns whether it was new.
    pub fn add(&mut self, p: Problem) -> bool {
        let d = p.to_diagnostic();
        let primary = d
            .labels
            .iter()
            .find(|l| l.primary)
            .map(|l| (l.span.file.0, l.span.start, l.span.end));
        let key = match primary {
            // A cycle is the same whichever of its options it was met from.
            Some(_) if matches!(d.code.0, "E0306" | "E0208") => {
                let mut spans: Vec<_> = d
                    .labels
                    .iter()
                    .map(|l| (l.span.file.0, l.span.start, l.span.end))
                    .collect();
                spans.sort_unstable();
                format!("{}|{spans:?}", d.code)
            }
            Some(span) => format!("{}|{}|{span:?}", d.code, d.message),
            None => format!("{}|{}|{:?}", d.code, d.message, p.place()),
        };
        if !self.seen.insert(key) {
            return false;
        }
        self.problems.push(p);
        true
    }

    /// Adds what an error reports: the problems of a pass, or its
    /// diagnostics.
    pub fn add_error(&mut self, e: &ModuleError) {
        match e {
            ModuleError::Problems { problems, stopped } => {
                for p in problems {
                    self.add(p.clone());
                }
                if let Some(s) = stopped {
                    self.add_error(s);
                }
            }
            other => {
                for d in other.diagnostics() {
                    self.add(Problem::Other(Box::new(d)));
                }
            }
        }
    }

    pub fn has_errors(&self) -> bool {
        self.problems.iter().any(Problem::is_error)
    }

    /// Every problem, in source order.
    pub fn sorted(&self) -> Vec<Problem> {
        sorted(self.problems.clone())
    }
}

/// Problems in source order: by file (in the order files were read, so the
/// user's configuration comes first), then position.
pub fn sorted(mut problems: Vec<Problem>) -> Vec<Problem> {
    problems.sort_by_key(Problem::place);
    problems
}

/// The diagnostics of a set of problems: the warnings, then the errors (at
/// most [`MAX_REPORTED`] of each, then a count), then the error that
/// stopped the pass, if any.
pub fn diagnostics(problems: &[Problem], stopped: Option<&ModuleError>) -> Vec<Diagnostic> {
    let (errors, warnings): (Vec<&Problem>, Vec<&Problem>) =
        problems.iter().partition(|p| p.is_error());
    let mut out = Vec::new();
    for (group, what) in [(warnings, "warnings"), (errors, "errors")] {
        let shown = group.len().min(MAX_REPORTED);
        for p in &group[..shown] {
            out.push(p.to_diagnostic());
        }
        let more = group.len() - shown;
        if more > 0
            && let Some(last) = out.last_mut()
        {
            last.notes.push(format!(
                "... and {more} more {} not shown: fix these and run again",
                if more == 1 {
                    &what[..what.len() - 1]
                } else {
                    what
                }
            ));
        }
    }
    if let Some(e) = stopped {
        out.extend(e.diagnostics());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{FileId, Span};

    fn undefined(name: &str, start: u32) -> Problem {
        Problem::Undefined {
            path: OptionPath::root().child(name),
            site: Site::new("/cfg.imago", Some(Span::new(FileId(1), start, start + 1))),
            suggestions: Vec::new(),
        }
    }

    #[test]
    fn the_same_problem_is_reported_once() {
        let mut r = Report::default();
        assert!(r.add(undefined("a", 3)));
        assert!(!r.add(undefined("a", 3)));
        assert!(r.add(undefined("a", 9)));
        assert_eq!(r.sorted().len(), 2);
        assert!(r.has_errors());
    }

    #[test]
    fn problems_sort_by_place() {
        let got: Vec<String> = sorted(vec![undefined("b", 9), undefined("a", 3)])
            .iter()
            .map(Problem::message)
            .collect();
        assert_eq!(
            got,
            [
                "the option `a` does not exist",
                "the option `b` does not exist"
            ]
        );
    }

    #[test]
    fn errors_beyond_the_limit_are_counted() {
        let many: Vec<Problem> = (0..MAX_REPORTED as u32 + 5)
            .map(|i| undefined(&format!("o{i}"), i))
            .collect();
        let diags = diagnostics(&many, None);
        assert_eq!(diags.len(), MAX_REPORTED);
        let last = diags.last().map(|d| d.notes.join("\n")).unwrap_or_default();
        assert!(last.contains("and 5 more errors not shown"), "{last}");
    }
}
