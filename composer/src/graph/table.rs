//! The step table: the composer's implementation of the store hook.
//!
//! During evaluation every store object the configuration asks for arrives
//! here as a [`StepRequest`]. The table turns it into a [`Step`] (validating
//! its name and computing its placeholder), remembers it once (identical
//! requests share one entry) and answers with the placeholder. After
//! evaluation the table is the universe from which the build graph takes the
//! steps reachable from the wanted value.
//!
//! Debian packages get special care:
//! - a `deb` request `{ package }` is pinned through the [`PackageIndex`]
//!   (version, architecture, size, sha256 join its parameters); an unknown
//!   package is an error that tells the user to run `imago lock`;
//! - a top-level parameter named `packages` whose items include `deb`
//!   placeholders gets those items replaced by the sorted dependency closure
//!   of the packages they name, so the consumer (a profile, a kernel) sees
//!   every package it needs. The closure follows only the dependencies the
//!   step's builder reads ([`Builder::reads_dependency`]: a kernel only its
//!   `linux-image-*` packages), so that the step waits for no package it
//!   never opens. Deb steps themselves never depend on each other: Debian's
//!   dependency graph has cycles.
//!
//! [`Builder::reads_dependency`]: crate::builders::Builder::reads_dependency
//!
//! In *record* mode (used by `imago lock`) there is no index: the table only
//! collects the requested package names and hands out placeholders.

use super::registry;
use super::step::{Step, is_placeholder};
use crate::debian::pins::PackageIndex;
use imago_lang::hook::{HookError, StepRequest, StepValue, StoreHook};
use std::cell::{Ref, RefCell};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// The builder name of Debian package steps.
pub const DEB_BUILDER: &str = "deb";

enum Mode {
    /// Pin packages through the index; `None` means there is no lock file.
    Build(Option<Box<dyn PackageIndex>>),
    /// Collect package names only.
    Record,
}

/// Records steps requested during evaluation; see the module docs.
pub struct StepTable {
    mode: Mode,
    steps: RefCell<BTreeMap<String, Step>>,
    requested_packages: RefCell<BTreeSet<String>>,
}

impl std::fmt::Debug for StepTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StepTable")
            .field("record", &matches!(self.mode, Mode::Record))
            .field("steps", &self.steps.borrow().len())
            .finish()
    }
}

impl StepTable {
    /// A table for building: packages are pinned through `index` (`None`
    /// when there is no lock file, which makes every package an error).
    pub fn new(index: Option<Box<dyn PackageIndex>>) -> Self {
        StepTable {
            mode: Mode::Build(index),
            steps: RefCell::default(),
            requested_packages: RefCell::default(),
        }
    }

    /// A table for `imago lock`: records package names without pinning.
    pub fn recording() -> Self {
        StepTable {
            mode: Mode::Record,
            steps: RefCell::default(),
            requested_packages: RefCell::default(),
        }
    }

