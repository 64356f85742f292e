//! Loading modules: files, functions, shorthand sets and `imports`.
//!
//! A module is a file or value that evaluates to a set, or to a function
//! returning one. Functions are called with the module arguments (`config`,
//! `options`, `lib` and the special arguments such as `pkgs` or `name`); a
//! function whose pattern has no `...` receives only the arguments it names,
//! as in NixOS. The set's `imports` are loaded depth first, each file once,
//! the importing module before what it imports (this order is the "module
//! order" that breaks ties between list definitions).
//!
//! A set with an `options` or `config` attribute is a full module; any other
//! set is shorthand for its config (apart from `imports` and `_file`).

use crate::eval::error::{ErrorKind, EvalError};
use crate::eval::{Evaluator, Value};
use crate::modules::error::{ModuleError, Site};
use crate::source::Span;
use smol_str::SmolStr;
use std::cell::Cell;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// Where a module comes from, before it is loaded.
#[derive(Clone)]
pub enum Source {
    /// A file; `site` is where it was named (an `imports` entry), if anywhere.
    File { path: PathBuf, site: Option<Site> },
    /// A value: a set, a function, or a path.
    Value { value: Value, site: Site },
    /// A set that is entirely config (a submodule definition).
    ConfigOnly { value: Value, site: Site },
}

/// A loaded module.
pub struct Module {
    /// The module's file (or a display name such as `<command line>`).
    pub file: Rc<str>,
    /// Where the module was written, when known.
    pub span: Option<Span>,
    /// The `options` set, if any.
    pub options: Option<Value>,
    /// The config part (forced to a set or a property such as `mkIf`).
    pub config: Option<Value>,
}

const MODULE_KEYS: &[&str] = &["imports", "options", "config", "_file", "key", "meta"];

pub struct Collector<'a> {
    ev: &'a Evaluator,
    /// The module arguments, by name.
    args: &'a [(SmolStr, Value)],
    seen: HashSet<PathBuf>,
    /// Set (to `config` or `options`) when a module reads that argument
    /// before every module is loaded.
    early_use: Rc<Cell<Option<&'static str>>>,
    pub modules: Vec<Module>,
}

impl<'a> Collector<'a> {
    pub fn new(
        ev: &'a Evaluator,
        args: &'a [(SmolStr, Value)],
        early_use: Rc<Cell<Option<&'static str>>>,
    ) -> Self {
        Collector {
            ev,
            args,
            seen: HashSet::new(),
            early_use,
            modules: Vec::new(),
        }
    }

    /// An error while loading the module at `site`: reading `config` too
    /// early is reported there.
    fn loading_error(&self, e: EvalError, site: &Site) -> ModuleError {
        match self.early_use.take() {
            Some(what) => ModuleError::BadModule {
                message: format!(
                    "`{what}` was used while the modules were being loaded \
                     (`imports` and the shape of a module cannot depend on `{what}`)"
                ),
                site: site.clone(),
                hint: Some(
                    "compute `imports` from plain values or special arguments; for \
                     conditional definitions use `lib.mkIf` inside `config`"
                        .to_string(),
                ),
            },
            None => ModuleError::Eval(e),
        }
    }

    pub fn load(&mut self, source: Source) -> Result<(), ModuleError> {
        match source {
            Source::File { path, site } => self.load_file(&path, site),
            Source::Value { value, site } => self.load_value(value, site, false),
            Source::ConfigOnly { value, site } => self.load_value(value, site, true),
        }
    }

