//! Names that are not options of their own (declare.rs, `Alias`): which
//! option each forwards to, what reading one gives, and the problems its
//! definitions are (renamed, removed, unsupported, ignored).
//!
//! Forwarding itself happens in `Fixpoint::fragments`: an option's
//! definitions are its own plus those of every name that forwards to it.

use crate::eval::{Evaluator, Value};
use crate::modules::declare::{Alias, AliasKind, Namespace, Node};
use crate::modules::error::ModuleError;
use crate::modules::fixpoint::{Fixpoint, Fragment};
use crate::modules::merge;
use crate::modules::path::OptionPath;
use crate::modules::problems::Problem;
use std::collections::HashMap;
use std::rc::Rc;

/// Which aliases forward to which option; an error when a target is not a
/// declared option.
pub fn forwarding(
    tree: &Namespace,
    prefix: &OptionPath,
) -> Result<HashMap<OptionPath, Vec<Rc<Alias>>>, ModuleError> {
    let mut out: HashMap<OptionPath, Vec<Rc<Alias>>> = HashMap::new();
    for alias in tree.aliases() {
        let Some(to) = alias.kind.target() else {
            continue;
        };
        match tree.find(to.components()) {
            Some(Node::Option(_)) => out.entry(to.clone()).or_default().push(alias.clone()),
            found => {
                let what = match found {
                    Some(Node::Namespace(_)) => "a namespace of options, not an option",
                    Some(Node::Alias(_)) => "itself an alias, not an option",
                    _ => "not a declared option",
                };
                return Err(ModuleError::BadDeclaration {
                    path: alias.full.clone(),
                    message: format!(
                        "`{}` is {} name of `{}`, which is {what}",
                        alias.full,
                        match alias.kind {
                            AliasKind::Renamed { .. } => "the old",
                            _ => "another",
                        },
                        prefix.join(to)
                    ),
                    sites: vec![alias.site.clone()],
                });
            }
        }
    }
    Ok(out)
}

/// Reports every definition of an alias that is not a plain alias: a
/// definition counts unless an `mkIf` removes it (a condition that fails
/// to evaluate counts as true here).
pub fn check(ev: &Evaluator, fp: &Rc<Fixpoint>) -> Result<(), ModuleError> {
    for alias in fp.tree.aliases() {
        if matches!(alias.kind, AliasKind::Alias { .. }) {
            continue;
        }
        let fragments = fp.own_fragments(ev, &alias.path)?;
        for f in fragments.iter() {
            if !defined(ev, f, &alias.full) {
                continue;
            }
            let path = alias.full.clone();
            let site = f.site.clone();
            let problem = match &alias.kind {
                AliasKind::Alias { .. } => continue,
                AliasKind::Renamed { to } => Problem::Renamed {
                    path,
                    to: fp.prefix.join(to),
                    site,
                },
                AliasKind::Removed { message } => Problem::Removed {
                    path,
                    message: message.clone(),
                    site,
                },
                AliasKind::Unsupported { message } => Problem::Unsupported {
                    path,
                    message: message.clone(),
                    site,
                },
                AliasKind::Ignored { message } => Problem::Ignored {
                    path,
                    message: message.clone(),
                    site,
                },
            };
            fp.found(problem);
        }
    }
    Ok(())
}

/// Whether a fragment defines anything once its `mkIf`s are discharged.
fn defined(ev: &Evaluator, f: &Fragment, path: &OptionPath) -> bool {
    for c in &f.conds {
        if let Ok(false) = merge::condition_holds(ev, c, path, &f.site) {
            return false;
        }
    }
    let (mut defs, mut dropped) = (Vec::new(), Vec::new());
    match merge::discharge(
        ev,
        &f.value,
        &f.site,
        f.prio,
        None,
        false,
        path,
        &mut defs,
        &mut dropped,
    ) {
        Ok(()) => !defs.is_empty(),
        Err(_) => true,
    }
}

/// The value of an alias in `config`: its target's, or an error for a
/// name that does not forward.
pub fn value(ev: &Evaluator, fp: &Rc<Fixpoint>, alias: &Alias) -> Result<Value, ModuleError> {
    let (reason, removed) = match &alias.kind {
        AliasKind::Alias { to } | AliasKind::Renamed { to } => {
            return match fp.tree.find(to.components()) {
                Some(Node::Option(decl)) => fp.option_value(ev, decl),
                _ => Err(ModuleError::BadDeclaration {
                    path: alias.full.clone(),
                    message: format!(
                        "`{}` forwards to `{}`, which is not a declared option",
                        alias.full,
                        fp.prefix.join(to)
                    ),
                    sites: vec![alias.site.clone()],
                }),
            };
        }
        AliasKind::Removed { message } => (format!("it has been removed. {message}"), true),
        AliasKind::Unsupported { message } => {
            (format!("Imago has no such option. {message}"), false)
        }
        AliasKind::Ignored { message } => (
            format!("Imago accepts definitions of it and ignores them. {message}"),
            false,
        ),
    };
    Err(ModuleError::Unreadable {
        path: alias.full.clone(),
        reason: reason.trim_end().to_string(),
        removed,
        declared: alias.site.clone(),
    })
}
