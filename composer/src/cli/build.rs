//! `imago build FILE [-A attr] [-o result] [--json] [--jobs N] [--keep-going] [--offline]`.
//!
//! 1. Evaluate FILE with the real file system and a [`StepTable`] as the
//!    store hook (packages pinned by `imago.lock` beside FILE, if present).
//!    An attribute path starting with `config.` (the default is
//!    `config.system.build.toplevel`) evaluates FILE as a system — merged
//!    with the module library — and selects that option; any other path
//!    selects from FILE's own value.
//! 2. Coerce the selected value to a string: it must be a placeholder of a
//!    recorded step (optionally followed by `/sub/path`) or a store path.
//! 3. Build the graph of the steps it needs: start fetching the Debian
//!    packages the download cache lacks in the background, and schedule
//!    (a `deb` step waits for its own file only).
//! 4. Print the output path (and its physical location when the store is
//!    not at `/imago/store`), or the build summary as JSON; `-o` adds an
//!    out-link registered as a GC root.
//!
//! Evaluation errors are rendered as diagnostics; a failed step is reported
//! with its log and the chain of steps that needed it. Exit code 1 for
//! both. [`build_file`] is the same pipeline for other commands (`imago
//! run`); [`requested_packages`] evaluates in record mode for `imago lock`.

use super::{ErrorFormat, GlobalArgs, printed};
use crate::debian::apt::default_deb_cache;
use crate::debian::fetch::Background;
use crate::debian::index::Sites;
use crate::debian::lock::{Lock, LockEntry};
use crate::graph::packages::PackageIndex;
use crate::graph::progress::ProgressMode;
use crate::graph::{
    BuildOptions, BuildSummary, Graph, Registry, ScheduleError, Step, StepTable, build,
};
use crate::store::STORE_PREFIX;
use crate::store::{Store, StorePath};
use crate::system_eval;
use anyhow::Context;
use imago_lang::diag::{Diagnostic, IntoDiagnostic};
use imago_lang::eval::{EvalError, Evaluator};
use imago_lang::modules::OptionPath;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::rc::Rc;

/// What `imago build` builds when `-A` is not given.
pub const DEFAULT_ATTR: &str = "config.system.build.toplevel";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The configuration file.
    pub file: PathBuf,
    /// The attribute to build: `config.<option path>` for a system, or a
    /// path into the file's own value.
    #[arg(short = 'A', long = "attr", default_value = DEFAULT_ATTR, value_name = "ATTR.PATH")]
    pub attr: String,
    /// Make an out-link at this path to the result (a GC root).
    #[arg(short = 'o', long = "out-link", value_name = "PATH")]
    pub out_link: Option<PathBuf>,
    /// Print the build summary as JSON instead of the output path.
    #[arg(long)]
    pub json: bool,
    /// Steps built in parallel (default: one per core).
    #[arg(short = 'j', long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: Option<u16>,
    /// Build everything that does not depend on a failed step.
    #[arg(long)]
    pub keep_going: bool,
    /// Never touch the network: every package must already be cached.
    #[arg(long)]
    pub offline: bool,
    /// Rehash every output the build cache provides and rebuild each one
    /// that was corrupted or deleted, putting the rebuilt copy in its place.
    #[arg(long)]
    pub repair: bool,
    /// The module library directory.
    #[arg(long, env = system_eval::MODULES_ENV, value_name = "DIR")]
    pub modules: Option<PathBuf>,
}

/// A request to build one attribute of a file.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    pub file: PathBuf,
    pub attr: String,
    pub modules: Option<PathBuf>,
    pub options: BuildOptions,
}

/// A successful build.
#[derive(Debug)]
pub struct Built {
    /// The object built for the attribute.
    pub path: StorePath,
    /// What followed the object in the attribute's string (`/bin/sh` for
    /// `"${pkg}/bin/sh"`), empty for the object itself.
    pub suffix: String,
    pub summary: BuildSummary,
}

/// How [`build_file`] ended.
#[derive(Debug)]
pub enum Outcome {
    Built(Built),
    /// Evaluation or a step failed; the report was printed on stderr.
    Failed,
}

