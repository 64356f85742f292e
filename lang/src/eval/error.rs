//! Evaluation errors.
//!
//! An [`EvalError`] is an [`ErrorKind`] (what went wrong), the span it
//! happened at, and the call frames it passed through on its way out (function
//! applications, imports, forced attributes). Frames are collected as the
//! error propagates; the evaluator's public entry points then select at most
//! [`MAX_TRACE`] of them to show — frames in user files before frames in
//! library directories — and count the rest, so a message is never hundreds
//! of lines long. Each kind has a stable code (docs/errors.md) assigned by an
//! exhaustive match.

use crate::diag::{Code, Diagnostic, IntoDiagnostic};
use crate::source::Span;
use smol_str::SmolStr;
use std::path::PathBuf;

/// How many trace frames an error shows at most.
pub const MAX_TRACE: usize = 10;

/// Frames kept per error; deeper ones are only counted.
const MAX_FRAMES: usize = 32_768;

#[derive(Debug, thiserror::Error)]
pub enum ErrorKind {
    #[error("undefined variable `{name}`")]
    UndefinedVariable {
        name: SmolStr,
        suggestions: Vec<String>,
    },
    #[error("attribute `{name}` missing")]
    MissingAttribute {
        name: SmolStr,
        suggestions: Vec<String>,
    },
    #[error("expected {expected}, got {got}")]
    TypeError { expected: String, got: &'static str },
    #[error("division by zero")]
    DivisionByZero,
    #[error("assertion failed")]
    AssertionFailed,
    #[error("{0}")]
    Throw(String),
    #[error("evaluation aborted: {0}")]
    Abort(String),
    #[error("infinite recursion: {}", cycle_text(.cycle))]
    InfiniteRecursion { cycle: Vec<(SmolStr, Span)> },
    #[error("function called with unexpected argument `{name}`")]
    UnexpectedArgument {
        name: SmolStr,
        function: Span,
        suggestions: Vec<String>,
    },
    #[error("function called without required argument `{name}`")]
    MissingArgument { name: SmolStr, function: Span },
    #[error("attribute `{name}` already defined")]
    DuplicateAttribute { name: SmolStr, first: Span },
    #[error("integer overflow in `{op}`")]
    IntegerOverflow { op: &'static str },
    #[error("cannot read `{}`: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("syntax error in `{}`", path.display())]
    Parse {
        path: PathBuf,
        diagnostics: Vec<Diagnostic>,
    },
    #[error("{}", .0.message)]
    Hook(#[source] crate::hook::HookError),
    /// More than `limit` nested calls and forces, or more native stack than
    /// the evaluator's budget.
    #[error("evaluation nested too deeply")]
    DepthLimit { limit: usize },
    #[error("{function}: {message}")]
    InvalidArgument {
        function: &'static str,
        message: String,
    },
    #[error("the set `{name}` is open: its attribute names are not known")]
    OpenSet { name: String },
    /// Only through the library API: an expression that failed to parse, or
    /// a value forced after its evaluator was dropped.
    #[error(
        "cannot evaluate a malformed expression (one that failed to parse, or a value whose evaluator was dropped)"
    )]
    Malformed,
    /// An error raised by Rust code built on the evaluator (the module
    /// system) while the evaluator forced one of its values: it carries its
    /// own diagnostic and stable code (E03xx).
    #[error("{}", .0.message)]
    External(Box<Diagnostic>),
}

fn cycle_text(cycle: &[(SmolStr, Span)]) -> String {
    if cycle.is_empty() {
        return "a value depends on itself".to_string();
    }
    cycle
        .iter()
        .map(|(n, _)| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(" → ")
}

impl ErrorKind {
    pub fn code(&self) -> Code {
        Code(match self {
            ErrorKind::UndefinedVariable { .. } => "E0201",
            ErrorKind::MissingAttribute { .. } => "E0202",
            ErrorKind::TypeError { .. } => "E0203",
            ErrorKind::DivisionByZero => "E0204",
            ErrorKind::AssertionFailed => "E0205",
            ErrorKind::Throw(_) => "E0206",
            ErrorKind::Abort(_) => "E0207",
            ErrorKind::InfiniteRecursion { .. } => "E0208",
            ErrorKind::UnexpectedArgument { .. } => "E0209",
            ErrorKind::MissingArgument { .. } => "E0210",
            ErrorKind::DuplicateAttribute { .. } => "E0211",
            ErrorKind::IntegerOverflow { .. } => "E0212",
            ErrorKind::Io { .. } => "E0213",
            ErrorKind::Parse { .. } => "E0214",
            ErrorKind::Hook(_) => "E0215",
            ErrorKind::DepthLimit { .. } => "E0216",
            ErrorKind::InvalidArgument { .. } => "E0217",
            ErrorKind::OpenSet { .. } => "E0218",
            ErrorKind::Malformed => "E0219",
            ErrorKind::External(d) => return d.code,
        })
    }
}

/// What an error passed through on its way out.
#[derive(Debug, Clone)]
pub enum FrameKind {
    /// A function application; the name of the function if known.
    Call(Option<SmolStr>),
    /// Forcing a named attribute or binding.
    Force(SmolStr),
    /// Importing a file.
    Import(PathBuf),
}

#[derive(Debug, Clone)]
pub struct Frame {
    pub kind: FrameKind,
    pub span: Span,
}

#[derive(Debug)]
struct Inner {
    kind: ErrorKind,
    span: Span,
    frames: Vec<Frame>,
    dropped_frames: usize,
    trace: Vec<String>,
    more_frames: usize,
    /// Frames inside the library that the trace does not show.
    library_frames: usize,
    /// False when the error has no place in any source (its span is the
    /// evaluator's placeholder span): the diagnostic then has no label.
    located: bool,
}

/// An evaluation error. Boxed, so `Result<Value, EvalError>` stays small.
#[derive(Debug)]
pub struct EvalError(Box<Inner>);

impl std::fmt::Display for EvalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.kind.fmt(f)
    }
}

