//! Diagnostics: errors as data, rendering kept separate.
//!
//! Every error type of this crate converts into a [`Diagnostic`] through
//! [`IntoDiagnostic`]. A diagnostic has a stable [`Code`] (listed and explained
//! in docs/errors.md), a message, labelled spans, notes and an optional hint.
//! [`render`] prints it the way a compiler does (`file:line:col`, the source
//! line, a caret under the span); [`to_json`] gives the same data to editors
//! and tools (`--error-format json`).

use crate::source::{SourceMap, Span};
use codespan_reporting::diagnostic as cr;
use codespan_reporting::files::{Error as FilesError, Files};
use codespan_reporting::term;
use std::ops::Range;

/// A stable error code such as `E0101`. The set of codes is closed: each error
/// kind maps to its code in an exhaustive `match`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Code(pub &'static str);

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    Note,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    pub span: Span,
    pub message: String,
    /// The primary label is underlined with `^`; secondary ones with `-`.
    pub primary: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    pub code: Code,
    pub severity: Severity,
    pub message: String,
    pub labels: Vec<Label>,
    pub notes: Vec<String>,
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn error(code: Code, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            severity: Severity::Error,
            message: message.into(),
            labels: Vec::new(),
            notes: Vec::new(),
            hint: None,
        }
    }

    pub fn with_primary(mut self, span: Span, message: impl Into<String>) -> Self {
        self.labels.push(Label {
            span,
            message: message.into(),
            primary: true,
        });
        self
    }

    pub fn with_secondary(mut self, span: Span, message: impl Into<String>) -> Self {
        self.labels.push(Label {
            span,
            message: message.into(),
            primary: false,
        });
        self
    }

    pub fn warning(code: Code, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, message)
        }
    }

    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// Turns an error value into a diagnostic. Implemented by every error type.
pub trait IntoDiagnostic {
    fn to_diagnostic(&self) -> Diagnostic;
}

/// Adapter that lets codespan-reporting read our [`SourceMap`].
struct MapFiles<'a>(&'a SourceMap);

impl<'a> Files<'a> for MapFiles<'a> {
    type FileId = u32;
    type Name = String;
    type Source = std::rc::Rc<str>;

    fn name(&'a self, id: u32) -> Result<String, FilesError> {
        self.0
            .display_name(crate::source::FileId(id))
            .ok_or(FilesError::FileMissing)
    }

    fn source(&'a self, id: u32) -> Result<Self::Source, FilesError> {
        self.0
            .get(crate::source::FileId(id))
            .map(|f| f.text.clone())
            .ok_or(FilesError::FileMissing)
    }

    fn line_index(&'a self, id: u32, byte_index: usize) -> Result<usize, FilesError> {
        let file = self
            .0
            .get(crate::source::FileId(id))
            .ok_or(FilesError::FileMissing)?;
        Ok(file.line_col(byte_index as u32).0 - 1)
    }

    fn line_range(&'a self, id: u32, line_index: usize) -> Result<Range<usize>, FilesError> {
        let file = self
            .0
            .get(crate::source::FileId(id))
            .ok_or(FilesError::FileMissing)?;
        let starts: Vec<usize> = std::iter::once(0)
            .chain(
                file.text
                    .bytes()
                    .enumerate()
                    .filter(|&(_, b)| b == b'\n')
                    .map(|(i, _)| i + 1),
            )
            .collect();
        let start = *starts.get(line_index).ok_or(FilesError::LineTooLarge {
            given: line_index,
            max: starts.len() - 1,
        })?;
        let end = starts
            .get(line_index + 1)
            .copied()
            .unwrap_or(file.text.len());
        Ok(start..end)
    }
}

fn to_codespan(d: &Diagnostic) -> cr::Diagnostic<u32> {
    let severity = match d.severity {
        Severity::Error => cr::Severity::Error,
        Severity::Warning => cr::Severity::Warning,
        Severity::Note => cr::Severity::Note,
    };
    let labels = d
        .labels
        .iter()
        .map(|l| {
            let style = if l.primary {
                cr::LabelStyle::Primary
            } else {
                cr::LabelStyle::Secondary
            };
            cr::Label::new(style, l.span.file.0, l.span.range()).with_message(&l.message)
        })
        .collect();
    let mut notes = d.notes.clone();
    if let Some(h) = &d.hint {
        notes.push(format!("hint: {h}"));
    }
    cr::Diagnostic::new(severity)
        .with_code(d.code.0)
        .with_message(&d.message)
        .with_labels(labels)
        .with_notes(notes)
}

