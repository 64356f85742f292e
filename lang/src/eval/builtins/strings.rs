//! String, regular-expression, JSON, hashing and file builtins.
//!
//! Strings are UTF-8 text, but lengths and `substring` offsets count bytes,
//! as in Nix (a cut inside a character yields U+FFFD). `match` and `split`
//! use the `regex` crate: its syntax is a superset of POSIX ERE for the common
//! cases, but alternation takes the first alternative that matches rather
//! than the longest, back-references are not supported, and bracket classes
//! such as `[[:alpha:]]` work. Contexts propagate through every builtin that
//! builds a string from other strings.

use super::{Builtin, list, path, string};
use crate::eval::error::{ErrorKind, EvalError};
use crate::eval::paths::{base_name, dir_name};
use crate::eval::value::{NixString, Value};
use crate::eval::{CoerceMode, Evaluator};
use crate::source::Span;
use smol_str::SmolStr;
use std::collections::BTreeSet;
use std::rc::Rc;

pub(super) fn table() -> Vec<(&'static str, usize, Builtin)> {
    vec![
        ("toString", 1, |ev, a, s| {
            Ok(Value::String(ev.coerce(&a[0], CoerceMode::ToString, s)?))
        }),
        ("stringLength", 1, string_length),
        ("substring", 3, substring),
        ("concatStringsSep", 2, concat_strings_sep),
        ("replaceStrings", 3, replace_strings),
        ("match", 2, regex_match),
        ("split", 2, regex_split),
        ("baseNameOf", 1, base_name_of),
        ("dirOf", 1, dir_of),
        ("toJSON", 1, to_json),
        ("fromJSON", 1, from_json),
        ("readFile", 1, read_file),
        ("pathExists", 1, path_exists),
        ("hashString", 2, hash_string),
        ("unsafeDiscardStringContext", 1, |ev, a, s| {
            let text = ev.coerce(&a[0], CoerceMode::Interpolate, s)?;
            Ok(Value::string(text.as_str()))
        }),
    ]
}

fn string_length(ev: &Evaluator, a: &[Value], span: Span) -> Result<Value, EvalError> {
    let s = ev.coerce(&a[0], CoerceMode::Interpolate, span)?;
    Ok(Value::Int(s.as_str().len() as i64))
}

fn substring(ev: &Evaluator, a: &[Value], span: Span) -> Result<Value, EvalError> {
    let start = super::int(ev, &a[0], span, "substring's start")?;
    let len = super::int(ev, &a[1], span, "substring's length")?;
    let s = ev.coerce(&a[2], CoerceMode::Interpolate, span)?;
    if start < 0 {
        return Err(EvalError::invalid(
            "substring",
            format!("negative start position {start}"),
            span,
        ));
    }
    let bytes = s.as_str().as_bytes();
    let start = (start as usize).min(bytes.len());
    let end = if len < 0 {
        bytes.len()
    } else {
        start.saturating_add(len as usize).min(bytes.len())
    };
    let text = String::from_utf8_lossy(&bytes[start..end]).into_owned();
    Ok(Value::String(NixString::with_context(
        text,
        s.context_set(),
    )))
}

fn concat_strings_sep(ev: &Evaluator, a: &[Value], span: Span) -> Result<Value, EvalError> {
    let sep = string(ev, &a[0], span, "concatStringsSep's separator")?;
    let items = list(ev, &a[1], span, "concatStringsSep")?;
    let mut ctx = sep.context_set();
    let mut text = String::new();
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            text.push_str(sep.as_str());
        }
        let s = ev.coerce(item, CoerceMode::Interpolate, span)?;
        text.push_str(s.as_str());
        s.extend_context(&mut ctx);
    }
    Ok(Value::String(NixString::with_context(text, ctx)))
}

