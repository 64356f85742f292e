//! The lazy evaluator.
//!
//! # How it works
//!
//! A file is parsed ([`crate::parser`]), then *lowered* once into an
//! intermediate tree in which every variable is already resolved to a slot
//! `(depth, index)` in a chain of environment frames (see [`lower`] and
//! [`ir`]). The machine ([`machine`]) walks that tree and produces values in
//! weak head normal form; everything in a lazy position becomes a
//! [`Thunk`], evaluated at most once. Forcing a thunk that is already being
//! forced is infinite recursion, reported as the cycle of names involved.
//!
//! Files are read only through the injected [`EvalIo`]; store objects (steps,
//! imported paths, packages) are requested through the injected
//! [`StoreHook`], which answers with placeholder paths carried in string
//! *context*. Evaluation is therefore pure: no clock, environment or network.
//!
//! # Embedding
//!
//! [`Evaluator`] is single-threaded (it uses `Rc`). Deeply recursive programs
//! need a deep native stack: run evaluation inside [`with_large_stack`] (or
//! lower [`Evaluator::set_stack_budget`] on a smaller stack). The evaluator
//! turns more than [`DEFAULT_MAX_DEPTH`] nested calls or forces, or more
//! native stack than its budget, into an error (`E0216`) instead of
//! overflowing.
//!
//! Rust code builds values with [`Value::attrs_from`], [`Value::list`],
//! [`Value::string`], [`Value::primop`] (a builtin receiving `&Evaluator`,
//! its argument values — possibly unforced — and the call span) and
//! [`Value::lazy`] / [`Thunk::native`] (a value computed on first force; the
//! module system's config fixpoint is built from these). Attribute sets expose
//! their sorted [`AttrEntry`]s, each with the span where it was defined;
//! functions expose their definition span ([`Closure::span`]) and formals.
//!
//! Memory: values and environments are reference counted. A `let` or `rec`
//! scope that holds a function closing over that same scope forms a reference
//! cycle; the evaluator remembers the thunks that can close such cycles and
//! empties them when it is dropped, so everything an evaluation
//! allocated is freed with its [`Evaluator`]. Values must therefore not be
//! used after their evaluator is dropped: forcing one then may fail (`E0219`).
//! Within one evaluator, scopes caught in such a cycle stay allocated until
//! the evaluator is dropped.
//!
//! Errors are [`EvalError`]s (an [`ErrorKind`] with a stable `E02xx` code, a
//! span and a trace of at most ten frames, user files first); they implement
//! [`IntoDiagnostic`].

mod builtins;
mod coerce;
pub mod error;
mod ir;
mod knots;
mod lower;
mod machine;
mod ops;
pub mod paths;
mod pkgs;
pub mod print;

pub use error::{ErrorKind, EvalError, Frame, FrameKind};
pub use print::format_float;
pub use value::{
    AttrEntry, Attrs, Closure, NativeFn, NixString, PrimOpApp, PrimOpFn, Thunk, Value,
};

pub mod value;

use crate::hook::StoreHook;
use crate::io::{EvalIo, FileKind};
use crate::source::{FileId, SourceMap, Span};
use smol_str::SmolStr;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use value::Env;

/// Nested function calls and forces allowed before evaluation fails.
pub const DEFAULT_MAX_DEPTH: usize = 10_000;

/// Native stack size for [`with_large_stack`].
pub const LARGE_STACK: usize = 256 * 1024 * 1024;

/// Native stack evaluation may use by default: what [`with_large_stack`]
/// provides, less a margin for the embedder's own frames.
pub const DEFAULT_STACK_BUDGET: usize = LARGE_STACK - 32 * 1024 * 1024;

/// The file a directory import reads.
pub const DEFAULT_FILE: &str = "default.imago";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CoerceMode {
    Interpolate,
    ToString,
}

pub(crate) struct StackEntry {
    pub thunk: usize,
    pub name: Option<SmolStr>,
    pub span: Span,
}

/// Where `builtins.trace` messages go.
pub type TraceHandler = Rc<dyn Fn(&str)>;

