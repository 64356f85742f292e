//! The evaluation machine: expressions to values, forcing and application.
//!
//! `eval` walks the lowered tree and always returns a value in weak head
//! normal form. Lazy positions (attribute values, list elements, bindings,
//! arguments) get a thunk via `delay` — except constants, variables (which
//! share the thunk already in the environment) and lambdas, which are cheap
//! to build eagerly.
//!
//! Forcing a thunk replaces it with a *blackhole* while it runs; meeting a
//! blackhole again is infinite recursion, reported as the cycle of named
//! thunks found on the evaluator's stack. The same stack bounds the depth of
//! nested forces and calls, so runaway recursion becomes an error rather than
//! a crash. On error a thunk is restored, so `tryEval` can retry it.

use crate::eval::error::{ErrorKind, EvalError, FrameKind};
use crate::eval::ir::{
    AttrsIr, ConstIr, EntryIr, EntryValue, Ir, IrKind, IrRef, KeyIr, ParamIr, StrPartIr,
};
use crate::eval::lower::resolve_path_text;
use crate::eval::value::{
    AttrEntry, Attrs, Closure, Env, NixString, PrimOpApp, Thunk, ThunkState, Value,
};
use crate::eval::{CoerceMode, Evaluator, StackEntry};
use crate::source::Span;
use smol_str::SmolStr;
use std::collections::BTreeSet;
use std::rc::Rc;

impl Evaluator {
    /// Evaluates `ir` in `env` to weak head normal form.
    pub(crate) fn eval(&self, ir: &Ir, env: &Rc<Env>) -> Result<Value, EvalError> {
        // Bound the native stack actually used, whatever the frame sizes
        // (debug builds use far more per level than release builds): measure
        // the distance from where the outermost evaluation started.
        let marker = 0u8;
        let here = std::ptr::addr_of!(marker) as usize;
        let depth = self.eval_depth.get();
        if depth == 0 {
            self.stack_base.set(here);
        } else if self.stack_base.get().abs_diff(here) > self.stack_budget.get() {
            return Err(EvalError::new(
                ErrorKind::DepthLimit {
                    limit: self.max_depth.get(),
                },
                ir.span,
            ));
        }
        self.eval_depth.set(depth + 1);
        let r = self.eval_inner(ir, env);
        self.eval_depth.set(depth);
        r
    }

