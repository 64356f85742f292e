//! The evaluator's intermediate form.
//!
//! [`crate::eval::lower`] turns the AST into this tree once per file. The
//! differences from the AST are what make evaluation fast and simple:
//! variables are resolved to a `(depth, index)` slot in the environment chain
//! (or to a list of enclosing `with` frames to search, or to a global), nested
//! attribute paths `a.b.c = ...` are merged into nested sets, and duplicate
//! static attributes have already been rejected.
//!
//! Nodes are kept small (48 bytes; rare or large parts are boxed): every
//! node is its own allocation of 64 bytes with its reference counts, one
//! cache line. Evaluation is bound by the latency of reading nodes (each is
//! read once per evaluation, in no order the hardware could predict), so
//! the number of lines a node spans shows directly.

use crate::ast::BinOp;
use crate::eval::value::{Attrs, Closure, NixString, PrimOpApp, Thunk, Value};
use crate::source::Span;
use smol_str::SmolStr;
use std::path::Path;
use std::rc::Rc;

pub(crate) type IrRef = Rc<Ir>;

pub(crate) struct Ir {
    pub kind: IrKind,
    pub span: Span,
}

pub(crate) enum StrPartIr {
    Lit(Rc<str>),
    Interp(IrRef),
}

pub(crate) enum IrKind {
    /// A literal or a global (a global may be a lazy native value).
    Const(ConstIr),
    /// A string with interpolations.
    Str(Vec<StrPartIr>),
    /// A path with interpolations.
    Path(Box<PathIr>),
    /// A lexically bound variable.
    Local {
        depth: u32,
        idx: u32,
    },
    /// A variable that only a `with` can provide.
    WithVar(Box<WithVarIr>),
    List(Vec<IrRef>),
    /// A non-recursive set: values evaluate in the current environment.
    Attrs(AttrsIr),
    /// `rec { }`: a new frame holds the static attributes.
    RecAttrs(AttrsIr),
    /// `let`: a new frame holds the bindings (static names only, sorted).
    Let {
        entries: Box<[EntryIr]>,
        body: IrRef,
    },
    /// A `let` with `inherit (e) ...;` bindings.
    LetSources(Box<LetSourcesIr>),
    Lambda(Rc<LambdaIr>),
    Apply {
        func: IrRef,
        arg: IrRef,
    },
    Select {
        expr: IrRef,
        path: Box<[KeyIr]>,
    },
    /// `expr.a.b or default`
    SelectOr(Box<SelectOrIr>),
    HasAttr {
        expr: IrRef,
        path: Box<[KeyIr]>,
    },
    If {
        cond: IrRef,
        then: IrRef,
        else_: IrRef,
    },
    /// `with e; body`: a new frame whose single slot is `e`.
    With {
        env: IrRef,
        body: IrRef,
    },
    Assert {
        cond: IrRef,
        body: IrRef,
    },
    Not(IrRef),
    Neg(IrRef),
    Binary {
        op: BinOp,
        lhs: IrRef,
        rhs: IrRef,
    },
}

/// A constant: a [`Value`] in a form that keeps the node small (a literal
/// string has no context; globals of other kinds are rare and boxed).
pub(crate) enum ConstIr {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Rc<str>),
    Path(Rc<Path>),
    Attrs(Rc<Attrs>),
    Lambda(Rc<Closure>),
    PrimOp(Rc<PrimOpApp>),
    Thunk(Thunk),
    Other(Box<Value>),
}

impl ConstIr {
    pub fn new(v: Value) -> Self {
        match v {
            Value::Null => ConstIr::Null,
            Value::Bool(b) => ConstIr::Bool(b),
            Value::Int(i) => ConstIr::Int(i),
            Value::Float(f) => ConstIr::Float(f),
            Value::String(s) if !s.has_context() => ConstIr::Str(Rc::from(s.as_str())),
            Value::Path(p) => ConstIr::Path(p),
            Value::Attrs(a) => ConstIr::Attrs(a),
            Value::Lambda(c) => ConstIr::Lambda(c),
            Value::PrimOp(p) => ConstIr::PrimOp(p),
            Value::Thunk(t) => ConstIr::Thunk(t),
            other => ConstIr::Other(Box::new(other)),
        }
    }

