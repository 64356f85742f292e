//! Turning values into other shapes: strings (with context), deep forcing,
//! JSON and step parameters.
//!
//! String coercion has two modes, as in Nix. *Interpolation* (`"${x}"`, `+`)
//! accepts strings, paths (imported into the store through the hook: the
//! result is the placeholder, with itself as context) and sets with
//! `__toString` or `outPath`. *toString* also accepts numbers, Booleans,
//! `null` and lists, and leaves paths as plain path text.

use crate::eval::error::{ErrorKind, EvalError};
use crate::eval::value::{NixString, Value};
use crate::eval::{CoerceMode, Evaluator};
use crate::hook::{StepRequest, StepValue};
use crate::source::Span;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;
use std::rc::Rc;

impl Evaluator {
    pub(crate) fn coerce(
        &self,
        v: &Value,
        mode: CoerceMode,
        span: Span,
    ) -> Result<NixString, EvalError> {
        let v = self.force_value(v)?;
        match &v {
            Value::String(s) => Ok(s.clone()),
            Value::Path(p) => match mode {
                CoerceMode::Interpolate => self.import_path(p, span),
                CoerceMode::ToString => Ok(NixString::new(p.to_string_lossy().as_ref())),
            },
            Value::Attrs(a) => {
                let inner = if a.get("__toString").is_some() {
                    self.select_one(&v, "__toString", span)
                        .and_then(|f| self.call_value(&f, v.clone(), span))
                } else if a.get("outPath").is_some() {
                    self.select_one(&v, "outPath", span)
                } else {
                    return Err(not_coercible(&v, span));
                }?;
                self.enter(0, None, span)?;
                let r = self.coerce(&inner, mode, span);
                self.leave();
                r
            }
            Value::Int(i) if mode == CoerceMode::ToString => Ok(NixString::new(i.to_string())),
            Value::Float(f) if mode == CoerceMode::ToString => {
                Ok(NixString::new(format!("{f:.6}")))
            }
            Value::Bool(b) if mode == CoerceMode::ToString => {
                Ok(NixString::new(if *b { "1" } else { "" }))
            }
            Value::Null if mode == CoerceMode::ToString => Ok(NixString::new("")),
            Value::List(items) if mode == CoerceMode::ToString => {
                let mut text = String::new();
                let mut ctx = BTreeSet::new();
                for (i, item) in items.iter().enumerate() {
                    self.enter(0, None, span)?;
                    let s = self.coerce(item, mode, span);
                    self.leave();
                    let s = s?;
                    if i > 0 {
                        text.push(' ');
                    }
                    text.push_str(s.as_str());
                    s.extend_context(&mut ctx);
                }
                Ok(NixString::with_context(text, ctx))
            }
            _ => Err(not_coercible(&v, span)),
        }
    }

    /// Imports a path into the store through the hook (once per path) and
    /// returns its placeholder with itself as context.
    pub(crate) fn import_path(&self, p: &Path, span: Span) -> Result<NixString, EvalError> {
        if let Some(ph) = self.path_steps.borrow().get(p) {
            return Ok(placeholder_string(ph));
        }
        match self.io.kind(p) {
            Ok(Some(_)) => {}
            Ok(None) => {
                return Err(EvalError::new(
                    ErrorKind::Io {
                        path: p.to_path_buf(),
                        source: std::io::Error::new(
                            std::io::ErrorKind::NotFound,
                            "path does not exist",
                        ),
                    },
                    span,
                ));
            }
            Err(source) => {
                return Err(EvalError::new(
                    ErrorKind::Io {
                        path: p.to_path_buf(),
                        source,
                    },
                    span,
                ));
            }
        }
        let text = p.to_string_lossy().into_owned();
        let mut params = BTreeMap::new();
        params.insert(
            "path".to_string(),
            StepValue::Str {
                text: text.clone(),
                context: BTreeSet::new(),
            },
        );
        let request = StepRequest {
            builder: "path".into(),
            name: crate::eval::paths::base_name(&text).to_string(),
            params,
        };
        let ph = self
            .hook
            .add_step(request)
            .map_err(|h| EvalError::new(ErrorKind::Hook(h), span))?;
        self.path_steps
            .borrow_mut()
            .insert(p.to_path_buf(), ph.clone());
        Ok(placeholder_string(&ph))
    }

    /// Forces a value and everything inside it. Shared sub-values are
    /// forced once, and cycles end.
    pub(crate) fn force_deep_value(&self, v: &Value, span: Span) -> Result<(), EvalError> {
        let mut seen = HashSet::new();
        self.force_deep_inner(v, span, &mut seen)
    }

    fn force_deep_inner(
        &self,
        v: &Value,
        span: Span,
        seen: &mut HashSet<usize>,
    ) -> Result<(), EvalError> {
        let v = self.force_value(v)?;
        let (items, id): (Vec<Value>, usize) = match &v {
            Value::List(l) => (
                l.iter().cloned().collect(),
                Rc::as_ptr(l) as *const u8 as usize,
            ),
            Value::Attrs(a) => (
                a.entries().iter().map(|e| e.value.clone()).collect(),
                Rc::as_ptr(a) as *const u8 as usize,
            ),
            _ => return Ok(()),
        };
        if !seen.insert(id) {
            return Ok(());
        }
        self.enter(0, None, span)?;
        let r = items
            .iter()
            .try_for_each(|i| self.force_deep_inner(i, span, seen));
        self.leave();
        r
    }

