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
//!
//! The listed attributes are camelCase, so they never clash with a Debian
//! package (whose names are lowercase): `fromDeb` and the writers of text
//! files and scripts, each a step of the generic `text` or `tree` builder
//! (lazy like `builtins.step`: the text is forced when the object is needed):
//!
//! - `writeText name text`: a file `name` holding `text` (mode 0444);
//! - `writeShellScript name text`: an executable file (0555) holding
//!   `#!/bin/bash`, a newline, `text` and a newline, as NixOS's
//!   `#!${runtimeShell}` script: it runs with the system's bash (Debian's
//!   `bash`, which systemd systems install by default);
//! - `writeTextDir path text`: a directory holding `text` at the relative
//!   `path` (the object is named after the path's last component);
//! - `writeShellScriptBin name text`: a directory holding the script at
//!   `usr/bin/NAME` (where Debian packages keep programs, so it works in
//!   `environment.packages`), with `meta.mainProgram = name` for
//!   `lib.getExe`.
//!
//! Names are checked when the writer is called, with the store's rules for
//! object names (1 to 200 characters of `A-Z a-z 0-9 + - . _ ? =`, not
//! starting with `.`), so a bad name is reported at the call.

use crate::eval::coerce::placeholder_string;
use crate::eval::error::{ErrorKind, EvalError};
use crate::eval::value::{Attrs, NixString, OpenSet, Value};
use crate::eval::{CoerceMode, Evaluator};
use crate::hook::{StepRequest, StepValue};
use crate::source::Span;
use smol_str::SmolStr;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;

