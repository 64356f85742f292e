//! The bridge from evaluation to the build graph.
//!
//! The language knows nothing of stores or builders. When evaluation needs a
//! store object — `builtins.step { builder = "text"; ... }`, a path
//! interpolated into a string, `pkgs.busybox` — it hands a [`StepRequest`] to
//! the injected [`StoreHook`], which records the step and answers with a
//! *placeholder path*: a string that stands for the object's store path until
//! the object is built (as in Nix's content-addressed derivations, RFC 62).
//!
//! Strings remember the placeholders they were built from (their *context*),
//! so the parameters of a step name its inputs: a file whose text says
//! `"${pkgs.busybox-static}/bin/sh"` depends on that package.
//!
//! Requests the evaluator itself makes:
//! - `builtins.step attrs`: `builder` and `name` from the attrs, every other
//!   attribute deeply forced into `params`.
//! - a path value coerced to a string (`"${./file}"`, or a path in step
//!   params): builder `"path"`, name = the path's base name,
//!   params `{ path = "/absolute/path"; }`.
//! - `pkgs.NAME`: builder `"deb"`, name `NAME`, params `{ package = "NAME"; }`.
//! - `pkgs.fromDeb ./x.deb`: builder `"deb-file"`, name = base name without
//!   `.deb`, params `{ file = <the path step's placeholder>; }`.

use std::collections::{BTreeMap, BTreeSet};

/// A deeply evaluated parameter value. Functions cannot be step parameters;
/// paths have already been turned into `"path"` steps.
#[derive(Debug, Clone, PartialEq)]
pub enum StepValue {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str {
        text: String,
        /// The placeholders this string was built from.
        context: BTreeSet<String>,
    },
    List(Vec<StepValue>),
    Attrs(BTreeMap<String, StepValue>),
}

impl StepValue {
    /// Every placeholder mentioned anywhere in this value.
    pub fn context(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        self.collect_context(&mut out);
        out
    }

    fn collect_context(&self, out: &mut BTreeSet<String>) {
        match self {
            StepValue::Str { context, .. } => out.extend(context.iter().cloned()),
            StepValue::List(items) => items.iter().for_each(|v| v.collect_context(out)),
            StepValue::Attrs(attrs) => attrs.values().for_each(|v| v.collect_context(out)),
            StepValue::Null | StepValue::Bool(_) | StepValue::Int(_) | StepValue::Float(_) => {}
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct StepRequest {
    pub builder: String,
    pub name: String,
    pub params: BTreeMap<String, StepValue>,
}

/// Why the hook refused a step. The evaluator reports it at the span of the
/// expression that asked for the step.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct HookError {
    pub message: String,
    pub hint: Option<String>,
}

impl HookError {
    pub fn new(message: impl Into<String>) -> Self {
        HookError {
            message: message.into(),
            hint: None,
        }
    }
}

pub trait StoreHook {
    /// Records a step and returns its placeholder path. Asking twice for the
    /// same step returns the same placeholder.
    fn add_step(&self, request: StepRequest) -> Result<String, HookError>;
}

/// A hook for evaluation without a store: placeholders are derived from the
/// request's text, and nothing is recorded. Used by tests and `imago eval`
/// when no build is wanted.
#[derive(Debug, Default)]
pub struct NoStore;

impl StoreHook for NoStore {
    fn add_step(&self, request: StepRequest) -> Result<String, HookError> {
        Ok(format!(
            "/imago/pending/{}-{}",
            fnv_hex(&format!("{request:?}")),
            request.name
        ))
    }
}

fn fnv_hex(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}
