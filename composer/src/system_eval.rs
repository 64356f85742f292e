//! Evaluating a system: the user's file plus the module library.
//!
//! A system is the user's configuration file merged with every module of the
//! library (`modules/`, listed by `modules/module-list.imago`, a file that
//! evaluates to a list of paths), with the Debian package set as the special
//! module argument `pkgs`. Files are read from the real file system
//! ([`FsIo`]); store objects are requested through the given hook. The
//! library directory counts as library code in error traces: only frames in
//! the user's files are shown, the library's are counted (all are shown
//! with [`EvalOptions::show_trace`]). Messages name files in the library
//! `<modules>/...` ([`MODULES_DISPLAY`]), never by the absolute path of
//! the tree the binary was built in.
//!
//! Errors come back with the evaluator that produced them
//! ([`SystemEvalFailure`]): rendering a diagnostic needs its source map.

use crate::fsio::FsIo;
use imago_lang::diag::{self, Diagnostic};
use imago_lang::eval::{Evaluator, Value};
use imago_lang::hook::StoreHook;
use imago_lang::modules::{self, Evaluated, ModuleError, ModuleSource, Site};
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// The file in the library directory that lists the library's modules.
pub const MODULE_LIST: &str = "module-list.imago";

/// The environment variable naming the module library directory.
pub const MODULES_ENV: &str = "IMAGO_MODULES";

/// How messages name the module library directory.
pub const MODULES_DISPLAY: &str = "<modules>";

/// What the command line changes about an evaluation.
#[derive(Debug, Clone, Copy, Default)]
pub struct EvalOptions {
    /// Error traces keep every frame (`--show-trace`).
    pub show_trace: bool,
}

/// The module library directory: the `--modules` flag (clap also reads
/// `IMAGO_MODULES` into it), else the `modules/` directory of the source tree
/// this binary was built from.
/// The result is absolute and lexically normalised (no `.` or `..`), so that
/// file names under it print the same way everywhere.
pub fn modules_dir(flag: Option<&Path>) -> PathBuf {
    match flag {
        Some(dir) => normalize(&absolute(dir)),
        None => normalize(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../modules"
        ))),
    }
}

/// Removes `.` and resolves `..` lexically.
fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// An evaluation that failed, with the evaluator that knows its sources.
pub struct SystemEvalFailure {
    pub evaluator: Box<Evaluator>,
    pub error: ModuleError,
}

impl std::fmt::Debug for SystemEvalFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SystemEvalFailure")
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Display for SystemEvalFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for SystemEvalFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl SystemEvalFailure {
    /// The diagnostics to show: every problem a pass over the definitions
    /// found (unknown options and their warnings), every syntax error of a
    /// file that failed to parse, or the one error.
    pub fn diagnostics(&self) -> Vec<Diagnostic> {
        diagnostics_of(&self.error)
    }

    /// The diagnostics rendered as text.
    pub fn render(&self, color: bool) -> String {
        diag::render(&self.diagnostics(), self.evaluator.sources(), color)
    }

    /// The diagnostics as JSON (`--error-format json`).
    pub fn to_json(&self) -> serde_json::Value {
        diag::to_json(&self.diagnostics(), self.evaluator.sources())
    }
}

/// The diagnostics of a module error (all the problems found in one pass,
/// all the syntax errors of a file).
pub fn diagnostics_of(error: &ModuleError) -> Vec<Diagnostic> {
    error.diagnostics()
}

/// A new evaluator over the real file system, with the library directory
/// marked as library code and named `<modules>` in messages.
pub fn evaluator(hook: Rc<dyn StoreHook>, modules_dir: &Path) -> Evaluator {
    evaluator_with(hook, modules_dir, EvalOptions::default())
}