impl Evaluator {
    /// Sends a request to the hook and builds the step set.
    pub(crate) fn add_step(&self, request: StepRequest, span: Span) -> Result<Value, EvalError> {
        if request.builder == "deb"
            && let Some(StepValue::Str { text, .. }) = request.params.get("package")
        {
            self.package_sites
                .borrow_mut()
                .entry(text.clone())
                .or_insert(span);
        }
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

    /// Where each Debian package was first asked for — the `NAME` of
    /// `pkgs.NAME`, or the `builtins.step { builder = "deb"; ... }` call —
    /// by package name. `imago lock` reports unknown packages there.
    pub fn package_sites(&self) -> BTreeMap<String, Span> {
        self.package_sites.borrow().clone()
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
        let mut attrs = Attrs::from_pairs([
            (SmolStr::new("fromDeb"), from_deb, None),
            (
                SmolStr::new("writeText"),
                Value::primop("writeText", 2, |ev, a, span| {
                    ev.write_file("writeText", &a[0], &a[1], false, span)
                }),
                None,
            ),
            (
                SmolStr::new("writeShellScript"),
                Value::primop("writeShellScript", 2, |ev, a, span| {
                    ev.write_file("writeShellScript", &a[0], &a[1], true, span)
                }),
                None,
            ),
            (
                SmolStr::new("writeTextDir"),
                Value::primop("writeTextDir", 2, write_text_dir),
                None,
            ),
            (
                SmolStr::new("writeShellScriptBin"),
                Value::primop("writeShellScriptBin", 2, write_shell_script_bin),
                None,
            ),
        ]);
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

/// The interpreter line of `writeShellScript` and `writeShellScriptBin`.
const SHEBANG: &str = "#!/bin/bash\n";

/// Checks a store object name the way the store does (see the module
/// comment); `function` and `what` name the argument in messages.
fn check_name(function: &'static str, what: &str, name: &str, span: Span) -> Result<(), EvalError> {
    let bad = |why: String| {
        Err(EvalError::invalid(
            function,
            format!("{what} {name:?} cannot name a store object: {why}"),
            span,
        ))
    };
    if name.is_empty() {
        return bad("it is empty".into());
    }
    if name.len() > 200 {
        return bad(format!("it is {} bytes long (at most 200)", name.len()));
    }
    if name.starts_with('.') {
        return bad("it starts with `.`".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.' | '_' | '?' | '=')))
    {
        return bad(format!(
            "it contains {c:?}; allowed are A-Z a-z 0-9 and + - . _ ? ="
        ));
    }
    Ok(())
}

/// A plain string argument (no context), for names and paths.
fn plain(
    ev: &Evaluator,
    v: &Value,
    function: &'static str,
    what: &str,
    span: Span,
) -> Result<String, EvalError> {
    let v = ev.force_value(v)?;
    let Value::String(s) = &v else {
        return Err(EvalError::type_error(
            format!("a string for the {what} of `{function}`"),
            &v,
            span,
        ));
    };
    if let Some(p) = s.context().next() {
        return Err(EvalError::invalid(
            function,
            format!(
                "the {what} {:?} refers to the store object {p}; it must be plain text",
                s.as_str()
            ),
            span,
        ));
    }
    Ok(s.as_str().to_string())
}

/// The file text, coerced when the step is built (as interpolation does:
/// strings keep their context, paths are imported), behind `prefix` and
/// before `suffix`.
fn lazy_text(
    function: &'static str,
    text: &Value,
    prefix: &'static str,
    suffix: &'static str,
    span: Span,
) -> Value {
    let text = text.clone();
    Value::lazy(Some("text"), move |ev| {
        let v = ev.force_value(&text)?;
        if !matches!(v, Value::String(_) | Value::Path(_) | Value::Attrs(_)) {
            return Err(EvalError::type_error(
                format!("a string for the text of `{function}`"),
                &v,
                span,
            ));
        }
        let s = ev.coerce(&v, CoerceMode::Interpolate, span)?;
        if prefix.is_empty() && suffix.is_empty() {
            return Ok(Value::String(s));
        }
        Ok(Value::String(NixString::with_context(
            format!("{prefix}{}{suffix}", s.as_str()),
            s.context_set(),
        )))
    })
}

impl Evaluator {
    /// `writeText` and `writeShellScript`: one file made by the `text`
    /// builder.
    fn write_file(
        &self,
        function: &'static str,
        name: &Value,
        text: &Value,
        script: bool,
        span: Span,
    ) -> Result<Value, EvalError> {
        let name = plain(self, name, function, "name", span)?;
        check_name(function, "the name", &name, span)?;
        let mut attrs = vec![
            (SmolStr::new("builder"), Value::string("text"), None),
            (SmolStr::new("name"), Value::string(name), None),
        ];
        if script {
            attrs.push((
                SmolStr::new("text"),
                lazy_text(function, text, SHEBANG, "\n", span),
                None,
            ));
            attrs.push((SmolStr::new("executable"), Value::Bool(true), None));
        } else {
            attrs.push((
                SmolStr::new("text"),
                lazy_text(function, text, "", "", span),
                None,
            ));
        }
        self.step_builtin(&Value::Attrs(Rc::new(Attrs::from_pairs(attrs))), span)
    }

    /// A `tree` step with one text file at `path`.
    fn write_tree(
        &self,
        name: String,
        path: String,
        text: Value,
        executable: bool,
        span: Span,
    ) -> Result<Value, EvalError> {
        let entry = Value::attrs_from([("text", text), ("executable", Value::Bool(executable))]);
        let attrs = Attrs::from_pairs([
            (SmolStr::new("builder"), Value::string("tree"), None),
            (SmolStr::new("name"), Value::string(name), None),
            (
                SmolStr::new("entries"),
                Value::attrs_from([(path, entry)]),
                None,
            ),
        ]);
        self.step_builtin(&Value::Attrs(Rc::new(attrs)), span)
    }
}

/// `writeTextDir path text`.
fn write_text_dir(ev: &Evaluator, a: &[Value], span: Span) -> Result<Value, EvalError> {
    const F: &str = "writeTextDir";
    let path = plain(ev, &a[0], F, "path", span)?;
    let bad = |why: &str| {
        Err(EvalError::invalid(
            F,
            format!(
                "the path {path:?} {why}; it must be a relative path such as \"share/doc/notes.txt\""
            ),
            span,
        ))
    };
    if path.is_empty() {
        return bad("is empty");
    }
    if path.starts_with('/') {
        return bad("is absolute");
    }
    if path
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return bad("has an empty, `.` or `..` component");
    }
    if path.contains('\0') {
        return bad("contains a NUL byte");
    }
    let name = path.rsplit('/').next().unwrap_or(&path).to_string();
    check_name(F, "the path's last component", &name, span)?;
    ev.write_tree(
        name,
        path.clone(),
        lazy_text(F, &a[1], "", "", span),
        false,
        span,
    )
}

/// `writeShellScriptBin name text`: the script at `usr/bin/NAME`, with
/// `meta.mainProgram`.
fn write_shell_script_bin(ev: &Evaluator, a: &[Value], span: Span) -> Result<Value, EvalError> {
    const F: &str = "writeShellScriptBin";
    let name = plain(ev, &a[0], F, "name", span)?;
    check_name(F, "the name", &name, span)?;
    let step = ev.write_tree(
        name.clone(),
        format!("usr/bin/{name}"),
        lazy_text(F, &a[1], SHEBANG, "\n", span),
        true,
        span,
    )?;
    let Value::Attrs(set) = &step else {
        return Ok(step);
    };
    let meta = Attrs::from_pairs([(
        SmolStr::new("meta"),
        Value::attrs_from([("mainProgram", Value::string(name))]),
        None,
    )]);
    Ok(Value::Attrs(Rc::new(set.update(&meta))))
}