fn replace_strings(ev: &Evaluator, a: &[Value], span: Span) -> Result<Value, EvalError> {
    let from = list(ev, &a[0], span, "replaceStrings")?;
    let to = list(ev, &a[1], span, "replaceStrings")?;
    if from.len() != to.len() {
        return Err(EvalError::invalid(
            "replaceStrings",
            format!(
                "the lists differ in length ({} and {})",
                from.len(),
                to.len()
            ),
            span,
        ));
    }
    let s = ev.coerce(&a[2], CoerceMode::Interpolate, span)?;
    let froms: Vec<NixString> = from
        .iter()
        .map(|f| string(ev, f, span, "replaceStrings' patterns"))
        .collect::<Result<_, _>>()?;
    let mut tos: Vec<Option<NixString>> = vec![None; to.len()];
    let mut ctx = s.context_set();
    let text = s.as_str();
    let mut out = String::with_capacity(text.len());
    let mut p = 0;
    while p <= text.len() {
        let mut matched = false;
        for (i, f) in froms.iter().enumerate() {
            if text[p..].starts_with(f.as_str()) {
                if tos[i].is_none() {
                    tos[i] = Some(string(ev, &to[i], span, "replaceStrings' replacements")?);
                }
                if let Some(t) = &tos[i] {
                    out.push_str(t.as_str());
                    t.extend_context(&mut ctx);
                }
                matched = true;
                if f.as_str().is_empty() {
                    if let Some(c) = text[p..].chars().next() {
                        out.push(c);
                        p += c.len_utf8();
                    } else {
                        p += 1;
                    }
                } else {
                    p += f.as_str().len();
                }
                break;
            }
        }
        if !matched {
            match text[p..].chars().next() {
                Some(c) => {
                    out.push(c);
                    p += c.len_utf8();
                }
                None => p += 1,
            }
        }
    }
    Ok(Value::String(NixString::with_context(out, ctx)))
}

impl Evaluator {
    /// A compiled regular expression (cached per pattern).
    fn regex(
        &self,
        pattern: &str,
        anchored: bool,
        function: &'static str,
        span: Span,
    ) -> Result<Rc<regex::Regex>, EvalError> {
        let key = format!("{}{pattern}", if anchored { "A" } else { "U" });
        if let Some(r) = self.regex_cache.borrow().get(&key) {
            return Ok(r.clone());
        }
        let full = if anchored {
            format!("^(?:{pattern})$")
        } else {
            pattern.to_string()
        };
        let r = regex::Regex::new(&full).map_err(|e| {
            EvalError::invalid(
                function,
                format!("invalid regular expression `{pattern}`: {e}"),
                span,
            )
        })?;
        let r = Rc::new(r);
        self.regex_cache.borrow_mut().insert(key, r.clone());
        Ok(r)
    }
}

fn groups(caps: &regex::Captures<'_>, ctx: &BTreeSet<String>) -> Value {
    Value::list(
        caps.iter()
            .skip(1)
            .map(|m| match m {
                Some(m) => Value::String(NixString::with_context(m.as_str(), ctx.clone())),
                None => Value::Null,
            })
            .collect(),
    )
}

fn regex_match(ev: &Evaluator, a: &[Value], span: Span) -> Result<Value, EvalError> {
    let re = string(ev, &a[0], span, "match's regular expression")?;
    let s = ev.coerce(&a[1], CoerceMode::Interpolate, span)?;
    let r = ev.regex(re.as_str(), true, "match", span)?;
    Ok(match r.captures(s.as_str()) {
        Some(c) => groups(&c, &s.context_set()),
        None => Value::Null,
    })
}

fn regex_split(ev: &Evaluator, a: &[Value], span: Span) -> Result<Value, EvalError> {
    let re = string(ev, &a[0], span, "split's regular expression")?;
    let s = ev.coerce(&a[1], CoerceMode::Interpolate, span)?;
    let r = ev.regex(re.as_str(), false, "split", span)?;
    let ctx = s.context_set();
    let text = s.as_str();
    let mut out = Vec::new();
    let mut last = 0;
    for c in r.captures_iter(text) {
        let Some(m) = c.get(0) else { continue };
        out.push(Value::String(NixString::with_context(
            &text[last..m.start()],
            ctx.clone(),
        )));
        out.push(groups(&c, &ctx));
        last = m.end();
    }
    out.push(Value::String(NixString::with_context(&text[last..], ctx)));
    Ok(Value::list(out))
}

fn base_name_of(ev: &Evaluator, a: &[Value], span: Span) -> Result<Value, EvalError> {
    let s = ev.coerce(&a[0], CoerceMode::ToString, span)?;
    Ok(Value::String(NixString::with_context(
        base_name(s.as_str()),
        s.context_set(),
    )))
}