/// Renders diagnostics as text: `error[E0101]: message`, then
/// `┌─ file:line:col`, the source line and the underlined span.
pub fn render(diags: &[Diagnostic], sources: &SourceMap, color: bool) -> String {
    use term::termcolor::{Buffer, NoColor};
    let config = term::Config::default();
    let files = MapFiles(sources);
    if color {
        let mut buf = Buffer::ansi();
        for d in diags {
            // Rendering into memory only fails when a span is out of range; fall
            // back to the plain message then.
            if term::emit_to_write_style(&mut buf, &config, &files, &to_codespan(d)).is_err() {
                buf.as_mut_slice(); // keep the buffer as it is
            }
        }
        String::from_utf8_lossy(buf.as_slice()).into_owned()
    } else {
        let mut out = NoColor::new(Vec::new());
        for d in diags {
            if term::emit_to_write_style(&mut out, &config, &files, &to_codespan(d)).is_err() {
                let severity = match d.severity {
                    Severity::Error => "error",
                    Severity::Warning => "warning",
                    Severity::Note => "note",
                };
                let fallback = format!("{severity}[{}]: {}\n", d.code, d.message);
                out.get_mut().extend_from_slice(fallback.as_bytes());
            }
        }
        String::from_utf8_lossy(&out.into_inner()).into_owned()
    }
}

#[derive(serde::Serialize)]
struct JsonLabel {
    file: String,
    line: usize,
    column: usize,
    end_line: usize,
    end_column: usize,
    byte_start: u32,
    byte_end: u32,
    message: String,
    primary: bool,
}

#[derive(serde::Serialize)]
struct JsonDiagnostic {
    code: &'static str,
    severity: Severity,
    message: String,
    labels: Vec<JsonLabel>,
    notes: Vec<String>,
    hint: Option<String>,
}

/// The diagnostics as a JSON array (`--error-format json`).
pub fn to_json(diags: &[Diagnostic], sources: &SourceMap) -> serde_json::Value {
    let items: Vec<JsonDiagnostic> = diags
        .iter()
        .map(|d| JsonDiagnostic {
            code: d.code.0,
            severity: d.severity,
            message: d.message.clone(),
            labels: d
                .labels
                .iter()
                .map(|l| {
                    let file = sources.get(l.span.file);
                    let (line, column) = file.as_ref().map_or((0, 0), |f| f.line_col(l.span.start));
                    let (end_line, end_column) =
                        file.as_ref().map_or((0, 0), |f| f.line_col(l.span.end));
                    JsonLabel {
                        file: sources.display_name(l.span.file).unwrap_or_default(),
                        line,
                        column,
                        end_line,
                        end_column,
                        byte_start: l.span.start,
                        byte_end: l.span.end,
                        message: l.message.clone(),
                        primary: l.primary,
                    }
                })
                .collect(),
            notes: d.notes.clone(),
            hint: d.hint.clone(),
        })
        .collect();
    serde_json::to_value(items).unwrap_or(serde_json::Value::Null)
}

/// The closest candidates to `name` by edit distance, for "did you mean"
/// hints. Returns at most three names, closest first.
pub fn suggest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let limit = (name.chars().count() / 3).max(1) + 1;
    let mut scored: Vec<(usize, &str)> = candidates
        .into_iter()
        .map(|c| (edit_distance(name, c), c))
        .filter(|&(d, _)| d <= limit)
        .collect();
    scored.sort();
    scored.dedup();
    scored
        .into_iter()
        .take(3)
        .map(|(_, c)| c.to_string())
        .collect()
}

/// The "did you mean" hint for a list of [`suggest`]ions, or `None` when
/// there are none.
pub fn did_you_mean(suggestions: &[String]) -> Option<String> {
    match suggestions {
        [] => None,
        [one] => Some(format!("did you mean `{one}`?")),
        many => Some(format!(
            "did you mean one of {}?",
            many.iter()
                .map(|s| format!("`{s}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// The optimal-string-alignment distance: insertions, deletions,
/// substitutions and swaps of two neighbouring characters each cost one
/// (so `ngnix` is one step from `nginx`).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for i in 0..a.len() {
        cur[0] = i + 1;
        for j in 0..b.len() {
            let cost = usize::from(a[i] != b[j]);
            let mut d = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
            if i > 0 && j > 0 && a[i] == b[j - 1] && a[i - 1] == b[j] {
                d = d.min(before[j - 1] + 1);
            }
            cur[j + 1] = d;
        }
        std::mem::swap(&mut before, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names() {
        let got = suggest("hostNam", ["hostName", "timeZone", "hostname"]);
        assert_eq!(got, vec!["hostName".to_string(), "hostname".to_string()]);
    }

    #[test]
    fn swapped_neighbours_are_one_step() {
        assert_eq!(edit_distance("ngnix", "nginx"), 1);
        assert_eq!(edit_distance("abc", "abc"), 0);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("ab", "ba"), 1);
        assert_eq!(edit_distance("ca", "abc"), 3);
        let got = suggest("ngnix", ["afnix", "nix", "nginx", "unix"]);
        assert_eq!(got[0], "nginx");
    }

    #[test]
    fn renders_file_line_column_and_caret() {
        let map = SourceMap::new();
        let f = map.add("/cfg/a.imago", "let x = 1;\nin y\n");
        let d = Diagnostic::error(Code("E0201"), "undefined variable `y`")
            .with_primary(Span::new(f, 14, 15), "not defined here");
        let text = render(&[d], &map, false);
        assert!(
            text.contains("error[E0201]: undefined variable `y`"),
            "{text}"
        );
        assert!(text.contains("/cfg/a.imago:2:4"), "{text}");
        assert!(text.contains('^'), "{text}");
    }
}
