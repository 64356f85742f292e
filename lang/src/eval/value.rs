//! Runtime values.
//!
//! A [`Value`] is cheap to clone: everything larger than a word sits behind an
//! `Rc`. Laziness is explicit: a value in a lazy position (an attribute, a
//! list element, a `let` binding, a function argument) may be a
//! [`Value::Thunk`]; [`crate::eval::Evaluator::force`] turns it into weak head
//! normal form, after which it is never a thunk. A thunk is evaluated at most
//! once and then remembers its result.
//!
//! Attribute sets keep their entries sorted by name (so `attrNames` is sorted
//! and lookups are binary searches), and each entry remembers the span where it
//! was defined, for messages such as "defined at file:line".

use crate::eval::Evaluator;
use crate::eval::error::EvalError;
use crate::eval::ir::{Ir, LambdaIr, ParamIr};
use crate::source::Span;
use smol_str::SmolStr;
use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::Path;
use std::rc::Rc;

/// A string with its context: the set of store placeholders it was built from.
#[derive(Clone, PartialEq, Eq)]
pub struct NixString {
    text: Rc<str>,
    context: Option<Rc<BTreeSet<String>>>,
}

impl NixString {
    /// A string without context.
    pub fn new(text: impl Into<Rc<str>>) -> Self {
        NixString {
            text: text.into(),
            context: None,
        }
    }

    /// A string with the given context (an empty set means no context).
    pub fn with_context(text: impl Into<Rc<str>>, context: BTreeSet<String>) -> Self {
        NixString {
            text: text.into(),
            context: if context.is_empty() {
                None
            } else {
                Some(Rc::new(context))
            },
        }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn has_context(&self) -> bool {
        self.context.is_some()
    }

    /// The placeholders this string depends on.
    pub fn context(&self) -> impl Iterator<Item = &String> {
        self.context.iter().flat_map(|c| c.iter())
    }

    /// The context as an owned set.
    pub fn context_set(&self) -> BTreeSet<String> {
        self.context().cloned().collect()
    }

    /// Adds this string's context to `out`.
    pub fn extend_context(&self, out: &mut BTreeSet<String>) {
        out.extend(self.context().cloned());
    }
}

impl fmt::Debug for NixString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", &*self.text)?;
        if let Some(c) = &self.context {
            write!(f, " (context {c:?})")?;
        }
        Ok(())
    }
}

/// A value. `Thunk` only appears in lazy positions; forced values never are
/// thunks.
#[derive(Clone)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    String(NixString),
    /// An absolute, lexically normalised path.
    Path(Rc<Path>),
    List(Rc<Vec<Value>>),
    Attrs(Rc<Attrs>),
    Lambda(Rc<Closure>),
    PrimOp(Rc<PrimOpApp>),
    Thunk(Thunk),
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x:?}"),
            Value::String(s) => write!(f, "{s:?}"),
            Value::Path(p) => write!(f, "{}", p.display()),
            Value::List(l) => f.debug_list().entries(l.iter()).finish(),
            Value::Attrs(a) => f
                .debug_map()
                .entries(a.entries.iter().map(|e| (&e.name, &e.value)))
                .finish(),
            Value::Lambda(_) => f.write_str("«lambda»"),
            Value::PrimOp(p) => write!(f, "«primop {}»", p.op.name),
            Value::Thunk(_) => f.write_str("«thunk»"),
        }
    }
}

impl Value {
    /// A string value without context.
    pub fn string(text: impl Into<Rc<str>>) -> Value {
        Value::String(NixString::new(text))
    }

    pub fn list(items: Vec<Value>) -> Value {
        Value::List(Rc::new(items))
    }

    /// An attribute set from `(name, value)` pairs; a later pair with the same
    /// name replaces an earlier one. Entries have no definition span.
    pub fn attrs_from<N: Into<SmolStr>>(items: impl IntoIterator<Item = (N, Value)>) -> Value {
        Value::Attrs(Rc::new(Attrs::from_pairs(
            items.into_iter().map(|(n, v)| (n.into(), v, None)),
        )))
    }

    /// Like [`Value::attrs_from`], with the span each attribute was defined at.
    pub fn attrs_from_spanned<N: Into<SmolStr>>(
        items: impl IntoIterator<Item = (N, Value, Option<Span>)>,
    ) -> Value {
        Value::Attrs(Rc::new(Attrs::from_pairs(
            items.into_iter().map(|(n, v, s)| (n.into(), v, s)),
        )))
    }