    fn load_file(&mut self, path: &Path, site: Option<Site>) -> Result<(), ModuleError> {
        if !self.seen.insert(path.to_path_buf()) {
            return Ok(());
        }
        let value = self.ev.eval_file(path).map_err(|e| {
            let reason = match e.kind() {
                ErrorKind::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                    Some("the file does not exist".to_string())
                }
                ErrorKind::Io { source, .. } => Some(source.to_string()),
                _ => None,
            };
            match reason {
                Some(reason) => ModuleError::BadImport {
                    what: format!("`{}`", path.display()),
                    reason,
                    site: site
                        .clone()
                        .unwrap_or_else(|| Site::new(path.display().to_string(), None)),
                    source: Some(e),
                },
                None => ModuleError::Eval(e),
            }
        })?;
        let file = path.display().to_string();
        self.load_value(value, Site::new(file, None), false)
    }

    fn load_value(
        &mut self,
        value: Value,
        site: Site,
        config_only: bool,
    ) -> Result<(), ModuleError> {
        let mut v = self.ev.force(&value)?;
        if let Value::Path(p) = &v {
            return self.load_file(&p.clone(), Some(site));
        }
        let mut site = site;
        if v.is_function() {
            if let Some(c) = v.as_closure() {
                let file = self
                    .ev
                    .sources()
                    .path(c.span().file)
                    .map_or_else(|| site.file.clone(), |p| p.display().to_string().into());
                let s = c.span();
                site = Site::new(file, Some(Span::new(s.file, s.start, s.start + 1)));
            }
            let arg = self.module_args(&v, &site)?;
            v = self
                .ev
                .call(&v, arg)
                .and_then(|r| self.ev.force(&r))
                .map_err(|e| self.loading_error(e, &site))?;
        }
        let Some(attrs) = v.as_attrs().cloned() else {
            if site.span.is_none() {
                // Point at the start of the module's file, when it is one.
                let sources = self.ev.sources();
                site.span = sources.find(Path::new(&*site.file)).map(|id| {
                    let len = sources.get(id).map_or(0, |f| f.text.len().min(1) as u32);
                    Span::new(id, 0, len)
                });
            }
            return Err(ModuleError::BadModule {
                message: format!(
                    "a module must be a set or a function returning a set, not {}",
                    v.describe()
                ),
                site,
                hint: None,
            });
        };
        if config_only {
            self.modules.push(Module {
                file: site.file.clone(),
                span: site.span,
                options: None,
                config: Some(v.clone()),
            });
            return Ok(());
        }
        let file: Rc<str> = match attrs.value("_file") {
            Some(f) => match self.ev.force(f)? {
                Value::String(s) => s.as_str().into(),
                Value::Path(p) => p.display().to_string().into(),
                _ => site.file.clone(),
            },
            None => site.file.clone(),
        };
        let full = attrs.get("options").is_some() || attrs.get("config").is_some();
        let config = if full {
            if let Some(extra) = attrs.names().find(|n| !MODULE_KEYS.contains(n)) {
                let span = attrs.get(extra).and_then(|e| e.span).or(site.span);
                return Err(ModuleError::BadModule {
                    message: format!("the module has an unsupported attribute `{extra}`"),
                    site: Site::new(file, span),
                    hint: Some(format!(
                        "a module with `options` or `config` keeps its definitions under \
                         `config`: write `config.{extra} = ...;`"
                    )),
                });
            }
            attrs.value("config").cloned()
        } else {
            let rest: Vec<_> = attrs
                .entries()
                .iter()
                .filter(|e| !matches!(e.name.as_str(), "imports" | "_file" | "key"))
                .map(|e| (e.name.clone(), e.value.clone(), e.span))
                .collect();
            Some(Value::attrs_from_spanned(rest))
        };
        self.modules.push(Module {
            file: file.clone(),
            span: site.span,
            options: attrs.value("options").cloned(),
            config,
        });
        if let Some(entry) = attrs.get("imports") {
            let import_site = Site::new(file.clone(), entry.span.or(site.span));
            let list = self
                .ev
                .force(&entry.value)
                .map_err(|e| self.loading_error(e, &import_site))?;
            let Some(items) = list.as_list() else {
                return Err(ModuleError::BadModule {
                    message: format!("`imports` must be a list, not {}", list.describe()),
                    site: import_site,
                    hint: None,
                });
            };
            for item in items.iter() {
                let item = self.ev.force(item)?;
                match &item {
                    Value::Path(p) => self.load_file(p, Some(import_site.clone()))?,
                    Value::String(s) if s.as_str().starts_with('/') => {
                        self.load_file(Path::new(s.as_str()), Some(import_site.clone()))?
                    }
                    Value::Attrs(_) | Value::Lambda(_) | Value::PrimOp(_) => {
                        self.load_value(item.clone(), import_site.clone(), false)?
                    }
                    other => {
                        return Err(ModuleError::BadImport {
                            what: crate::modules::values::short(other),
                            reason: format!(
                                "{} is not a module (expected a path, a set or a function)",
                                other.describe()
                            ),
                            site: import_site,
                            source: None,
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// The argument set for a module function: only the names its pattern
    /// asks for when it has no `...`.
    fn module_args(&self, f: &Value, site: &Site) -> Result<Value, ModuleError> {
        let formals = f.as_closure().and_then(|c| c.formals());
        let pairs: Vec<(SmolStr, Value)> = match formals {
            Some((entries, false)) => {
                let mut out = Vec::new();
                for (name, has_default) in entries {
                    match self.args.iter().find(|(n, _)| *n == name) {
                        Some((n, v)) => out.push((n.clone(), v.clone())),
                        None if has_default => {}
                        None => {
                            let available: Vec<String> =
                                self.args.iter().map(|(n, _)| format!("`{n}`")).collect();
                            return Err(ModuleError::BadModule {
                                message: format!(
                                    "the module asks for the argument `{name}`, which is not available"
                                ),
                                site: site.clone(),
                                hint: Some(format!("modules receive {}", available.join(", "))),
                            });
                        }
                    }
                }
                out
            }
            _ => self.args.to_vec(),
        };
        Ok(Value::attrs_from(pairs))
    }
}
