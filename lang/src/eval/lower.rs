//! Lowering: AST to [`crate::eval::ir`], once per file.
//!
//! The lowerer keeps a stack of scopes mirroring the environment frames the
//! evaluator will build (`let`, `rec`, function parameters, `with`). Each
//! variable is resolved here: to a `(depth, index)` slot when a lexical scope
//! binds it (lexical bindings always win over `with`); else to a constant when
//! it is a global (builtins and embedder globals form the outermost lexical
//! scope, so as in Nix they win over `with` too); else to the list of enclosing
//! `with` frames to search at run time, innermost first. A name that none of
//! these can provide is an undefined-variable error before anything runs.
//!
//! Attribute paths `a.b.c = v;` are merged into nested sets here, together
//! with literal non-recursive sets written for the same name
//! (`a = { x = 1; }; a.y = 2;`); any other repeated static name is a duplicate
//! attribute error pointing at both definitions. Repeated dynamic names can
//! only be detected at run time.

use crate::ast::{
    AttrKey, AttrPath, Binding, Expr, ExprKind, Ident, Param, PathAnchor, StrPart, UnaryOp,
};
use crate::eval::error::{ErrorKind, EvalError};
use crate::eval::ir::*;
use crate::eval::paths::normalize;
use crate::eval::value::Value;
use crate::source::Span;
use smol_str::SmolStr;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// How deeply expressions may nest before lowering gives up.
const MAX_NESTING: usize = 5_000;

enum Scope {
    Names(NameMap),
    With,
}

/// Above this many names, scopes and sets under construction get a hash
/// index; below, a linear scan is cheaper than hashing.
const INDEX_THRESHOLD: usize = 12;

/// The names one scope binds; a name's slot index is its position.
#[derive(Default)]
struct NameMap {
    names: Vec<SmolStr>,
    index: Option<HashMap<SmolStr, u32>>,
}

impl NameMap {
    /// A map of distinct names, slot `i` being `names[i]`.
    fn from_distinct(names: Vec<SmolStr>) -> Self {
        let index = (names.len() > INDEX_THRESHOLD).then(|| {
            names
                .iter()
                .enumerate()
                .map(|(i, n)| (n.clone(), i as u32))
                .collect()
        });
        NameMap { names, index }
    }

    fn get(&self, name: &str) -> Option<u32> {
        match &self.index {
            Some(ix) => ix.get(name).copied(),
            None => self.names.iter().position(|n| n == name).map(|i| i as u32),
        }
    }

    /// Adds a name in the next slot; false if it was already there.
    fn push(&mut self, name: SmolStr) -> bool {
        if self.get(&name).is_some() {
            return false;
        }
        let idx = self.names.len() as u32;
        if let Some(ix) = &mut self.index {
            ix.insert(name.clone(), idx);
        } else if self.names.len() >= INDEX_THRESHOLD {
            let mut ix: HashMap<SmolStr, u32> = self
                .names
                .iter()
                .enumerate()
                .map(|(i, n)| (n.clone(), i as u32))
                .collect();
            ix.insert(name.clone(), idx);
            self.index = Some(ix);
        }
        self.names.push(name);
        true
    }

    fn keys(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(SmolStr::as_str)
    }
}

/// The static entries of a set under construction, in definition order.
#[derive(Default)]
struct EntryMap {
    items: Vec<(SmolStr, Span, PEntry)>,
    index: Option<HashMap<SmolStr, usize>>,
}

impl EntryMap {
    /// A map for about `n` entries, indexed from the start when that many
    /// need it (growing a large index costs more than building it once).
    fn with_capacity(n: usize) -> Self {
        EntryMap {
            items: Vec::with_capacity(n),
            index: (n > INDEX_THRESHOLD).then(|| HashMap::with_capacity(n)),
        }
    }

    fn position(&self, name: &str) -> Option<usize> {
        match &self.index {
            Some(ix) => ix.get(name).copied(),
            None => self.items.iter().position(|(n, _, _)| n == name),
        }
    }

    fn get_mut(&mut self, name: &str) -> Option<(&mut Span, &mut PEntry)> {
        let i = self.position(name)?;
        let (_, span, e) = &mut self.items[i];
        Some((span, e))
    }

