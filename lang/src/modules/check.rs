//! The eager checks of a system evaluation, so that one run reports what is
//! wrong with a whole configuration.
//!
//! After the definitions are checked against the declarations (unknown,
//! removed and unsupported names, fixpoint.rs), [`check_values`] merges
//! every option that a *user's* file defines — a file that is not library
//! code (`Evaluator::is_library`) — and records the errors met (type
//! errors, conflicts, evaluation errors in the definitions) in the shared
//! report instead of stopping at the first. Options defined only by the
//! library are left lazy: an option nothing reads may stay broken, as in
//! NixOS.
//!
//! Options that hold submodules are walked into: each submodule evaluation
//! (`users.users.alice`) checks its definitions when it is made, and its own
//! user-defined options are checked the same way. When such an option cannot
//! be merged at all (say a condition on another module's definition
//! fails), each of the user's definitions — each attribute of it, for an
//! attribute set of submodules — is merged on its own as a stand-in, to
//! reach the submodule evaluations: their unknown options and the errors of
//! their user-defined options are reported; errors of the stand-in merge
//! itself are not, since it lacks the other modules' definitions.
//!
//! Not reported here, only when the value is read: "nothing defines it"
//! (E0304), a package the lock lacks (E0215, any refusal of the store
//! hook), and evaluation errors raised inside the library (see [`record`]).

use crate::eval::{Evaluator, Value};
use crate::modules::declare::OptionDecl;
use crate::modules::error::{ModuleError, Site};
use crate::modules::fixpoint::{Fixpoint, Fragment};
use crate::modules::merge;
use crate::modules::types::Type;
use std::collections::HashSet;
use std::rc::Rc;

/// How deeply submodules inside submodules are checked.
const MAX_DEPTH: usize = 32;

/// Checks the values of every option the user's files define, in `fp` and
/// in the submodule evaluations reached from it (see the module
/// documentation). Errors go to the shared report.
pub fn check_values(ev: &Evaluator, fp: &Rc<Fixpoint>) {
    let mut seen = HashSet::new();
    check_fixpoint(ev, fp, &mut seen, 0);
}

fn is_user(ev: &Evaluator, site: &Site) -> bool {
    match site.span {
        Some(span) => !ev.is_library(span.file),
        None => !ev.is_library_path(std::path::Path::new(&*site.file)),
    }
}

/// Records an error of the eager pass, except those that are not a mistake
/// in the user's definitions and would stop a run that never needs the
/// value: "nothing defines it" (E0304), a request the store hook refused
/// (E0215: a package the lock lacks, say; `imago lock` is what fixes that,
/// and a build reports it when it needs the package), and an evaluation
/// error raised inside the library (a library definition merged into the
/// same option; it is reported when the value is read).
fn record(ev: &Evaluator, fp: &Fixpoint, e: &ModuleError) {
    let code = e.code();
    if code == crate::diag::Code("E0304") || code == crate::diag::Code("E0215") {
        return;
    }
    if let ModuleError::Eval(inner) = e
        && ev.is_library(inner.span().file)
    {
        return;
    }
    fp.shared.report.borrow_mut().add_error(e);
}

fn check_fixpoint(ev: &Evaluator, fp: &Rc<Fixpoint>, seen: &mut HashSet<usize>, depth: usize) {
    if depth > MAX_DEPTH || !seen.insert(Rc::as_ptr(fp) as usize) {
        return;
    }
    for decl in fp.tree.options() {
        let Ok(fragments) = fp.fragments(ev, &decl.path) else {
            continue;
        };
        if !fragments.iter().any(|f| is_user(ev, &f.site)) {
            continue;
        }
        // Through `config`, so that the value is computed once and the
        // submodule evaluations found are the ones used later.
        let value = config_value(fp, &decl);
        let subs = decl.ty.has_submodule();
        match value.map(|v| ev.force(&v).map_err(ModuleError::from)) {
            Some(Ok(v)) if subs => walk(ev, fp, &v, &decl.ty, seen, depth, true),
            Some(Err(e)) => {
                record(ev, fp, &e);
                if subs {
                    stand_ins(ev, fp, &decl, &fragments, seen, depth);
                }
            }
            Some(Ok(_)) | None => {}
        }
    }
}