/// [`evaluator`] with options from the command line.
pub fn evaluator_with(
    hook: Rc<dyn StoreHook>,
    modules_dir: &Path,
    options: EvalOptions,
) -> Evaluator {
    let mut ev = Evaluator::new(Rc::new(FsIo), hook);
    ev.set_library_dirs(vec![modules_dir.to_path_buf()]);
    ev.set_show_trace(options.show_trace);
    ev.sources()
        .set_display_root(modules_dir.to_path_buf(), MODULES_DISPLAY);
    ev
}

/// The library's modules, as listed by `module-list.imago`.
pub fn library_modules(ev: &Evaluator, modules_dir: &Path) -> Result<Vec<PathBuf>, ModuleError> {
    let list_file = modules_dir.join(MODULE_LIST);
    let site = Site::new(list_file.display().to_string(), None);
    let value = ev
        .eval_file(&list_file)
        .map_err(|e| ModuleError::BadImport {
            what: format!("the module library `{}`", list_file.display()),
            reason: e.to_string(),
            site: site.clone(),
            source: Some(e),
        })?;
    let value = ev.force(&value)?;
    let Some(items) = value.as_list() else {
        return Err(ModuleError::BadModule {
            message: format!(
                "`{}` must evaluate to a list of module paths, not {}",
                list_file.display(),
                value.describe()
            ),
            site,
            hint: None,
        });
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items.iter() {
        match ev.force(item)? {
            Value::Path(p) => out.push(p.to_path_buf()),
            Value::String(s) if s.as_str().starts_with('/') => out.push(PathBuf::from(s.as_str())),
            other => {
                return Err(ModuleError::BadModule {
                    message: format!(
                        "`{}` lists {}, which is not a module path",
                        list_file.display(),
                        other.describe()
                    ),
                    site,
                    hint: None,
                });
            }
        }
    }
    Ok(out)
}

/// The module sources of a system: the user's file (if any) first, then
/// the library.
fn system_sources(
    ev: &Evaluator,
    file: Option<&Path>,
    modules_dir: &Path,
) -> Result<Vec<ModuleSource>, ModuleError> {
    let mut sources = Vec::new();
    if let Some(f) = file {
        sources.push(ModuleSource::Path(absolute(f)));
    }
    sources.extend(
        library_modules(ev, modules_dir)?
            .into_iter()
            .map(ModuleSource::Path),
    );
    Ok(sources)
}

fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    }
}

/// Evaluates a system: `file` merged with the library in `modules_dir`,
/// `pkgs` as a special argument. Every definition has been checked against
/// the declared options when this returns.
pub fn eval_system(
    file: &Path,
    hook: Rc<dyn StoreHook>,
    modules_dir: &Path,
) -> Result<(Evaluator, Evaluated), SystemEvalFailure> {
    eval_system_with(file, hook, modules_dir, EvalOptions::default())
}

/// [`eval_system`] with options from the command line.
pub fn eval_system_with(
    file: &Path,
    hook: Rc<dyn StoreHook>,
    modules_dir: &Path,
    options: EvalOptions,
) -> Result<(Evaluator, Evaluated), SystemEvalFailure> {
    let ev = evaluator_with(hook, modules_dir, options);
    let result = system_sources(&ev, Some(file), modules_dir).and_then(|sources| {
        let pkgs = ev.packages_value();
        modules::eval_modules(&ev, sources, vec![("pkgs".to_string(), pkgs)])
    });
    match result {
        Ok(evaluated) => Ok((ev, evaluated)),
        Err(error) => Err(SystemEvalFailure {
            evaluator: Box::new(ev),
            error,
        }),
    }
}

/// Loads the declarations of the library (and of `file`, if given) without
/// checking any definition: what `imago options` documents.
pub fn declare_system(
    file: Option<&Path>,
    hook: Rc<dyn StoreHook>,
    modules_dir: &Path,
) -> Result<(Evaluator, Evaluated), SystemEvalFailure> {
    declare_system_with(file, hook, modules_dir, EvalOptions::default())
}

