//! Merging the definitions of one option.
//!
//! The steps follow NixOS's `mergeDefinitions`:
//!
//! 1. **Discharge properties.** Each definition is forced to weak head normal
//!    form; `mkMerge` splits it, `mkIf` keeps it only when the condition is
//!    true, `mkOverride` sets its priority (default 100) and `mkOrder` its
//!    order (default 1000). The outermost priority counts.
//! 2. **Filter overrides.** Only the definitions with the lowest priority
//!    number survive. The option's `default` is a definition of priority 1500
//!    (and is not even looked at when a stronger definition exists).
//! 3. **Sort** the survivors by order, stably (so equal orders keep module
//!    order).
//! 4. **Check and merge by type** ([`merge_values`]): lists concatenate,
//!    `attrsOf` merges per attribute (each attribute going through steps 1–4
//!    again), submodules evaluate their definitions as modules, `lines` joins,
//!    and scalars must all be equal or it is a conflict.
//!
//! Values inside lists and attribute sets whose type needs more merging
//! (submodules, nested lists...) are produced lazily, as NixOS does.

use crate::eval::{Evaluator, NixString, Value};
use crate::modules::error::{ConflictingDef, ModuleError, Site};
use crate::modules::fixpoint::Fixpoint;
use crate::modules::path::OptionPath;
use crate::modules::types::Type;
use crate::modules::values::{deep_eq, short};
use smol_str::SmolStr;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

/// The priority of a plain definition.
pub const DEFAULT_PRIORITY: i64 = 100;
/// The priority of an option's `default` (`mkOptionDefault`).
pub const OPTION_DEFAULT_PRIORITY: i64 = 1500;
/// The order of a list definition without `mkOrder`.
pub const DEFAULT_ORDER: i64 = 1000;

/// One definition after its properties are discharged.
#[derive(Clone)]
pub struct Def {
    /// In weak head normal form.
    pub value: Value,
    pub site: Site,
    pub prio: i64,
    pub order: i64,
    /// Whether this is the option's `default`.
    pub is_default: bool,
}

/// A definition removed by a false `mkIf`.
#[derive(Clone)]
pub struct Dropped {
    pub site: Site,
}

/// A property set made by `mkIf`, `mkMerge`, `mkOverride` or `mkOrder`.
pub enum Property {
    If { condition: Value, content: Value },
    Merge(Vec<Value>),
    Override { priority: i64, content: Value },
    Order { priority: i64, content: Value },
}

/// Recognises a property in a forced value.
pub fn property(
    ev: &Evaluator,
    v: &Value,
    path: &OptionPath,
    site: &Site,
) -> Result<Option<Property>, ModuleError> {
    let Some(attrs) = v.as_attrs() else {
        return Ok(None);
    };
    let Some(t) = attrs.value("_type") else {
        return Ok(None);
    };
    let kind = match ev.force(t)? {
        Value::String(s) => s.as_str().to_string(),
        _ => return Ok(None),
    };
    let bad = |message: String| ModuleError::BadDefinition {
        path: path.clone(),
        message,
        site: site.clone(),
    };
    let field = |name: &str| {
        attrs
            .value(name)
            .cloned()
            .ok_or_else(|| bad(format!("a `{kind}` property without `{name}`")))
    };
    let priority = |what: &str| -> Result<i64, ModuleError> {
        match ev.force(&field("priority")?)? {
            Value::Int(i) => Ok(i),
            other => Err(bad(format!(
                "the priority of `{what}` must be an integer, not {}",
                other.describe()
            ))),
        }
    };
    Ok(Some(match kind.as_str() {
        "if" => Property::If {
            condition: field("condition")?,
            content: field("content")?,
        },
        "merge" => match ev.force(&field("contents")?)? {
            Value::List(items) => Property::Merge(items.to_vec()),
            other => {
                return Err(bad(format!(
                    "`mkMerge` takes a list of definitions, not {}",
                    other.describe()
                )));
            }
        },
        "override" => Property::Override {
            priority: priority("mkOverride")?,
            content: field("content")?,
        },
        "order" => Property::Order {
            priority: priority("mkOrder")?,
            content: field("content")?,
        },
        _ => return Ok(None),
    }))
}