impl std::error::Error for EvalError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.0.kind)
    }
}

impl EvalError {
    pub fn new(kind: ErrorKind, span: Span) -> Self {
        EvalError(Box::new(Inner {
            kind,
            span,
            frames: Vec::new(),
            dropped_frames: 0,
            trace: Vec::new(),
            more_frames: 0,
            library_frames: 0,
            located: true,
        }))
    }

    /// A type error: "expected `expected`, got <type of got>".
    pub fn type_error(expected: impl Into<String>, got: &super::Value, span: Span) -> Self {
        EvalError::new(
            ErrorKind::TypeError {
                expected: expected.into(),
                got: got.describe(),
            },
            span,
        )
    }

    /// An invalid argument to a builtin.
    pub fn invalid(function: &'static str, message: impl Into<String>, span: Span) -> Self {
        EvalError::new(
            ErrorKind::InvalidArgument {
                function,
                message: message.into(),
            },
            span,
        )
    }

    /// `throw msg` from Rust code (the module system uses it for its own
    /// catchable errors).
    pub fn throw(message: impl Into<String>, span: Span) -> Self {
        EvalError::new(ErrorKind::Throw(message.into()), span)
    }

    pub fn kind(&self) -> &ErrorKind {
        &self.0.kind
    }

    pub fn span(&self) -> Span {
        self.0.span
    }

    pub fn code(&self) -> Code {
        self.0.kind.code()
    }

    /// The frames this error passed through, innermost first.
    pub fn frames(&self) -> &[Frame] {
        &self.0.frames
    }

    /// Whether `builtins.tryEval` catches it (`throw` and `assert`, as in Nix).
    pub fn is_catchable(&self) -> bool {
        matches!(
            self.0.kind,
            ErrorKind::Throw(_) | ErrorKind::AssertionFailed
        )
    }

    /// The parse errors, when this is a syntax error in an evaluated file.
    pub fn parse_diagnostics(&self) -> Option<&[Diagnostic]> {
        match &self.0.kind {
            ErrorKind::Parse { diagnostics, .. } => Some(diagnostics),
            _ => None,
        }
    }

    pub(crate) fn push_frame(&mut self, kind: FrameKind, span: Span) {
        if self.0.frames.len() < MAX_FRAMES {
            self.0.frames.push(Frame { kind, span });
        } else {
            self.0.dropped_frames += 1;
        }
    }

    pub(crate) fn with_frame(mut self, kind: FrameKind, span: Span) -> Self {
        self.push_frame(kind, span);
        self
    }

    /// Total number of frames, including the ones not kept.
    pub(crate) fn frame_count(&self) -> usize {
        self.0.frames.len() + self.0.dropped_frames
    }

    /// Sets the rendered trace lines (chosen by the evaluator, which knows
    /// file names and library directories).
    pub(crate) fn set_trace(&mut self, trace: Vec<String>, more: usize, library: usize) {
        self.0.trace = trace;
        self.0.more_frames = more;
        self.0.library_frames = library;
    }

    /// Marks the error as having no source location.
    pub(crate) fn set_unlocated(&mut self) {
        self.0.located = false;
    }

