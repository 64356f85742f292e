//! Store steps from the language: `builtins.step` and the package set.
//!
//! Both go through the [`crate::hook::StoreHook`]: the evaluator turns the
//! request's parameters into [`StepValue`]s (forcing them deeply, importing
//! paths), the hook records the step and answers with a placeholder, and the
//! result is a *step set* `{ type = "step"; builder; name; outPath; }` whose
//! `outPath` carries the placeholder as context. Interpolating a step set uses
//! its `outPath`, so dependencies follow strings around.
//!
//! `pkgs` is an *open* set: `pkgs.NAME` asks the hook for a `"deb"` step on
//! demand (cached per name), and its attribute names cannot be listed.
//! `pkgs.fromDeb ./file.deb` asks for a `"deb-file"` step.

use crate::eval::Evaluator;
use crate::eval::coerce::placeholder_string;
use crate::eval::error::{ErrorKind, EvalError};
use crate::eval::value::{Attrs, OpenSet, Value};
use crate::hook::{StepRequest, StepValue};
use crate::source::Span;
use smol_str::SmolStr;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;

impl Evaluator {
    /// Sends a request to the hook and builds the step set.
    pub(crate) fn add_step(&self, request: StepRequest, span: Span) -> Result<Value, EvalError> {
        let builder = request.builder.clone();
        let name = request.name.clone();
        let ph = self
            .hook
            .add_step(request)
            .map_err(|h| EvalError::new(ErrorKind::Hook(h), span))?;
        Ok(Value::attrs_from([
            ("type", Value::string("step")),
            ("builder", Value::string(builder)),
            ("name", Value::string(name)),
            ("outPath", Value::String(placeholder_string(&ph))),
        ]))
    }

    /// `builtins.step attrs`: the argument set extended with
    /// `type = "step"` and `outPath`. As with Nix's `derivation`, the result
    /// is lazy: only forcing `outPath` (or interpolating the set) forces the
    /// parameters and asks the hook for the step, so a module may put a step
    /// into an option whose definitions are merged before the step's
    /// parameters can be computed.
    pub(crate) fn step_builtin(&self, arg: &Value, span: Span) -> Result<Value, EvalError> {
        let v = self.force_value(arg)?;
        let Value::Attrs(a) = &v else {
            return Err(EvalError::type_error(
                "a set as the argument of `step`",
                &v,
                span,
            ));
        };
        let request = v.clone();
        let out_path = Value::lazy(Some("outPath"), move |ev| {
            let step = ev.request_step(&request, span)?;
            ev.select_one(&step, "outPath", span)
        });
        let extra = Attrs::from_pairs([
            (SmolStr::new("type"), Value::string("step"), None),
            (SmolStr::new("outPath"), out_path, None),
        ]);
        Ok(Value::Attrs(Rc::new(a.update(&extra))))
    }

    /// Forces a step's parameters and records it with the hook.
    fn request_step(&self, v: &Value, span: Span) -> Result<Value, EvalError> {
        let Value::Attrs(a) = v else {
            return Err(EvalError::type_error(
                "a set as the argument of `step`",
                v,
                span,
            ));
        };
        let field = |key: &str| -> Result<String, EvalError> {
            let x = self.select_one(v, key, span)?;
            match &x {
                Value::String(s) => Ok(s.as_str().to_string()),
                other => Err(EvalError::type_error(
                    format!("a string for the step's `{key}`"),
                    other,
                    span,
                )),
            }
        };
        let builder = field("builder")?;
        let name = field("name")?;
        let mut params = BTreeMap::new();
        for e in a.entries() {
            if e.name == "builder" || e.name == "name" {
                continue;
            }
            let sv = self.step_value(&e.value, &e.name, e.span.unwrap_or(span))?;
            params.insert(e.name.to_string(), sv);
        }
        self.add_step(
            StepRequest {
                builder,
                name,
                params,
            },
            span,
        )
    }

    /// The package set: pass it to modules (or bind it with
    /// [`Evaluator::with_global`]). The same value is returned every time.
    pub fn packages_value(&self) -> Value {
        if let Some(v) = self.packages.borrow().as_ref() {
            return v.clone();
        }
        let from_deb = Value::primop("fromDeb", 1, |ev, args, span| {
            let v = ev.force_value(&args[0])?;
            let Value::Path(p) = &v else {
                return Err(EvalError::type_error("a path to a .deb file", &v, span));
            };
            let file = ev.import_path(p, span)?;
            let base = crate::eval::paths::base_name(&p.to_string_lossy()).to_string();
            let name = base.strip_suffix(".deb").unwrap_or(&base).to_string();
            let mut params = BTreeMap::new();
            params.insert(
                "file".to_string(),
                StepValue::Str {
                    text: file.as_str().to_string(),
                    context: file.context_set(),
                },
            );
            ev.add_step(
                StepRequest {
                    builder: "deb-file".into(),
                    name,
                    params,
                },
                span,
            )
        });
        let mut attrs = Attrs::from_pairs([(SmolStr::new("fromDeb"), from_deb, None)]);
        attrs.open = Some(Rc::new(OpenSet {
            name: "pkgs".into(),
            resolve: Box::new(|ev, name, span| {
                let mut params = BTreeMap::new();
                params.insert(
                    "package".to_string(),
                    StepValue::Str {
                        text: name.to_string(),
                        context: BTreeSet::new(),
                    },
                );
                ev.add_step(
                    StepRequest {
                        builder: "deb".into(),
                        name: name.to_string(),
                        params,
                    },
                    span,
                )
            }),
            cache: RefCell::new(HashMap::new()),
        }));
        let v = Value::Attrs(Rc::new(attrs));
        *self.packages.borrow_mut() = Some(v.clone());
        v
    }
}