/// Forces an `mkIf` condition.
pub fn condition_holds(
    ev: &Evaluator,
    cond: &Value,
    path: &OptionPath,
    site: &Site,
) -> Result<bool, ModuleError> {
    match ev.force(cond)? {
        Value::Bool(b) => Ok(b),
        other => Err(ModuleError::BadDefinition {
            path: path.clone(),
            message: format!(
                "the condition of `mkIf` in a definition of `{path}` must be a Boolean, not {}",
                other.describe()
            ),
            site: site.clone(),
        }),
    }
}

/// Step 1: resolves `mkMerge`, `mkIf`, `mkOverride` and `mkOrder` around a
/// definition, appending what remains to `out`.
#[allow(clippy::too_many_arguments)]
pub fn discharge(
    ev: &Evaluator,
    value: &Value,
    site: &Site,
    prio: Option<i64>,
    order: Option<i64>,
    is_default: bool,
    path: &OptionPath,
    out: &mut Vec<Def>,
    dropped: &mut Vec<Dropped>,
) -> Result<(), ModuleError> {
    let start = out.len();
    DISCHARGE_DEPTH.with(|d| d.set(d.get() + 1));
    let depth = DISCHARGE_DEPTH.with(|d| d.get());
    let result = if depth > MAX_PROPERTY_NESTING {
        Err(ModuleError::BadDefinition {
            path: path.clone(),
            message: format!(
                "`mkIf`/`mkMerge`/`mkOverride`/`mkOrder` are nested more than \
                 {MAX_PROPERTY_NESTING} levels deep in a definition of `{path}`"
            ),
            site: site.clone(),
        })
    } else {
        discharge_one(ev, value, site, prio, order, is_default, path, out, dropped)
    };
    DISCHARGE_DEPTH.with(|d| d.set(d.get() - 1));
    if result.is_err() {
        out.truncate(start);
    }
    result
}

/// How deeply properties may nest around one definition.
const MAX_PROPERTY_NESTING: usize = 1000;

