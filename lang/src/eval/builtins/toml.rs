//! `fromTOML`: a TOML document as a set.
//!
//! Tables become sets, arrays lists, integers and floats numbers (`inf` and
//! `nan` included, as in Nix), strings strings without context. As in Nix
//! without its experimental `parse-toml-timestamps` feature, dates and
//! times are an error; the message names the key that holds one. A syntax
//! error gives the line and column in the TOML text. The parser (the `toml`
//! crate) follows the TOML specification strictly; Nix's parser accepts a
//! few documents the specification forbids (a table header for a table
//! already made by dotted keys) and clamps integers beyond 64 bits, which
//! are an error here.

use super::{Builtin, string};
use crate::eval::Evaluator;
use crate::eval::error::EvalError;
use crate::eval::value::Value;
use crate::source::Span;
use smol_str::SmolStr;

pub(super) fn table() -> Vec<(&'static str, usize, Builtin)> {
    vec![("fromTOML", 1, from_toml)]
}

fn from_toml(ev: &Evaluator, a: &[Value], span: Span) -> Result<Value, EvalError> {
    let s = string(ev, &a[0], span, "fromTOML")?;
    let text = s.as_str();
    let doc: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        let at = match e.span() {
            Some(r) => {
                let (line, col) = line_col(text, r.start);
                format!(" at line {line}, column {col}")
            }
            None => String::new(),
        };
        EvalError::invalid(
            "fromTOML",
            format!("invalid TOML{at}: {}", e.message().trim_end()),
            span,
        )
    })?;
    let mut path = Vec::new();
    table_value(&doc, &mut path, span)
}

/// One step of the way to a value: a key or an array index.
enum Step {
    Key(String),
    Index(usize),
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

fn table_value(t: &toml::Table, path: &mut Vec<Step>, span: Span) -> Result<Value, EvalError> {
    let mut items = Vec::with_capacity(t.len());
    for (k, v) in t {
        path.push(Step::Key(k.clone()));
        items.push((SmolStr::new(k), toml_value(v, path, span)?));
        path.pop();
    }
    Ok(Value::attrs_from(items))
}

fn toml_value(v: &toml::Value, path: &mut Vec<Step>, span: Span) -> Result<Value, EvalError> {
    use toml::Value as T;
    Ok(match v {
        T::String(s) => Value::string(s.as_str()),
        T::Integer(i) => Value::Int(*i),
        T::Float(f) => Value::Float(*f),
        T::Boolean(b) => Value::Bool(*b),
        T::Datetime(d) => {
            return Err(EvalError::invalid(
                "fromTOML",
                format!(
                    "dates and times are not supported (`{}` is {d})",
                    key_path(path)
                ),
                span,
            ));
        }
        T::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                path.push(Step::Index(i));
                out.push(toml_value(item, path, span)?);
                path.pop();
            }
            Value::list(out)
        }
        T::Table(t) => table_value(t, path, span)?,
    })
}

/// `a.b[0].c`, with keys that are not bare quoted.
fn key_path(path: &[Step]) -> String {
    let mut out = String::new();
    for step in path {
        let part = match step {
            Step::Index(i) => {
                out.push_str(&format!("[{i}]"));
                continue;
            }
            Step::Key(k) => k,
        };
        if !out.is_empty() {
            out.push('.');
        }
        let bare = !part.is_empty()
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if bare {
            out.push_str(part);
        } else {
            out.push_str(&format!("{part:?}"));
        }
    }
    out
}
