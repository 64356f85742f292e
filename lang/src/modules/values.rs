//! Small helpers on evaluated values: deep equality (for "equal definitions
//! do not conflict") and a short one-line rendering for messages.

use crate::eval::{Evaluator, Value};
use crate::modules::error::ModuleError;

/// Whether two values are equal the way `==` sees them, forcing as much as
/// needed. Functions are never equal.
pub fn deep_eq(ev: &Evaluator, a: &Value, b: &Value) -> Result<bool, ModuleError> {
    eq_at(ev, a, b, 0)
}

/// How deep [`deep_eq`] looks before giving up.
const MAX_EQ_DEPTH: usize = 10_000;

fn eq_at(ev: &Evaluator, a: &Value, b: &Value, depth: usize) -> Result<bool, ModuleError> {
    if depth > MAX_EQ_DEPTH {
        return Err(ModuleError::BadDefinition {
            path: crate::modules::path::OptionPath::root(),
            message: format!(
                "cannot compare two definitions nested more than {MAX_EQ_DEPTH} levels deep"
            ),
            site: crate::modules::error::Site::new("<module system>", None),
        });
    }
    let a = ev.force(a)?;
    let b = ev.force(b)?;
    Ok(match (&a, &b) {
        (Value::Null, Value::Null) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Int(x), Value::Int(y)) => x == y,
        (Value::Float(x), Value::Float(y)) => x == y,
        (Value::Int(x), Value::Float(y)) | (Value::Float(y), Value::Int(x)) => (*x as f64) == *y,
        (Value::String(x), Value::String(y)) => x.as_str() == y.as_str(),
        (Value::Path(x), Value::Path(y)) => x == y,
        (Value::List(x), Value::List(y)) => {
            if std::rc::Rc::ptr_eq(x, y) {
                return Ok(true);
            }
            if x.len() != y.len() {
                return Ok(false);
            }
            for (p, q) in x.iter().zip(y.iter()) {
                if !eq_at(ev, p, q, depth + 1)? {
                    return Ok(false);
                }
            }
            true
        }
        (Value::Attrs(x), Value::Attrs(y)) => {
            if std::rc::Rc::ptr_eq(x, y) {
                return Ok(true);
            }
            // Like Nix, two steps (derivations) compare by their outPath.
            if let (Some(p), Some(q)) = (x.value("outPath"), y.value("outPath")) {
                return eq_at(ev, p, q, depth + 1);
            }
            if x.len() != y.len() || !x.names().eq(y.names()) {
                return Ok(false);
            }
            for (p, q) in x.entries().iter().zip(y.entries().iter()) {
                if !eq_at(ev, &p.value, &q.value, depth + 1)? {
                    return Ok(false);
                }
            }
            true
        }
        _ => false,
    })
}

const MAX_SHORT: usize = 40;

/// A short rendering of a value for messages: scalars in full (long strings
/// cut), lists and sets summarised, nothing forced.
pub fn short(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => format!("{f:?}"),
        Value::String(s) => {
            let text = s.as_str();
            if text.chars().count() > MAX_SHORT {
                let cut: String = text.chars().take(MAX_SHORT).collect();
                format!("{:?}", cut + "…")
            } else {
                format!("{text:?}")
            }
        }
        Value::Path(p) => p.display().to_string(),
        Value::List(l) if l.is_empty() => "[ ]".into(),
        Value::List(l) => format!("a list of {} element{}", l.len(), plural(l.len())),
        Value::Attrs(a) => {
            if a.is_empty() {
                return "{ }".into();
            }
            let names: Vec<&str> = a.names().take(3).collect();
            let more = if a.len() > 3 { ", …" } else { "" };
            format!("a set {{ {}{more} }}", names.join(", "))
        }
        Value::Lambda(_) | Value::PrimOp(_) => "a function".into(),
        Value::Thunk(_) => "an unevaluated value".into(),
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
