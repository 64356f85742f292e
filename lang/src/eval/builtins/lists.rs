//! List builtins: `map`, `filter`, `foldl'`, `sort`, `genList`, ...

use super::{Builtin, attrs, boolean, int, list, string};
use crate::eval::Evaluator;
use crate::eval::error::EvalError;
use crate::eval::value::{ApplyFn, Thunk, Value};
use crate::source::Span;
use smol_str::SmolStr;
use std::collections::BTreeMap;
use std::rc::Rc;

pub(super) fn table() -> Vec<(&'static str, usize, Builtin)> {
    vec![
        ("map", 2, map),
        ("filter", 2, filter),
        ("length", 1, |ev, a, s| {
            Ok(Value::Int(list(ev, &a[0], s, "length")?.len() as i64))
        }),
        ("head", 1, head),
        ("tail", 1, tail),
        ("elem", 2, elem),
        ("elemAt", 2, elem_at),
        ("concatLists", 1, concat_lists),
        ("concatMap", 2, concat_map),
        ("genList", 2, gen_list),
        ("foldl'", 3, foldl),
        ("sort", 2, sort),
        ("any", 2, |ev, a, s| any_all(ev, a, s, true)),
        ("all", 2, |ev, a, s| any_all(ev, a, s, false)),
        ("partition", 2, partition),
        ("groupBy", 2, group_by),
        ("genericClosure", 1, generic_closure),
    ]
}

/// `f x`, lazily.
fn lazy_call(call: &Rc<ApplyFn>, x: Value) -> Value {
    Value::Thunk(Thunk::apply(call.clone(), x))
}

fn map(ev: &Evaluator, a: &[Value], span: Span) -> Result<Value, EvalError> {
    let items = list(ev, &a[1], span, "map")?;
    let call = ApplyFn::new(a[0].clone(), span);
    Ok(Value::list(
        items.iter().map(|x| lazy_call(&call, x.clone())).collect(),
    ))
}

fn filter(ev: &Evaluator, a: &[Value], span: Span) -> Result<Value, EvalError> {
    let items = list(ev, &a[1], span, "filter")?;
    let mut out = Vec::new();
    for x in items.iter() {
        let keep = ev.call_value(&a[0], x.clone(), span)?;
        if boolean(ev, &keep, span, "the predicate of filter")? {
            out.push(x.clone());
        }
    }
    Ok(Value::list(out))
}

fn head(ev: &Evaluator, a: &[Value], span: Span) -> Result<Value, EvalError> {
    let items = list(ev, &a[0], span, "head")?;
    match items.first() {
        Some(x) => ev.force_value(x),
        None => Err(EvalError::invalid("head", "the list is empty", span)),
    }
}

fn tail(ev: &Evaluator, a: &[Value], span: Span) -> Result<Value, EvalError> {
    let items = list(ev, &a[0], span, "tail")?;
    if items.is_empty() {
        return Err(EvalError::invalid("tail", "the list is empty", span));
    }
    Ok(Value::list(items[1..].to_vec()))
}

fn elem(ev: &Evaluator, a: &[Value], span: Span) -> Result<Value, EvalError> {
    let items = list(ev, &a[1], span, "elem")?;
    for x in items.iter() {
        if ev.values_equal(&a[0], x, span)? {
            return Ok(Value::Bool(true));
        }
    }
    Ok(Value::Bool(false))
}

fn elem_at(ev: &Evaluator, a: &[Value], span: Span) -> Result<Value, EvalError> {
    let items = list(ev, &a[0], span, "elemAt")?;
    let i = int(ev, &a[1], span, "elemAt")?;
    match usize::try_from(i).ok().and_then(|i| items.get(i)) {
        Some(x) => ev.force_value(x),
        None => Err(EvalError::invalid(
            "elemAt",
            format!(
                "index {i} is out of bounds for a list of length {}",
                items.len()
            ),
            span,
        )),
    }
}

fn concat_lists(ev: &Evaluator, a: &[Value], span: Span) -> Result<Value, EvalError> {
    let outer = list(ev, &a[0], span, "concatLists")?;
    let mut out = Vec::new();
    for l in outer.iter() {
        out.extend(
            list(ev, l, span, "an element of concatLists")?
                .iter()
                .cloned(),
        );
    }
    Ok(Value::list(out))
}

fn concat_map(ev: &Evaluator, a: &[Value], span: Span) -> Result<Value, EvalError> {
    let items = list(ev, &a[1], span, "concatMap")?;
    let mut out = Vec::new();
    for x in items.iter() {
        let r = ev.call_value(&a[0], x.clone(), span)?;
        out.extend(
            list(ev, &r, span, "the result of concatMap's function")?
                .iter()
                .cloned(),
        );
    }
    Ok(Value::list(out))
}