    /// A builtin function of `arity` arguments implemented in Rust. The
    /// function receives the evaluator, exactly `arity` arguments (each
    /// possibly an unforced thunk: force what you need with
    /// [`Evaluator::force`]) and the span of the call for error messages.
    pub fn primop(
        name: &str,
        arity: usize,
        f: impl Fn(&Evaluator, &[Value], Span) -> Result<Value, EvalError> + 'static,
    ) -> Value {
        Value::PrimOp(Rc::new(PrimOpApp {
            op: Rc::new(PrimOp {
                name: SmolStr::new(name),
                arity: arity.max(1),
                f: Rc::new(f),
            }),
            args: Vec::new(),
        }))
    }

    /// A lazily computed value: `f` runs the first time the value is forced,
    /// and its result is remembered. `name` (for example an option path)
    /// appears in infinite-recursion messages and traces.
    pub fn lazy(
        name: Option<&str>,
        f: impl Fn(&Evaluator) -> Result<Value, EvalError> + 'static,
    ) -> Value {
        Value::Thunk(Thunk::native(name, f))
    }

    /// The Nix type name: `null`, `bool`, `int`, `float`, `string`, `path`,
    /// `list`, `set`, `lambda`; `thunk` for an unforced value.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::String(_) => "string",
            Value::Path(_) => "path",
            Value::List(_) => "list",
            Value::Attrs(_) => "set",
            Value::Lambda(_) | Value::PrimOp(_) => "lambda",
            Value::Thunk(_) => "thunk",
        }
    }

    /// The type with an article, for messages: "a set", "an int".
    pub fn describe(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a Boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a float",
            Value::String(_) => "a string",
            Value::Path(_) => "a path",
            Value::List(_) => "a list",
            Value::Attrs(_) => "a set",
            Value::Lambda(_) => "a function",
            Value::PrimOp(_) => "a built-in function",
            Value::Thunk(_) => "an unevaluated value",
        }
    }

    pub fn as_attrs(&self) -> Option<&Rc<Attrs>> {
        match self {
            Value::Attrs(a) => Some(a),
            _ => None,
        }
    }

    pub fn as_list(&self) -> Option<&Rc<Vec<Value>>> {
        match self {
            Value::List(l) => Some(l),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s.as_str()),
            _ => None,
        }
    }

    pub fn as_closure(&self) -> Option<&Rc<Closure>> {
        match self {
            Value::Lambda(c) => Some(c),
            _ => None,
        }
    }

    pub fn is_function(&self) -> bool {
        matches!(self, Value::Lambda(_) | Value::PrimOp(_))
    }
}

/// One attribute: its value and where it was defined (if it came from
/// source text).
#[derive(Clone, Debug)]
pub struct AttrEntry {
    pub name: SmolStr,
    pub value: Value,
    pub span: Option<Span>,
}

/// An attribute set: entries sorted by name, plus an optional resolver for
/// names that are not listed (an *open* set such as `pkgs`).
#[derive(Clone, Default)]
pub struct Attrs {
    pub(crate) entries: Vec<AttrEntry>,
    pub(crate) open: Option<Rc<OpenSet>>,
}

impl Attrs {
    /// Builds a set; a later pair with the same name replaces an earlier one.
    pub fn from_pairs(items: impl IntoIterator<Item = (SmolStr, Value, Option<Span>)>) -> Attrs {
        let mut entries: Vec<AttrEntry> = items
            .into_iter()
            .map(|(name, value, span)| AttrEntry { name, value, span })
            .collect();
        // Stable sort keeps definition order among equal names; keep the last.
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        let mut out: Vec<AttrEntry> = Vec::with_capacity(entries.len());
        for e in entries {
            match out.last_mut() {
                Some(last) if last.name == e.name => *last = e,
                _ => out.push(e),
            }
        }
        Attrs {
            entries: out,
            open: None,
        }
    }

    /// Entries already sorted by name without duplicates.
    pub(crate) fn from_sorted(entries: Vec<AttrEntry>) -> Attrs {
        Attrs {
            entries,
            open: None,
        }
    }

    pub fn get(&self, name: &str) -> Option<&AttrEntry> {
        self.entries
            .binary_search_by(|e| e.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.entries[i])
    }

    pub fn value(&self, name: &str) -> Option<&Value> {
        self.get(name).map(|e| &e.value)
    }

