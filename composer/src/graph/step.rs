//! Steps, their canonical form and their placeholders.
//!
//! A [`Step`] is one recorded [`StepRequest`]: a builder name, an object name
//! and deeply evaluated parameters. Its *inputs* are the union of the string
//! contexts in its parameters — the placeholders of the steps it reads.
//!
//! A step's placeholder is `/imago/pending/<h>-<name>`, where `<h>` is the
//! store's base32 (`0123456789abcdfghijklmnpqrsvwxyz`) of the first 160 bits of BLAKE3 over the step's canonical
//! definition. The canonical definition ([`Step::canonical`]) is a compact
//! JSON text with sorted keys, in which a string that carries context is
//! written as `["s", text, [placeholders…]]` and a list as `["l", items…]`, so
//! no two different definitions share an encoding. Identical requests thus
//! get identical placeholders in every run.

use crate::store::{self, Blake3Digest};
use imago_lang::hook::{StepRequest, StepValue};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Where placeholder paths live; nothing is ever stored there.
pub const PENDING_PREFIX: &str = "/imago/pending/";

/// Why a request cannot become a step.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StepError {
    #[error("invalid step name `{name}`: {reason}")]
    InvalidName { name: String, reason: String },
    #[error("step `{name}`: parameter `{param}` is not a finite number")]
    NonFiniteFloat { name: String, param: String },
    #[error("step `{name}` would contain its own placeholder `{placeholder}`")]
    SelfReference { name: String, placeholder: String },
}

impl StepError {
    /// The stable code of this error (docs/errors.md, E07xx).
    pub fn code(&self) -> crate::codes::Code {
        crate::codes::STEP_INVALID
    }
}

/// One node of the build graph, before its inputs are built.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// `/imago/pending/<hash>-<name>`.
    pub placeholder: String,
    pub builder: String,
    pub name: String,
    pub params: BTreeMap<String, StepValue>,
    /// Placeholders of the steps this one reads (the union of its contexts).
    pub inputs: BTreeSet<String>,
}

impl Step {
    /// Validates a request and computes its inputs and placeholder.
    pub fn new(request: StepRequest) -> Result<Step, StepError> {
        let StepRequest {
            builder,
            name,
            params,
        } = request;
        validate_name(&name)?;
        for (key, value) in &params {
            check_finite(&name, key, value)?;
        }
        let mut inputs = BTreeSet::new();
        for value in params.values() {
            inputs.extend(value.context());
        }
        let mut step = Step {
            placeholder: String::new(),
            builder,
            name,
            params,
            inputs,
        };
        let digest = Blake3Digest::of(step.canonical().as_bytes());
        step.placeholder = format!("{PENDING_PREFIX}{}-{}", digest.store_hash(), step.name);
        let mentions_self = step.inputs.contains(&step.placeholder)
            || step.params.values().any(|v| mentions(v, &step.placeholder));
        if mentions_self {
            return Err(StepError::SelfReference {
                name: step.name,
                placeholder: step.placeholder,
            });
        }
        Ok(step)
    }

    /// The canonical definition the placeholder is derived from.
    pub fn canonical(&self) -> String {
        let mut out = String::from("{\"builder\":");
        push_json_str(&mut out, &self.builder);
        out.push_str(",\"name\":");
        push_json_str(&mut out, &self.name);
        out.push_str(",\"params\":");
        push_attrs(&mut out, &self.params);
        out.push('}');
        out
    }

    /// The parameters as plain JSON (strings lose their context).
    pub fn params_json(&self) -> serde_json::Value {
        serde_json::Value::Object(
            self.params
                .iter()
                .map(|(k, v)| (k.clone(), to_json(v)))
                .collect(),
        )
    }
}

/// Checks a store object name with the store's rules.
pub fn validate_name(name: &str) -> Result<(), StepError> {
    store::path::validate_name(name).map_err(|reason| StepError::InvalidName {
        name: name.to_owned(),
        reason,
    })
}

/// Whether `text` is exactly a placeholder (`/imago/pending/<hash>-<name>`).
pub fn is_placeholder(text: &str) -> bool {
    text.strip_prefix(PENDING_PREFIX)
        .is_some_and(|rest| rest.len() > 33 && rest.as_bytes()[32] == b'-' && !rest.contains('/'))
}

/// A [`StepValue`] as plain JSON. Non-finite floats (rejected by
/// [`Step::new`]) become `null`.
pub fn to_json(value: &StepValue) -> serde_json::Value {
    use serde_json::Value;
    match value {
        StepValue::Null => Value::Null,
        StepValue::Bool(b) => Value::Bool(*b),
        StepValue::Int(i) => Value::from(*i),
        StepValue::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        StepValue::Str { text, .. } => Value::String(text.clone()),
        StepValue::List(items) => Value::Array(items.iter().map(to_json).collect()),
        StepValue::Attrs(attrs) => {
            Value::Object(attrs.iter().map(|(k, v)| (k.clone(), to_json(v))).collect())
        }
    }
}

