//! `imago eval`: evaluate a file or expression and print the value.
//!
//! Evaluation runs on a thread with a large stack (deep recursion in user code
//! becomes an evaluation error, never a crash). The value is printed Nix-like
//! (`--strict` forces it completely; otherwise unevaluated parts show as
//! `«thunk»`) or as JSON (`--json`, always deep). No store is involved: steps,
//! packages and imported paths get pending placeholders. `pkgs` is bound
//! globally. Errors are rendered as diagnostics (or JSON with
//! `--error-format json`) and exit with status 1.

use super::printed::Printed;
use super::{ErrorFormat, GlobalArgs};
use crate::fsio::FsIo;
use anyhow::Context;
use imago_lang::diag::{self, IntoDiagnostic};
use imago_lang::eval::{EvalError, Evaluator, Value};
use imago_lang::hook::NoStore;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::rc::Rc;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The file to evaluate (a directory means its default.imago).
    #[arg(required_unless_present = "expr", conflicts_with = "expr")]
    pub file: Option<PathBuf>,
    /// Evaluate this expression instead of a file.
    #[arg(long, value_name = "TEXT")]
    pub expr: Option<String>,
    /// Print only this attribute of the result, e.g. `config.networking."host-name"`.
    #[arg(short = 'A', long = "attr", value_name = "ATTR.PATH")]
    pub attr: Option<String>,
    /// Print the value as JSON (forces it completely).
    #[arg(long)]
    pub json: bool,
    /// Force the value completely before printing.
    #[arg(long)]
    pub strict: bool,
}

impl Args {
    pub fn run(self, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
        let cwd = std::env::current_dir().context("cannot determine the current directory")?;
        let format = global.error_format;
        let color = format == ErrorFormat::Human && std::io::stderr().is_terminal();
        let show_trace = global.show_trace;
        let outcome = imago_lang::eval::with_large_stack(move || {
            self.evaluate(&cwd, show_trace, format, color)
        })
        .context("cannot start the evaluation thread")??;
        outcome.finish()
    }

    fn evaluate(
        self,
        cwd: &Path,
        show_trace: bool,
        format: ErrorFormat,
        color: bool,
    ) -> anyhow::Result<Printed> {
        let mut ev = Evaluator::new(Rc::new(FsIo), Rc::new(NoStore));
        ev.set_show_trace(show_trace);
        let pkgs = ev.packages_value();
        ev.with_global("pkgs", pkgs);
        match self.value(&ev, cwd) {
            Ok(text) => Ok(Printed::Text(text)),
            Err(e) => {
                let diags = match e.parse_diagnostics() {
                    Some(d) => d.to_vec(),
                    None => vec![e.to_diagnostic()],
                };
                let rendered = match format {
                    ErrorFormat::Human => diag::render(&diags, ev.sources(), color),
                    ErrorFormat::Json => {
                        let json = diag::to_json(&diags, ev.sources());
                        format!(
                            "{}\n",
                            serde_json::to_string_pretty(&json)
                                .context("cannot encode the error")?
                        )
                    }
                };
                Ok(Printed::Failed(rendered))
            }
        }
    }

    fn value(&self, ev: &Evaluator, cwd: &Path) -> Result<String, EvalError> {
        let mut v: Value = match (&self.expr, &self.file) {
            (Some(text), _) => ev.eval_source("<command line>", text, cwd)?,
            (None, Some(file)) => ev.eval_file(&cwd.join(file))?,
            (None, None) => ev.eval_source("<command line>", "null", cwd)?,
        };
        if let Some(path) = &self.attr {
            v = ev.select(&v, path)?;
        }
        if self.json {
            let j = ev.to_json(&v)?;
            Ok(serde_json::to_string_pretty(&j).unwrap_or_else(|_| j.to_string()))
        } else {
            ev.display(&v, self.strict)
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::cli::{Cli, Command};
    use clap::Parser;

    #[test]
    fn parses_file_and_flags() {
        let cli = Cli::try_parse_from([
            "imago", "eval", "x.imago", "-A", "a.b", "--json", "--strict",
        ])
        .unwrap();
        let Command::Eval(args) = cli.command else {
            panic!("not eval")
        };
        assert_eq!(args.file.as_deref(), Some(std::path::Path::new("x.imago")));
        assert_eq!(args.attr.as_deref(), Some("a.b"));
        assert!(args.json && args.strict);
    }

    #[test]
    fn file_and_expr_conflict() {
        assert!(Cli::try_parse_from(["imago", "eval", "x.imago", "--expr", "1"]).is_err());
        assert!(Cli::try_parse_from(["imago", "eval"]).is_err());
        assert!(Cli::try_parse_from(["imago", "eval", "--expr", "1"]).is_ok());
    }
}
