//! What the evaluating commands (`eval`, `config`, `options`) hand back from
//! their evaluation thread: text for stdout, or rendered diagnostics for
//! stderr. One place turns that into output and an exit code.

use super::ErrorFormat;
use crate::system_eval::SystemEvalFailure;
use anyhow::Context;
use std::io::Write;
use std::process::ExitCode;

pub enum Printed {
    /// Printed on stdout; exit code 0.
    Text(String),
    /// Already rendered diagnostics, printed on stderr; exit code 1.
    Failed(String),
}

impl Printed {
    /// A failed system evaluation, rendered in the requested format.
    pub fn failure(
        f: &SystemEvalFailure,
        format: ErrorFormat,
        color: bool,
    ) -> anyhow::Result<Printed> {
        Ok(Printed::Failed(match format {
            ErrorFormat::Human => f.render(color),
            ErrorFormat::Json => format!(
                "{}\n",
                serde_json::to_string_pretty(&f.to_json()).context("cannot encode the error")?
            ),
        }))
    }

    /// Prints and gives the exit code.
    pub fn finish(self) -> anyhow::Result<ExitCode> {
        match self {
            Printed::Text(text) => {
                let mut out = std::io::stdout().lock();
                writeln!(out, "{text}").context("cannot write to stdout")?;
                Ok(ExitCode::SUCCESS)
            }
            Printed::Failed(rendered) => {
                eprint!("{rendered}");
                Ok(ExitCode::from(1))
            }
        }
    }
}
