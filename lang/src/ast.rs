//! The abstract syntax tree.
//!
//! The parser produces an [`Expr`] tree in which every node carries its
//! [`Span`]. Constructs that Nix desugars early stay explicit here so that
//! diagnostics can point at what the user wrote (for example `a.b.c = 1;`
//! keeps its attribute path rather than becoming nested sets).
//!
//! `true`, `false` and `null` are not keywords: like in Nix they are names in
//! the global scope, so they parse as [`ExprKind::Var`].
//!
//! A tree that contains [`ExprKind::Error`] came from input with syntax errors;
//! the evaluator refuses to run it.

use crate::source::Span;
use smol_str::SmolStr;

/// An identifier with its location.
#[derive(Debug, Clone, PartialEq)]
pub struct Ident {
    pub name: SmolStr,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    /// A 64-bit integer literal (`-` is a unary operator).
    Int(i64),
    /// A float literal such as `1.5`, `.5` or `1e3`.
    Float(f64),
    /// A string `"..."` or an indented string `''...''`; for the latter the
    /// common indentation is already stripped and escapes are resolved.
    Str(Vec<StrPart>),
    /// A path literal. `./x` and `../x` are relative to the directory of the
    /// file that contains them; `/x` is absolute. Parts may interpolate
    /// (`./dir/${name}`).
    Path(PathLit),
    /// A variable reference, including `true`, `false` and `null`.
    Var(SmolStr),
    /// `[ a b c ]`
    List(Vec<Expr>),
    /// `{ ... }` or `rec { ... }`
    Attrs { rec: bool, bindings: Vec<Binding> },
    /// `let bindings in body`
    Let {
        bindings: Vec<Binding>,
        body: Box<Expr>,
    },
    /// `param: body` (the parameter is boxed: it is the largest part of any
    /// node, and keeping it out makes every node smaller)
    Lambda { param: Box<Param>, body: Box<Expr> },
    /// `func arg`
    Apply { func: Box<Expr>, arg: Box<Expr> },
    /// `expr.a.b` or `expr.a.b or default`
    Select {
        expr: Box<Expr>,
        path: AttrPath,
        default: Option<Box<Expr>>,
    },
    /// `expr ? a.b`
    HasAttr { expr: Box<Expr>, path: AttrPath },
    /// `if cond then a else b`
    If {
        cond: Box<Expr>,
        then: Box<Expr>,
        else_: Box<Expr>,
    },
    /// `with env; body`
    With { env: Box<Expr>, body: Box<Expr> },
    /// `assert cond; body`
    Assert { cond: Box<Expr>, body: Box<Expr> },
    /// `-e` or `!e`
    Unary { op: UnaryOp, expr: Box<Expr> },
    /// `lhs op rhs`
    Binary {
        op: BinOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    /// `( e )`: kept so that spans and printing follow the source; evaluates
    /// to `e`.
    Paren(Box<Expr>),
    /// Placeholder for a node that failed to parse.
    Error,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StrPart {
    Lit(String),
    Interp(Expr),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathAnchor {
    /// `./x` or `../x`: resolved against the directory of the containing file.
    Relative,
    /// `/x`
    Absolute,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PathLit {
    pub anchor: PathAnchor,
    /// The literal text split at interpolations, including the leading `./`,
    /// `../` or `/`.
    pub parts: Vec<StrPart>,
}

/// One component of an attribute path: `a`, `"a b"` or `${e}`.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrKey {
    /// A name known at parse time (an identifier or a string without
    /// interpolation).
    Static { name: SmolStr, span: Span },
    /// `${e}` or a string with interpolation: the name is computed.
    Dynamic(Expr),
}

impl AttrKey {
    pub fn span(&self) -> Span {
        match self {
            AttrKey::Static { span, .. } => *span,
            AttrKey::Dynamic(e) => e.span,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct AttrPath {
    pub keys: Vec<AttrKey>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Binding {
    /// `a.b.c = value;`
    Assign {
        path: AttrPath,
        value: Expr,
        span: Span,
    },
    /// `inherit a b;` or `inherit (from) a b;`
    Inherit {
        from: Option<Box<Expr>>,
        names: Vec<Ident>,
        span: Span,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    /// `x: body`
    Ident(Ident),
    /// `{ a, b ? default, ... }@args: body` (the `@` name may also come first).
    Pattern {
        entries: Vec<PatternEntry>,
        ellipsis: bool,
        bind: Option<Ident>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct PatternEntry {
    pub name: Ident,
    pub default: Option<Expr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnaryOp {
    Neg,
    Not,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    /// `++`
    Concat,
    Mul,
    Div,
    Add,
    Sub,
    /// `//`
    Update,
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
    And,
    Or,
    /// `->`
    Impl,
}

impl BinOp {
    pub fn as_str(self) -> &'static str {
        match self {
            BinOp::Concat => "++",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Update => "//",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::And => "&&",
            BinOp::Or => "||",
            BinOp::Impl => "->",
        }
    }
}
