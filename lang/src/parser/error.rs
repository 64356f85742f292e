//! Syntax errors and their diagnostics.
//!
//! Every kind of syntax error is a variant of [`ParseError`] that keeps the
//! spans it needs; [`IntoDiagnostic`] turns it into a [`Diagnostic`] with a
//! stable code (`E01xx`, documented in docs/errors.md) assigned by an
//! exhaustive match, a primary label, secondary labels and a hint.

use crate::diag::{Code, Diagnostic, IntoDiagnostic};
use crate::source::Span;
use smol_str::SmolStr;

/// A construct that the language recognises but does not support.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsupported {
    /// `http://example.org` (Nix's unquoted URI literals).
    Uri,
    /// `<nixpkgs>` search-path lookups.
    SearchPath,
    /// `~/x` home-relative paths.
    HomePath,
    /// The legacy `let { ... }` form.
    LegacyLet,
}

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Unsupported::Uri => "unquoted URI literals are not supported",
            Unsupported::SearchPath => "search path lookups (`<name>`) are not supported",
            Unsupported::HomePath => "home-relative paths (`~/...`) are not supported",
            Unsupported::LegacyLet => "the legacy `let { ... }` syntax is not supported",
        })
    }
}

/// One syntax error. [`ParseError::span`] is where it is reported.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParseError {
    /// A character that starts no token.
    #[error("unexpected character `{}`", ch.escape_debug())]
    UnexpectedChar {
        ch: char,
        span: Span,
        hint: Option<&'static str>,
    },
    /// A `"` or `''` string that reaches the end of the file. `span` is the
    /// opening delimiter.
    #[error("unterminated {}", if *indented { "indented string" } else { "string" })]
    UnterminatedString { indented: bool, span: Span },
    /// A `/*` comment without `*/`. `span` is the `/*`.
    #[error("unterminated comment")]
    UnterminatedComment { span: Span },
    /// The general syntax error: something else was expected here.
    #[error("expected {expected}, found {found}")]
    Expected {
        expected: String,
        found: String,
        span: Span,
        hint: Option<String>,
        /// A related place, e.g. the bracket that this one should close.
        related: Option<(Span, String)>,
    },
    /// A bracket, brace, parenthesis or interpolation still open at the end
    /// of the file. `open` is the opening delimiter, `span` the end of file.
    #[error("unclosed {what}: expected `{close}` before the end of the file")]
    Unclosed {
        what: &'static str,
        close: &'static str,
        open: Span,
        span: Span,
    },
    /// An integer that does not fit in 64 bits, or a float that is infinite.
    #[error("{} literal `{text}` is out of range", if *float { "float" } else { "integer" })]
    NumberOutOfRange {
        text: String,
        float: bool,
        span: Span,
    },
    /// `./dir/`
    #[error("path `{text}` has a trailing slash")]
    TrailingSlash { text: String, span: Span },
    /// A URI, `<nixpath>`, `~/x` or legacy `let { }`.
    #[error("{what}")]
    Unsupported { what: Unsupported, span: Span },
    /// `a == b == c`, `a < b < c`.
    #[error("operator `{next}` cannot follow `{op}` without parentheses")]
    NonAssociative {
        op: &'static str,
        next: &'static str,
        /// The second operator.
        span: Span,
        /// The first operator.
        first: Span,
    },
    /// Brackets, operators or function bodies nested deeper than the limit.
    #[error("expression nested too deeply (the limit is {limit} levels)")]
    TooDeep { limit: u32, span: Span },
    /// `{ a, a }: ...` or `a@{ a }: ...`.
    #[error("duplicate function parameter `{name}`")]
    DuplicateParam {
        name: SmolStr,
        span: Span,
        first: Span,
    },
    /// `inherit ${x};` or `inherit "a${b}";`
    #[error("`inherit` needs a fixed attribute name")]
    DynamicInherit { span: Span },
    /// A source text that does not fit 32-bit offsets.
    #[error("file too large to parse ({len} bytes; the limit is 4 GiB)")]
    FileTooLarge { len: usize, span: Span },
}

impl ParseError {
    /// Where the error is reported.
    pub fn span(&self) -> Span {
        match self {
            ParseError::UnexpectedChar { span, .. }
            | ParseError::UnterminatedString { span, .. }
            | ParseError::UnterminatedComment { span }
            | ParseError::Expected { span, .. }
            | ParseError::Unclosed { open: span, .. }
            | ParseError::NumberOutOfRange { span, .. }
            | ParseError::TrailingSlash { span, .. }
            | ParseError::Unsupported { span, .. }
            | ParseError::NonAssociative { span, .. }
            | ParseError::TooDeep { span, .. }
            | ParseError::DuplicateParam { span, .. }
            | ParseError::DynamicInherit { span }
            | ParseError::FileTooLarge { span, .. } => *span,
        }
    }