    fn eval_inner(&self, ir: &Ir, env: &Rc<Env>) -> Result<Value, EvalError> {
        match &ir.kind {
            IrKind::Const(ConstIr::Int(i)) => Ok(Value::Int(*i)),
            // A global may be a lazy native value.
            IrKind::Const(ConstIr::Thunk(t)) => self.force_thunk(t),
            IrKind::Const(c) => Ok(c.value()),
            IrKind::Local { depth, idx } => {
                let v = env.lookup(*depth, *idx);
                match v {
                    Value::Thunk(t) => self.force_thunk(t),
                    other => Ok(other.clone()),
                }
            }
            IrKind::Str(parts) => self.eval_str(parts, env),
            IrKind::Path(p) => {
                let s = self.eval_str(&p.parts, env)?;
                let Value::String(s) = s else {
                    return Err(EvalError::new(ErrorKind::Malformed, ir.span));
                };
                Ok(Value::Path(Rc::from(resolve_path_text(
                    p.base.as_deref(),
                    s.as_str(),
                ))))
            }
            IrKind::WithVar(w) => self.eval_with_var(&w.name, &w.withs, env, ir.span),
            IrKind::List(items) => Ok(Value::List(Rc::new(
                items.iter().map(|i| self.delay(i, env)).collect(),
            ))),
            IrKind::Attrs(a) => self.build_plain(a, env),
            IrKind::RecAttrs(a) => {
                let frame = self.build_frame(&a.entries, a.sources(), env);
                let entries = a
                    .entries
                    .iter()
                    .zip(frame.iter())
                    .map(|(e, v)| AttrEntry {
                        name: e.name.clone(),
                        value: v.clone(),
                        span: Some(e.span),
                    })
                    .collect();
                let sources = self.delay_sources(a, &frame);
                self.add_dynamic(Attrs::from_sorted(entries), a, &frame, &sources)
            }
            IrKind::Let { entries, body } => {
                let frame = self.build_frame(entries, &[], env);
                self.eval(body, &frame)
            }
            IrKind::LetSources(l) => {
                let frame = self.build_frame(&l.group.entries, l.group.sources(), env);
                self.eval(&l.body, &frame)
            }
            IrKind::Lambda(l) => Ok(Value::Lambda(Rc::new(Closure {
                lambda: l.clone(),
                env: env.clone(),
            }))),
            IrKind::Apply { func, arg } => {
                let f = self.eval(func, env)?;
                let a = self.delay(arg, env);
                self.call_value(&f, a, ir.span)
            }
            IrKind::Select { expr, path } => self.eval_select(expr, path, None, env),
            IrKind::SelectOr(s) => self.eval_select(&s.expr, &s.path, Some(&s.default), env),
            IrKind::HasAttr { expr, path } => self.eval_has_attr(expr, path, env),
            IrKind::If { cond, then, else_ } => {
                if self.eval_bool(cond, env, "the condition of `if`")? {
                    self.eval(then, env)
                } else {
                    self.eval(else_, env)
                }
            }
            IrKind::With { env: w, body } => {
                let scope = self.delay(w, env);
                let frame = Rc::new(Env::single(scope, Some(env.clone())));
                self.eval(body, &frame)
            }
            IrKind::Assert { cond, body } => {
                if self.eval_bool(cond, env, "the condition of `assert`")? {
                    self.eval(body, env)
                } else {
                    Err(EvalError::new(ErrorKind::AssertionFailed, cond.span))
                }
            }
            IrKind::Not(e) => Ok(Value::Bool(!self.eval_bool(
                e,
                env,
                "the operand of `!`",
            )?)),
            IrKind::Neg(e) => match self.eval(e, env)? {
                Value::Int(i) => i
                    .checked_neg()
                    .map(Value::Int)
                    .ok_or_else(|| EvalError::new(ErrorKind::IntegerOverflow { op: "-" }, ir.span)),
                Value::Float(f) => Ok(Value::Float(-f)),
                other => Err(EvalError::type_error("a number", &other, e.span)),
            },
            IrKind::Binary { op, lhs, rhs } => self.eval_binary(*op, lhs, rhs, env, ir.span),
        }
    }

    pub(crate) fn eval_bool(&self, ir: &Ir, env: &Rc<Env>, what: &str) -> Result<bool, EvalError> {
        match self.eval(ir, env)? {
            Value::Bool(b) => Ok(b),
            other => Err(EvalError::type_error(
                format!("a Boolean as {what}"),
                &other,
                ir.span,
            )),
        }
    }

    fn eval_str(&self, parts: &[StrPartIr], env: &Rc<Env>) -> Result<Value, EvalError> {
        let mut text = String::new();
        let mut ctx = BTreeSet::new();
        for p in parts {
            match p {
                StrPartIr::Lit(s) => text.push_str(s),
                StrPartIr::Interp(e) => {
                    let v = self.eval(e, env)?;
                    let s = self.coerce(&v, CoerceMode::Interpolate, e.span)?;
                    text.push_str(s.as_str());
                    s.extend_context(&mut ctx);
                }
            }
        }
        Ok(Value::String(NixString::with_context(text, ctx)))
    }

    fn eval_with_var(
        &self,
        name: &SmolStr,
        withs: &[u32],
        env: &Rc<Env>,
        span: Span,
    ) -> Result<Value, EvalError> {
        for &depth in withs {
            let scope = env.lookup(depth, 0).clone();
            let scope = self.force_value(&scope)?;
            let Value::Attrs(a) = &scope else {
                return Err(EvalError::type_error("a set for `with`", &scope, span));
            };
            if let Some(v) = self.lookup_attr(a, name, span)? {
                return self.force_value(&v);
            }
        }
        let mut candidates: Vec<String> = Vec::new();
        for &depth in withs {
            if let Ok(Value::Attrs(a)) = self.force_value(env.lookup(depth, 0)) {
                candidates.extend(a.names().map(String::from));
            }
        }
        Err(EvalError::new(
            ErrorKind::UndefinedVariable {
                name: name.clone(),
                suggestions: crate::diag::suggest(name, candidates.iter().map(String::as_str)),
            },
            span,
        ))
    }

    /// A value for a lazy position.
    pub(crate) fn delay(&self, ir: &IrRef, env: &Rc<Env>) -> Value {
        self.delay_named(ir, env, None)
    }

