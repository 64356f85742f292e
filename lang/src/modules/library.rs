//! `lib`: the library every module receives.
//!
//! Most of it is written in the language (lang/lib/*.imago, embedded in the
//! binary): each file is a function of `lib` returning a set, and
//! lang/lib/default.imago ties them together lazily, so the files can use
//! each other through `lib`. What cannot be written in the language comes
//! from Rust: `lib.evalModules`.

use crate::eval::{Evaluator, Value};
use crate::modules::collect::Source;
use crate::modules::error::{ModuleError, Site};
use crate::modules::fixpoint::{Fixpoint, Shared};
use crate::modules::path::OptionPath;
use smol_str::SmolStr;
use std::cell::OnceCell;
use std::path::Path;
use std::rc::Rc;

/// The library files: (name, text).
const FILES: &[(&str, &str)] = &[
    ("trivial", include_str!("../../lib/trivial.imago")),
    ("lists", include_str!("../../lib/lists.imago")),
    ("strings", include_str!("../../lib/strings.imago")),
    ("attrsets", include_str!("../../lib/attrsets.imago")),
    ("modules", include_str!("../../lib/modules.imago")),
    ("options", include_str!("../../lib/options.imago")),
    ("types", include_str!("../../lib/types.imago")),
];

const DEFAULT: &str = include_str!("../../lib/default.imago");

/// The display directory of the library files in messages.
pub const LIB_DIR: &str = "<imago lib>";

/// Builds `lib` for an evaluator.
pub fn library(ev: &Evaluator) -> Result<Value, ModuleError> {
    let base = Path::new(LIB_DIR);
    let mut files = Vec::with_capacity(FILES.len());
    for (name, text) in FILES {
        let f = ev.eval_source(&format!("{LIB_DIR}/{name}.imago"), text, base)?;
        files.push((SmolStr::new(*name), f));
    }
    let this: Rc<OnceCell<Value>> = Rc::new(OnceCell::new());
    let native = Value::attrs_from([("evalModules", eval_modules_primop(this.clone()))]);
    let combine = ev.eval_source(&format!("{LIB_DIR}/default.imago"), DEFAULT, base)?;
    let with_files = ev.call(&combine, Value::attrs_from(files))?;
    let lib = ev.force(&ev.call(&with_files, native)?)?;
    let _ = this.set(lib.clone());
    Ok(lib)
}

/// `lib.evalModules { modules = [ ... ]; specialArgs = { ... }; }` returns
/// `{ config; options; }`.
fn eval_modules_primop(lib: Rc<OnceCell<Value>>) -> Value {
    Value::primop("evalModules", 1, move |ev, args, span| {
        let lib = lib.get().cloned().unwrap_or(Value::Null);
        let call_site = Site::new(ev.location(span), Some(span));
        let run = || -> Result<Value, ModuleError> {
            let arg = ev.force(&args[0])?;
            let Some(attrs) = arg.as_attrs() else {
                return Err(ModuleError::BadModule {
                    message: format!(
                        "`lib.evalModules` takes a set `{{ modules; specialArgs; }}`, not {}",
                        arg.describe()
                    ),
                    site: call_site.clone(),
                    hint: None,
                });
            };
            let modules = match attrs.value("modules") {
                Some(m) => ev.force(m)?,
                None => Value::list(Vec::new()),
            };
            let Some(list) = modules.as_list() else {
                return Err(ModuleError::BadModule {
                    message: format!(
                        "`modules` of `lib.evalModules` must be a list, not {}",
                        modules.describe()
                    ),
                    site: call_site.clone(),
                    hint: None,
                });
            };
            let sources = list
                .iter()
                .map(|m| Source::Value {
                    value: m.clone(),
                    site: call_site.clone(),
                })
                .collect();
            let mut special = Vec::new();
            if let Some(sa) = attrs.value("specialArgs") {
                let sa = ev.force(sa)?;
                match sa.as_attrs() {
                    Some(a) => {
                        for e in a.entries() {
                            special.push((e.name.clone(), e.value.clone()));
                        }
                    }
                    None => {
                        return Err(ModuleError::BadModule {
                            message: format!(
                                "`specialArgs` of `lib.evalModules` must be a set, not {}",
                                sa.describe()
                            ),
                            site: call_site.clone(),
                            hint: None,
                        });
                    }
                }
            }
            let fp = Fixpoint::evaluate(
                ev,
                Shared::new(lib.clone()),
                OptionPath::root(),
                sources,
                special,
            )?;
            Ok(Value::attrs_from([
                ("config", fp.config()),
                ("options", fp.options_value()),
            ]))
        };
        run().map_err(ModuleError::into_eval)
    })
}