    /// The trace lines shown under the error.
    pub fn trace(&self) -> &[String] {
        &self.0.trace
    }
}

impl IntoDiagnostic for EvalError {
    fn to_diagnostic(&self) -> Diagnostic {
        let inner = &self.0;
        let kind = &inner.kind;
        let mut d = Diagnostic::error(kind.code(), kind.to_string());
        match kind {
            ErrorKind::UndefinedVariable { suggestions, .. } => {
                d = d.with_primary(inner.span, "not defined in this scope");
                if let Some(h) = crate::diag::did_you_mean(suggestions) {
                    d = d.with_hint(h);
                }
            }
            ErrorKind::MissingAttribute { suggestions, .. } => {
                d = d.with_primary(inner.span, "no such attribute");
                if let Some(h) = crate::diag::did_you_mean(suggestions) {
                    d = d.with_hint(h);
                }
            }
            ErrorKind::TypeError { .. } => {
                d = d.with_primary(inner.span, "this value has the wrong type");
            }
            ErrorKind::DivisionByZero => d = d.with_primary(inner.span, "divisor is zero"),
            ErrorKind::AssertionFailed => {
                d = d.with_primary(inner.span, "this condition is false");
            }
            ErrorKind::Throw(_) => d = d.with_primary(inner.span, "thrown here"),
            ErrorKind::Abort(_) => d = d.with_primary(inner.span, "aborted here"),
            ErrorKind::InfiniteRecursion { cycle } => {
                d = d.with_primary(inner.span, "this value depends on itself");
                for (name, span) in cycle.iter().skip(1) {
                    if *span != inner.span {
                        d = d.with_secondary(*span, format!("`{name}` is needed here"));
                    }
                }
            }
            ErrorKind::UnexpectedArgument {
                function,
                suggestions,
                ..
            } => {
                d = d
                    .with_primary(inner.span, "argument given here")
                    .with_secondary(*function, "function defined here");
                if let Some(h) = crate::diag::did_you_mean(suggestions) {
                    d = d.with_hint(h);
                }
            }
            ErrorKind::MissingArgument { function, .. } => {
                d = d
                    .with_primary(inner.span, "called here")
                    .with_secondary(*function, "function defined here");
            }
            ErrorKind::DuplicateAttribute { first, .. } => {
                d = d
                    .with_primary(inner.span, "defined again here")
                    .with_secondary(*first, "first defined here");
            }
            ErrorKind::IntegerOverflow { .. } => {
                d = d.with_primary(inner.span, "result does not fit in 64 bits");
            }
            ErrorKind::Io { .. } => d = d.with_primary(inner.span, "needed here"),
            ErrorKind::Parse { diagnostics, .. } => {
                let mut first = true;
                for pd in diagnostics {
                    for l in &pd.labels {
                        if l.primary {
                            let msg = format!("[{}] {}", pd.code, pd.message);
                            d = if first {
                                d.with_primary(l.span, msg)
                            } else {
                                d.with_secondary(l.span, msg)
                            };
                            first = false;
                        }
                    }
                }
                if first {
                    d = d.with_primary(inner.span, "imported here");
                } else {
                    d = d.with_secondary(inner.span, "imported here");
                }
            }
            ErrorKind::Hook(h) => {
                d = d.with_primary(inner.span, "requested here");
                if let Some(hint) = &h.hint {
                    d = d.with_hint(hint.clone());
                }
            }
            ErrorKind::DepthLimit { limit } => {
                d = d.with_primary(inner.span, "while evaluating this").with_hint(format!(
                    "at most {limit} calls may be nested; look for a function that calls itself without end"
                ));
            }
            ErrorKind::InvalidArgument { .. } => {
                d = d.with_primary(inner.span, "here");
            }
            ErrorKind::OpenSet { .. } => {
                d = d.with_primary(inner.span, "listing attributes here");
            }
            ErrorKind::Malformed => d = d.with_primary(inner.span, "malformed here"),
            ErrorKind::External(ext) => d = (**ext).clone(),
        }
        if !inner.located {
            d.labels.retain(|l| l.span != inner.span);
        }
        for line in &inner.trace {
            d = d.with_note(line.clone());
        }
        if inner.more_frames > 0 {
            d = d.with_note(format!("... {} more frames", inner.more_frames));
        }
        if inner.library_frames > 0 {
            let n = inner.library_frames;
            d = d.with_note(format!(
                "... {n} frame{} inside the library not shown (`--show-trace` shows every frame)",
                if n == 1 { "" } else { "s" }
            ));
        }
        d
    }
}