/// Replaces every occurrence of a key of `paths` (placeholders) by its value
/// (a real store path) in every string of `value`, keys of objects included.
///
/// Placeholders are found by scanning for `/imago/pending/` and looking up
/// the 32-character hash that follows, so the cost is linear in the text
/// whatever the number of inputs.
pub fn substitute(
    value: &serde_json::Value,
    paths: &BTreeMap<String, String>,
) -> serde_json::Value {
    if paths.is_empty() {
        return value.clone();
    }
    let by_hash: HashMap<&str, (&str, &str)> = paths
        .iter()
        .filter_map(|(placeholder, real)| {
            let hash = placeholder.strip_prefix(PENDING_PREFIX)?.get(..32)?;
            Some((hash, (placeholder.as_str(), real.as_str())))
        })
        .collect();
    substitute_with(value, &by_hash)
}

type ByHash<'a> = HashMap<&'a str, (&'a str, &'a str)>;

fn substitute_with(value: &serde_json::Value, by_hash: &ByHash<'_>) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::String(s) => Value::String(replace_in(s, by_hash)),
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| substitute_with(v, by_hash)).collect())
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (replace_in(k, by_hash), substitute_with(v, by_hash)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn replace_in(text: &str, by_hash: &ByHash<'_>) -> String {
    if !text.contains(PENDING_PREFIX) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(PENDING_PREFIX) {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let hit = tail
            .get(PENDING_PREFIX.len()..PENDING_PREFIX.len() + 32)
            .and_then(|hash| by_hash.get(hash))
            .filter(|(placeholder, _)| tail.starts_with(placeholder));
        match hit {
            Some((placeholder, real)) => {
                out.push_str(real);
                rest = &tail[placeholder.len()..];
            }
            None => {
                out.push_str(PENDING_PREFIX);
                rest = &tail[PENDING_PREFIX.len()..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The first string in `value` that still mentions `/imago/pending/`.
pub fn find_pending(value: &serde_json::Value) -> Option<&str> {
    use serde_json::Value;
    match value {
        Value::String(s) => s.contains(PENDING_PREFIX).then_some(s.as_str()),
        Value::Array(items) => items.iter().find_map(find_pending),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            if k.contains(PENDING_PREFIX) {
                Some(k.as_str())
            } else {
                find_pending(v)
            }
        }),
        _ => None,
    }
}

fn mentions(value: &StepValue, needle: &str) -> bool {
    match value {
        StepValue::Str { text, .. } => text.contains(needle),
        StepValue::List(items) => items.iter().any(|v| mentions(v, needle)),
        StepValue::Attrs(attrs) => attrs
            .iter()
            .any(|(k, v)| k.contains(needle) || mentions(v, needle)),
        StepValue::Null | StepValue::Bool(_) | StepValue::Int(_) | StepValue::Float(_) => false,
    }
}

fn check_finite(name: &str, path: &str, value: &StepValue) -> Result<(), StepError> {
    match value {
        StepValue::Float(f) if !f.is_finite() => Err(StepError::NonFiniteFloat {
            name: name.to_owned(),
            param: path.to_owned(),
        }),
        StepValue::List(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| check_finite(name, &format!("{path}[{i}]"), v)),
        StepValue::Attrs(attrs) => attrs
            .iter()
            .try_for_each(|(k, v)| check_finite(name, &format!("{path}.{k}"), v)),
        _ => Ok(()),
    }
}

fn push_json_str(out: &mut String, text: &str) {
    // Serializing a &str to JSON cannot fail.
    out.push_str(&serde_json::Value::from(text).to_string());
}

fn push_attrs(out: &mut String, attrs: &BTreeMap<String, StepValue>) {
    out.push('{');
    for (i, (k, v)) in attrs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_str(out, k);
        out.push(':');
        push_value(out, v);
    }
    out.push('}');
}

fn push_value(out: &mut String, value: &StepValue) {
    match value {
        StepValue::Null => out.push_str("null"),
        StepValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        StepValue::Int(i) => out.push_str(&i.to_string()),
        StepValue::Float(f) => {
            // Tagged so that 1.0 and 1 differ; the bits keep it exact.
            out.push_str(&format!("[\"f\",\"{:016x}\"]", f.to_bits()));
        }
        StepValue::Str { text, context } if context.is_empty() => push_json_str(out, text),
        StepValue::Str { text, context } => {
            out.push_str("[\"s\",");
            push_json_str(out, text);
            out.push_str(",[");
            for (i, c) in context.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_json_str(out, c);
            }
            out.push_str("]]");
        }
        StepValue::List(items) => {
            out.push_str("[\"l\"");
            for item in items {
                out.push(',');
                push_value(out, item);
            }
            out.push(']');
        }
        StepValue::Attrs(attrs) => push_attrs(out, attrs),
    }
}