    /// The listed entries, sorted by name.
    pub fn entries(&self) -> &[AttrEntry] {
        &self.entries
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.name.as_str())
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.open.is_none()
    }

    /// Whether names beyond the listed entries can be resolved (`pkgs`).
    pub fn is_open(&self) -> bool {
        self.open.is_some()
    }

    /// The open set's name, e.g. `pkgs`.
    pub fn open_name(&self) -> Option<&str> {
        self.open.as_ref().map(|o| o.name.as_str())
    }

    /// `self // other`: entries of `other` win; an open resolver is kept from
    /// `other` or else from `self`.
    pub fn update(&self, other: &Attrs) -> Attrs {
        let (a, b) = (&self.entries, &other.entries);
        let mut out = Vec::with_capacity(a.len() + b.len());
        let (mut i, mut j) = (0, 0);
        while i < a.len() && j < b.len() {
            match a[i].name.cmp(&b[j].name) {
                std::cmp::Ordering::Less => {
                    out.push(a[i].clone());
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    out.push(b[j].clone());
                    j += 1;
                }
                std::cmp::Ordering::Equal => {
                    out.push(b[j].clone());
                    i += 1;
                    j += 1;
                }
            }
        }
        out.extend_from_slice(&a[i..]);
        out.extend_from_slice(&b[j..]);
        Attrs {
            entries: out,
            open: other.open.clone().or_else(|| self.open.clone()),
        }
    }
}

/// Computes `set.NAME` for a name an open set does not list.
pub type ResolveFn = dyn Fn(&Evaluator, &str, Span) -> Result<Value, EvalError>;

/// The resolver behind an open attribute set: computes `set.NAME` on demand
/// and caches the answer per name.
pub struct OpenSet {
    pub(crate) name: String,
    pub(crate) resolve: Box<ResolveFn>,
    pub(crate) cache: RefCell<HashMap<SmolStr, Value>>,
}

/// A function value: the lambda's code and the environment it closes over.
pub struct Closure {
    pub(crate) lambda: Rc<LambdaIr>,
    pub(crate) env: Rc<Env>,
}

impl Closure {
    /// Where the function is defined (the whole `param: body`).
    pub fn span(&self) -> Span {
        self.lambda.span
    }

    /// The name of the binding the lambda was written in (`f = x: ...`).
    pub fn name(&self) -> Option<&str> {
        self.lambda.name.as_deref()
    }

    /// For a `{ a, b ? 1, ... }:` function: each argument name with whether it
    /// has a default, and whether `...` was given. `None` for `x: ...`.
    pub fn formals(&self) -> Option<(Vec<(SmolStr, bool)>, bool)> {
        match &self.lambda.param {
            ParamIr::Ident => None,
            ParamIr::Pattern {
                entries, ellipsis, ..
            } => Some((
                entries
                    .iter()
                    .map(|e| (e.name.clone(), e.default.is_some()))
                    .collect(),
                *ellipsis,
            )),
        }
    }
}

/// The signature of a builtin implemented in Rust.
pub type PrimOpFn = dyn Fn(&Evaluator, &[Value], Span) -> Result<Value, EvalError>;

pub struct PrimOp {
    pub(crate) name: SmolStr,
    pub(crate) arity: usize,
    pub(crate) f: Rc<PrimOpFn>,
}

/// A builtin with the arguments it has received so far.
pub struct PrimOpApp {
    pub(crate) op: Rc<PrimOp>,
    pub(crate) args: Vec<Value>,
}

impl PrimOpApp {
    pub fn name(&self) -> &str {
        &self.op.name
    }

    /// Whether some but not all arguments have been supplied.
    pub fn is_partial(&self) -> bool {
        !self.args.is_empty()
    }
}

/// A runtime environment frame: the values of the names one scope binds, and
/// the enclosing frame. Variables are resolved to (depth, index) before
/// evaluation, so lookups never compare names. The first slot is stored
/// inline, so a one-argument function call allocates only the frame.
///
/// A frame is 56 bytes and a thunk's state 48, like a lowered expression
/// node: the allocations evaluation makes most often reuse the memory of
/// the nodes it frees as it goes.
pub(crate) struct Env {
    first: Value,
    rest: Box<[Value]>,
    pub parent: Option<Rc<Env>>,
}

impl Env {
    /// A frame with exactly one slot (`x: body`, `with e; body`).
    pub fn single(v: Value, parent: Option<Rc<Env>>) -> Env {
        Env {
            first: v,
            rest: Box::default(),
            parent,
        }
    }