fn gen_list(ev: &Evaluator, a: &[Value], span: Span) -> Result<Value, EvalError> {
    let n = int(ev, &a[1], span, "genList")?;
    if n < 0 {
        return Err(EvalError::invalid(
            "genList",
            format!("cannot make a list of length {n}"),
            span,
        ));
    }
    let call = ApplyFn::new(a[0].clone(), span);
    Ok(Value::list(
        (0..n).map(|i| lazy_call(&call, Value::Int(i))).collect(),
    ))
}

fn foldl(ev: &Evaluator, a: &[Value], span: Span) -> Result<Value, EvalError> {
    let items = list(ev, &a[2], span, "foldl'")?;
    let mut acc = ev.force_value(&a[1])?;
    for x in items.iter() {
        let g = ev.call_value(&a[0], acc, span)?;
        acc = ev.call_value(&g, x.clone(), span)?;
    }
    Ok(acc)
}

/// A stable merge sort with a fallible comparator (`less(a, b)`).
fn sort(ev: &Evaluator, a: &[Value], span: Span) -> Result<Value, EvalError> {
    let items = list(ev, &a[1], span, "sort")?;
    let less = |x: &Value, y: &Value| -> Result<bool, EvalError> {
        let g = ev.call_value(&a[0], x.clone(), span)?;
        let r = ev.call_value(&g, y.clone(), span)?;
        boolean(ev, &r, span, "the comparator of sort")
    };
    let mut v: Vec<Value> = items.to_vec();
    let mut buf: Vec<Value> = Vec::with_capacity(v.len());
    let mut width = 1;
    while width < v.len() {
        buf.clear();
        let mut start = 0;
        while start < v.len() {
            let mid = (start + width).min(v.len());
            let end = (start + 2 * width).min(v.len());
            let (mut i, mut j) = (start, mid);
            while i < mid && j < end {
                if less(&v[j], &v[i])? {
                    buf.push(v[j].clone());
                    j += 1;
                } else {
                    buf.push(v[i].clone());
                    i += 1;
                }
            }
            buf.extend_from_slice(&v[i..mid]);
            buf.extend_from_slice(&v[j..end]);
            start = end;
        }
        std::mem::swap(&mut v, &mut buf);
        width *= 2;
    }
    Ok(Value::list(v))
}

fn any_all(ev: &Evaluator, a: &[Value], span: Span, any: bool) -> Result<Value, EvalError> {
    let name = if any { "any" } else { "all" };
    let items = list(ev, &a[1], span, name)?;
    for x in items.iter() {
        let r = ev.call_value(&a[0], x.clone(), span)?;
        if boolean(ev, &r, span, name)? == any {
            return Ok(Value::Bool(any));
        }
    }
    Ok(Value::Bool(!any))
}

fn partition(ev: &Evaluator, a: &[Value], span: Span) -> Result<Value, EvalError> {
    let items = list(ev, &a[1], span, "partition")?;
    let (mut right, mut wrong) = (Vec::new(), Vec::new());
    for x in items.iter() {
        let r = ev.call_value(&a[0], x.clone(), span)?;
        if boolean(ev, &r, span, "the predicate of partition")? {
            right.push(x.clone());
        } else {
            wrong.push(x.clone());
        }
    }
    Ok(Value::attrs_from([
        ("right", Value::list(right)),
        ("wrong", Value::list(wrong)),
    ]))
}

fn group_by(ev: &Evaluator, a: &[Value], span: Span) -> Result<Value, EvalError> {
    let items = list(ev, &a[1], span, "groupBy")?;
    let mut groups: BTreeMap<SmolStr, Vec<Value>> = BTreeMap::new();
    for x in items.iter() {
        let k = ev.call_value(&a[0], x.clone(), span)?;
        let k = string(ev, &k, span, "the key of groupBy")?;
        groups
            .entry(SmolStr::new(k.as_str()))
            .or_default()
            .push(x.clone());
    }
    Ok(Value::attrs_from(
        groups.into_iter().map(|(k, v)| (k, Value::list(v))),
    ))
}

fn generic_closure(ev: &Evaluator, a: &[Value], span: Span) -> Result<Value, EvalError> {
    let args = attrs(ev, &a[0], span, "genericClosure")?;
    let arg_value = Value::Attrs(args.clone());
    let start = ev.select_one(&arg_value, "startSet", span)?;
    let operator = ev.select_one(&arg_value, "operator", span)?;
    let mut queue: std::collections::VecDeque<Value> =
        list(ev, &start, span, "genericClosure's startSet")?
            .iter()
            .cloned()
            .collect();
    let mut keys: Vec<Value> = Vec::new();
    let mut out = Vec::new();
    while let Some(item) = queue.pop_front() {
        let key = ev.select_one(&item, "key", span)?;
        let mut seen = false;
        for k in &keys {
            if ev.values_equal(k, &key, span)? {
                seen = true;
                break;
            }
        }
        if seen {
            continue;
        }
        keys.push(key);
        out.push(item.clone());
        let next = ev.call_value(&operator, item, span)?;
        queue.extend(
            list(ev, &next, span, "the result of genericClosure's operator")?
                .iter()
                .cloned(),
        );
    }
    Ok(Value::list(out))
}
