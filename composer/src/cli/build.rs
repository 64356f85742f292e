//! `imago build FILE [-A attr] [-o result] [--json] [--jobs N] [--keep-going] [--offline]`.
//!
//! Runs the build pipeline (`crate::pipeline`: evaluate FILE, build the
//! steps of the attribute `-A`, by default `config.system.build.toplevel`,
//! fetching Debian packages in the background), then prints the output path
//! (and its physical location when the store is not at `/imago/store`), or
//! the build summary as JSON; `-o` adds an out-link registered as a GC root.
//! With progress on stderr, each step built or substituted is named there
//! as it finishes, and a last line counts the steps built, found in the
//! store and substituted (`--substituter CACHE`, docs/cache.md).
//!
//! Evaluation errors are rendered as diagnostics; a failed step is reported
//! with its log and the chain of steps that needed it. Exit code 1 for
//! both. The pipeline itself is `crate::pipeline`; this file parses the
//! arguments and prints, and [`build`] and [`build_toplevel`] are the
//! pipeline with this printing for the other commands that build (`imago
//! run`, `image`, `deploy`).

use super::GlobalArgs;
use crate::debian::apt::default_deb_cache;
use crate::graph::BuildOptions;
use crate::graph::progress::ProgressMode;
use crate::pipeline::{self, BuildRequest, Built, DEFAULT_ATTR, Failure, Outcome};
use crate::store::STORE_PREFIX;
use crate::store::{Store, StorePath};
use crate::system_eval;
use anyhow::Context;
use imago_lang::diag::Diagnostic;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

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
                progress: global.progress(),
            },
        };
        let Some(built) = build(global, &store, &request)? else {
            return Ok(ExitCode::from(1));
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
        let s = &built.summary;
        if !self.json && global.progress() != ProgressMode::Quiet && !s.steps.is_empty() {
            eprintln!(
                "imago: {} step(s): {} built, {} found in the store, {} substituted",
                s.steps.len(),
                s.built,
                s.cached,
                s.substituted
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

/// The pipeline's settings from the global flags, without substituters.
pub fn settings(global: &GlobalArgs) -> pipeline::Settings {
    pipeline::Settings {
        show_trace: global.show_trace,
        package_caches: global.package_caches.clone(),
        diagnostics: super::printed::diagnostic_style(global.error_format),
        ..pipeline::Settings::default()
    }
}

/// The settings of a build: [`settings`] with the substituters and the
/// keys they are trusted with (flags, environment, configuration).
pub fn build_settings(global: &GlobalArgs) -> anyhow::Result<pipeline::Settings> {
    let config = crate::settings::Settings::load()?;
    let mut substituters = super::trust::substituters(global, &config)?;
    let package_substituters = substituters.clone();
    let trusted_public_keys = if substituters.is_empty() {
        Vec::new()
    } else {
        super::trust::trusted_keys(global, &config)?
    };
    if trusted_public_keys.is_empty() && !substituters.is_empty() {
        // Nothing could be accepted: say so once, not once per step.
        let urls: Vec<String> = substituters.iter().map(|c| c.url()).collect();
        eprintln!(
            "imago: warning: no public key is trusted (--trusted-public-key FILE, \
             IMAGO_TRUSTED_PUBLIC_KEYS, trusted-public-keys in configuration): \
             the substituters {} are not used",
            urls.join(", ")
        );
        substituters.clear();
    }
    Ok(pipeline::Settings {
        substituters,
        trusted_public_keys,
        package_substituters,
        ..settings(global)
    })
}

/// Prints the configuration's warnings on stderr.
fn print_warnings(rendered: &str) {
    eprint!("{rendered}");
}

/// Prints why a configuration failed to build on stderr, in the format
/// `--error-format` asks for.
pub fn print_failure(global: &GlobalArgs, failure: &Failure) {
    match failure {
        Failure::Evaluation(rendered) => eprint!("{rendered}"),
        Failure::Steps(failures) => {
            for failure in failures {
                let diag = Diagnostic::error(failure.code(), failure.report());
                super::report::print_diagnostic(&diag, global.error_format);
            }
        }
    }
}

/// Builds `request` with `imago build`'s printing. `Ok(None)`: the
/// configuration failed to build, and why is on stderr.
pub fn build(
    global: &GlobalArgs,
    store: &Store,
    request: &BuildRequest,
) -> anyhow::Result<Option<Built>> {
    match pipeline::build_file(store, &build_settings(global)?, request, &print_warnings)? {
        Outcome::Built(built) => Ok(Some(built)),
        Outcome::Failed(failure) => {
            print_failure(global, &failure);
            Ok(None)
        }
    }
}

/// Builds a system toplevel ([`pipeline::build_toplevel`]) with `imago
/// build`'s printing. `Ok(None)`: the configuration failed to build, and
/// why is on stderr.
pub fn build_toplevel(
    global: &GlobalArgs,
    store: &Store,
    request: &BuildRequest,
) -> anyhow::Result<Option<StorePath>> {
    match pipeline::build_toplevel(store, &build_settings(global)?, request, &print_warnings)? {
        Ok(path) => Ok(Some(path)),
        Err(failure) => {
            print_failure(global, &failure);
            Ok(None)
        }
    }
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
    fn substituters_and_trusted_keys_are_global_and_repeatable() {
        let cli = Cli::try_parse_from([
            "imago",
            "build",
            "sys.imago",
            "--substituter",
            "file:///a",
            "--substituter",
            "https://b.example",
            "--trusted-public-key",
            "k.public",
        ])
        .unwrap();
        assert_eq!(cli.global.substituters, ["file:///a", "https://b.example"]);
        assert_eq!(cli.global.trusted_public_keys, [PathBuf::from("k.public")]);
    }

    #[test]
    fn zero_jobs_is_a_usage_error() {
        assert!(parse(&["sys.imago", "--jobs", "0"]).is_err());
        assert!(parse(&[]).is_err());
    }
}