/// Evaluates Imago programs. See the module documentation.
pub struct Evaluator {
    pub(crate) io: Rc<dyn EvalIo>,
    pub(crate) hook: Rc<dyn StoreHook>,
    pub(crate) sources: SourceMap,
    pub(crate) globals: HashMap<SmolStr, Value>,
    pub(crate) library_dirs: Vec<PathBuf>,
    /// Whether error traces keep every frame (`--show-trace`).
    pub(crate) show_trace: Cell<bool>,
    pub(crate) imports: RefCell<HashMap<PathBuf, Value>>,
    pub(crate) path_steps: RefCell<HashMap<PathBuf, String>>,
    pub(crate) stack: RefCell<Vec<StackEntry>>,
    pub(crate) max_depth: Cell<usize>,
    pub(crate) eval_depth: Cell<u32>,
    pub(crate) stack_base: Cell<usize>,
    pub(crate) stack_budget: Cell<usize>,
    pub(crate) trace_handler: RefCell<TraceHandler>,
    pub(crate) regex_cache: RefCell<HashMap<String, Rc<regex::Regex>>>,
    pub(crate) packages: RefCell<Option<Value>>,
    /// Where each Debian package was first asked for (see
    /// [`Evaluator::package_sites`]).
    pub(crate) package_sites: RefCell<BTreeMap<String, Span>>,
    /// Span for errors raised by Rust callers with no source location.
    pub(crate) native_span: Span,
    /// Thunks of recursive scopes, emptied on drop to free their cycles.
    pub(crate) knots: knots::Knots,
}

impl Drop for Evaluator {
    fn drop(&mut self) {
        self.knots.clear();
    }
}

impl Evaluator {
    pub fn new(io: Rc<dyn EvalIo>, hook: Rc<dyn StoreHook>) -> Self {
        let sources = SourceMap::new();
        let native = sources.add("<builtin>", "");
        let mut ev = Evaluator {
            io,
            hook,
            sources,
            globals: HashMap::new(),
            library_dirs: Vec::new(),
            show_trace: Cell::new(false),
            imports: RefCell::new(HashMap::new()),
            path_steps: RefCell::new(HashMap::new()),
            stack: RefCell::new(Vec::new()),
            max_depth: Cell::new(DEFAULT_MAX_DEPTH),
            eval_depth: Cell::new(0),
            stack_base: Cell::new(0),
            stack_budget: Cell::new(DEFAULT_STACK_BUDGET),
            trace_handler: RefCell::new(Rc::new(|msg: &str| eprintln!("trace: {msg}"))),
            regex_cache: RefCell::new(HashMap::new()),
            packages: RefCell::new(None),
            package_sites: RefCell::new(BTreeMap::new()),
            native_span: Span::new(native, 0, 0),
            knots: knots::Knots::new(),
        };
        ev.globals = builtins::globals();
        ev
    }

    /// Every file read so far (for rendering diagnostics).
    pub fn sources(&self) -> &SourceMap {
        &self.sources
    }

    /// Binds `name` in the global scope of every file evaluated afterwards
    /// (lexical bindings and `with` still shadow it).
    pub fn with_global(&mut self, name: &str, value: Value) {
        self.globals.insert(SmolStr::new(name), value);
    }

    /// Directories whose frames count as library code: error traces show
    /// only the frames in other (user) files, and count the library's
    /// frames (the embedded `lib`, `<imago lib>`, always counts as library).
    pub fn set_library_dirs(&mut self, dirs: Vec<PathBuf>) {
        self.library_dirs = dirs;
    }

    /// Whether error traces show every frame, library frames included, in
    /// the order the error passed them (`--show-trace`); by default they
    /// show at most [`error::MAX_TRACE`] frames in user files.
    pub fn set_show_trace(&self, all: bool) {
        self.show_trace.set(all);
    }

    /// Whether a file is library code (in a library directory, or the
    /// embedded `lib`).
    pub fn is_library(&self, file: FileId) -> bool {
        self.sources
            .path(file)
            .is_some_and(|p| self.is_library_path(&p))
    }

    /// Whether a path is inside a library directory or the embedded `lib`.
    pub fn is_library_path(&self, path: &Path) -> bool {
        path.starts_with(crate::modules::library::LIB_DIR)
            || self.library_dirs.iter().any(|d| path.starts_with(d))
    }

    /// Where `builtins.trace` output goes (default: stderr, `trace: msg`).
    pub fn set_trace_handler(&self, handler: TraceHandler) {
        *self.trace_handler.borrow_mut() = handler;
    }

    /// How many bytes of native stack evaluation may use before failing with
    /// a depth error (default [`DEFAULT_STACK_BUDGET`], which assumes
    /// [`with_large_stack`]). Lower it when evaluating on a smaller stack.
    pub fn set_stack_budget(&self, bytes: usize) {
        self.stack_budget.set(bytes);
    }

    /// The limit on nested calls and forces (default [`DEFAULT_MAX_DEPTH`]).
    pub fn set_max_depth(&self, depth: usize) {
        self.max_depth.set(depth.max(1));
    }

    /// Parses and evaluates a file (a directory means its `default.imago`),
    /// with `import` semantics: each file is evaluated at most once. `path`
    /// should be absolute (relative paths inside the file resolve against its
    /// directory).
    pub fn eval_file(&self, path: &Path) -> Result<Value, EvalError> {
        self.import(path, self.native_span)
            .map_err(|e| self.finish(e))
    }