    /// Deep conversion to JSON; string contexts are collected into `ctx`.
    pub(crate) fn json_value(
        &self,
        v: &Value,
        span: Span,
        ctx: &mut BTreeSet<String>,
    ) -> Result<serde_json::Value, EvalError> {
        use serde_json::Value as J;
        let v = self.force_value(v)?;
        Ok(match &v {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => {
                serde_json::Number::from_f64(*f)
                    .map(J::Number)
                    .ok_or_else(|| {
                        EvalError::invalid(
                            "toJSON",
                            format!("{f} cannot be represented in JSON"),
                            span,
                        )
                    })?
            }
            Value::String(s) => {
                s.extend_context(ctx);
                J::String(s.as_str().to_string())
            }
            Value::Path(p) => J::String(p.to_string_lossy().into_owned()),
            Value::List(items) => {
                self.enter(0, None, span)?;
                let r: Result<Vec<_>, _> = items
                    .iter()
                    .map(|i| self.json_value(i, span, ctx))
                    .collect();
                self.leave();
                J::Array(r?)
            }
            Value::Attrs(a) => {
                if a.get("__toString").is_some() || a.get("outPath").is_some() {
                    let s = self.coerce(&v, CoerceMode::ToString, span)?;
                    s.extend_context(ctx);
                    return Ok(J::String(s.as_str().to_string()));
                }
                if let Some(name) = a.open_name() {
                    return Err(EvalError::new(
                        ErrorKind::OpenSet { name: name.into() },
                        span,
                    ));
                }
                self.enter(0, None, span)?;
                let mut map = serde_json::Map::new();
                let mut r = Ok(());
                for e in a.entries() {
                    match self.json_value(&e.value, span, ctx) {
                        Ok(j) => {
                            map.insert(e.name.to_string(), j);
                        }
                        Err(err) => {
                            r = Err(err);
                            break;
                        }
                    }
                }
                self.leave();
                r?;
                J::Object(map)
            }
            Value::Lambda(_) | Value::PrimOp(_) | Value::Thunk(_) => {
                return Err(EvalError::type_error(
                    "a value that can be written as JSON",
                    &v,
                    span,
                ));
            }
        })
    }

    /// Deeply forces a step parameter. `what` names it for messages.
    pub(crate) fn step_value(
        &self,
        v: &Value,
        what: &str,
        span: Span,
    ) -> Result<StepValue, EvalError> {
        let v = self.force_value(v)?;
        Ok(match &v {
            Value::Null => StepValue::Null,
            Value::Bool(b) => StepValue::Bool(*b),
            Value::Int(i) => StepValue::Int(*i),
            Value::Float(f) => StepValue::Float(*f),
            Value::String(s) => StepValue::Str {
                text: s.as_str().to_string(),
                context: s.context_set(),
            },
            Value::Path(p) => {
                let s = self.import_path(p, span)?;
                StepValue::Str {
                    text: s.as_str().to_string(),
                    context: s.context_set(),
                }
            }
            Value::List(items) => {
                self.enter(0, None, span)?;
                let r: Result<Vec<_>, _> = items
                    .iter()
                    .enumerate()
                    .map(|(i, x)| self.step_value(x, &format!("{what}.{i}"), span))
                    .collect();
                self.leave();
                StepValue::List(r?)
            }
            Value::Attrs(a) => {
                if a.get("outPath").is_some() || a.get("__toString").is_some() {
                    let s = self.coerce(&v, CoerceMode::Interpolate, span)?;
                    return Ok(StepValue::Str {
                        text: s.as_str().to_string(),
                        context: s.context_set(),
                    });
                }
                if let Some(name) = a.open_name() {
                    return Err(EvalError::new(
                        ErrorKind::OpenSet { name: name.into() },
                        span,
                    ));
                }
                self.enter(0, None, span)?;
                let mut map = BTreeMap::new();
                let mut r = Ok(());
                for e in a.entries() {
                    match self.step_value(&e.value, &format!("{what}.{}", e.name), span) {
                        Ok(x) => {
                            map.insert(e.name.to_string(), x);
                        }
                        Err(err) => {
                            r = Err(err);
                            break;
                        }
                    }
                }
                self.leave();
                r?;
                StepValue::Attrs(map)
            }
            Value::Lambda(_) | Value::PrimOp(_) | Value::Thunk(_) => {
                return Err(EvalError::invalid(
                    "step",
                    format!("parameter `{what}` is a function; step parameters must be data"),
                    span,
                ));
            }
        })
    }
}

pub(crate) fn placeholder_string(ph: &str) -> NixString {
    let mut ctx = BTreeSet::new();
    ctx.insert(ph.to_string());
    NixString::with_context(ph, ctx)
}

fn not_coercible(v: &Value, span: Span) -> EvalError {
    EvalError::type_error(
        "a string (or something that can be turned into one)",
        v,
        span,
    )
}