/// [`declare_system`] with options from the command line.
pub fn declare_system_with(
    file: Option<&Path>,
    hook: Rc<dyn StoreHook>,
    modules_dir: &Path,
    options: EvalOptions,
) -> Result<(Evaluator, Evaluated), SystemEvalFailure> {
    let ev = evaluator_with(hook, modules_dir, options);
    let result = system_sources(&ev, file, modules_dir).and_then(|sources| {
        let pkgs = ev.packages_value();
        modules::declare_modules(&ev, sources, vec![("pkgs".to_string(), pkgs)])
    });
    match result {
        Ok(evaluated) => Ok((ev, evaluated)),
        Err(error) => Err(SystemEvalFailure {
            evaluator: Box::new(ev),
            error,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imago_lang::hook::NoStore;

    fn expect_failure(r: Result<(Evaluator, Evaluated), SystemEvalFailure>) -> SystemEvalFailure {
        match r {
            Ok(_) => panic!("the evaluation should fail"),
            Err(f) => f,
        }
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn the_library_directory_is_normalised() {
        let d = modules_dir(None);
        assert!(d.is_absolute(), "{}", d.display());
        assert!(
            !d.components().any(|c| matches!(
                c,
                std::path::Component::ParentDir | std::path::Component::CurDir
            )),
            "{}",
            d.display()
        );
        assert!(d.ends_with("modules"), "{}", d.display());
        assert_eq!(
            normalize(Path::new("/a/b/../c/./d")),
            PathBuf::from("/a/c/d")
        );
    }

    #[test]
    fn merges_the_user_file_with_the_library() {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("modules");
        std::fs::create_dir(&lib).unwrap();
        write(&lib, MODULE_LIST, "[ ./name.imago ]");
        write(
            &lib,
            "name.imago",
            "{ lib, ... }: { options.system.name = lib.mkOption { type = lib.types.str; default = \"x\"; }; }",
        );
        let user = write(
            dir.path(),
            "sys.imago",
            "{ pkgs, ... }: { system.name = \"mine\"; }",
        );
        let (ev, evaluated) = eval_system(&user, Rc::new(NoStore), &lib).unwrap();
        let json = evaluated.config_json(&ev, None).unwrap();
        assert_eq!(json, serde_json::json!({ "system": { "name": "mine" } }));
    }

    #[test]
    fn errors_render_with_the_user_file() {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("modules");
        std::fs::create_dir(&lib).unwrap();
        write(&lib, MODULE_LIST, "[ ]");
        let user = write(dir.path(), "sys.imago", "{ nosuch.option = 1; }");
        let failure = expect_failure(eval_system(&user, Rc::new(NoStore), &lib));
        let text = failure.render(false);
        assert!(text.contains("E0301"), "{text}");
        assert!(text.contains("sys.imago:1:3"), "{text}");
    }

    #[test]
    fn a_broken_module_list_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("modules");
        std::fs::create_dir(&lib).unwrap();
        write(&lib, MODULE_LIST, "{ }");
        let user = write(dir.path(), "sys.imago", "{ }");
        let failure = expect_failure(eval_system(&user, Rc::new(NoStore), &lib));
        assert!(
            failure.to_string().contains("list of module paths"),
            "{failure}"
        );
        let missing = expect_failure(eval_system(
            &user,
            Rc::new(NoStore),
            &dir.path().join("nope"),
        ));
        assert!(missing.to_string().contains("module library"), "{missing}");
    }

    #[test]
    fn syntax_errors_show_every_diagnostic() {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("modules");
        std::fs::create_dir(&lib).unwrap();
        write(&lib, MODULE_LIST, "[ ]");
        let user = write(dir.path(), "sys.imago", "{ a = ; b = ; }");
        let failure = expect_failure(eval_system(&user, Rc::new(NoStore), &lib));
        assert!(!failure.diagnostics().is_empty());
        assert!(
            failure.render(false).contains("E01"),
            "{}",
            failure.render(false)
        );
    }
}