    /// Evaluates source text that is not a file (`imago eval --expr`).
    /// Relative paths in it resolve against `base_dir`.
    pub fn eval_source(
        &self,
        display_name: &str,
        text: &str,
        base_dir: &Path,
    ) -> Result<Value, EvalError> {
        let file = self.sources.add(display_name, text);
        self.eval_parsed(file, text, Path::new(display_name), base_dir)
            .map_err(|e| self.finish(e))
    }

    /// Forces a value to weak head normal form.
    pub fn force(&self, v: &Value) -> Result<Value, EvalError> {
        self.force_value(v).map_err(|e| self.finish(e))
    }

    /// Forces a value and everything it contains.
    pub fn force_deep(&self, v: &Value) -> Result<(), EvalError> {
        self.force_deep_value(v, self.native_span)
            .map_err(|e| self.finish(e))
    }

    /// Selects an attribute path such as `a.b."c d"` from a value. A missing
    /// attribute is an error that suggests close names.
    pub fn select(&self, v: &Value, attr_path: &str) -> Result<Value, EvalError> {
        let file = self.sources.add("<attribute path>", attr_path);
        let mut cur = self.force(v)?;
        for (name, range) in split_attr_path(attr_path) {
            let span = Span::new(file, range.start as u32, range.end as u32);
            cur = self
                .select_one(&cur, &name, span)
                .map_err(|e| self.finish(e))?;
        }
        Ok(cur)
    }

    /// Applies a function to an argument (forcing the result to WHNF).
    pub fn call(&self, f: &Value, arg: Value) -> Result<Value, EvalError> {
        let span = self.current_span();
        self.call_value(f, arg, span).map_err(|e| self.finish(e))
    }

    /// Like [`Evaluator::call`], reporting errors at `span`.
    pub fn call_at(&self, f: &Value, arg: Value, span: Span) -> Result<Value, EvalError> {
        self.call_value(f, arg, span).map_err(|e| self.finish(e))
    }

    /// Deep conversion to JSON. Strings lose their context; paths print as
    /// plain path strings; sets with `outPath` become that string.
    pub fn to_json(&self, v: &Value) -> Result<serde_json::Value, EvalError> {
        let mut ctx = BTreeSet::new();
        self.json_value(v, self.native_span, &mut ctx)
            .map_err(|e| self.finish(e))
    }

    /// Coerces a value to a string as interpolation does, returning the text
    /// and its context (placeholders).
    pub fn coerce_to_string(&self, v: &Value) -> Result<(String, BTreeSet<String>), EvalError> {
        let s = self
            .coerce(v, CoerceMode::Interpolate, self.current_span())
            .map_err(|e| self.finish(e))?;
        Ok((s.as_str().to_string(), s.context_set()))
    }

    /// Nix-like text for a value. Not strict: unevaluated parts print as
    /// `«thunk»` (the value itself is forced to WHNF). Strict: everything is
    /// forced.
    pub fn display(&self, v: &Value, strict: bool) -> Result<String, EvalError> {
        let v = self.force(v)?;
        let mut out = String::new();
        self.print_value(&v, strict, &mut out, &mut Vec::new(), self.native_span)
            .map_err(|e| self.finish(e))?;
        Ok(out)
    }

    /// `file:line:col` of a span.
    pub fn location(&self, span: Span) -> String {
        match self.sources.get(span.file) {
            Some(f) => {
                let (l, c) = f.line_col(span.start);
                format!("{}:{l}:{c}", self.sources.display_path(&f.path))
            }
            None => "<unknown>".into(),
        }
    }

    /// Evaluates already-added source text.
    fn eval_parsed(
        &self,
        file: FileId,
        text: &str,
        path: &Path,
        base_dir: &Path,
    ) -> Result<Value, EvalError> {
        let expr = parse_source(file, text).map_err(|diagnostics| {
            EvalError::new(
                ErrorKind::Parse {
                    path: path.to_path_buf(),
                    diagnostics,
                },
                Span::new(file, 0, 0),
            )
        })?;
        // Lowering consumes the tree, freeing it as it goes.
        let ir = lower::Lowerer::new(&self.globals, base_dir).lower(expr)?;
        let root = Rc::new(Env::from_vec(Vec::new(), None));
        self.eval(&ir, &root)
    }