    fn first_span(&self, name: &str) -> Option<Span> {
        self.position(name).map(|i| self.items[i].1)
    }

    fn push(&mut self, name: SmolStr, span: Span, e: PEntry) -> usize {
        let i = self.items.len();
        if let Some(ix) = &mut self.index {
            ix.insert(name.clone(), i);
        } else if i >= INDEX_THRESHOLD {
            let mut ix: HashMap<SmolStr, usize> = self
                .items
                .iter()
                .enumerate()
                .map(|(j, (n, _, _))| (n.clone(), j))
                .collect();
            ix.insert(name.clone(), i);
            self.index = Some(ix);
        }
        self.items.push((name, span, e));
        i
    }

    fn into_sorted(self) -> Vec<(SmolStr, Span, PEntry)> {
        let mut items = self.items;
        // Names are unique here, so an unstable sort gives the same order.
        items.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        items
    }
}

pub(crate) struct Lowerer<'a> {
    scopes: Vec<Scope>,
    globals: &'a HashMap<SmolStr, Value>,
    base_dir: Rc<Path>,
    name_hint: Option<SmolStr>,
    depth: usize,
}

/// A set under construction.
#[derive(Default)]
struct PAttrs {
    entries: EntryMap,
    dynamic: Vec<(IrRef, PEntry, Span)>,
    sources: Vec<IrRef>,
}

impl PAttrs {
    /// A set for about `n` bindings.
    fn with_capacity(n: usize) -> Self {
        PAttrs {
            entries: EntryMap::with_capacity(n),
            dynamic: Vec::new(),
            sources: Vec::new(),
        }
    }
}

/// An entry of a set under construction (a nested set is boxed: entries
/// are moved around while sets are built, and most are expressions).
enum PEntry {
    Expr(IrRef),
    InheritFrom(usize),
    Nested(Box<PAttrs>),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Group {
    Rec,
    Let,
}

/// The bindings of a `rec` set or `let` under construction: one entry per
/// slot (the static names, sorted), plus its dynamic entries and
/// `inherit (e)` sources.
struct PGroup {
    slots: Vec<Option<(Span, PEntry)>>,
    rest: PAttrs,
}

impl<'a> Lowerer<'a> {
    pub fn new(globals: &'a HashMap<SmolStr, Value>, base_dir: &Path) -> Self {
        Lowerer {
            scopes: Vec::new(),
            globals,
            base_dir: Rc::from(base_dir),
            name_hint: None,
            depth: 0,
        }
    }