    /// Every recorded step, by placeholder.
    pub fn steps(&self) -> Ref<'_, BTreeMap<String, Step>> {
        self.steps.borrow()
    }

    /// The step behind a placeholder.
    pub fn get(&self, placeholder: &str) -> Option<Step> {
        self.steps.borrow().get(placeholder).cloned()
    }

    pub fn len(&self) -> usize {
        self.steps.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.steps.borrow().is_empty()
    }

    /// The names of all packages requested (in every mode), sorted.
    pub fn requested_packages(&self) -> BTreeSet<String> {
        self.requested_packages.borrow().clone()
    }

    fn insert(&self, request: StepRequest) -> Result<String, HookError> {
        let step = Step::new(request).map_err(|e| HookError::new(e.to_string()))?;
        let mut steps = self.steps.borrow_mut();
        if let Some(unknown) = step.inputs.iter().find(|p| !steps.contains_key(*p)) {
            return Err(HookError::new(format!(
                "step `{}` refers to `{unknown}`, which no step of this evaluation produced",
                step.name
            )));
        }
        let placeholder = step.placeholder.clone();
        steps.entry(placeholder.clone()).or_insert(step);
        Ok(placeholder)
    }

    /// The pinned `deb` step of `package`.
    fn deb_step(&self, index: &dyn PackageIndex, package: &str) -> Result<String, HookError> {
        self.requested_packages
            .borrow_mut()
            .insert(package.to_owned());
        let pinned = index.get(package).ok_or_else(|| not_locked(package))?;
        let size = i64::try_from(pinned.size).map_err(|_| {
            HookError::new(format!(
                "package `{package}`: size {} is too large",
                pinned.size
            ))
        })?;
        let text = |s: &str| StepValue::Str {
            text: s.to_owned(),
            context: BTreeSet::new(),
        };
        let params = BTreeMap::from([
            ("package".to_owned(), text(&pinned.name)),
            ("version".to_owned(), text(&pinned.version)),
            ("architecture".to_owned(), text(&pinned.architecture)),
            ("size".to_owned(), StepValue::Int(size)),
            ("sha256".to_owned(), text(&pinned.sha256)),
        ]);
        self.insert(StepRequest {
            builder: DEB_BUILDER.to_owned(),
            name: pinned.name,
            params,
        })
    }

    /// Replaces the deb placeholders of a `packages` list by their closure
    /// over the dependencies `builder` reads.
    fn expand_packages(
        &self,
        index: &dyn PackageIndex,
        builder: &str,
        items: Vec<StepValue>,
    ) -> Result<Vec<StepValue>, HookError> {
        let mut wanted = Vec::new();
        let mut first_deb = None;
        let mut rest = Vec::new();
        {
            let steps = self.steps.borrow();
            for item in items {
                let package = match &item {
                    StepValue::Str { text, .. } if is_placeholder(text) => steps
                        .get(text)
                        .filter(|s| s.builder == DEB_BUILDER)
                        .and_then(|s| match s.params.get("package") {
                            Some(StepValue::Str { text, .. }) => Some(text.clone()),
                            _ => None,
                        }),
                    _ => None,
                };
                match package {
                    Some(p) => {
                        first_deb.get_or_insert(rest.len());
                        wanted.push(p);
                    }
                    None => rest.push(item),
                }
            }
        }
        let Some(at) = first_deb else {
            return Ok(rest);
        };
        let reader = registry::builder(builder);
        let reads = |dep: &str| reader.is_none_or(|b| b.reads_dependency(dep));
        let closure = closure(index, &wanted, reads)?;
        let mut expanded = Vec::with_capacity(closure.len());
        for package in &closure {
            let placeholder = self.deb_step(index, package)?;
            expanded.push(StepValue::Str {
                text: placeholder.clone(),
                context: BTreeSet::from([placeholder]),
            });
        }
        rest.splice(at..at, expanded);
        Ok(rest)
    }
}

/// The sorted dependency closure of `roots` over the `depends` that
/// `follow` accepts.
fn closure(
    index: &dyn PackageIndex,
    roots: &[String],
    follow: impl Fn(&str) -> bool,
) -> Result<BTreeSet<String>, HookError> {
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut queue: VecDeque<(String, Option<String>)> =
        roots.iter().map(|r| (r.clone(), None)).collect();
    while let Some((name, needed_by)) = queue.pop_front() {
        if seen.contains(&name) {
            continue;
        }
        let pinned = index.get(&name).ok_or_else(|| match &needed_by {
            Some(parent) => {
                let mut e = not_locked(&name);
                e.message = format!("{} (needed by `{parent}`)", e.message);
                e
            }
            None => not_locked(&name),
        })?;
        for dep in pinned.depends {
            if !seen.contains(&dep) && follow(&dep) {
                queue.push_back((dep, Some(name.clone())));
            }
        }
        seen.insert(name);
    }
    Ok(seen)
}

fn not_locked(package: &str) -> HookError {
    HookError {
        message: format!("package `{package}` is not in imago.lock; run `imago lock FILE`"),
        hint: Some("`imago lock FILE` resolves every package the configuration uses".to_owned()),
    }
}

impl StoreHook for StepTable {
    fn add_step(&self, mut request: StepRequest) -> Result<String, HookError> {
        let index = match &self.mode {
            Mode::Record => {
                if request.builder == DEB_BUILDER
                    && let Some(StepValue::Str { text, .. }) = request.params.get("package")
                {
                    self.requested_packages.borrow_mut().insert(text.clone());
                }
                return self.insert(request);
            }
            Mode::Build(index) => index.as_deref(),
        };
        if request.builder == DEB_BUILDER {
            let package = match request.params.get("package") {
                Some(StepValue::Str { text, context }) if context.is_empty() => text.clone(),
                _ => {
                    return Err(HookError::new(format!(
                        "step `{}`: a `deb` step needs a `package` parameter that is a plain string",
                        request.name
                    )));
                }
            };
            if request.params.len() != 1 {
                return Err(HookError::new(format!(
                    "step `{}`: a `deb` step takes only a `package` parameter",
                    request.name
                )));
            }
            let Some(index) = index else {
                self.requested_packages.borrow_mut().insert(package.clone());
                return Err(not_locked(&package));
            };
            return self.deb_step(index, &package);
        }
        if let Some(index) = index
            && matches!(request.params.get("packages"), Some(StepValue::List(_)))
            && let Some(StepValue::List(items)) = request.params.remove("packages")
        {
            let expanded = self.expand_packages(index, &request.builder, items)?;
            request
                .params
                .insert("packages".to_owned(), StepValue::List(expanded));
        }
        self.insert(request)
    }
}
