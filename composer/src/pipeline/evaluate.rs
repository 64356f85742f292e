//! Evaluation to steps: evaluate the wanted attribute with a
//! [`StepTable`] as the store hook, coerce it to a string, and find the
//! object that string names. Runs on the evaluator's large-stack thread;
//! diagnostics are rendered there (the evaluator is not `Send`).

use super::error::PipelineError;
use super::outcome::Failure;
use super::request::{DiagnosticStyle, Settings};
use crate::debian::components::Components;
use crate::debian::index::Sites;
use crate::debian::lock::Lock;
use crate::debian::pins::PackageIndex;
use crate::debian::platform::Platform;
use crate::graph::{Step, StepTable};
use crate::store::STORE_PREFIX;
use crate::store::StorePath;
use crate::system_eval;
use anyhow::Context;
use imago_lang::diag::{Diagnostic, IntoDiagnostic};
use imago_lang::eval::{EvalError, Evaluator};
use imago_lang::modules::OptionPath;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::rc::Rc;

/// What evaluation hands to the build: the recorded steps and the wanted
/// string.
pub(super) struct Evaluated {
    pub steps: BTreeMap<String, Step>,
    pub text: String,
    /// The configuration's warnings, rendered (empty when there are none).
    pub warnings: String,
    /// Every package name requested.
    pub packages: BTreeSet<String>,
    /// Where each package was asked for.
    pub sites: Sites,
    /// The system's Debian release and architecture (`None` when the
    /// attribute is not a system's or the module library lacks the options).
    pub platform: Option<Platform>,
    /// The archive components its packages may come from (`None` as for
    /// `platform`).
    pub components: Option<Components>,
}

/// How the step table treats packages.
pub(super) enum TableMode {
    /// Pinned by the lock at the path (none: every package is an error). A
    /// system of another release or architecture than the lock's is
    /// refused before anything of it is evaluated.
    Build(Option<(Lock, std::path::PathBuf)>),
    /// Only recorded, for `imago lock`.
    Record,
}

/// The Debian packages an attribute requests, and where.
#[derive(Debug, Default)]
pub struct Requested {
    pub packages: BTreeSet<String>,
    pub sites: Sites,
    /// The release and architecture the system asks for (`None`: not a
    /// system, or a module library without `system.debian.release`).
    pub platform: Option<Platform>,
    /// The archive components it asks for (`None` as for `platform`).
    pub components: Option<Components>,
}

/// Evaluates `attr` of `file` in record mode (no package needs a lock) and
/// returns the Debian packages it requests, for `imago lock`. The inner
/// `Err` is the evaluation's rendered diagnostics.
pub fn requested_packages(
    settings: &Settings,
    file: &Path,
    attr: &str,
    modules: Option<&Path>,
) -> anyhow::Result<Result<Requested, Failure>> {
    let evaluated = evaluate_on_thread(settings, file, attr, modules, TableMode::Record)?;
    Ok(evaluated
        .map(|e| Requested {
            packages: e.packages,
            sites: e.sites,
            platform: e.platform,
            components: e.components,
        })
        .map_err(Failure::Evaluation))
}

/// Runs [`evaluate`] on a thread with the evaluator's large stack.
pub(super) fn evaluate_on_thread(
    settings: &Settings,
    file: &Path,
    attr: &str,
    modules: Option<&Path>,
    mode: TableMode,
) -> anyhow::Result<Result<Evaluated, String>> {
    let modules_dir = system_eval::modules_dir(modules);
    let (file, attr) = (file.to_path_buf(), attr.to_owned());
    let options = system_eval::EvalOptions {
        show_trace: settings.show_trace,
    };
    let style = settings.diagnostics;
    imago_lang::eval::with_large_stack(move || {
        evaluate(&file, &attr, mode, &modules_dir, options, style)
    })
    .context("cannot start the evaluation thread")?
}

/// `Err` is the rendered diagnostics (after the configuration's warnings).
fn evaluate(
    file: &Path,
    attr: &str,
    mode: TableMode,
    modules_dir: &Path,
    options: system_eval::EvalOptions,
    style: DiagnosticStyle,
) -> anyhow::Result<Result<Evaluated, String>> {
    let mut locked = None;
    let table = Rc::new(match mode {
        TableMode::Build(lock) => StepTable::new(lock.map(|(l, path)| {
            locked = Some((l.platform, path));
            Box::new(l) as Box<dyn PackageIndex>
        })),
        TableMode::Record => StepTable::recording(),
    });
    let mut platform = None;
    let mut components = None;
    let render = |diags: Vec<Diagnostic>, ev: &Evaluator| style.render(&diags, ev.sources());
    let (ev, value, system) = match attr.strip_prefix("config.") {
        Some(option) => {
            let option = OptionPath::parse(option).map_err(|e| PipelineError::BadAttr {
                attr: attr.to_owned(),
                reason: e.to_string(),
            })?;
            let (ev, system) =
                match system_eval::eval_system_with(file, table.clone(), modules_dir, options) {
                    Ok(pair) => pair,
                    Err(failure) => {
                        return Ok(Err(render(failure.diagnostics(), &failure.evaluator)?));
                    }
                };
            // The release and architecture come first: a lock of another
            // one would pin every package to the wrong Debian.
            match system_platform(&ev, &system)
                .and_then(|p| Ok((p, system_components(&ev, &system)?)))
            {
                Ok((p, c)) => (platform, components) = (p, c),
                Err(e) => {
                    let mut diags = system.warnings();
                    diags.extend(system_eval::diagnostics_of(&e));
                    return Ok(Err(render(diags, &ev)?));
                }
            }
            if let (Some(wanted), Some((locked, path))) = (platform, &locked) {
                crate::debian::lock::check_platform(*locked, wanted, path, file)?;
            }
            match system.value_at(&ev, &option) {
                Ok(v) => (ev, v, Some(system)),
                Err(e) => {
                    let mut diags = system.warnings();
                    diags.extend(system_eval::diagnostics_of(&e));
                    return Ok(Err(render(diags, &ev)?));
                }
            }
        }
        None => {
            let ev = system_eval::evaluator_with(table.clone(), modules_dir, options);
            match ev.eval_file(file).and_then(|v| ev.select(&v, attr)) {
                Ok(v) => (ev, v, None),
                Err(e) => return Ok(Err(render(eval_diagnostics(&e), &ev)?)),
            }
        }
    };
    let coerced = ev.coerce_to_string(&value);
    // The warnings of the configuration, including those found while the
    // value was computed.
    let warnings = system.map(|s| s.warnings()).unwrap_or_default();
    let text = match coerced {
        Ok((text, _context)) => text,
        Err(e) => {
            let mut diags = warnings;
            diags.extend(eval_diagnostics(&e));
            return Ok(Err(render(diags, &ev)?));
        }
    };
    let warnings = if warnings.is_empty() {
        String::new()
    } else {
        render(warnings, &ev)?
    };
    let steps = table.steps().clone();
    Ok(Ok(Evaluated {
        steps,
        text,
        warnings,
        packages: table.requested_packages(),
        sites: Sites::collect(&ev.package_sites(), ev.sources()),
        platform,
        components,
    }))
}