    #[inline]
    pub fn value(&self) -> Value {
        match self {
            ConstIr::Null => Value::Null,
            ConstIr::Bool(b) => Value::Bool(*b),
            ConstIr::Int(i) => Value::Int(*i),
            ConstIr::Float(f) => Value::Float(*f),
            ConstIr::Str(s) => Value::String(NixString::new(s.clone())),
            ConstIr::Path(p) => Value::Path(p.clone()),
            ConstIr::Attrs(a) => Value::Attrs(a.clone()),
            ConstIr::Lambda(c) => Value::Lambda(c.clone()),
            ConstIr::PrimOp(p) => Value::PrimOp(p.clone()),
            ConstIr::Thunk(t) => Value::Thunk(t.clone()),
            ConstIr::Other(v) => (**v).clone(),
        }
    }
}

/// A path with interpolations; `base` is the directory relative paths
/// resolve against (`None` for absolute paths).
pub(crate) struct PathIr {
    pub base: Option<Rc<Path>>,
    pub parts: Box<[StrPartIr]>,
}

/// A `let` with `inherit (e) ...;` bindings.
pub(crate) struct LetSourcesIr {
    pub group: AttrsIr,
    pub body: IrRef,
}

/// `expr.a.b or default`
pub(crate) struct SelectOrIr {
    pub expr: IrRef,
    pub path: Box<[KeyIr]>,
    pub default: IrRef,
}

/// A variable that only a `with` can provide: search the `with` frames at
/// these depths, innermost first.
pub(crate) struct WithVarIr {
    pub name: SmolStr,
    pub withs: Vec<u32>,
}

pub(crate) enum KeyIr {
    Static(SmolStr, Span),
    Dynamic(IrRef),
}

/// The bindings of a set, a `rec` set or a `let`. Kept inside its node
/// (two words): evaluation reads it right after the node, and one memory
/// access fewer per set or `let` is measurable.
pub(crate) struct AttrsIr {
    /// Static names, sorted; in `rec`/`let` the index is the slot index.
    pub entries: Box<[EntryIr]>,
    /// Dynamic entries and `inherit (e)` sources, when there are any.
    pub rare: Option<Box<RareAttrsIr>>,
}

/// The less common parts of a set.
pub(crate) struct RareAttrsIr {
    /// `${e} = v;` entries, in source order.
    pub dynamic: Vec<DynEntryIr>,
    /// The `e` of each `inherit (e) ...;`, evaluated once and shared.
    pub sources: Vec<IrRef>,
}

impl AttrsIr {
    pub fn dynamic(&self) -> &[DynEntryIr] {
        self.rare.as_ref().map_or(&[], |r| &r.dynamic)
    }

    pub fn sources(&self) -> &[IrRef] {
        self.rare.as_ref().map_or(&[], |r| &r.sources)
    }
}

pub(crate) struct EntryIr {
    pub name: SmolStr,
    /// The span of the attribute's name where it was (first) defined.
    pub span: Span,
    pub value: EntryValue,
}

pub(crate) enum EntryValue {
    Expr(IrRef),
    /// `inherit (sources[source]) name;`
    InheritFrom {
        source: usize,
    },
}

pub(crate) struct DynEntryIr {
    pub key: IrRef,
    pub value: EntryValue,
    pub span: Span,
}

pub(crate) struct PatternEntryIr {
    pub name: SmolStr,
    pub default: Option<IrRef>,
}

pub(crate) enum ParamIr {
    /// `x: body` — slot 0.
    Ident,
    /// `{ a, b ? d, ... } @ bind: body` — slots 0..n for the entries, then
    /// the `@` name.
    Pattern {
        entries: Vec<PatternEntryIr>,
        ellipsis: bool,
        bind: Option<SmolStr>,
    },
}

pub(crate) struct LambdaIr {
    pub param: ParamIr,
    pub body: IrRef,
    pub span: Span,
    /// The binding this lambda was written in, for traces.
    pub name: Option<SmolStr>,
}
#[cfg(all(test, target_pointer_width = "64"))]
mod tests {
    use crate::eval::value::{Env, ThunkState};
    use std::cell::RefCell;

    /// The most frequent allocations: a lowered node is one cache line
    /// with its reference counts (64 bytes), see the module comment.
    /// Syntax nodes, frames and thunks share one size (72 bytes with their
    /// reference counts or in their box), so that evaluation builds frames
    /// and thunks where lowering freed syntax nodes. Growing one of these
    /// is measurable in the eval benchmark.
    #[test]
    fn frequent_allocations_keep_their_sizes() {
        assert_eq!(size_of::<super::Ir>(), 48);
        assert_eq!(size_of::<crate::ast::Expr>(), 72);
        assert_eq!(size_of::<Env>(), 56);
        assert_eq!(size_of::<RefCell<ThunkState>>(), 56);
    }
}