impl Args {
    pub fn run(self, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
        let store = super::store::open_store(global)?;
        let request = BuildRequest {
            file: self.file,
            attr: self.attr,
            modules: self.modules,
            options: BuildOptions {
                jobs: self.jobs.map_or(0, usize::from),
                keep_going: self.keep_going,
                offline: self.offline,
                repair: self.repair,
                deb_cache: default_deb_cache(),
                progress: ProgressMode::Auto,
            },
        };
        let built = match build_file(global, &store, &request)? {
            Outcome::Built(b) => b,
            Outcome::Failed => return Ok(ExitCode::from(1)),
        };
        if let Some(link) = &self.out_link {
            store
                .add_root(link, &built.path)
                .with_context(|| format!("making the out-link {}", link.display()))?;
        }
        if self.repair {
            for step in built.summary.steps.iter().filter(|s| s.repaired) {
                eprintln!("imago: repaired {} (rebuilt `{}`)", step.path, step.name);
            }
            eprintln!(
                "imago: {} object(s) repaired, {} cached output(s) checked",
                built.summary.repaired,
                built.summary.cached + built.summary.repaired
            );
        }
        let mut out = std::io::stdout().lock();
        if self.json {
            let text = serde_json::to_string_pretty(&built.summary)
                .context("encoding the build summary")?;
            writeln!(out, "{text}").context("writing to stdout")?;
        } else {
            writeln!(out, "{}{}", built.path.to_absolute(), built.suffix)
                .context("writing to stdout")?;
            let physical = store.physical(&built.path);
            if physical != Path::new(STORE_PREFIX).join(built.path.as_str()) {
                writeln!(out, "{}{}", physical.display(), built.suffix)
                    .context("writing to stdout")?;
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// What evaluation hands to the build: the recorded steps and the wanted
/// string.
struct Evaluated {
    steps: BTreeMap<String, Step>,
    text: String,
    /// Every package name requested.
    packages: BTreeSet<String>,
    /// Where each package was asked for.
    sites: Sites,
}

/// How the step table treats packages.
enum TableMode {
    /// Pinned by the lock (none: every package is an error).
    Build(Option<Lock>),
    /// Only recorded, for `imago lock`.
    Record,
}

/// Evaluates `attr` of `file` in record mode and returns the Debian packages
/// it requests (for `imago lock`). `Ok(None)`: evaluation failed and the
/// diagnostics were printed on stderr.
pub fn requested_packages(
    global: &GlobalArgs,
    file: &Path,
    attr: &str,
    modules: Option<&Path>,
) -> anyhow::Result<Option<BTreeSet<String>>> {
    Ok(requested_packages_at(global, file, attr, modules)?.map(|(names, _)| names))
}

/// Like [`requested_packages`], with where in the configuration each
/// package was asked for.
pub fn requested_packages_at(
    global: &GlobalArgs,
    file: &Path,
    attr: &str,
    modules: Option<&Path>,
) -> anyhow::Result<Option<(BTreeSet<String>, Sites)>> {
    let format = global.error_format;
    let color = format == ErrorFormat::Human && std::io::stderr().is_terminal();
    let modules_dir = system_eval::modules_dir(modules);
    let (file, attr) = (file.to_path_buf(), attr.to_owned());
    let options = eval_options(global);
    let evaluated = imago_lang::eval::with_large_stack(move || {
        evaluate(
            &file,
            &attr,
            TableMode::Record,
            &modules_dir,
            options,
            format,
            color,
        )
    })
    .context("cannot start the evaluation thread")??;
    match evaluated {
        Ok(e) => Ok(Some((e.packages, e.sites))),
        Err(rendered) => {
            eprint!("{rendered}");
            Ok(None)
        }
    }
}

/// Which system a command acts on: a configuration to build, or a toplevel
/// already in the store (`imago run`, `imago deploy`).
#[derive(Debug, clap::Args)]
pub struct SystemArgs {
    /// The configuration file.
    #[arg(required_unless_present = "toplevel", conflicts_with = "toplevel")]
    pub file: Option<PathBuf>,
    /// Use an already built toplevel instead of building FILE: a store path,
    /// `<hash>-<name>`, or a symlink into the store such as an out-link.
    #[arg(long, value_name = "PATH")]
    pub toplevel: Option<String>,
    /// The attribute that is the system.
    #[arg(short = 'A', long = "attr", default_value = DEFAULT_ATTR, conflicts_with = "toplevel")]
    pub attr: String,
}

impl SystemArgs {
    /// The toplevel: `--toplevel` looked up in `store`, or FILE built with
    /// `options`. `Ok(None)`: the build failed and was reported on stderr.
    pub fn toplevel(
        &self,
        global: &GlobalArgs,
        store: &Store,
        options: BuildOptions,
    ) -> anyhow::Result<Option<StorePath>> {
        match (&self.toplevel, &self.file) {
            (Some(arg), _) => super::store::parse_object_arg(store, arg)
                .with_context(|| format!("--toplevel {arg}"))
                .map(Some),
            (None, Some(file)) => build_toplevel(
                global,
                store,
                &BuildRequest {
                    file: file.clone(),
                    attr: self.attr.clone(),
                    modules: None,
                    options,
                },
            ),
            (None, None) => anyhow::bail!("give a configuration FILE or --toplevel PATH"),
        }
    }
}

/// Builds `request` and insists that the result is a whole object — a
/// system toplevel, as `imago run`, `image` and `deploy` need — not a path
/// inside one. `Ok(None)`: the build failed and was reported on stderr.
pub fn build_toplevel(
    global: &GlobalArgs,
    store: &Store,
    request: &BuildRequest,
) -> anyhow::Result<Option<StorePath>> {
    match build_file(global, store, request)
        .with_context(|| format!("building {}", request.file.display()))?
    {
        Outcome::Built(built) if built.suffix.is_empty() => Ok(Some(built.path)),
        Outcome::Built(built) => anyhow::bail!(
            "`{}` of {} is {}{}, a path inside an object, not a system toplevel",
            request.attr,
            request.file.display(),
            built.path.to_absolute(),
            built.suffix
        ),
        Outcome::Failed => Ok(None),
    }
}

/// Evaluates, builds and reports failures on stderr.
pub fn build_file(
    global: &GlobalArgs,
    store: &Store,
    request: &BuildRequest,
) -> anyhow::Result<Outcome> {
    let lock_path = Lock::path_for(&request.file);
    let lock = if lock_path.exists() {
        Some(Lock::read(&lock_path).with_context(|| format!("reading {}", lock_path.display()))?)
    } else {
        None
    };
    let format = global.error_format;
    let color = format == ErrorFormat::Human && std::io::stderr().is_terminal();
    let modules_dir = system_eval::modules_dir(request.modules.as_deref());
    let (file, attr, eval_lock) = (request.file.clone(), request.attr.clone(), lock.clone());
    let options = eval_options(global);
    let evaluated = imago_lang::eval::with_large_stack(move || {
        evaluate(
            &file,
            &attr,
            TableMode::Build(eval_lock),
            &modules_dir,
            options,
            format,
            color,
        )
    })
    .context("cannot start the evaluation thread")??;
    let evaluated = match evaluated {
        Ok(e) => e,
        Err(rendered) => {
            eprint!("{rendered}");
            return Ok(Outcome::Failed);
        }
    };
    let (root, suffix) = match find_root(&evaluated, &request.attr)? {
        Root::Step(placeholder, suffix) => (placeholder, suffix),
        Root::StorePath(path, suffix) => {
            anyhow::ensure!(
                store
                    .is_valid(&path)
                    .context("reading the store database")?,
                "`{}` is not a valid object of the store {}",
                path.to_absolute(),
                store.dir().display()
            );
            return Ok(Outcome::Built(Built {
                path,
                suffix,
                summary: BuildSummary::default(),
            }));
        }
    };
    let graph = Graph::from_steps(&evaluated.steps, std::slice::from_ref(&root))
        .and_then(Graph::validate)
        .context("building the step graph")?;
    // Packages download in the background while the build runs: a `deb`
    // step waits only for its own file.
    let fetch = start_fetch(
        &graph,
        lock.as_ref(),
        &request.options,
        global,
        &request.file,
    )?;
    let built = build(&graph, store, &Registry, &request.options);
    let fetched = match fetch {
        Some(background) => {
            if built.is_err() {
                background.cancel();
            }
            background.finish().context("fetching Debian packages")
        }
        None => Ok(()),
    };
    match built {
        Ok(summary) => {
            fetched?;
            let output = summary
                .outputs
                .first()
                .context("the build produced no output")?;
            let (path, _) = StorePath::from_absolute(&output.path)?;
            Ok(Outcome::Built(Built {
                path,
                suffix,
                summary,
            }))
        }
        Err(ScheduleError::Failed { failures, .. }) => {
            // A package no source delivered explains the steps that
            // failed for want of it: say that, once.
            fetched?;
            for failure in &failures {
                eprintln!("error: {}", failure.report());
            }
            Ok(Outcome::Failed)
        }
        Err(other) => {
            fetched?;
            Err(other.into())
        }
    }
}

/// What the global flags change about evaluation.
fn eval_options(global: &GlobalArgs) -> system_eval::EvalOptions {
    system_eval::EvalOptions {
        show_trace: global.show_trace,
    }
}

/// Runs on the evaluation thread; `Err` is the rendered diagnostics (after
/// the configuration's warnings). Warnings of a configuration that builds
/// are printed on stderr here.
fn evaluate(
    file: &Path,
    attr: &str,
    mode: TableMode,
    modules_dir: &Path,
    options: system_eval::EvalOptions,
    format: ErrorFormat,
    color: bool,
) -> anyhow::Result<Result<Evaluated, String>> {
    let table = Rc::new(match mode {
        TableMode::Build(lock) => {
            StepTable::new(lock.map(|l| Box::new(l) as Box<dyn PackageIndex>))
        }
        TableMode::Record => StepTable::recording(),
    });
    let render =
        |diags: Vec<Diagnostic>, ev: &Evaluator| printed::render(&diags, ev, format, color);
    let (ev, value, system) = match attr.strip_prefix("config.") {
        Some(option) => {
            let option = OptionPath::parse(option)
                .map_err(|e| anyhow::anyhow!("bad `-A` argument `{attr}`: {e}"))?;
            let (ev, system) =
                match system_eval::eval_system_with(file, table.clone(), modules_dir, options) {
                    Ok(pair) => pair,
                    Err(failure) => {
                        return Ok(Err(render(failure.diagnostics(), &failure.evaluator)?));
                    }
                };
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
    printed::warn(&warnings, &ev, format, color)?;
    let steps = table.steps().clone();
    Ok(Ok(Evaluated {
        steps,
        text,
        packages: table.requested_packages(),
        sites: Sites::collect(&ev.package_sites(), ev.sources()),
    }))
}

fn eval_diagnostics(e: &EvalError) -> Vec<Diagnostic> {
    match e.parse_diagnostics() {
        Some(d) => d.to_vec(),
        None => vec![e.to_diagnostic()],
    }
}

enum Root {
    /// A step's placeholder and what follows it.
    Step(String, String),
    StorePath(StorePath, String),
}

/// The object the wanted string names.
fn find_root(evaluated: &Evaluated, attr: &str) -> anyhow::Result<Root> {
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
    anyhow::bail!(
        "`{attr}` evaluated to \"{text}\", which is not a store object; \
         it must be a derivation-like value made with `builtins.step`, a package or a path"
    )
}

/// Starts fetching every Debian package the graph needs that the download
/// cache lacks; `None` when the build uses no locked package.
fn start_fetch(
    graph: &crate::graph::ValidatedGraph,
    lock: Option<&Lock>,
    options: &BuildOptions,
    global: &GlobalArgs,
    file: &Path,
) -> anyhow::Result<Option<Background>> {
    let Some(lock) = lock else { return Ok(None) };
    let entries: Vec<LockEntry> = graph
        .topological()
        .iter()
        .map(|id| graph.step(*id))
        .filter(|s| s.builder == crate::graph::table::DEB_BUILDER)
        .filter_map(|s| lock.packages.get(&s.name).cloned())
        .collect();
    if entries.is_empty() {
        return Ok(None);
    }
    let fetch = super::fetching::fetch_options(
        global,
        options.deb_cache.clone(),
        options.offline,
        Some(file),
    )?;
    let background = Background::start(&entries, &fetch).context("fetching Debian packages")?;
    Ok(Some(background))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        let mut argv = vec!["imago", "build"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv)?.command {
            Command::Build(args) => Ok(args),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn parses_every_flag() {
        let a = parse(&[
            "sys.imago",
            "-A",
            "hello",
            "-o",
            "result",
            "--json",
            "--jobs",
            "3",
            "--keep-going",
            "--offline",
        ])
        .unwrap();
        assert_eq!(a.attr, "hello");
        assert_eq!(a.out_link.as_deref(), Some(Path::new("result")));
        assert!(a.json && a.keep_going && a.offline);
        assert_eq!(a.jobs, Some(3));
        let d = parse(&["sys.imago"]).unwrap();
        assert_eq!(d.attr, DEFAULT_ATTR);
        assert_eq!(d.jobs, None);
    }

    #[test]
    fn zero_jobs_is_a_usage_error() {
        assert!(parse(&["sys.imago", "--jobs", "0"]).is_err());
        assert!(parse(&[]).is_err());
    }
}

#[cfg(test)]
mod record_tests {
    use super::*;
    use crate::cli::ErrorFormat;

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
        let global = GlobalArgs {
            store: None,
            error_format: ErrorFormat::Human,
            show_trace: false,
            package_caches: Vec::new(),
        };
        let packages = requested_packages(&global, &file, DEFAULT_ATTR, Some(&lib))
            .unwrap()
            .unwrap();
        assert_eq!(packages, BTreeSet::from(["bash".to_owned()]));
    }
}