    /// Lowers a tree, consuming it: each node is freed as soon as it has
    /// been read, while it is still in the cache, and its memory is reused
    /// for the lowered tree.
    pub fn lower(&mut self, e: Expr) -> Result<IrRef, EvalError> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            self.depth -= 1;
            return Err(EvalError::new(
                ErrorKind::DepthLimit { limit: MAX_NESTING },
                e.span,
            ));
        }
        let r = self.lower_inner(e);
        self.depth -= 1;
        r
    }

    fn mk(kind: IrKind, span: Span) -> IrRef {
        Rc::new(Ir { kind, span })
    }

    fn lower_inner(&mut self, e: Expr) -> Result<IrRef, EvalError> {
        let hint = self.name_hint.take();
        let Expr { kind, span } = e;
        let kind = match kind {
            ExprKind::Int(i) => IrKind::Const(ConstIr::Int(i)),
            ExprKind::Float(f) => IrKind::Const(ConstIr::Float(f)),
            ExprKind::Str(parts) => match self.lower_parts(parts)? {
                Ok(text) => IrKind::Const(ConstIr::Str(Rc::from(text))),
                Err(parts) => IrKind::Str(parts),
            },
            ExprKind::Path(lit) => {
                let base = match lit.anchor {
                    PathAnchor::Relative => Some(self.base_dir.clone()),
                    PathAnchor::Absolute => None,
                };
                match self.lower_parts(lit.parts)? {
                    Ok(text) => {
                        let p = resolve_path_text(base.as_deref(), &text);
                        IrKind::Const(ConstIr::Path(Rc::from(p)))
                    }
                    Err(parts) => IrKind::Path(Box::new(PathIr {
                        base,
                        parts: parts.into_boxed_slice(),
                    })),
                }
            }
            ExprKind::Var(name) => return self.lower_var(&name, span),
            ExprKind::List(items) => IrKind::List(
                items
                    .into_iter()
                    .map(|i| self.lower(i))
                    .collect::<Result<_, _>>()?,
            ),
            ExprKind::Attrs { rec, bindings } => {
                if rec {
                    let names = self.group_names(&bindings, Group::Rec)?;
                    self.scopes.push(Scope::Names(names));
                    let r = self.lower_group(bindings);
                    let names = self.pop_names();
                    IrKind::RecAttrs(finish_group(names, r?, span)?)
                } else {
                    IrKind::Attrs(self.lower_plain(bindings)?)
                }
            }
            ExprKind::Let { bindings, body } => {
                let names = self.group_names(&bindings, Group::Let)?;
                self.scopes.push(Scope::Names(names));
                let r = self
                    .lower_group(bindings)
                    .and_then(|g| Ok((g, self.lower(*body)?)));
                let names = self.pop_names();
                let (group, body) = r?;
                let group = finish_group(names, group, span)?;
                if group.rare.is_some() {
                    IrKind::LetSources(Box::new(LetSourcesIr { group, body }))
                } else {
                    IrKind::Let {
                        entries: group.entries,
                        body,
                    }
                }
            }
            ExprKind::Lambda { param, body } => {
                IrKind::Lambda(Rc::new(self.lower_lambda(*param, *body, span, hint)?))
            }
            ExprKind::Apply { func, arg } => IrKind::Apply {
                func: self.lower(*func)?,
                arg: self.lower(*arg)?,
            },
            ExprKind::Select {
                expr,
                path,
                default,
            } => {
                let expr = self.lower(*expr)?;
                let path = self.lower_keys(path)?;
                match default {
                    Some(d) => IrKind::SelectOr(Box::new(SelectOrIr {
                        expr,
                        path,
                        default: self.lower(*d)?,
                    })),
                    None => IrKind::Select { expr, path },
                }
            }
            ExprKind::HasAttr { expr, path } => IrKind::HasAttr {
                expr: self.lower(*expr)?,
                path: self.lower_keys(path)?,
            },
            ExprKind::If { cond, then, else_ } => IrKind::If {
                cond: self.lower(*cond)?,
                then: self.lower(*then)?,
                else_: self.lower(*else_)?,
            },
            ExprKind::With { env, body } => {
                let env = self.lower(*env)?;
                self.scopes.push(Scope::With);
                let body = self.lower(*body);
                self.scopes.pop();
                IrKind::With { env, body: body? }
            }
            ExprKind::Assert { cond, body } => IrKind::Assert {
                cond: self.lower(*cond)?,
                body: self.lower(*body)?,
            },
            ExprKind::Unary { op, expr } => {
                let inner = self.lower(*expr)?;
                match op {
                    UnaryOp::Not => IrKind::Not(inner),
                    UnaryOp::Neg => IrKind::Neg(inner),
                }
            }
            ExprKind::Binary { op, lhs, rhs } => IrKind::Binary {
                op,
                lhs: self.lower(*lhs)?,
                rhs: self.lower(*rhs)?,
            },
            ExprKind::Paren(inner) => {
                self.name_hint = hint;
                return self.lower(*inner);
            }
            ExprKind::Error => return Err(EvalError::new(ErrorKind::Malformed, span)),
        };
        Ok(Self::mk(kind, span))
    }

    /// `Ok(text)` when every part is literal, else the lowered parts.
    fn lower_parts(
        &mut self,
        parts: Vec<StrPart>,
    ) -> Result<Result<String, Vec<StrPartIr>>, EvalError> {
        if parts.iter().all(|p| matches!(p, StrPart::Lit(_))) {
            let mut s = String::new();
            for p in parts {
                if let StrPart::Lit(t) = p {
                    if s.is_empty() {
                        s = t;
                    } else {
                        s.push_str(&t);
                    }
                }
            }
            return Ok(Ok(s));
        }
        let mut out = Vec::with_capacity(parts.len());
        for p in parts {
            out.push(match p {
                StrPart::Lit(t) => StrPartIr::Lit(Rc::from(t)),
                StrPart::Interp(e) => StrPartIr::Interp(self.lower(e)?),
            });
        }
        Ok(Err(out))
    }

    fn lower_keys(&mut self, path: AttrPath) -> Result<Box<[KeyIr]>, EvalError> {
        path.keys
            .into_iter()
            .map(|k| {
                Ok(match k {
                    AttrKey::Static { name, span } => KeyIr::Static(name, span),
                    AttrKey::Dynamic(e) => KeyIr::Dynamic(self.lower(e)?),
                })
            })
            .collect()
    }

    /// Resolves a variable in the current scopes.
    fn lower_var(&mut self, name: &SmolStr, span: Span) -> Result<IrRef, EvalError> {
        let mut withs = Vec::new();
        for (depth, scope) in self.scopes.iter().rev().enumerate() {
            match scope {
                Scope::Names(names) => {
                    if let Some(idx) = names.get(name) {
                        return Ok(Self::mk(
                            IrKind::Local {
                                depth: depth as u32,
                                idx,
                            },
                            span,
                        ));
                    }
                }
                Scope::With => withs.push(depth as u32),
            }
        }
        // As in Nix, globals live in the outermost lexical scope, so they
        // win over `with`.
        if let Some(v) = self.globals.get(name) {
            return Ok(Self::mk(IrKind::Const(ConstIr::new(v.clone())), span));
        }
        if withs.is_empty() {
            return Err(self.undefined(name, span));
        }
        Ok(Self::mk(
            IrKind::WithVar(Box::new(WithVarIr {
                name: name.clone(),
                withs,
            })),
            span,
        ))
    }

    fn undefined(&self, name: &str, span: Span) -> EvalError {
        let mut candidates: Vec<&str> = self
            .scopes
            .iter()
            .flat_map(|s| match s {
                Scope::Names(n) => n.keys().collect::<Vec<_>>(),
                Scope::With => Vec::new(),
            })
            .collect();
        candidates.extend(self.globals.keys().map(|k| k.as_str()));
        EvalError::new(
            ErrorKind::UndefinedVariable {
                name: name.into(),
                suggestions: crate::diag::suggest(name, candidates),
            },
            span,
        )
    }

    /// Resolves an inherited name in the scope *outside* the group being
    /// built, and adjusts it to be evaluated inside the group's frame.
    fn lower_inherit_outer(&mut self, name: &Ident) -> Result<IrRef, EvalError> {
        let Some(top) = self.scopes.pop() else {
            return self.lower_var(&name.name, name.span);
        };
        let r = self.lower_var(&name.name, name.span);
        self.scopes.push(top);
        let ir = r?;
        Ok(match &ir.kind {
            IrKind::Local { depth, idx } => Self::mk(
                IrKind::Local {
                    depth: depth + 1,
                    idx: *idx,
                },
                ir.span,
            ),
            IrKind::WithVar(w) => Self::mk(
                IrKind::WithVar(Box::new(WithVarIr {
                    name: w.name.clone(),
                    withs: w.withs.iter().map(|d| d + 1).collect(),
                })),
                ir.span,
            ),
            _ => ir,
        })
    }

    /// Leaves the innermost scope, returning the names it bound.
    fn pop_names(&mut self) -> Vec<SmolStr> {
        match self.scopes.pop() {
            Some(Scope::Names(n)) => n.names,
            _ => Vec::new(),
        }
    }

    /// The slot map of a `rec` set or `let`: its static names, sorted.
    fn group_names(&self, bindings: &[Binding], group: Group) -> Result<NameMap, EvalError> {
        let mut names: Vec<SmolStr> = Vec::with_capacity(bindings.len());
        for b in bindings {
            match b {
                Binding::Assign { path, .. } => match path.keys.first() {
                    Some(AttrKey::Static { name, .. }) => names.push(name.clone()),
                    Some(AttrKey::Dynamic(e)) if group == Group::Let => {
                        return Err(EvalError::invalid(
                            "let",
                            "dynamic attribute names are not allowed in `let`",
                            e.span,
                        ));
                    }
                    _ => {}
                },
                Binding::Inherit { names: ns, .. } => {
                    names.extend(ns.iter().map(|n| n.name.clone()));
                }
            }
        }
        names.sort_unstable();
        names.dedup();
        Ok(NameMap::from_distinct(names))
    }

    /// A non-recursive set's bindings.
    fn lower_plain(&mut self, bindings: Vec<Binding>) -> Result<AttrsIr, EvalError> {
        let mut root = PAttrs::with_capacity(bindings.len());
        self.lower_bindings(&mut root, bindings)?;
        Ok(finish(root))
    }

    /// Adds the bindings of a non-recursive set to `target`.
    fn lower_bindings(
        &mut self,
        target: &mut PAttrs,
        bindings: Vec<Binding>,
    ) -> Result<(), EvalError> {
        for b in bindings {
            match b {
                Binding::Assign { path, value, .. } => {
                    self.insert_path(target, path.keys.into_iter(), value)?;
                }
                Binding::Inherit { from, names, .. } => {
                    let source = match from {
                        Some(f) => {
                            target.sources.push(self.lower(*f)?);
                            Some(target.sources.len() - 1)
                        }
                        None => None,
                    };
                    for n in names {
                        let entry = match source {
                            Some(s) => PEntry::InheritFrom(s),
                            None => PEntry::Expr(self.lower_var(&n.name, n.span)?),
                        };
                        if let Some(first) = target.entries.first_span(&n.name) {
                            return Err(duplicate(&n.name, first, n.span));
                        }
                        target.entries.push(n.name, n.span, entry);
                    }
                }
            }
        }
        Ok(())
    }

    /// The bindings of a `rec` set or `let` whose slot map (from
    /// [`Lowerer::group_names`]) is the innermost scope: each static name
    /// goes straight to its slot, in the order the frame has them.
    fn lower_group(&mut self, bindings: Vec<Binding>) -> Result<PGroup, EvalError> {
        let n = match self.scopes.last() {
            Some(Scope::Names(names)) => names.names.len(),
            _ => 0,
        };
        let mut group = PGroup {
            slots: Vec::with_capacity(n),
            rest: PAttrs::default(),
        };
        group.slots.resize_with(n, || None);
        for b in bindings {
            match b {
                Binding::Assign { path, value, .. } => {
                    let mut keys = path.keys.into_iter();
                    match keys.next() {
                        Some(AttrKey::Static {
                            name,
                            span: key_span,
                        }) => {
                            let slot = self.slot_of(&name, key_span)?;
                            let existing = group.slots[slot].as_mut().map(|(s, e)| (s, e));
                            if let Some(new) =
                                self.define(existing, &name, key_span, keys, value)?
                            {
                                group.slots[slot] = Some((key_span, new));
                            }
                        }
                        Some(AttrKey::Dynamic(e)) => {
                            self.insert_dynamic(&mut group.rest, e, keys, value)?;
                        }
                        None => return Err(EvalError::new(ErrorKind::Malformed, value.span)),
                    }
                }
                Binding::Inherit { from, names, .. } => {
                    let source = match from {
                        Some(f) => {
                            group.rest.sources.push(self.lower(*f)?);
                            Some(group.rest.sources.len() - 1)
                        }
                        None => None,
                    };
                    for n in names {
                        let entry = match source {
                            Some(s) => PEntry::InheritFrom(s),
                            None => PEntry::Expr(self.lower_inherit_outer(&n)?),
                        };
                        let slot = self.slot_of(&n.name, n.span)?;
                        if let Some((first, _)) = &group.slots[slot] {
                            return Err(duplicate(&n.name, *first, n.span));
                        }
                        group.slots[slot] = Some((n.span, entry));
                    }
                }
            }
        }
        Ok(group)
    }

    /// The slot of a static name of the group being lowered.
    fn slot_of(&self, name: &str, span: Span) -> Result<usize, EvalError> {
        match self.scopes.last() {
            Some(Scope::Names(names)) => names.get(name).map(|i| i as usize),
            _ => None,
        }
        .ok_or_else(|| EvalError::new(ErrorKind::Malformed, span))
    }

    /// Adds `keys = value` under `target`, merging nested sets.
    fn insert_path(
        &mut self,
        target: &mut PAttrs,
        mut keys: std::vec::IntoIter<AttrKey>,
        value: Expr,
    ) -> Result<(), EvalError> {
        let Some(first) = keys.next() else {
            return Err(EvalError::new(ErrorKind::Malformed, value.span));
        };
        match first {
            AttrKey::Static { name, span } => {
                let existing = target.entries.get_mut(&name);
                if let Some(new) = self.define(existing, &name, span, keys, value)? {
                    target.entries.push(name, span, new);
                }
            }
            AttrKey::Dynamic(e) => self.insert_dynamic(target, e, keys, value)?,
        }
        Ok(())
    }

    /// `name.keys = value`, where `existing` is what `name` already holds:
    /// the new entry if there was none, else merges into it (only nested
    /// sets merge; anything else is a duplicate).
    fn define(
        &mut self,
        existing: Option<(&mut Span, &mut PEntry)>,
        name: &SmolStr,
        span: Span,
        keys: std::vec::IntoIter<AttrKey>,
        value: Expr,
    ) -> Result<Option<PEntry>, EvalError> {
        let last = keys.len() == 0;
        match existing {
            None if last => Ok(Some(self.lower_value(name, value)?)),
            None => {
                let mut inner = PAttrs::default();
                self.insert_path(&mut inner, keys, value)?;
                Ok(Some(PEntry::Nested(Box::new(inner))))
            }
            Some((first_span, entry)) => {
                if last {
                    let new = self.lower_value(name, value)?;
                    match (entry, new) {
                        (PEntry::Nested(old), PEntry::Nested(new)) => merge(old, *new)?,
                        _ => return Err(duplicate(name, *first_span, span)),
                    }
                } else {
                    match entry {
                        PEntry::Nested(inner) => self.insert_path(inner, keys, value)?,
                        _ => return Err(duplicate(name, *first_span, span)),
                    }
                }
                Ok(None)
            }
        }
    }

    /// `${e}.keys = value`: a computed name, checked at run time.
    fn insert_dynamic(
        &mut self,
        target: &mut PAttrs,
        e: Expr,
        keys: std::vec::IntoIter<AttrKey>,
        value: Expr,
    ) -> Result<(), EvalError> {
        let key_span = e.span;
        let key = self.lower(e)?;
        let entry = if keys.len() == 0 {
            self.lower_value(&SmolStr::default(), value)?
        } else {
            let mut inner = PAttrs::default();
            self.insert_path(&mut inner, keys, value)?;
            PEntry::Nested(Box::new(inner))
        };
        target.dynamic.push((key, entry, key_span));
        Ok(())
    }

    /// A binding's value; a literal non-recursive set becomes a mergeable
    /// nested set.
    fn lower_value(&mut self, name: &SmolStr, value: Expr) -> Result<PEntry, EvalError> {
        if let ExprKind::Attrs {
            rec: false,
            bindings,
        } = value.kind
        {
            let mut inner = PAttrs::with_capacity(bindings.len());
            self.lower_bindings(&mut inner, bindings)?;
            return Ok(PEntry::Nested(Box::new(inner)));
        }
        if !name.is_empty() {
            self.name_hint = Some(name.clone());
        }
        let ir = self.lower(value);
        self.name_hint = None;
        Ok(PEntry::Expr(ir?))
    }

    fn lower_lambda(
        &mut self,
        param: Param,
        body: Expr,
        span: Span,
        name: Option<SmolStr>,
    ) -> Result<LambdaIr, EvalError> {
        match param {
            Param::Ident(id) => {
                let names = NameMap::from_distinct(vec![id.name]);
                self.scopes.push(Scope::Names(names));
                let body = self.lower(body);
                self.scopes.pop();
                Ok(LambdaIr {
                    param: ParamIr::Ident,
                    body: body?,
                    span,
                    name,
                })
            }
            Param::Pattern {
                entries,
                ellipsis,
                bind,
            } => {
                let mut names = NameMap::default();
                for e in &entries {
                    if !names.push(e.name.name.clone()) {
                        let first = entries
                            .iter()
                            .find(|x| x.name.name == e.name.name)
                            .map_or(e.name.span, |x| x.name.span);
                        return Err(duplicate(&e.name.name, first, e.name.span));
                    }
                }
                if let Some(b) = &bind {
                    if let Some(i) = names.get(&b.name) {
                        let first = entries[i as usize].name.span;
                        return Err(duplicate(&b.name, first, b.span));
                    }
                    names.push(b.name.clone());
                }
                self.scopes.push(Scope::Names(names));
                let r = (|| {
                    let mut out = Vec::with_capacity(entries.len());
                    for e in entries {
                        out.push(PatternEntryIr {
                            name: e.name.name,
                            default: e.default.map(|d| self.lower(d)).transpose()?,
                        });
                    }
                    Ok::<_, EvalError>((out, self.lower(body)?))
                })();
                self.scopes.pop();
                let (out, body) = r?;
                Ok(LambdaIr {
                    param: ParamIr::Pattern {
                        entries: out,
                        ellipsis,
                        bind: bind.map(|b| b.name),
                    },
                    body,
                    span,
                    name,
                })
            }
        }
    }
}

