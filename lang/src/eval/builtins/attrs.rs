//! Attribute-set builtins: `attrNames`, `mapAttrs`, `listToAttrs`, ...

use super::{Builtin, attrs, list, string};
use crate::eval::Evaluator;
use crate::eval::error::{ErrorKind, EvalError};
use crate::eval::value::{AttrEntry, Attrs, Thunk, Value};
use crate::source::Span;
use smol_str::SmolStr;
use std::collections::{BTreeMap, HashSet};
use std::rc::Rc;

pub(super) fn table() -> Vec<(&'static str, usize, Builtin)> {
    vec![
        ("attrNames", 1, attr_names),
        ("attrValues", 1, attr_values),
        ("hasAttr", 2, has_attr),
        ("getAttr", 2, get_attr),
        ("removeAttrs", 2, remove_attrs),
        ("listToAttrs", 1, list_to_attrs),
        ("mapAttrs", 2, map_attrs),
        ("intersectAttrs", 2, intersect_attrs),
        ("catAttrs", 2, cat_attrs),
        ("zipAttrsWith", 2, zip_attrs_with),
    ]
}

/// A set whose names can be listed (not an open set such as `pkgs`).
fn closed(ev: &Evaluator, v: &Value, span: Span, what: &str) -> Result<Rc<Attrs>, EvalError> {
    let a = attrs(ev, v, span, what)?;
    if let Some(name) = a.open_name() {
        return Err(EvalError::new(
            ErrorKind::OpenSet { name: name.into() },
            span,
        ));
    }
    Ok(a)
}

fn attr_names(ev: &Evaluator, a: &[Value], span: Span) -> Result<Value, EvalError> {
    let set = closed(ev, &a[0], span, "attrNames")?;
    Ok(Value::list(set.names().map(Value::string).collect()))
}

fn attr_values(ev: &Evaluator, a: &[Value], span: Span) -> Result<Value, EvalError> {
    let set = closed(ev, &a[0], span, "attrValues")?;
    Ok(Value::list(
        set.entries().iter().map(|e| e.value.clone()).collect(),
    ))
}

fn has_attr(ev: &Evaluator, a: &[Value], span: Span) -> Result<Value, EvalError> {
    let name = string(ev, &a[0], span, "hasAttr")?;
    let set = attrs(ev, &a[1], span, "hasAttr")?;
    match ev.lookup_attr(&set, name.as_str(), span) {
        Ok(found) => Ok(Value::Bool(found.is_some())),
        Err(e) if set.is_open() && matches!(e.kind(), ErrorKind::Hook(_)) => Ok(Value::Bool(false)),
        Err(e) => Err(e),
    }
}

fn get_attr(ev: &Evaluator, a: &[Value], span: Span) -> Result<Value, EvalError> {
    let name = string(ev, &a[0], span, "getAttr")?;
    let set = ev.force_value(&a[1])?;
    ev.select_one(&set, name.as_str(), span)
}

fn remove_attrs(ev: &Evaluator, a: &[Value], span: Span) -> Result<Value, EvalError> {
    let set = attrs(ev, &a[0], span, "removeAttrs")?;
    let names = list(ev, &a[1], span, "removeAttrs")?;
    let mut remove = HashSet::new();
    for n in names.iter() {
        remove.insert(
            string(ev, n, span, "the names given to removeAttrs")?
                .as_str()
                .to_string(),
        );
    }
    let entries = set
        .entries()
        .iter()
        .filter(|e| !remove.contains(e.name.as_str()))
        .cloned()
        .collect();
    let mut out = Attrs::from_sorted(entries);
    out.open = set.open.clone();
    Ok(Value::Attrs(Rc::new(out)))
}

fn list_to_attrs(ev: &Evaluator, a: &[Value], span: Span) -> Result<Value, EvalError> {
    let items = list(ev, &a[0], span, "listToAttrs")?;
    let mut map: BTreeMap<SmolStr, Value> = BTreeMap::new();
    for item in items.iter() {
        let name = ev.select_one(item, "name", span)?;
        let name = string(ev, &name, span, "the `name` of a listToAttrs element")?;
        let item = item.clone();
        let value = Value::Thunk(Thunk::native(None, move |ev| {
            ev.select_one(&item, "value", span)
        }));
        map.entry(SmolStr::new(name.as_str())).or_insert(value);
    }
    Ok(Value::attrs_from(map))
}

fn map_attrs(ev: &Evaluator, a: &[Value], span: Span) -> Result<Value, EvalError> {
    let set = closed(ev, &a[1], span, "mapAttrs")?;
    let entries = set
        .entries()
        .iter()
        .map(|e| {
            let f = a[0].clone();
            let name = Value::string(e.name.as_str());
            let v = e.value.clone();
            AttrEntry {
                name: e.name.clone(),
                value: Value::Thunk(Thunk::native(None, move |ev| {
                    let g = ev.call_value(&f, name.clone(), span)?;
                    ev.call_value(&g, v.clone(), span)
                })),
                span: e.span,
            }
        })
        .collect();
    Ok(Value::Attrs(Rc::new(Attrs::from_sorted(entries))))
}

fn intersect_attrs(ev: &Evaluator, a: &[Value], span: Span) -> Result<Value, EvalError> {
    let keep = attrs(ev, &a[0], span, "intersectAttrs")?;
    let from = attrs(ev, &a[1], span, "intersectAttrs")?;
    let entries = from
        .entries()
        .iter()
        .filter(|e| keep.get(&e.name).is_some())
        .cloned()
        .collect();
    Ok(Value::Attrs(Rc::new(Attrs::from_sorted(entries))))
}

fn cat_attrs(ev: &Evaluator, a: &[Value], span: Span) -> Result<Value, EvalError> {
    let name = string(ev, &a[0], span, "catAttrs")?;
    let items = list(ev, &a[1], span, "catAttrs")?;
    let mut out = Vec::new();
    for item in items.iter() {
        let set = attrs(ev, item, span, "an element of catAttrs")?;
        if let Some(v) = set.value(name.as_str()) {
            out.push(v.clone());
        }
    }
    Ok(Value::list(out))
}

fn zip_attrs_with(ev: &Evaluator, a: &[Value], span: Span) -> Result<Value, EvalError> {
    let sets = list(ev, &a[1], span, "zipAttrsWith")?;
    let mut grouped: BTreeMap<SmolStr, Vec<Value>> = BTreeMap::new();
    for s in sets.iter() {
        let set = closed(ev, s, span, "an element of zipAttrsWith")?;
        for e in set.entries() {
            grouped
                .entry(e.name.clone())
                .or_default()
                .push(e.value.clone());
        }
    }
    let f = a[0].clone();
    Ok(Value::attrs_from(grouped.into_iter().map(
        |(name, values)| {
            let f = f.clone();
            let n = Value::string(name.as_str());
            let vs = Value::list(values);
            let thunk = Value::Thunk(Thunk::native(None, move |ev| {
                let g = ev.call_value(&f, n.clone(), span)?;
                ev.call_value(&g, vs.clone(), span)
            }));
            (name, thunk)
        },
    )))
}