/// The lazily merged value of an option in `fp`'s `config`.
fn config_value(fp: &Fixpoint, decl: &OptionDecl) -> Option<Value> {
    let mut cur = fp.config();
    for name in decl.path.components() {
        cur = cur.as_attrs()?.value(name)?.clone();
    }
    Some(cur)
}

/// Merges each of the user's definitions of a submodule option on its own,
/// to reach the submodule evaluations (and their unknown options) when the
/// option as a whole cannot be merged.
fn stand_ins(
    ev: &Evaluator,
    fp: &Rc<Fixpoint>,
    decl: &OptionDecl,
    fragments: &[Fragment],
    seen: &mut HashSet<usize>,
    depth: usize,
) {
    for f in fragments.iter().filter(|f| is_user(ev, &f.site)) {
        let mut holds = true;
        for c in &f.conds {
            if !matches!(merge::condition_holds(ev, c, &decl.full, &f.site), Ok(true)) {
                holds = false;
            }
        }
        if !holds {
            continue;
        }
        let (mut defs, mut dropped) = (Vec::new(), Vec::new());
        if merge::discharge(
            ev,
            &f.value,
            &f.site,
            f.prio,
            None,
            false,
            &decl.full,
            &mut defs,
            &mut dropped,
        )
        .is_err()
        {
            continue;
        }
        for d in defs {
            for part in split(&decl.ty, d) {
                if let Ok(Some(v)) =
                    merge::merge_values(ev, fp, &decl.full, &decl.site, &decl.ty, vec![part])
                {
                    walk(ev, fp, &v, &decl.ty, seen, depth, false);
                }
            }
        }
    }
}

/// A definition of an attribute set of submodules, one attribute at a time
/// (so that one failing attribute does not hide the others); any other
/// definition whole.
fn split(ty: &Type, d: merge::Def) -> Vec<merge::Def> {
    let per_attribute = matches!(ty, Type::AttrsOf(_) | Type::LazyAttrsOf(_));
    match d.value.as_attrs() {
        Some(attrs) if per_attribute => attrs
            .entries()
            .iter()
            .map(|e| merge::Def {
                value: Value::attrs_from_spanned(vec![(e.name.clone(), e.value.clone(), e.span)]),
                ..d.clone()
            })
            .collect(),
        _ => vec![d],
    }
}

/// Forces a merged value along its type, reaching its submodule
/// evaluations, whose user-defined options are checked in turn. With
/// `report`, errors met forcing the value are recorded (not for stand-ins).
fn walk(
    ev: &Evaluator,
    fp: &Rc<Fixpoint>,
    v: &Value,
    ty: &Type,
    seen: &mut HashSet<usize>,
    depth: usize,
    report: bool,
) {
    let v = match ev.force(v) {
        Ok(v) => v,
        Err(e) => {
            if report {
                record(ev, fp, &ModuleError::Eval(e));
            }
            return;
        }
    };
    match ty {
        Type::Submodule(_) => {
            if let Some(attrs) = v.as_attrs()
                && let Some(sub) = fp.shared.fixpoint_of(attrs)
            {
                check_fixpoint(ev, &sub, seen, depth + 1);
            }
        }
        Type::AttrsOf(t) | Type::LazyAttrsOf(t) => {
            if let Some(attrs) = v.as_attrs() {
                for e in attrs.entries() {
                    walk(ev, fp, &e.value, t, seen, depth, report);
                }
            }
        }
        Type::ListOf(t) => {
            if let Some(items) = v.as_list() {
                for item in items.iter() {
                    walk(ev, fp, item, t, seen, depth, report);
                }
            }
        }
        Type::NullOr(t) if !matches!(v, Value::Null) => {
            walk(ev, fp, &v, t, seen, depth, report);
        }
        Type::OneOf(ts) => {
            for t in ts.iter().filter(|t| t.has_submodule()) {
                walk(ev, fp, &v, t, seen, depth, report);
            }
        }
        _ => {}
    }
}
