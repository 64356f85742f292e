//! The command line: one file per subcommand, each with a clap `Args` struct
//! and a `run` function. This file only declares and dispatches.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

pub mod build;
pub mod cache;
pub mod closure;
pub mod config;
pub mod copy;
pub mod deploy;
mod deploy_report;
pub mod eval;
mod fetching;
pub mod gc;
pub mod generations;
mod guard;
pub mod image;
pub mod key;
pub mod lock;
pub mod options;
mod printed;
pub mod report;
pub mod rollback;
pub mod run;
pub mod store;
mod target;
mod trust;

/// Imago: compose whole systems from a declarative configuration.
#[derive(Debug, Parser)]
#[command(name = "imago", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand understands.
#[derive(Debug, Clone, clap::Args)]
pub struct GlobalArgs {
    /// The store directory (default: /imago/store for root, $XDG_DATA_HOME/imago/store otherwise).
    #[arg(long, global = true, env = "IMAGO_STORE", value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// How errors are printed.
    #[arg(long, global = true, value_enum, default_value_t = ErrorFormat::Human)]
    pub error_format: ErrorFormat,
    /// Show every frame of an evaluation error's trace, frames inside the
    /// module library included (by default only frames in your files are
    /// shown and the library's are counted).
    #[arg(long, global = true)]
    pub show_trace: bool,
    /// A package cache to fetch locked .debs from before the mirrors: a
    /// directory or an HTTP(S) base URL laid out as `sha256/<hex>`
    /// (repeatable; IMAGO_PACKAGE_CACHES takes several, separated by spaces).
    #[arg(
        long = "package-cache",
        global = true,
        env = "IMAGO_PACKAGE_CACHES",
        value_delimiter = ' ',
        value_name = "URL"
    )]
    pub package_caches: Vec<String>,
    /// A binary cache asked for the output of each step the store lacks
    /// before building it (`file:///DIR`, `http(s)://…` or
    /// `oci://HOST/REPOSITORY`; repeatable;
    /// IMAGO_SUBSTITUTERS takes several, separated by spaces), before the
    /// configuration's `substituters`; also a source of locked .debs,
    /// after the package caches.
    #[arg(
        long = "substituter",
        global = true,
        env = "IMAGO_SUBSTITUTERS",
        value_delimiter = ' ',
        value_name = "CACHE"
    )]
    pub substituters: Vec<String>,
    /// A public key file whose signatures are trusted in binary caches
    /// (repeatable; IMAGO_TRUSTED_PUBLIC_KEYS takes several, separated by
    /// spaces), in addition to the configuration's `trusted-public-keys`.
    #[arg(
        long = "trusted-public-key",
        global = true,
        env = "IMAGO_TRUSTED_PUBLIC_KEYS",
        value_delimiter = ' ',
        value_name = "FILE"
    )]
    pub trusted_public_keys: Vec<PathBuf>,
}

