//! What the evaluating commands (`eval`, `config`, `options`) hand back from
//! their evaluation thread: text for stdout, or rendered diagnostics for
//! stderr. One place turns that into output and an exit code.

use super::ErrorFormat;
use crate::pipeline::DiagnosticStyle;
use crate::system_eval::SystemEvalFailure;
use anyhow::Context;
use imago_lang::diag::Diagnostic;
use imago_lang::eval::Evaluator;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;

pub enum Printed {
    /// Printed on stdout; exit code 0.
    Text(String),
    /// Already rendered diagnostics, printed on stderr; exit code 1.
    Failed(String),
}

/// The pipeline's diagnostic style for `format`: text in colour when
/// stderr is a terminal, or JSON.
pub fn diagnostic_style(format: ErrorFormat) -> DiagnosticStyle {
    match format {
        ErrorFormat::Human => DiagnosticStyle::Text {
            color: std::io::stderr().is_terminal(),
        },
        ErrorFormat::Json => DiagnosticStyle::Json,
    }
}

/// Diagnostics (errors and warnings) rendered in the requested format:
/// text, or one JSON array.
pub fn render(
    diags: &[Diagnostic],
    ev: &Evaluator,
    format: ErrorFormat,
    color: bool,
) -> anyhow::Result<String> {
    let style = match format {
        ErrorFormat::Human => DiagnosticStyle::Text { color },
        ErrorFormat::Json => DiagnosticStyle::Json,
    };
    style.render(diags, ev.sources())
}

/// Prints warnings (of a configuration that evaluated) on stderr.
pub fn warn(
    warnings: &[Diagnostic],
    ev: &Evaluator,
    format: ErrorFormat,
    color: bool,
) -> anyhow::Result<()> {
    if !warnings.is_empty() {
        eprint!("{}", render(warnings, ev, format, color)?);
    }
    Ok(())
}

impl Printed {
    /// A failed system evaluation, rendered in the requested format.
    pub fn failure(
        f: &SystemEvalFailure,
        format: ErrorFormat,
        color: bool,
    ) -> anyhow::Result<Printed> {
        Ok(Printed::Failed(render(
            &f.diagnostics(),
            &f.evaluator,
            format,
            color,
        )?))
    }

    /// A failure after the configuration evaluated: its warnings, then the
    /// error's diagnostics.
    pub fn failure_after(
        warnings: Vec<Diagnostic>,
        f: &SystemEvalFailure,
        format: ErrorFormat,
        color: bool,
    ) -> anyhow::Result<Printed> {
        let mut diags = warnings;
        diags.extend(f.diagnostics());
        Ok(Printed::Failed(render(
            &diags,
            &f.evaluator,
            format,
            color,
        )?))
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
