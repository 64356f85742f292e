//! `imago config`: the merged configuration of a system, one option of it,
//! or why an option has the value it has.
//!
//! The system is the user's file merged with the module library
//! ([`crate::system_eval`]). No store is involved: packages and generated
//! files show as pending placeholders. Options that have no value are left
//! out. `--explain` lists every definition of one option with its priority
//! and location, and says which won and why.

use super::printed::Printed;
use super::{ErrorFormat, GlobalArgs};
use crate::system_eval::{self, SystemEvalFailure};
use anyhow::Context;
use imago_lang::eval::Evaluator;
use imago_lang::hook::NoStore;
use imago_lang::modules::docs::priority_name;
use imago_lang::modules::{DefStatus, Explanation, OptionPath, Site};
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The system configuration file.
    pub file: PathBuf,
    /// Print only this option (or namespace), e.g. `networking.hostName`.
    #[arg(
        short = 'A',
        long = "attr",
        value_name = "OPTION.PATH",
        conflicts_with = "explain"
    )]
    pub attr: Option<String>,
    /// Print the value as JSON.
    #[arg(long, conflicts_with = "explain")]
    pub json: bool,
    /// List every definition of this option, its priority and location, and
    /// which one won and why.
    #[arg(long, value_name = "OPTION.PATH")]
    pub explain: Option<String>,
    /// The module library directory.
    #[arg(long, env = system_eval::MODULES_ENV, value_name = "DIR")]
    pub modules: Option<PathBuf>,
}

impl Args {
    pub fn run(self, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
        let format = global.error_format;
        let color = format == ErrorFormat::Human && std::io::stderr().is_terminal();
        let options = system_eval::EvalOptions {
            show_trace: global.show_trace,
        };
        let attr = self
            .attr
            .as_deref()
            .map(OptionPath::parse)
            .transpose()
            .map_err(|e| anyhow::anyhow!("bad `-A` argument: {e}"))?;
        let explain = self
            .explain
            .as_deref()
            .map(OptionPath::parse)
            .transpose()
            .map_err(|e| anyhow::anyhow!("bad `--explain` argument: {e}"))?;
        let outcome = imago_lang::eval::with_large_stack(move || {
            self.evaluate(attr, explain, options, format, color)
        })
        .context("cannot start the evaluation thread")??;
        outcome.finish()
    }

    fn evaluate(
        self,
        attr: Option<OptionPath>,
        explain: Option<OptionPath>,
        options: system_eval::EvalOptions,
        format: ErrorFormat,
        color: bool,
    ) -> anyhow::Result<Printed> {
        let modules_dir = system_eval::modules_dir(self.modules.as_deref());
        let failed = |f: SystemEvalFailure| Printed::failure(&f, format, color);
        let (ev, evaluated) = match system_eval::eval_system_with(
            &self.file,
            Rc::new(NoStore),
            &modules_dir,
            options,
        ) {
            Ok(pair) => pair,
            Err(f) => return failed(f),
        };
        let result = match &explain {
            Some(path) => evaluated
                .explain(&ev, path)
                .map(|e| render_explanation(&ev, &e)),
            None => evaluated.config_json(&ev, attr.as_ref()).map(|json| {
                if self.json {
                    serde_json::to_string_pretty(&json).unwrap_or_else(|_| json.to_string())
                } else {
                    nix_like(&json)
                }
            }),
        };
        // Warnings found while the value was computed count too.
        let warnings = evaluated.warnings();
        match result {
            Ok(text) => {
                super::printed::warn(&warnings, &ev, format, color)?;
                Ok(Printed::Text(text))
            }
            Err(error) => Printed::failure_after(
                warnings,
                &SystemEvalFailure {
                    evaluator: Box::new(ev),
                    error,
                },
                format,
                color,
            ),
        }
    }
}

fn location(ev: &Evaluator, site: &Site) -> String {
    match site.span {
        Some(span) => ev.location(span),
        None => site.file.to_string(),
    }
}