fn duplicate(name: &SmolStr, first: Span, again: Span) -> EvalError {
    EvalError::new(
        ErrorKind::DuplicateAttribute {
            name: name.clone(),
            first,
        },
        again,
    )
}

/// Merges the entries of `new` into `old` (both built from source).
fn merge(old: &mut PAttrs, new: PAttrs) -> Result<(), EvalError> {
    let offset = old.sources.len();
    old.sources.extend(new.sources);
    old.dynamic.extend(
        new.dynamic
            .into_iter()
            .map(|(k, v, s)| (k, shift_sources(v, offset), s)),
    );
    for (name, span, entry) in new.entries.items {
        let entry = shift_sources(entry, offset);
        match old.entries.get_mut(&name) {
            None => {
                old.entries.push(name, span, entry);
            }
            Some((first, existing)) => match (existing, entry) {
                (PEntry::Nested(a), PEntry::Nested(b)) => merge(a, *b)?,
                _ => return Err(duplicate(&name, *first, span)),
            },
        }
    }
    Ok(())
}

fn shift_sources(e: PEntry, offset: usize) -> PEntry {
    match e {
        PEntry::InheritFrom(i) => PEntry::InheritFrom(i + offset),
        other => other,
    }
}

/// A group's entries in slot order, named by `names` (its slot map).
fn finish_group(names: Vec<SmolStr>, g: PGroup, span: Span) -> Result<AttrsIr, EvalError> {
    let mut entries = Vec::with_capacity(names.len());
    for (name, slot) in names.into_iter().zip(g.slots) {
        // Every name of the slot map comes from a binding.
        let Some((span, e)) = slot else {
            return Err(EvalError::new(ErrorKind::Malformed, span));
        };
        entries.push(EntryIr {
            name,
            span,
            value: finish_entry(e, span),
        });
    }
    Ok(AttrsIr {
        entries: entries.into_boxed_slice(),
        rare: finish_rare(g.rest.dynamic, g.rest.sources),
    })
}