/// `system.debian.components`, when the module library declares it (its
/// enum type admits only known names).
fn system_components(
    ev: &Evaluator,
    system: &imago_lang::modules::Evaluated,
) -> Result<Option<Components>, imago_lang::modules::ModuleError> {
    let path = OptionPath::parse("system.debian.components").expect("a valid option path");
    if system.declaration(&path).is_none() {
        return Ok(None);
    }
    let value = system.value_at(ev, &path)?;
    let Some(items) = value.as_list() else {
        return Ok(None);
    };
    let mut names = Vec::new();
    for item in items.iter() {
        let item = ev.force(item)?;
        match item.as_str() {
            Some(name) => names.push(name.to_owned()),
            None => return Ok(None),
        }
    }
    Ok(Components::parse(names.iter().map(String::as_str)).ok())
}

/// `system.debian.release` and `system.architecture`, when the module
/// library declares them (their enum types admit only known names).
fn system_platform(
    ev: &Evaluator,
    system: &imago_lang::modules::Evaluated,
) -> Result<Option<Platform>, imago_lang::modules::ModuleError> {
    let release = OptionPath::parse("system.debian.release").expect("a valid option path");
    let arch = OptionPath::parse("system.architecture").expect("a valid option path");
    if system.declaration(&release).is_none() || system.declaration(&arch).is_none() {
        return Ok(None);
    }
    let release = system.value_at(ev, &release)?;
    let arch = system.value_at(ev, &arch)?;
    let (Some(release), Some(arch)) = (release.as_str(), arch.as_str()) else {
        return Ok(None);
    };
    Ok(Platform::parse(release, arch).ok())
}

fn eval_diagnostics(e: &EvalError) -> Vec<Diagnostic> {
    match e.parse_diagnostics() {
        Some(d) => d.to_vec(),
        None => vec![e.to_diagnostic()],
    }
}

pub(super) enum Root {
    /// A step's placeholder and what follows it.
    Step(String, String),
    StorePath(StorePath, String),
}

/// The object the wanted string names.
pub(super) fn find_root(evaluated: &Evaluated, attr: &str) -> Result<Root, PipelineError> {
    let text = &evaluated.text;
    let split = |prefix_len: usize| (&text[..prefix_len], &text[prefix_len..]);
    if let Some(rest) = text.strip_prefix(crate::graph::PENDING_PREFIX) {
        let end = rest
            .find('/')
            .map_or(text.len(), |i| text.len() - rest.len() + i);
        let (placeholder, suffix) = split(end);
        if evaluated.steps.contains_key(placeholder) {
            return Ok(Root::Step(placeholder.to_owned(), suffix.to_owned()));
        }
    }
    if text.starts_with(STORE_PREFIX)
        && let Ok((path, suffix)) = StorePath::from_absolute(text)
    {
        return Ok(Root::StorePath(path, suffix.to_owned()));
    }
    Err(PipelineError::NotAnObject {
        attr: attr.to_owned(),
        text: text.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::DEFAULT_ATTR;

    const TOP: &str = r#"{ lib, pkgs, ... }: {
  options.system.build.toplevel = lib.mkOption { type = lib.types.str; };
  config.system.build.toplevel =
    "${builtins.step { builder = "text"; name = "top"; text = "${pkgs.bash}/bin/bash"; }}";
}"#;

    #[test]
    fn record_mode_lists_the_requested_packages() {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("modules");
        std::fs::create_dir(&lib).unwrap();
        std::fs::write(lib.join(system_eval::MODULE_LIST), "[ ./top.imago ]").unwrap();
        std::fs::write(lib.join("top.imago"), TOP).unwrap();
        let file = dir.path().join("sys.imago");
        std::fs::write(&file, "{ ... }: { }").unwrap();
        let requested = requested_packages(&Settings::default(), &file, DEFAULT_ATTR, Some(&lib))
            .unwrap()
            .unwrap();
        assert_eq!(requested.packages, BTreeSet::from(["bash".to_owned()]));
    }
}
