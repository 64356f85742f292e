//! The module system: options, types, priorities and the config fixpoint.
//!
//! A *module* is a file or value that evaluates to a set — or to a function
//! of `{ config, lib, pkgs, options, ... }` returning one — with `imports`,
//! `options` (declarations made with `lib.mkOption`) and `config`
//! (definitions). [`eval_modules`] loads a list of modules and everything
//! they import, and merges every definition into one `config` that each
//! module reads lazily: NixOS's module system, with the same priorities
//! (`mkDefault`, `mkForce`...), conditions (`mkIf`), ordering (`mkBefore`,
//! `mkAfter`) and types.
//!
//! How it is built (one responsibility per file):
//! - [`collect`]: loading modules, calling module functions, `imports`;
//! - [`declare`]: the tree of option declarations;
//! - [`aliases`]: names that forward to options or are reported;
//! - [`types`]: reading `lib.types` descriptors, descriptions, checks;
//! - [`merge`]: discharging properties, priorities, merging by type;
//! - [`fixpoint`]: the lazily merged `config` and the cycle detection;
//! - [`check`]: the eager checks of a system evaluation (every option the
//!   user's files define is merged, errors are collected);
//! - [`library`]: `lib` (mostly written in the language, lang/lib/);
//! - [`docs`]: option documentation, `--explain` and the config as JSON;
//! - [`problems`]: what one pass over the definitions finds (unknown,
//!   renamed, removed and unsupported options), reported together;
//! - [`error`]: errors E03xx and their diagnostics.

pub mod aliases;
pub mod check;
pub mod collect;
pub mod declare;
pub mod docs;
pub mod error;
pub mod fixpoint;
pub mod library;
pub mod merge;
pub mod path;
pub mod problems;
pub mod types;
pub mod values;

pub use declare::AliasKind;
pub use docs::{AliasDoc, DefStatus, ExplainedDef, Explanation, OptionDoc};
pub use error::{ModuleError, Site};
pub use library::library;
pub use path::OptionPath;

use crate::eval::{Evaluator, Value};
use collect::Source;
use declare::Node;
use fixpoint::{Fixpoint, Shared};
use smol_str::SmolStr;
use std::path::PathBuf;
use std::rc::Rc;

/// A module to evaluate: a file, or a value (a set, a function or a path)
/// with a display name for messages.
#[derive(Clone)]
pub enum ModuleSource {
    Path(PathBuf),
    Value { value: Value, name: String },
}

/// The result of [`eval_modules`]: the merged `config` and what is needed to
/// document and explain it.
pub struct Evaluated {
    fixpoint: Rc<Fixpoint>,
}

/// Evaluates modules with the given special arguments (such as `pkgs`),
/// which every module function receives beside `config`, `options` and
/// `lib`. Every definition is checked against the declared options before
/// this returns — submodule definitions too (`users.users.alice.x`) — and
/// all the problems found come back together ([`ModuleError::Problems`]);
/// option values are merged when they are read.
pub fn eval_modules(
    ev: &Evaluator,
    modules: Vec<ModuleSource>,
    special_args: Vec<(String, Value)>,
) -> Result<Evaluated, ModuleError> {
    let lib = library(ev)?;
    eval_modules_with_lib(ev, lib, modules, special_args)
}

/// Like [`eval_modules`], reusing an already built `lib`.
pub fn eval_modules_with_lib(
    ev: &Evaluator,
    lib: Value,
    modules: Vec<ModuleSource>,
    special_args: Vec<(String, Value)>,
) -> Result<Evaluated, ModuleError> {
    let fixpoint = Fixpoint::evaluate_all(
        ev,
        Shared::new(lib),
        OptionPath::root(),
        sources(modules),
        special(special_args),
    )?;
    Ok(Evaluated { fixpoint })
}

/// Loads modules and their option declarations only, without checking any
/// definition (for documenting the options of a module library).
pub fn declare_modules(
    ev: &Evaluator,
    modules: Vec<ModuleSource>,
    special_args: Vec<(String, Value)>,
) -> Result<Evaluated, ModuleError> {
    let lib = library(ev)?;
    let fixpoint = Fixpoint::load(
        ev,
        Shared::new(lib),
        OptionPath::root(),
        sources(modules),
        special(special_args),
    )?;
    Ok(Evaluated { fixpoint })
}

fn sources(modules: Vec<ModuleSource>) -> Vec<Source> {
    modules
        .into_iter()
        .map(|m| match m {
            ModuleSource::Path(path) => Source::File { path, site: None },
            ModuleSource::Value { value, name } => Source::Value {
                value,
                site: Site::new(name, None),
            },
        })
        .collect()
}

fn special(args: Vec<(String, Value)>) -> Vec<(SmolStr, Value)> {
    args.into_iter()
        .map(|(n, v)| (SmolStr::new(n), v))
        .collect()
}

impl Evaluated {
    /// The merged configuration: a set whose option values are merged when
    /// forced.
    pub fn config(&self) -> Value {
        self.fixpoint.config()
    }

    /// The option declarations as the `options` module argument sees them.
    pub fn options_value(&self) -> Value {
        self.fixpoint.options_value()
    }

    /// The warnings found so far (definitions of renamed or ignored names),
    /// in source order. Submodules evaluated after [`eval_modules`] returned
    /// may add some, so ask once the values needed are computed.
    pub fn warnings(&self) -> Vec<crate::diag::Diagnostic> {
        self.fixpoint
            .shared
            .warnings()
            .iter()
            .map(problems::Problem::to_diagnostic)
            .collect()
    }

    /// The `lib` the modules received.
    pub fn lib(&self) -> Value {
        self.fixpoint.shared.lib.clone()
    }

    /// The value of one option, or of a namespace of options (the set of
    /// everything under it). Paths may go into attribute sets and submodule
    /// values (`users.users.alice.home`).
    pub fn value_at(&self, ev: &Evaluator, path: &OptionPath) -> Result<Value, ModuleError> {
        let mut cur = self.config();
        let mut walked = OptionPath::root();
        for name in path.components() {
            let v = ev.force(&cur)?;
            let next = v.as_attrs().and_then(|a| a.value(name)).cloned();
            match next {
                Some(n) => cur = n,
                None => {
                    let candidates: Vec<String> = v
                        .as_attrs()
                        .map(|a| a.names().map(str::to_string).collect())
                        .unwrap_or_default();
                    let suggestions =
                        crate::diag::suggest(name, candidates.iter().map(String::as_str))
                            .into_iter()
                            .map(|s| walked.child(&s).to_string())
                            .collect();
                    return Err(ModuleError::UndefinedOption {
                        path: walked.child(name),
                        site: Site::new("<command line>", None),
                        suggestions,
                    });
                }
            }
            walked = walked.child(name);
        }
        Ok(ev.force(&cur)?)
    }

    /// The declaration of the option at `path`, if it is one (an alias or
    /// a renamed name gives the option it forwards to).
    pub fn declaration(&self, path: &OptionPath) -> Option<Rc<declare::OptionDecl>> {
        let tree = &self.fixpoint.tree;
        match tree.find(path.components()) {
            Some(Node::Option(d)) => Some(d.clone()),
            Some(Node::Alias(a)) => match a.kind.target().map(|t| tree.find(t.components())) {
                Some(Some(Node::Option(d))) => Some(d.clone()),
                _ => None,
            },
            _ => None,
        }
    }

    /// Every declared option (without descending into submodules), in name
    /// order.
    pub fn declarations(&self) -> Vec<Rc<declare::OptionDecl>> {
        self.fixpoint.tree.options()
    }
}