fn dir_of(ev: &Evaluator, a: &[Value], span: Span) -> Result<Value, EvalError> {
    match ev.force_value(&a[0])? {
        Value::Path(p) => {
            let text = p.to_string_lossy().into_owned();
            Ok(Value::Path(Rc::from(std::path::Path::new(dir_name(&text)))))
        }
        other => {
            let s = ev.coerce(&other, CoerceMode::Interpolate, span)?;
            Ok(Value::String(NixString::with_context(
                dir_name(s.as_str()),
                s.context_set(),
            )))
        }
    }
}

fn to_json(ev: &Evaluator, a: &[Value], span: Span) -> Result<Value, EvalError> {
    let mut ctx = BTreeSet::new();
    let j = ev.json_value(&a[0], span, &mut ctx)?;
    Ok(Value::String(NixString::with_context(j.to_string(), ctx)))
}

fn from_json(ev: &Evaluator, a: &[Value], span: Span) -> Result<Value, EvalError> {
    let s = string(ev, &a[0], span, "fromJSON")?;
    let j: serde_json::Value = serde_json::from_str(s.as_str())
        .map_err(|e| EvalError::invalid("fromJSON", format!("invalid JSON: {e}"), span))?;
    json_to_value(&j, span)
}

fn json_to_value(j: &serde_json::Value, span: Span) -> Result<Value, EvalError> {
    use serde_json::Value as J;
    Ok(match j {
        J::Null => Value::Null,
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::Int(i)
            } else if n.is_u64() {
                return Err(EvalError::invalid(
                    "fromJSON",
                    format!("the integer {n} does not fit in 64 bits"),
                    span,
                ));
            } else {
                Value::Float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        J::String(s) => Value::string(s.as_str()),
        J::Array(items) => Value::list(
            items
                .iter()
                .map(|i| json_to_value(i, span))
                .collect::<Result<_, _>>()?,
        ),
        J::Object(map) => Value::attrs_from(
            map.iter()
                .map(|(k, v)| Ok((SmolStr::new(k), json_to_value(v, span)?)))
                .collect::<Result<Vec<_>, EvalError>>()?,
        ),
    })
}

/// `hashString type s`: the lowercase hex digest of the string's bytes with
/// `md5`, `sha1`, `sha256` or `sha512`, as in Nix. The string's context is
/// ignored and the result has none.
fn hash_string(ev: &Evaluator, a: &[Value], span: Span) -> Result<Value, EvalError> {
    use sha2::Digest;
    let kind = string(ev, &a[0], span, "hashString's algorithm")?;
    let s = string(ev, &a[1], span, "hashString")?;
    let bytes = s.as_str().as_bytes();
    let digest = match kind.as_str() {
        "md5" => hex::encode(md5::Md5::digest(bytes)),
        "sha1" => hex::encode(sha1::Sha1::digest(bytes)),
        "sha256" => hex::encode(sha2::Sha256::digest(bytes)),
        "sha512" => hex::encode(sha2::Sha512::digest(bytes)),
        other => {
            return Err(EvalError::invalid(
                "hashString",
                format!(
                    "unknown hash algorithm `{other}`; the algorithms are md5, sha1, sha256 and sha512"
                ),
                span,
            ));
        }
    };
    Ok(Value::string(digest))
}

fn read_file(ev: &Evaluator, a: &[Value], span: Span) -> Result<Value, EvalError> {
    let p = path(ev, &a[0], span, "readFile")?;
    let text = ev.io.read_file(&p).map_err(|source| {
        EvalError::new(
            ErrorKind::Io {
                path: p.clone(),
                source,
            },
            span,
        )
    })?;
    Ok(Value::string(text))
}

fn path_exists(ev: &Evaluator, a: &[Value], span: Span) -> Result<Value, EvalError> {
    let p = path(ev, &a[0], span, "pathExists")?;
    let kind = ev.io.kind(&p).map_err(|source| {
        EvalError::new(
            ErrorKind::Io {
                path: p.clone(),
                source,
            },
            span,
        )
    })?;
    Ok(Value::Bool(kind.is_some()))
}