    fn delay_named(&self, ir: &IrRef, env: &Rc<Env>, name: Option<&SmolStr>) -> Value {
        match &ir.kind {
            IrKind::Const(c) => c.value(),
            IrKind::Local { depth, idx } => env.lookup(*depth, *idx).clone(),
            IrKind::Lambda(l) => Value::Lambda(Rc::new(Closure {
                lambda: l.clone(),
                env: env.clone(),
            })),
            _ => Value::Thunk(Thunk::suspended(ir.clone(), env.clone(), name.cloned())),
        }
    }

    fn delay_sources(&self, a: &AttrsIr, env: &Rc<Env>) -> Vec<Value> {
        a.sources().iter().map(|s| self.delay(s, env)).collect()
    }

    fn entry_value(
        &self,
        value: &EntryValue,
        name: &SmolStr,
        span: Span,
        env: &Rc<Env>,
        sources: &[Value],
    ) -> Value {
        match value {
            EntryValue::Expr(ir) => self.delay_named(ir, env, Some(name)),
            EntryValue::InheritFrom { source } => {
                let src = sources.get(*source).cloned().unwrap_or(Value::Null);
                let attr = name.clone();
                Value::Thunk(Thunk::native(Some(name), move |ev| {
                    let s = ev.force_value(&src)?;
                    ev.select_one(&s, &attr, span)
                }))
            }
        }
    }

    /// A non-recursive set: values are thunks in the current environment.
    fn build_plain(&self, a: &AttrsIr, env: &Rc<Env>) -> Result<Value, EvalError> {
        let sources = self.delay_sources(a, env);
        let entries = a
            .entries
            .iter()
            .map(|e| AttrEntry {
                name: e.name.clone(),
                value: self.entry_value(&e.value, &e.name, e.span, env, &sources),
                span: Some(e.span),
            })
            .collect();
        self.add_dynamic(Attrs::from_sorted(entries), a, env, &sources)
    }

    /// The frame of a `rec` set or `let`: one slot per static name, each a
    /// thunk evaluated in the frame itself.
    fn build_frame(&self, entries: &[EntryIr], source_irs: &[IrRef], env: &Rc<Env>) -> Rc<Env> {
        let source_thunks: Vec<Thunk> = source_irs.iter().map(|_| self.knot()).collect();
        let sources: Vec<Value> = source_thunks.iter().cloned().map(Value::Thunk).collect();
        let slots = entries.iter().map(|e| match &e.value {
            EntryValue::Expr(ir) => match &ir.kind {
                IrKind::Const(c) => c.value(),
                _ => Value::Thunk(self.knot()),
            },
            EntryValue::InheritFrom { .. } => {
                let v = self.entry_value(&e.value, &e.name, e.span, env, &sources);
                if let Value::Thunk(t) = &v {
                    self.knots.register(t);
                }
                v
            }
        });
        let frame = Rc::new(Env::from_slots(slots, Some(env.clone())));
        for (t, ir) in source_thunks.iter().zip(source_irs) {
            t.set(ThunkState::Suspended {
                ir: ir.clone(),
                env: frame.clone(),
                name: None,
            });
        }
        // Fill in the knots made above, now that their frame exists.
        for (e, slot) in entries.iter().zip(frame.iter()) {
            if let (EntryValue::Expr(ir), Value::Thunk(t)) = (&e.value, slot)
                && !matches!(ir.kind, IrKind::Const(_))
            {
                t.set(ThunkState::Suspended {
                    ir: ir.clone(),
                    env: frame.clone(),
                    name: Some(e.name.clone()),
                });
            }
        }
        frame
    }

    /// An empty thunk for a recursive scope, registered so that the cycle it
    /// may close is freed with the evaluator.
    fn knot(&self) -> Thunk {
        let t = Thunk::uninit();
        self.knots.register(&t);
        t
    }