    /// The stable error code.
    pub fn code(&self) -> Code {
        Code(match self {
            ParseError::UnexpectedChar { .. } => "E0101",
            ParseError::UnterminatedString { .. } => "E0102",
            ParseError::UnterminatedComment { .. } => "E0103",
            ParseError::Expected { .. } => "E0104",
            ParseError::Unclosed { .. } => "E0105",
            ParseError::NumberOutOfRange { .. } => "E0106",
            ParseError::TrailingSlash { .. } => "E0107",
            ParseError::Unsupported { .. } => "E0108",
            ParseError::NonAssociative { .. } => "E0109",
            ParseError::TooDeep { .. } => "E0110",
            ParseError::DuplicateParam { .. } => "E0111",
            ParseError::DynamicInherit { .. } => "E0112",
            ParseError::FileTooLarge { .. } => "E0113",
        })
    }
}

impl IntoDiagnostic for ParseError {
    fn to_diagnostic(&self) -> Diagnostic {
        let d = Diagnostic::error(self.code(), self.to_string());
        match self {
            ParseError::UnexpectedChar { span, hint, .. } => {
                let d = d.with_primary(*span, "not valid here");
                match hint {
                    Some(h) => d.with_hint(*h),
                    None => d,
                }
            }
            ParseError::UnterminatedString { indented, span } => {
                let close = if *indented { "''" } else { "\"" };
                d.with_primary(*span, "this string is never closed")
                    .with_hint(format!(
                        "add the closing `{close}`; everything after the opening one was read as part of the string"
                    ))
            }
            ParseError::UnterminatedComment { span } => d
                .with_primary(*span, "this comment is never closed")
                .with_hint("add `*/` where the comment should end"),
            ParseError::Expected {
                expected,
                span,
                hint,
                related,
                ..
            } => {
                let mut d = d.with_primary(*span, format!("expected {expected}"));
                if let Some((rspan, msg)) = related {
                    d = d.with_secondary(*rspan, msg.clone());
                }
                match hint {
                    Some(h) => d.with_hint(h.clone()),
                    None => d,
                }
            }
            ParseError::Unclosed {
                what,
                close,
                open,
                span,
            } => d
                .with_primary(*open, format!("this {what} is never closed"))
                .with_secondary(*span, "the file ends here")
                .with_hint(format!("add the missing `{close}`")),
            ParseError::NumberOutOfRange { float, span, .. } => {
                let d = d.with_primary(*span, "does not fit");
                if *float {
                    d.with_note("floats are 64-bit IEEE 754 numbers")
                } else {
                    d.with_note("integers are 64-bit: the largest is 9223372036854775807")
                }
            }
            ParseError::TrailingSlash { span, .. } => d
                .with_primary(*span, "ends with `/`")
                .with_hint("remove the trailing `/`"),
            ParseError::Unsupported { what, span } => {
                let d = d.with_primary(*span, "not supported");
                match what {
                    Unsupported::Uri => d.with_hint(
                        "write it as a string (\"scheme:...\"), or put a space after `:` if you meant a function",
                    ),
                    Unsupported::SearchPath => d.with_hint(
                        "refer to the file with a relative or absolute path, or pass it in as an argument",
                    ),
                    Unsupported::HomePath => {
                        d.with_hint("use an absolute path or a path relative to this file")
                    }
                    Unsupported::LegacyLet => d.with_hint(
                        "write `let a = 1; in a` (the legacy form's value is its `body` attribute)",
                    ),
                }
            }
            ParseError::NonAssociative {
                op, span, first, ..
            } => d
                .with_primary(*span, "second operator")
                .with_secondary(*first, format!("first `{op}`"))
                .with_hint("add parentheses to say which one applies first"),
            ParseError::TooDeep { span, .. } => d
                .with_primary(*span, "too deep here")
                .with_hint("split the expression into `let` bindings"),
            ParseError::DuplicateParam { span, first, .. } => d
                .with_primary(*span, "declared again here")
                .with_secondary(*first, "first declared here"),
            ParseError::DynamicInherit { span } => d
                .with_primary(*span, "computed name")
                .with_hint("use `name = expr;` to bind a computed name"),
            ParseError::FileTooLarge { span, .. } => d.with_primary(*span, "file starts here"),
        }
    }
}