    /// A frame with these slots.
    pub fn from_vec(slots: Vec<Value>, parent: Option<Rc<Env>>) -> Env {
        Env::from_slots(slots.into_iter(), parent)
    }

    /// A frame with the slots `slots` yields.
    pub fn from_slots(
        mut slots: impl ExactSizeIterator<Item = Value>,
        parent: Option<Rc<Env>>,
    ) -> Env {
        let first = slots.next().unwrap_or(Value::Null);
        Env {
            first,
            rest: slots.collect(),
            parent,
        }
    }

    /// The slots in order (an empty frame yields one `null`; callers zip with
    /// the names they bound).
    pub fn iter(&self) -> impl Iterator<Item = &Value> {
        std::iter::once(&self.first).chain(self.rest.iter())
    }

    pub fn lookup(&self, depth: u32, idx: u32) -> &Value {
        let mut env = self;
        for _ in 0..depth {
            match &env.parent {
                Some(p) => env = p,
                None => break,
            }
        }
        match idx {
            0 => &env.first,
            i => env.rest.get(i as usize - 1).unwrap_or(&Value::Null),
        }
    }
}

/// The code of a native thunk.
pub type NativeFn = dyn Fn(&Evaluator) -> Result<Value, EvalError>;

pub(crate) enum ThunkState {
    /// Not yet evaluated: an expression and its environment.
    Suspended {
        ir: Rc<Ir>,
        env: Rc<Env>,
        name: Option<SmolStr>,
    },
    /// Not yet evaluated: Rust code.
    Native {
        f: Rc<NativeFn>,
        name: Option<SmolStr>,
    },
    /// Not yet evaluated: `f arg` (used by `map`, `genList`, ...; cheaper
    /// than a native closure). The function is shared by every element.
    Apply {
        call: Rc<ApplyFn>,
        arg: Value,
    },
    /// Being evaluated right now: forcing it again is infinite recursion.
    Blackhole,
    Done(Value),
    /// Allocated, not yet filled in (only during construction of a
    /// recursive scope).
    Uninit,
}

/// The function of [`ThunkState::Apply`] thunks, and the span of the call.
pub(crate) struct ApplyFn {
    pub f: Value,
    pub span: Span,
}

impl ApplyFn {
    pub fn new(f: Value, span: Span) -> Rc<ApplyFn> {
        Rc::new(ApplyFn { f, span })
    }
}

/// A delayed computation shared by every value that refers to it.
#[derive(Clone)]
pub struct Thunk(pub(crate) Rc<RefCell<ThunkState>>);

impl Thunk {
    /// A thunk that runs `f` when first forced.
    pub fn native(
        name: Option<&str>,
        f: impl Fn(&Evaluator) -> Result<Value, EvalError> + 'static,
    ) -> Thunk {
        Thunk(Rc::new(RefCell::new(ThunkState::Native {
            f: Rc::new(f),
            name: name.map(SmolStr::new),
        })))
    }

    pub(crate) fn suspended(ir: Rc<Ir>, env: Rc<Env>, name: Option<SmolStr>) -> Thunk {
        Thunk(Rc::new(RefCell::new(ThunkState::Suspended {
            ir,
            env,
            name,
        })))
    }

    /// `f arg`, applied when forced.
    pub(crate) fn apply(call: Rc<ApplyFn>, arg: Value) -> Thunk {
        Thunk(Rc::new(RefCell::new(ThunkState::Apply { call, arg })))
    }

    pub(crate) fn uninit() -> Thunk {
        Thunk(Rc::new(RefCell::new(ThunkState::Uninit)))
    }

    pub(crate) fn set(&self, state: ThunkState) {
        *self.0.borrow_mut() = state;
    }

    /// Whether the thunk has already been evaluated.
    pub fn is_forced(&self) -> bool {
        matches!(&*self.0.borrow(), ThunkState::Done(_))
    }

    /// The value, if already evaluated.
    pub fn forced_value(&self) -> Option<Value> {
        match &*self.0.borrow() {
            ThunkState::Done(v) => Some(v.clone()),
            _ => None,
        }
    }

    pub(crate) fn downgrade(&self) -> std::rc::Weak<RefCell<ThunkState>> {
        Rc::downgrade(&self.0)
    }

    pub(crate) fn id(&self) -> usize {
        Rc::as_ptr(&self.0) as usize
    }
}