    /// Adds `${key} = value;` entries (a `null` key skips the entry).
    fn add_dynamic(
        &self,
        mut attrs: Attrs,
        a: &AttrsIr,
        env: &Rc<Env>,
        sources: &[Value],
    ) -> Result<Value, EvalError> {
        for d in a.dynamic() {
            let key = self.eval(&d.key, env)?;
            let name: SmolStr = match &key {
                Value::Null => continue,
                Value::String(s) => SmolStr::new(s.as_str()),
                other => {
                    return Err(EvalError::type_error(
                        "a string as attribute name",
                        other,
                        d.span,
                    ));
                }
            };
            match attrs.entries.binary_search_by(|e| e.name.cmp(&name)) {
                Ok(i) => {
                    return Err(EvalError::new(
                        ErrorKind::DuplicateAttribute {
                            name,
                            first: attrs.entries[i].span.unwrap_or(d.span),
                        },
                        d.span,
                    ));
                }
                Err(i) => {
                    let value = self.entry_value(&d.value, &name, d.span, env, sources);
                    attrs.entries.insert(
                        i,
                        AttrEntry {
                            name,
                            value,
                            span: Some(d.span),
                        },
                    );
                }
            }
        }
        Ok(Value::Attrs(Rc::new(attrs)))
    }

    fn key_name(&self, key: &KeyIr, env: &Rc<Env>) -> Result<(SmolStr, Span), EvalError> {
        match key {
            KeyIr::Static(n, s) => Ok((n.clone(), *s)),
            KeyIr::Dynamic(e) => match self.eval(e, env)? {
                Value::String(s) => Ok((SmolStr::new(s.as_str()), e.span)),
                other => Err(EvalError::type_error(
                    "a string as attribute name",
                    &other,
                    e.span,
                )),
            },
        }
    }

    fn eval_select(
        &self,
        expr: &IrRef,
        path: &[KeyIr],
        default: Option<&IrRef>,
        env: &Rc<Env>,
    ) -> Result<Value, EvalError> {
        let mut v = self.eval(expr, env)?;
        let mut prev_span = expr.span;
        for key in path {
            let (name, span) = self.key_name(key, env)?;
            let Value::Attrs(a) = &v else {
                if let Some(d) = default {
                    return self.eval(d, env);
                }
                return Err(EvalError::type_error(
                    format!("a set to select `{name}` from"),
                    &v,
                    prev_span,
                ));
            };
            match self.lookup_attr(a, &name, span)? {
                Some(x) => v = self.force_value(&x)?,
                None => {
                    if let Some(d) = default {
                        return self.eval(d, env);
                    }
                    return Err(self.missing_attr(a, &name, span));
                }
            }
            prev_span = span;
        }
        Ok(v)
    }