impl GlobalArgs {
    /// How builds show their progress: not at all when errors are JSON, so
    /// that stderr carries nothing but the diagnostics a tool reads.
    pub fn progress(&self) -> crate::graph::progress::ProgressMode {
        use crate::graph::progress::ProgressMode;
        match self.error_format {
            ErrorFormat::Human => ProgressMode::Auto,
            ErrorFormat::Json => ProgressMode::Quiet,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ErrorFormat {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Evaluate a file and print its value.
    Eval(eval::Args),
    /// Print the merged configuration of a system, or explain one option.
    Config(config::Args),
    /// Document every option a configuration (or the module library) declares.
    Options(options::Args),
    /// Build a system (or any attribute) into the store and print its path.
    Build(build::Args),
    /// Build a system and boot it in QEMU with the serial console on this terminal.
    Run(run::Args),
    /// Build a bootable GPT disk image (UEFI, systemd-boot) of a system.
    Image(image::Args),
    /// Resolve the Debian packages a configuration uses and write imago.lock.
    Lock(lock::Args),
    /// Share downloaded Debian packages as a package cache.
    #[command(subcommand)]
    Cache(cache::Command),
    /// Inspect and check the store.
    #[command(subcommand)]
    Store(store::Command),
    /// Delete store objects that no root reaches.
    Gc(gc::Args),
    /// Export or import a closure as a zstd-compressed tar stream.
    #[command(subcommand)]
    Closure(closure::Command),
    /// Copy closures to or from a signed binary cache.
    Copy(copy::Args),
    /// Generate the keys that sign binary caches.
    #[command(subcommand)]
    Key(key::Command),
    /// List or delete the generations of a profile directory.
    Generations(generations::Args),
    /// Make the previous generation of a profile directory current.
    Rollback(rollback::Args),
    /// Copy a system to machines over ssh and switch them, in waves, with health checks.
    Deploy(deploy::Args),
}

/// Parses the process's arguments and runs them: the whole `imago`
/// program, for every binary that is it.
pub fn main_from_args() -> ExitCode {
    let cli = match <Cli as clap::Parser>::try_parse() {
        Ok(cli) => cli,
        Err(e) if e.use_stderr() && json_errors_asked(std::env::args_os()) => {
            let message = e.render().to_string();
            let diag = imago_lang::diag::Diagnostic::error(crate::codes::USAGE, message.trim_end());
            report::print_diagnostic(&diag, ErrorFormat::Json);
            return ExitCode::from(2);
        }
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            // Printing clap's message can only fail on a closed stdout/stderr.
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    main(cli)
}

/// Whether a command line that clap refused asked for JSON errors
/// (`--error-format json` or `--error-format=json`), so its usage error is
/// printed as a diagnostic too.
fn json_errors_asked(args: impl IntoIterator<Item = std::ffi::OsString>) -> bool {
    let mut previous_was_flag = false;
    for arg in args {
        if arg == "--" {
            break;
        }
        if (previous_was_flag && arg == "json") || arg == "--error-format=json" {
            return true;
        }
        previous_was_flag = arg == "--error-format";
    }
    false
}

/// Runs a parsed command line. Exit codes: 0 success, 1 failure (including
/// evaluation and syntax errors), 2 bad usage.
pub fn main(cli: Cli) -> ExitCode {
    let global = cli.global;
    let result = match cli.command {
        Command::Eval(args) => args.run(&global),
        Command::Config(args) => args.run(&global),
        Command::Options(args) => args.run(&global),
        Command::Build(args) => args.run(&global),
        Command::Run(args) => args.run(&global),
        Command::Image(args) => args.run(&global),
        Command::Lock(args) => args.run(&global),
        Command::Cache(cmd) => cmd.run(&global),
        Command::Store(cmd) => cmd.run(&global),
        Command::Gc(args) => args.run(&global),
        Command::Closure(cmd) => cmd.run(&global),
        Command::Copy(args) => args.run(&global),
        Command::Key(cmd) => cmd.run(&global),
        Command::Generations(args) => args.run(&global),
        Command::Rollback(args) => args.run(&global),
        Command::Deploy(args) => args.run(&global),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            report::print_error(&e, global.error_format);
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_errors_are_asked_for_in_both_spellings_before_a_double_dash() {
        let asked = |args: &[&str]| json_errors_asked(args.iter().map(std::ffi::OsString::from));
        assert!(asked(&["imago", "--error-format", "json", "bild"]));
        assert!(asked(&[
            "imago",
            "build",
            "--error-format=json",
            "--no-such"
        ]));
        assert!(!asked(&["imago", "--error-format", "human", "json"]));
        assert!(!asked(&["imago", "build", "json"]));
        assert!(!asked(&["imago", "eval", "--", "--error-format", "json"]));
    }

    #[test]
    fn help_lists_every_subcommand() {
        use clap::CommandFactory;
        let help = Cli::command().render_help().to_string();
        for verb in [
            "eval",
            "config",
            "options",
            "build",
            "run",
            "image",
            "lock",
            "cache",
            "store",
            "gc",
            "closure",
            "copy",
            "key",
            "generations",
            "rollback",
            "deploy",
        ] {
            assert!(help.contains(verb), "`{verb}` missing from:\n{help}");
        }
    }

    #[test]
    fn show_trace_is_a_global_flag() {
        let cli = Cli::try_parse_from(["imago", "config", "x.imago", "--show-trace"]).unwrap();
        assert!(cli.global.show_trace);
        let cli = Cli::try_parse_from(["imago", "--show-trace", "eval", "--expr", "1"]).unwrap();
        assert!(cli.global.show_trace);
        let cli = Cli::try_parse_from(["imago", "build", "x.imago"]).unwrap();
        assert!(!cli.global.show_trace);
    }

    #[test]
    fn unknown_flags_are_usage_errors() {
        let err = Cli::try_parse_from(["imago", "build", "--no-such-flag"]).unwrap_err();
        assert!(err.use_stderr());
    }
}