/// The `--explain` report.
fn render_explanation(ev: &Evaluator, e: &Explanation) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "option `{}` ({})", e.path, e.ty);
    let _ = writeln!(out, "declared at {}", location(ev, &e.declared));
    if e.defs.is_empty() {
        let _ = writeln!(out, "no definitions");
    } else {
        let _ = writeln!(out, "definitions:");
    }
    for d in &e.defs {
        let status = match d.status {
            DefStatus::Used => "used",
            DefStatus::Overridden => "overridden",
            DefStatus::ConditionFalse => "mkIf false",
        };
        let prio = match d.priority {
            Some(p) => {
                let mut s = format!("priority {p} ({})", priority_name(p));
                if let Some(o) = d.order.filter(|o| *o != 1000) {
                    let _ = write!(s, ", order {o}");
                }
                s
            }
            None => "condition is false".to_string(),
        };
        let what = if d.is_default { " [default]" } else { "" };
        let _ = writeln!(
            out,
            "  {status:<10} {prio}{what}\n             at {}\n             value {}",
            location(ev, &d.site),
            d.value
        );
    }
    let _ = writeln!(out, "why: {}", e.summary);
    match &e.result {
        Ok(v) => {
            let _ = write!(out, "value: {v}");
        }
        Err(msg) => {
            let _ = write!(out, "value: error: {msg}");
        }
    }
    out
}

fn is_plain_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '\''))
}

fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '$' => out.push_str("\\$"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The configuration printed in the language's syntax, indented.
pub fn nix_like(json: &serde_json::Value) -> String {
    let mut out = String::new();
    write_value(&mut out, json, 0);
    out
}

fn write_value(out: &mut String, v: &serde_json::Value, indent: usize) {
    use serde_json::Value as J;
    let pad = "  ".repeat(indent + 1);
    match v {
        J::Null => out.push_str("null"),
        J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        J::Number(n) => out.push_str(&n.to_string()),
        J::String(s) => out.push_str(&quote(s)),
        J::Array(items) if items.is_empty() => out.push_str("[ ]"),
        J::Array(items) => {
            out.push_str("[\n");
            for item in items {
                out.push_str(&pad);
                write_value(out, item, indent + 1);
                out.push('\n');
            }
            out.push_str(&"  ".repeat(indent));
            out.push(']');
        }
        J::Object(map) if map.is_empty() => out.push_str("{ }"),
        J::Object(map) => {
            out.push_str("{\n");
            for (k, item) in map {
                out.push_str(&pad);
                if is_plain_name(k) {
                    out.push_str(k);
                } else {
                    out.push_str(&quote(k));
                }
                out.push_str(" = ");
                write_value(out, item, indent + 1);
                out.push_str(";\n");
            }
            out.push_str(&"  ".repeat(indent));
            out.push('}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    #[test]
    fn parses_flags() {
        let cli =
            Cli::try_parse_from(["imago", "config", "sys.imago", "-A", "a.b", "--json"]).unwrap();
        let Command::Config(args) = cli.command else {
            panic!("not config")
        };
        assert_eq!(args.attr.as_deref(), Some("a.b"));
        assert!(args.json);
        assert!(Cli::try_parse_from(["imago", "config"]).is_err());
        assert!(
            Cli::try_parse_from(["imago", "config", "f", "-A", "x", "--explain", "y"]).is_err()
        );
    }

    #[test]
    fn prints_in_the_language_syntax() {
        let json = serde_json::json!({
            "a": { "b": [1, "two\n"], "c d": null },
            "e": {},
            "f": []
        });
        assert_eq!(
            nix_like(&json),
            "{\n  a = {\n    b = [\n      1\n      \"two\\n\"\n    ];\n    \"c d\" = null;\n  };\n  e = { };\n  f = [ ];\n}"
        );
    }
}