thread_local! {
    static DISCHARGE_DEPTH: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

#[allow(clippy::too_many_arguments)]
fn discharge_one(
    ev: &Evaluator,
    value: &Value,
    site: &Site,
    prio: Option<i64>,
    order: Option<i64>,
    is_default: bool,
    path: &OptionPath,
    out: &mut Vec<Def>,
    dropped: &mut Vec<Dropped>,
) -> Result<(), ModuleError> {
    let v = ev.force(value)?;
    match property(ev, &v, path, site)? {
        None => out.push(Def {
            value: v,
            site: site.clone(),
            prio: prio.unwrap_or(DEFAULT_PRIORITY),
            order: order.unwrap_or(DEFAULT_ORDER),
            is_default,
        }),
        Some(Property::If { condition, content }) => {
            if condition_holds(ev, &condition, path, site)? {
                discharge(
                    ev, &content, site, prio, order, is_default, path, out, dropped,
                )?;
            } else {
                dropped.push(Dropped { site: site.clone() });
            }
        }
        Some(Property::Merge(items)) => {
            for item in &items {
                discharge(ev, item, site, prio, order, is_default, path, out, dropped)?;
            }
        }
        Some(Property::Override { priority, content }) => discharge(
            ev,
            &content,
            site,
            prio.or(Some(priority)),
            order,
            is_default,
            path,
            out,
            dropped,
        )?,
        Some(Property::Order { priority, content }) => discharge(
            ev,
            &content,
            site,
            prio,
            order.or(Some(priority)),
            is_default,
            path,
            out,
            dropped,
        )?,
    }
    Ok(())
}

/// Steps 2 and 3: keeps the definitions with the lowest priority number,
/// sorted by order (stable).
pub fn select_winners(mut defs: Vec<Def>) -> Vec<Def> {
    let Some(best) = defs.iter().map(|d| d.prio).min() else {
        return defs;
    };
    defs.retain(|d| d.prio == best);
    defs.sort_by_key(|d| d.order);
    defs
}

fn check(
    ev: &Evaluator,
    ty: &Type,
    d: &Def,
    path: &OptionPath,
    declared: &Site,
) -> Result<(), ModuleError> {
    if ty.check(ev, &d.value)? {
        Ok(())
    } else {
        Err(ModuleError::TypeMismatch {
            path: path.clone(),
            expected: ty.description(),
            got: short(&d.value),
            site: d.site.clone(),
            declared: Some(Box::new(declared.clone())),
        })
    }
}

fn conflict(path: &OptionPath, defs: &[Def]) -> ModuleError {
    ModuleError::Conflict {
        path: path.clone(),
        defs: defs
            .iter()
            .map(|d| ConflictingDef {
                site: d.site.clone(),
                value: short(&d.value),
            })
            .collect(),
    }
}

/// Merges definitions that must all be equal.
fn merge_equal(ev: &Evaluator, path: &OptionPath, defs: &[Def]) -> Result<Value, ModuleError> {
    let first = &defs[0];
    for d in &defs[1..] {
        if !deep_eq(ev, &first.value, &d.value)? {
            return Err(conflict(path, defs));
        }
    }
    Ok(first.value.clone())
}

/// Step 4: checks and merges winning definitions (already forced, sorted).
/// `None` when there is no definition. `declared` is where the option is
/// declared (type errors show it).
pub fn merge_values(
    ev: &Evaluator,
    fp: &Rc<Fixpoint>,
    path: &OptionPath,
    declared: &Site,
    ty: &Rc<Type>,
    defs: Vec<Def>,
) -> Result<Option<Value>, ModuleError> {
    if defs.is_empty() {
        return Ok(None);
    }
    for d in &defs {
        check(ev, ty, d, path, declared)?;
    }
    let merged = match &**ty {
        Type::ListOf(elem) => {
            let mut items = Vec::new();
            let mut dropped = Vec::new();
            for d in &defs {
                let Some(list) = d.value.as_list() else {
                    continue;
                };
                for item in list.iter() {
                    let mut item_defs = Vec::new();
                    // Errors in a property around an element name the list.
                    discharge(
                        ev,
                        item,
                        &d.site,
                        None,
                        None,
                        false,
                        path,
                        &mut item_defs,
                        &mut dropped,
                    )?;
                    for idef in item_defs {
                        let index = items.len();
                        let item_path = || path.child(&format!("[{index}]"));
                        items.push(element(ev, fp, &item_path, declared, elem, vec![idef])?);
                    }
                }
            }
            Value::list(items)
        }
        Type::AttrsOf(elem) => merge_attrs(ev, fp, path, declared, elem, &defs)?,
        Type::LazyAttrsOf(elem) => merge_lazy_attrs(fp, path, declared, elem, &defs),
        Type::Anything => {
            let all_sets = defs.iter().all(|d| {
                d.value
                    .as_attrs()
                    .is_some_and(|a| a.value("outPath").is_none())
            });
            if defs.len() > 1 && all_sets {
                merge_attrs(ev, fp, path, declared, ty, &defs)?
            } else {
                merge_equal(ev, path, &defs)?
            }
        }
        Type::NullOr(inner) => {
            let nulls = defs
                .iter()
                .filter(|d| matches!(d.value, Value::Null))
                .count();
            if nulls == defs.len() {
                Value::Null
            } else if nulls == 0 {
                return merge_values(ev, fp, path, declared, inner, defs);
            } else {
                return Err(conflict(path, &defs));
            }
        }
        Type::OneOf(types) => {
            for t in types {
                let mut all = true;
                for d in &defs {
                    if !t.check(ev, &d.value)? {
                        all = false;
                        break;
                    }
                }
                if all {
                    return merge_values(ev, fp, path, declared, t, defs);
                }
            }
            return Err(conflict(path, &defs));
        }
        Type::Separated(sep) => {
            let mut text = String::new();
            let mut context = BTreeSet::new();
            for (i, d) in defs.iter().enumerate() {
                if let Value::String(s) = &d.value {
                    if i > 0 {
                        text.push_str(sep);
                    }
                    text.push_str(s.as_str());
                    s.extend_context(&mut context);
                }
            }
            Value::String(NixString::with_context(text, context))
        }
        Type::Attrs => {
            let mut acc: Option<crate::eval::Attrs> = None;
            for d in &defs {
                if let Some(a) = d.value.as_attrs() {
                    acc = Some(match acc {
                        None => (**a).clone(),
                        Some(prev) => prev.update(a),
                    });
                }
            }
            match acc {
                Some(a) => Value::Attrs(Rc::new(a)),
                None => Value::attrs_from(Vec::<(SmolStr, Value)>::new()),
            }
        }
        Type::Submodule(modules) => submodule(ev, fp, path, modules, &defs)?,
        Type::FunctionTo(result) => {
            if defs.len() == 1 {
                defs[0].value.clone()
            } else {
                function_to(fp, path, declared, result, defs)
            }
        }
        Type::Raw => {
            if defs.len() > 1 {
                return Err(conflict(path, &defs));
            }
            defs[0].value.clone()
        }
        Type::Bool
        | Type::Int
        | Type::IntBetween { .. }
        | Type::Float
        | Type::Number
        | Type::Str
        | Type::NonEmptyStr
        | Type::StrMatching(_)
        | Type::Path
        | Type::Package
        | Type::Enum(_)
        | Type::Custom { .. } => merge_equal(ev, path, &defs)?,
    };
    Ok(Some(merged))
}

/// The value of one list element or attribute: checked now when the type
/// needs no further merging, else merged lazily.
/// `path` computes the element's option path (only needed for messages and
/// lazy values, so plain elements never build it).
fn element(
    ev: &Evaluator,
    fp: &Rc<Fixpoint>,
    path: &dyn Fn() -> OptionPath,
    declared: &Site,
    ty: &Rc<Type>,
    defs: Vec<Def>,
) -> Result<Value, ModuleError> {
    if ty.is_simple() && defs.len() == 1 {
        if !ty.check(ev, &defs[0].value)? {
            check(ev, ty, &defs[0], &path(), declared)?;
        }
        return Ok(defs[0].value.clone());
    }
    let (fp, path, declared, ty) = (fp.clone(), path(), declared.clone(), ty.clone());
    let name = path.to_string();
    Ok(Value::lazy(Some(&name), move |ev| {
        match merge_values(ev, &fp, &path, &declared, &ty, defs.clone()) {
            Ok(Some(v)) => Ok(v),
            Ok(None) => Ok(Value::Null),
            Err(e) => Err(e.into_eval()),
        }
    }))
}

/// `attrsOf`: each attribute's definitions are discharged (so `mkIf false`
/// removes the attribute), filtered by priority and merged by `elem`.
fn merge_attrs(
    ev: &Evaluator,
    fp: &Rc<Fixpoint>,
    path: &OptionPath,
    declared: &Site,
    elem: &Rc<Type>,
    defs: &[Def],
) -> Result<Value, ModuleError> {
    let mut per_key: BTreeMap<SmolStr, (Vec<Def>, Option<crate::source::Span>)> = BTreeMap::new();
    let mut dropped = Vec::new();
    for d in defs {
        let Some(attrs) = d.value.as_attrs() else {
            continue;
        };
        for entry in attrs.entries() {
            let site = Site::new(d.site.file.clone(), entry.span.or(d.site.span));
            let slot = per_key
                .entry(entry.name.clone())
                .or_insert_with(|| (Vec::new(), entry.span));
            discharge(
                ev,
                &entry.value,
                &site,
                None,
                None,
                false,
                path,
                &mut slot.0,
                &mut dropped,
            )?;
        }
    }
    let mut out = Vec::with_capacity(per_key.len());
    for (name, (kdefs, span)) in per_key {
        if kdefs.is_empty() {
            continue;
        }
        let winners = select_winners(kdefs);
        let value = element(ev, fp, &|| path.child(&name), declared, elem, winners)?;
        out.push((name, value, span));
    }
    Ok(Value::attrs_from_spanned(out))
}

/// The definitions of one attribute (value and site) and where the first
/// was written.
type RawKey = (Vec<(Value, Site)>, Option<crate::source::Span>);

/// `lazyAttrsOf`: every attribute name any definition uses is listed; each
/// value is discharged and merged only when read.
fn merge_lazy_attrs(
    fp: &Rc<Fixpoint>,
    path: &OptionPath,
    declared: &Site,
    elem: &Rc<Type>,
    defs: &[Def],
) -> Value {
    let mut per_key: BTreeMap<SmolStr, RawKey> = BTreeMap::new();
    for d in defs {
        let Some(attrs) = d.value.as_attrs() else {
            continue;
        };
        for entry in attrs.entries() {
            let site = Site::new(d.site.file.clone(), entry.span.or(d.site.span));
            per_key
                .entry(entry.name.clone())
                .or_insert_with(|| (Vec::new(), entry.span))
                .0
                .push((entry.value.clone(), site));
        }
    }
    let out = per_key.into_iter().map(|(name, (raw, span))| {
        let (fp, key_path, declared, elem) = (
            fp.clone(),
            path.child(&name),
            declared.clone(),
            elem.clone(),
        );
        let label = key_path.to_string();
        let value = Value::lazy(Some(&label), move |ev| {
            let run = || -> Result<Value, ModuleError> {
                let mut kdefs = Vec::new();
                let mut dropped = Vec::new();
                for (value, site) in &raw {
                    discharge(
                        ev,
                        value,
                        site,
                        None,
                        None,
                        false,
                        &key_path,
                        &mut kdefs,
                        &mut dropped,
                    )?;
                }
                let first = raw.first().map(|(_, s)| s.clone());
                match merge_values(ev, &fp, &key_path, &declared, &elem, select_winners(kdefs))? {
                    Some(v) => Ok(v),
                    None => Err(ModuleError::NoValue {
                        path: key_path.clone(),
                        declared: first.unwrap_or_else(|| Site::new("<unknown>", None)),
                    }),
                }
            };
            run().map_err(ModuleError::into_eval)
        });
        (name, value, span)
    });
    Value::attrs_from_spanned(out.collect::<Vec<_>>())
}

/// A submodule: the type's own modules plus each definition as a module,
/// evaluated with `name` set to the last component of the path.
fn submodule(
    ev: &Evaluator,
    fp: &Rc<Fixpoint>,
    path: &OptionPath,
    modules: &[(Value, Site)],
    defs: &[Def],
) -> Result<Value, ModuleError> {
    use crate::modules::collect::Source;
    let mut sources: Vec<Source> = modules
        .iter()
        .map(|(value, site)| Source::Value {
            value: value.clone(),
            site: site.clone(),
        })
        .collect();
    for d in defs {
        let source = if d.value.as_attrs().is_some() {
            Source::ConfigOnly {
                value: d.value.clone(),
                site: d.site.clone(),
            }
        } else {
            Source::Value {
                value: d.value.clone(),
                site: d.site.clone(),
            }
        };
        sources.push(source);
    }
    let name = path
        .last()
        .unwrap_or("")
        .trim_matches(['[', ']'])
        .to_string();
    let mut args: Vec<(SmolStr, Value)> = fp
        .special_args
        .iter()
        .filter(|(n, _)| n != "name")
        .cloned()
        .collect();
    args.push((SmolStr::new("name"), Value::string(name)));
    let sub = Fixpoint::evaluate(ev, fp.shared.clone(), path.clone(), sources, args)?;
    Ok(sub.config())
}

/// `functionTo`: a function that calls every definition and merges the
/// results.
fn function_to(
    fp: &Rc<Fixpoint>,
    path: &OptionPath,
    declared: &Site,
    result: &Rc<Type>,
    defs: Vec<Def>,
) -> Value {
    let (fp, path, declared, result) = (fp.clone(), path.clone(), declared.clone(), result.clone());
    let name = path.to_string();
    Value::primop(&name, 1, move |ev, args, _span| {
        let mut out = Vec::with_capacity(defs.len());
        for d in &defs {
            let r = ev.call(&d.value, args[0].clone())?;
            let mut dropped = Vec::new();
            discharge(
                ev,
                &r,
                &d.site,
                None,
                None,
                false,
                &path,
                &mut out,
                &mut dropped,
            )
            .map_err(ModuleError::into_eval)?;
        }
        let winners = select_winners(out);
        match merge_values(ev, &fp, &path, &declared, &result, winners) {
            Ok(Some(v)) => Ok(v),
            Ok(None) => Ok(Value::Null),
            Err(e) => Err(e.into_eval()),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(value: i64, prio: i64, order: i64) -> Def {
        Def {
            value: Value::Int(value),
            site: Site::new("t", None),
            prio,
            order,
            is_default: false,
        }
    }

    fn values(defs: &[Def]) -> Vec<i64> {
        defs.iter()
            .map(|d| match d.value {
                Value::Int(i) => i,
                _ => -1,
            })
            .collect()
    }

    #[test]
    fn lowest_priority_number_wins() {
        let defs = vec![
            def(1, DEFAULT_PRIORITY, DEFAULT_ORDER),
            def(2, 1000, DEFAULT_ORDER),
            def(3, 50, DEFAULT_ORDER),
            def(4, OPTION_DEFAULT_PRIORITY, DEFAULT_ORDER),
            def(5, 50, DEFAULT_ORDER),
        ];
        assert_eq!(values(&select_winners(defs)), vec![3, 5]);
    }

    #[test]
    fn winners_sort_by_order_and_keep_module_order() {
        let defs = vec![
            def(1, 100, 1000),
            def(2, 100, 1500),
            def(3, 100, 500),
            def(4, 100, 1000),
            def(5, 100, 500),
        ];
        assert_eq!(values(&select_winners(defs)), vec![3, 5, 1, 4, 2]);
    }

    #[test]
    fn no_definitions_stay_none() {
        assert!(select_winners(Vec::new()).is_empty());
    }
}