    /// `import path`: the file's value, evaluated once per evaluator.
    pub(crate) fn import(&self, path: &Path, span: Span) -> Result<Value, EvalError> {
        let path = paths::normalize(path);
        let io_err = |source| {
            EvalError::new(
                ErrorKind::Io {
                    path: path.clone(),
                    source,
                },
                span,
            )
        };
        let file = match self.io.kind(&path).map_err(io_err)? {
            Some(FileKind::Directory) => path.join(DEFAULT_FILE),
            Some(_) => path.clone(),
            None => {
                return Err(io_err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no such file or directory",
                )));
            }
        };
        let cached = self.imports.borrow().get(&file).cloned();
        let thunk = match cached {
            Some(v) => v,
            None => {
                let f = file.clone();
                let name = paths::base_name(&file.to_string_lossy()).to_string();
                let v = Value::Thunk(Thunk::native(Some(&name), move |ev| ev.load_file(&f, span)));
                self.imports.borrow_mut().insert(file.clone(), v.clone());
                v
            }
        };
        self.force_value(&thunk).map_err(|e| {
            if span == self.native_span {
                e
            } else {
                e.with_frame(FrameKind::Import(file), span)
            }
        })
    }

    fn load_file(&self, file: &Path, span: Span) -> Result<Value, EvalError> {
        let text = self.io.read_file(file).map_err(|source| {
            EvalError::new(
                ErrorKind::Io {
                    path: file.to_path_buf(),
                    source,
                },
                span,
            )
        })?;
        let id = match self.sources.find(file) {
            Some(id) => id,
            None => self.sources.add(file, text.as_str()),
        };
        let base = file.parent().unwrap_or(Path::new("/"));
        self.eval_parsed(id, &text, file, base)
    }

    /// Picks the trace lines an error shows: at most ten frames in user
    /// files, the library's frames only counted — or, with
    /// [`Evaluator::set_show_trace`], every frame in order. A run of
    /// identical frames (deep recursion) is shown once with its count.
    pub(crate) fn finish(&self, mut e: EvalError) -> EvalError {
        let total = e.frame_count();
        let show_all = self.show_trace.get();
        let mut groups: Vec<(String, usize)> = Vec::new();
        let mut library = 0;
        for f in e.frames() {
            if !show_all && self.is_library(f.span.file) {
                library += 1;
                continue;
            }
            let at = self.location(f.span);
            let line = match &f.kind {
                FrameKind::Call(Some(n)) => format!("while calling `{n}` at {at}"),
                FrameKind::Call(None) => format!("while calling a function at {at}"),
                FrameKind::Force(n) => format!("while evaluating `{n}` at {at}"),
                FrameKind::Import(p) => {
                    format!("while importing {} at {at}", self.sources.display_path(p))
                }
            };
            match groups.last_mut() {
                Some((last, n)) if *last == line => *n += 1,
                _ => groups.push((line, 1)),
            }
        }
        let limit = if show_all {
            usize::MAX
        } else {
            error::MAX_TRACE
        };
        let mut shown = 0;
        let lines: Vec<String> = groups
            .into_iter()
            .take(limit)
            .map(|(line, n)| {
                shown += n;
                if n > 1 {
                    format!("{line} ({n} times)")
                } else {
                    line
                }
            })
            .collect();
        e.set_trace(lines, total.saturating_sub(shown + library), library);
        if e.span() == self.native_span {
            e.set_unlocated();
        }
        e
    }
}

/// Parses a file, or returns its syntax errors as diagnostics.
fn parse_source(
    file: FileId,
    text: &str,
) -> Result<crate::ast::Expr, Vec<crate::diag::Diagnostic>> {
    use crate::diag::IntoDiagnostic;
    crate::parser::parse(file, text)
        .into_result()
        .map_err(|errors| errors.iter().map(|e| e.to_diagnostic()).collect())
}

/// Runs `f` on a thread with a [`LARGE_STACK`] native stack and returns its
/// result. Fails only if the thread cannot be created; panics propagate.
pub fn with_large_stack<T: Send, F: FnOnce() -> T + Send>(f: F) -> std::io::Result<T> {
    std::thread::scope(|s| {
        let handle = std::thread::Builder::new()
            .name("imago-eval".into())
            .stack_size(LARGE_STACK)
            .spawn_scoped(s, f)?;
        match handle.join() {
            Ok(v) => Ok(v),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// Splits `a.b."c d"` into names with their byte ranges.
pub fn split_attr_path(path: &str) -> Vec<(String, std::ops::Range<usize>)> {
    let mut out = Vec::new();
    let bytes: Vec<char> = path.chars().collect();
    let mut i = 0;
    let mut byte = 0;
    while i <= bytes.len() {
        let start = byte;
        let mut name = String::new();
        if i < bytes.len() && bytes[i] == '"' {
            i += 1;
            byte += 1;
            while i < bytes.len() && bytes[i] != '"' {
                if bytes[i] == '\\' && i + 1 < bytes.len() {
                    byte += 1;
                    i += 1;
                }
                name.push(bytes[i]);
                byte += bytes[i].len_utf8();
                i += 1;
            }
            i += 1;
            byte += 1;
        }
        while i < bytes.len() && bytes[i] != '.' {
            name.push(bytes[i]);
            byte += bytes[i].len_utf8();
            i += 1;
        }
        if !(name.is_empty() && path.is_empty()) {
            out.push((name, start..byte.min(path.len())));
        }
        i += 1;
        byte += 1;
    }
    out
}