fn finish(p: PAttrs) -> AttrsIr {
    AttrsIr {
        entries: p
            .entries
            .into_sorted()
            .into_iter()
            .map(|(name, span, e)| EntryIr {
                name,
                span,
                value: finish_entry(e, span),
            })
            .collect(),
        rare: finish_rare(p.dynamic, p.sources),
    }
}

/// The dynamic entries and sources of a set, if it has any.
fn finish_rare(
    dynamic: Vec<(IrRef, PEntry, Span)>,
    sources: Vec<IrRef>,
) -> Option<Box<RareAttrsIr>> {
    if dynamic.is_empty() && sources.is_empty() {
        return None;
    }
    Some(Box::new(RareAttrsIr {
        dynamic: dynamic
            .into_iter()
            .map(|(key, e, span)| DynEntryIr {
                key,
                value: finish_entry(e, span),
                span,
            })
            .collect(),
        sources,
    }))
}

/// A nested set becomes an ordinary (non-recursive) set expression evaluated
/// in the same environment as its parent.
fn finish_entry(e: PEntry, span: Span) -> EntryValue {
    match e {
        PEntry::Expr(ir) => EntryValue::Expr(ir),
        PEntry::InheritFrom(s) => EntryValue::InheritFrom { source: s },
        PEntry::Nested(p) => EntryValue::Expr(Rc::new(Ir {
            kind: IrKind::Attrs(finish(*p)),
            span,
        })),
    }
}

/// Turns path literal text into an absolute, normalised path.
pub(crate) fn resolve_path_text(base: Option<&Path>, text: &str) -> PathBuf {
    match base {
        Some(b) => normalize(&b.join(text)),
        None => normalize(Path::new(text)),
    }
}