    fn eval_has_attr(
        &self,
        expr: &IrRef,
        path: &[KeyIr],
        env: &Rc<Env>,
    ) -> Result<Value, EvalError> {
        let mut v = self.eval(expr, env)?;
        for key in path {
            let (name, span) = self.key_name(key, env)?;
            let Value::Attrs(a) = &v else {
                return Ok(Value::Bool(false));
            };
            match self.lookup_attr(a, &name, span) {
                Ok(Some(x)) => v = self.force_value(&x)?,
                Ok(None) => return Ok(Value::Bool(false)),
                Err(e) if a.is_open() && matches!(e.kind(), ErrorKind::Hook(_)) => {
                    return Ok(Value::Bool(false));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(Value::Bool(true))
    }

    /// The error for `set.name` when `name` is missing, suggesting close names.
    pub(crate) fn missing_attr(&self, a: &Attrs, name: &str, span: Span) -> EvalError {
        EvalError::new(
            ErrorKind::MissingAttribute {
                name: name.into(),
                suggestions: crate::diag::suggest(name, a.names()),
            },
            span,
        )
    }

    /// An attribute's (unforced) value; for open sets, resolves and caches
    /// names that are not listed.
    pub(crate) fn lookup_attr(
        &self,
        a: &Attrs,
        name: &str,
        span: Span,
    ) -> Result<Option<Value>, EvalError> {
        if let Some(e) = a.get(name) {
            return Ok(Some(e.value.clone()));
        }
        let Some(open) = &a.open else {
            return Ok(None);
        };
        if let Some(v) = open.cache.borrow().get(name) {
            return Ok(Some(v.clone()));
        }
        let v = (open.resolve)(self, name, span)?;
        open.cache
            .borrow_mut()
            .insert(SmolStr::new(name), v.clone());
        Ok(Some(v))
    }

    /// `set.name`, forced; a missing attribute is an error.
    pub(crate) fn select_one(
        &self,
        set: &Value,
        name: &str,
        span: Span,
    ) -> Result<Value, EvalError> {
        let set = self.force_value(set)?;
        let Value::Attrs(a) = &set else {
            return Err(EvalError::type_error(
                format!("a set to select `{name}` from"),
                &set,
                span,
            ));
        };
        match self.lookup_attr(a, name, span)? {
            Some(v) => self.force_value(&v),
            None => Err(self.missing_attr(a, name, span)),
        }
    }

    /// Forces a value to weak head normal form.
    pub(crate) fn force_value(&self, v: &Value) -> Result<Value, EvalError> {
        match v {
            Value::Thunk(t) => self.force_thunk(t),
            other => Ok(other.clone()),
        }
    }

    pub(crate) fn force_thunk(&self, t: &Thunk) -> Result<Value, EvalError> {
        let state = {
            let mut b = t.0.borrow_mut();
            if let ThunkState::Done(v) = &*b {
                return Ok(v.clone());
            }
            std::mem::replace(&mut *b, ThunkState::Blackhole)
        };
        match state {
            ThunkState::Done(v) => {
                t.set(ThunkState::Done(v.clone()));
                Ok(v)
            }
            ThunkState::Blackhole => Err(self.cycle_error(t.id())),
            ThunkState::Uninit => {
                t.set(ThunkState::Uninit);
                Err(EvalError::new(ErrorKind::Malformed, self.native_span))
            }
            ThunkState::Suspended { ir, env, name } => {
                let span = ir.span;
                if let Err(e) = self.enter(t.id(), name.clone(), span) {
                    t.set(ThunkState::Suspended { ir, env, name });
                    return Err(e);
                }
                let r = self.eval(&ir, &env);
                self.leave();
                match r {
                    Ok(v) => {
                        t.set(ThunkState::Done(v.clone()));
                        Ok(v)
                    }
                    Err(mut e) => {
                        if let Some(n) = &name {
                            e.push_frame(FrameKind::Force(n.clone()), span);
                        }
                        t.set(ThunkState::Suspended { ir, env, name });
                        Err(e)
                    }
                }
            }
            ThunkState::Apply { call, arg } => {
                let span = call.span;
                if let Err(e) = self.enter(t.id(), None, span) {
                    t.set(ThunkState::Apply { call, arg });
                    return Err(e);
                }
                let r = self.call_value(&call.f, arg.clone(), span);
                self.leave();
                match r {
                    Ok(v) => {
                        t.set(ThunkState::Done(v.clone()));
                        Ok(v)
                    }
                    Err(e) => {
                        t.set(ThunkState::Apply { call, arg });
                        Err(e)
                    }
                }
            }
            ThunkState::Native { f, name } => {
                let span = self.current_span();
                if let Err(e) = self.enter(t.id(), name.clone(), span) {
                    t.set(ThunkState::Native { f, name });
                    return Err(e);
                }
                let r = f(self).and_then(|v| self.force_value(&v));
                self.leave();
                match r {
                    Ok(v) => {
                        t.set(ThunkState::Done(v.clone()));
                        Ok(v)
                    }
                    Err(e) => {
                        t.set(ThunkState::Native { f, name });
                        Err(e)
                    }
                }
            }
        }
    }

    /// The span of the innermost expression being forced or called.
    pub(crate) fn current_span(&self) -> Span {
        self.stack
            .borrow()
            .last()
            .map_or(self.native_span, |e| e.span)
    }

    fn cycle_error(&self, id: usize) -> EvalError {
        let stack = self.stack.borrow();
        let start = stack.iter().rposition(|e| e.thunk == id).unwrap_or(0);
        let mut cycle: Vec<(SmolStr, Span)> = stack[start..]
            .iter()
            .filter(|e| e.thunk != 0)
            .filter_map(|e| e.name.clone().map(|n| (n, e.span)))
            .collect();
        let span = stack.get(start).map_or(self.native_span, |e| e.span);
        if let Some(first) = cycle.first().cloned() {
            cycle.push(first);
        }
        EvalError::new(ErrorKind::InfiniteRecursion { cycle }, span)
    }

    /// Pushes a stack entry, failing when the depth limit is reached.
    pub(crate) fn enter(
        &self,
        thunk: usize,
        name: Option<SmolStr>,
        span: Span,
    ) -> Result<(), EvalError> {
        let mut stack = self.stack.borrow_mut();
        if stack.len() >= self.max_depth.get() {
            return Err(EvalError::new(
                ErrorKind::DepthLimit {
                    limit: self.max_depth.get(),
                },
                span,
            ));
        }
        stack.push(StackEntry { thunk, name, span });
        Ok(())
    }

    pub(crate) fn leave(&self) {
        self.stack.borrow_mut().pop();
    }

    /// Applies a function value to an argument.
    pub(crate) fn call_value(&self, f: &Value, arg: Value, span: Span) -> Result<Value, EvalError> {
        let f = self.force_value(f)?;
        match &f {
            Value::Lambda(c) => self.call_closure(c, arg, span),
            Value::PrimOp(app) => {
                if app.args.len() + 1 < app.op.arity {
                    let mut args = app.args.clone();
                    args.push(arg);
                    return Ok(Value::PrimOp(Rc::new(PrimOpApp {
                        op: app.op.clone(),
                        args,
                    })));
                }
                let mut args = Vec::with_capacity(app.op.arity);
                args.extend(app.args.iter().cloned());
                args.push(arg);
                self.enter(0, None, span)?;
                let r = (app.op.f)(self, &args, span);
                self.leave();
                // `throw`, `abort` and `import` point at themselves already.
                match app.op.name.as_str() {
                    "throw" | "abort" | "import" => r,
                    _ => r.map_err(|e| {
                        e.with_frame(FrameKind::Call(Some(app.op.name.clone())), span)
                    }),
                }
            }
            Value::Attrs(a) if a.get("__functor").is_some() => {
                self.enter(0, None, span)?;
                let r = self
                    .select_one(&f, "__functor", span)
                    .and_then(|functor| self.call_value(&functor, f.clone(), span))
                    .and_then(|g| self.call_value(&g, arg, span));
                self.leave();
                r
            }
            other => Err(EvalError::type_error("a function", other, span)),
        }
    }

    fn call_closure(&self, c: &Rc<Closure>, arg: Value, span: Span) -> Result<Value, EvalError> {
        self.enter(0, None, span)?;
        let r = self.call_closure_inner(c, arg, span);
        self.leave();
        r.map_err(|e| e.with_frame(FrameKind::Call(c.lambda.name.clone()), span))
    }

    fn call_closure_inner(
        &self,
        c: &Rc<Closure>,
        arg: Value,
        span: Span,
    ) -> Result<Value, EvalError> {
        let lambda = &c.lambda;
        let env = match &lambda.param {
            ParamIr::Ident => Rc::new(Env::single(arg, Some(c.env.clone()))),
            ParamIr::Pattern {
                entries,
                ellipsis,
                bind,
            } => {
                let forced = self.force_value(&arg)?;
                let Value::Attrs(attrs) = &forced else {
                    return Err(EvalError::type_error(
                        "a set as the function's argument",
                        &forced,
                        span,
                    ));
                };
                if !ellipsis {
                    for e in attrs.entries() {
                        if !entries.iter().any(|p| p.name == e.name) {
                            return Err(EvalError::new(
                                ErrorKind::UnexpectedArgument {
                                    name: e.name.clone(),
                                    function: lambda.span,
                                    suggestions: crate::diag::suggest(
                                        &e.name,
                                        entries.iter().map(|p| p.name.as_str()),
                                    ),
                                },
                                e.span.unwrap_or(span),
                            ));
                        }
                    }
                }
                let mut slots = Vec::with_capacity(entries.len() + 1);
                let mut defaults = Vec::new();
                for p in entries {
                    match self.lookup_attr(attrs, &p.name, span)? {
                        Some(v) => slots.push(v),
                        None => match &p.default {
                            Some(d) => {
                                let t = self.knot();
                                defaults.push((t.clone(), d.clone(), p.name.clone()));
                                slots.push(Value::Thunk(t));
                            }
                            None => {
                                return Err(EvalError::new(
                                    ErrorKind::MissingArgument {
                                        name: p.name.clone(),
                                        function: lambda.span,
                                    },
                                    span,
                                ));
                            }
                        },
                    }
                }
                if bind.is_some() {
                    slots.push(forced.clone());
                }
                let env = Rc::new(Env::from_vec(slots, Some(c.env.clone())));
                for (t, ir, name) in defaults {
                    t.set(ThunkState::Suspended {
                        ir,
                        env: env.clone(),
                        name: Some(name),
                    });
                }
                env
            }
        };
        self.eval(&lambda.body, &env)
    }
}
