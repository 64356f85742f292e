//! Version strings: `compareVersions` and `splitVersion`, with Nix's rules.
//!
//! A version is read as a sequence of *components*. Dots and dashes separate
//! components and are dropped; a component is either the longest run of
//! ASCII digits or the longest run of anything else (so `1.0pre1` is
//! `1`, `0`, `pre`, `1`, and `beta_4` is `beta_`, `4`). Two versions are
//! compared component by component, a missing component counting as the
//! empty string:
//!
//! - two numbers compare as numbers (`10` > `9`, `01` = `1`); like Nix, a
//!   run of digits counts as a number only when it fits in a signed 32-bit
//!   integer, otherwise it is compared as text;
//! - the empty component is older than a number;
//! - `pre` is older than anything but `pre` (so `1.0pre1` < `1.0`);
//! - a number is newer than a word (`2.3a` < `2.3.1`);
//! - two words compare byte-wise (`a` < `b`; the empty string first, so
//!   `1.0` < `1.0a`).
//!
//! Both builtins reject strings that refer to store objects, as Nix does.

use super::{Builtin, string};
use crate::eval::Evaluator;
use crate::eval::error::EvalError;
use crate::eval::value::{NixString, Value};
use crate::source::Span;
use std::cmp::Ordering;

pub(super) fn table() -> Vec<(&'static str, usize, Builtin)> {
    vec![
        ("compareVersions", 2, compare_versions),
        ("splitVersion", 1, split_version),
    ]
}

/// A version string without context.
fn version(
    ev: &Evaluator,
    v: &Value,
    span: Span,
    function: &'static str,
) -> Result<NixString, EvalError> {
    let s = string(ev, v, span, function)?;
    if let Some(p) = s.context().next() {
        return Err(EvalError::invalid(
            function,
            format!(
                "the version \"{}\" refers to the store object {p}; a version must be plain text",
                s.as_str()
            ),
            span,
        ));
    }
    Ok(s)
}

fn compare_versions(ev: &Evaluator, a: &[Value], span: Span) -> Result<Value, EvalError> {
    let v1 = version(ev, &a[0], span, "compareVersions")?;
    let v2 = version(ev, &a[1], span, "compareVersions")?;
    Ok(Value::Int(match compare(v1.as_str(), v2.as_str()) {
        Ordering::Less => -1,
        Ordering::Equal => 0,
        Ordering::Greater => 1,
    }))
}

fn split_version(ev: &Evaluator, a: &[Value], span: Span) -> Result<Value, EvalError> {
    let v = version(ev, &a[0], span, "splitVersion")?;
    let mut rest = v.as_str().as_bytes();
    let mut out = Vec::new();
    loop {
        let c = next_component(&mut rest);
        if c.is_empty() {
            break;
        }
        out.push(Value::string(String::from_utf8_lossy(c).as_ref()));
    }
    Ok(Value::list(out))
}

fn is_separator(b: u8) -> bool {
    b == b'.' || b == b'-'
}

/// The next component of `rest` (empty at the end), advancing past it.
/// Components end at ASCII bytes, so a multi-byte character is never cut.
fn next_component<'a>(rest: &mut &'a [u8]) -> &'a [u8] {
    let start = rest
        .iter()
        .position(|&b| !is_separator(b))
        .unwrap_or(rest.len());
    let s = &rest[start..];
    let len = if s.first().is_some_and(u8::is_ascii_digit) {
        s.iter()
            .position(|b| !b.is_ascii_digit())
            .unwrap_or(s.len())
    } else {
        s.iter()
            .position(|&b| b.is_ascii_digit() || is_separator(b))
            .unwrap_or(s.len())
    };
    let (c, tail) = s.split_at(len);
    *rest = tail;
    c
}

/// The component as a number, when it is one that fits in 32 bits.
fn number(c: &[u8]) -> Option<i32> {
    if c.is_empty() || !c.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(c).ok()?.parse().ok()
}

/// Whether component `c1` is older than `c2`.
fn component_less(c1: &[u8], c2: &[u8]) -> bool {
    let (n1, n2) = (number(c1), number(c2));
    match (n1, n2) {
        (Some(x), Some(y)) => x < y,
        _ if c1.is_empty() && n2.is_some() => true,
        _ if c1 == b"pre" && c2 != b"pre" => true,
        _ if c2 == b"pre" => false,
        (_, Some(_)) => true,
        (Some(_), None) => false,
        (None, None) => c1 < c2,
    }
}

/// Compares two versions by Nix's rules.
pub(crate) fn compare(v1: &str, v2: &str) -> Ordering {
    let (mut p1, mut p2) = (v1.as_bytes(), v2.as_bytes());
    while !p1.is_empty() || !p2.is_empty() {
        let c1 = next_component(&mut p1);
        let c2 = next_component(&mut p2);
        if component_less(c1, c2) {
            return Ordering::Less;
        }
        if component_less(c2, c1) {
            return Ordering::Greater;
        }
    }
    Ordering::Equal
}
