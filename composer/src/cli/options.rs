//! `imago options`: documentation of every option, generated from the
//! declarations.
//!
//! Without a file: the options of the module library alone (this is how
//! docs/options.md is made: `imago options --markdown > docs/options.md`).
//! With a file: the library plus whatever that configuration declares. Only
//! declarations are read; no definition is evaluated. Options inside
//! submodules are listed with `<name>` (any attribute name) or `*` (any list
//! element) in their path. Files under the library's parent directory are
//! shown relative to it (`modules/config/users.imago:12`), so the output
//! does not depend on where the source tree is. The text formats end with
//! the names that are not options of their own: aliases, renamed names and
//! the NixOS names Imago does not have (`lib.mkAliasOptionModule` and
//! friends, docs/modules.md).

use super::printed::Printed;
use super::{ErrorFormat, GlobalArgs};
use crate::system_eval::{self, SystemEvalFailure};
use anyhow::Context;
use imago_lang::eval::Evaluator;
use imago_lang::hook::NoStore;
use imago_lang::modules::{AliasDoc, AliasKind, OptionDoc, Site};
use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::rc::Rc;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A configuration whose own option declarations are included.
    pub file: Option<PathBuf>,
    /// Print a JSON object keyed by option name.
    #[arg(long, conflicts_with_all = ["markdown", "man"])]
    pub json: bool,
    /// Print Markdown (docs/options.md).
    #[arg(long, conflicts_with = "man")]
    pub markdown: bool,
    /// Print a roff manual page (section 5).
    #[arg(long)]
    pub man: bool,
    /// The module library directory.
    #[arg(long, env = system_eval::MODULES_ENV, value_name = "DIR")]
    pub modules: Option<PathBuf>,
}

/// One option, ready to print.
struct Entry {
    doc: OptionDoc,
    declared: String,
}

impl Args {
    pub fn run(self, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
        let format = global.error_format;
        let color = format == ErrorFormat::Human && std::io::stderr().is_terminal();
        let options = system_eval::EvalOptions {
            show_trace: global.show_trace,
        };
        let outcome =
            imago_lang::eval::with_large_stack(move || self.document(options, format, color))
                .context("cannot start the evaluation thread")??;
        match outcome {
            Printed::Text(text) => {
                let mut out = std::io::stdout().lock();
                write!(out, "{text}").context("cannot write to stdout")?;
                Ok(ExitCode::SUCCESS)
            }
            Printed::Failed(rendered) => {
                eprint!("{rendered}");
                Ok(ExitCode::from(1))
            }
        }
    }

    fn document(
        self,
        options: system_eval::EvalOptions,
        format: ErrorFormat,
        color: bool,
    ) -> anyhow::Result<Printed> {
        let modules_dir = system_eval::modules_dir(self.modules.as_deref());
        let failed = |f: SystemEvalFailure| Printed::failure(&f, format, color);
        let (ev, evaluated) = match system_eval::declare_system_with(
            self.file.as_deref(),
            Rc::new(NoStore),
            &modules_dir,
            options,
        ) {
            Ok(pair) => pair,
            Err(f) => return failed(f),
        };
        let docs = match evaluated
            .option_docs(&ev)
            .and_then(|d| Ok((d, evaluated.alias_docs(&ev)?)))
        {
            Ok(d) => d,
            Err(error) => {
                return failed(SystemEvalFailure {
                    evaluator: Box::new(ev),
                    error,
                });
            }
        };
        let (docs, aliases) = docs;
        let root = modules_dir.parent().unwrap_or(&modules_dir).to_path_buf();
        let entries: Vec<Entry> = docs
            .into_iter()
            .map(|doc| Entry {
                declared: declared_at(&ev, &doc.declared, &root),
                doc,
            })
            .collect();
        let text = if self.json {
            format!("{}\n", to_json(&entries)?)
        } else if self.markdown {
            markdown(&entries, &aliases)
        } else if self.man {
            man(&entries, &aliases)
        } else {
            plain(&entries, &aliases)
        };
        Ok(Printed::Text(text))
    }
}

/// `file:line` of a declaration, relative to `root` when inside it.
fn declared_at(ev: &Evaluator, site: &Site, root: &Path) -> String {
    let (file, line) = match site
        .span
        .and_then(|s| ev.sources().get(s.file).map(|f| (f, s)))
    {
        Some((f, span)) => (f.path.clone(), Some(f.line_col(span.start).0)),
        None => (PathBuf::from(&*site.file), None),
    };
    let shown = file
        .strip_prefix(root)
        .map(Path::to_path_buf)
        .unwrap_or(file);
    match line {
        Some(l) => format!("{}:{l}", shown.display()),
        None => shown.display().to_string(),
    }
}

fn to_json(entries: &[Entry]) -> anyhow::Result<String> {
    let mut map = serde_json::Map::new();
    for e in entries {
        map.insert(
            e.doc.path.to_string(),
            serde_json::json!({
                "type": e.doc.ty,
                "default": e.doc.default,
                "example": e.doc.example,
                "description": e.doc.description,
                "readOnly": e.doc.read_only,
                "declarations": [e.declared],
            }),
        );
    }
    serde_json::to_string_pretty(&serde_json::Value::Object(map))
        .context("cannot encode the options")
}

/// A value in Markdown: inline code, or a code block when it has several
/// lines.
fn md_code(text: &str) -> String {
    if text.contains('\n') {
        format!("\n\n```\n{}\n```", text.trim_end())
    } else {
        let ticks = if text.contains('`') { "``" } else { "`" };
        format!(" {ticks}{text}{ticks}")
    }
}

/// What a name that is not an option stands for, in one sentence.
fn alias_meaning(kind: &AliasKind) -> String {
    let with = |message: &str| {
        if message.is_empty() {
            String::new()
        } else {
            format!(" {message}")
        }
    };
    match kind {
        AliasKind::Alias { to } => format!("Another name for `{to}`."),
        AliasKind::Renamed { to } => {
            format!("Renamed: definitions apply to `{to}`, with a warning.")
        }
        AliasKind::Removed { message } => format!("Removed (an error).{}", with(message)),
        AliasKind::Unsupported { message } => {
            format!("Not in Imago (an error).{}", with(message))
        }
        AliasKind::Ignored { message } => {
            format!("Accepted and ignored, with a warning.{}", with(message))
        }
    }
}

fn markdown(entries: &[Entry], aliases: &[AliasDoc]) -> String {
    let mut out = String::from(
        "# Options\n\n\
         Every option of the module library, generated from the declarations by\n\
         `imago options --markdown > docs/options.md`; do not edit by hand.\n\
         `<name>` stands for any attribute name and `*` for any list element.\n",
    );
    for e in entries {
        let d = &e.doc;
        let _ = write!(out, "\n## `{}`\n\n", d.path);
        match &d.description {
            Some(text) if !text.trim().is_empty() => {
                let _ = writeln!(out, "{}\n", text.trim());
            }
            _ => out.push_str("*No description.*\n\n"),
        }
        let _ = writeln!(out, "- Type:{}", md_code(&d.ty));
        if let Some(v) = &d.default {
            let _ = writeln!(out, "- Default:{}", md_code(v));
        }
        if let Some(v) = &d.example {
            let _ = writeln!(out, "- Example:{}", md_code(v));
        }
        if d.read_only {
            out.push_str("- Read-only\n");
        }
        let _ = writeln!(out, "- Declared in: `{}`", e.declared);
    }
    if !aliases.is_empty() {
        out.push_str(
            "\n## Other names\n\n\
             Names that are not options of their own: Imago's former names,\n\
             and NixOS names that Imago spells differently or does not have\n\
             (see \"Other names for options\" in modules.md). A whole namespace\n\
             stands for every option inside it.\n\n\
             | Name | Meaning |\n|---|---|\n",
        );
        for a in aliases {
            let _ = writeln!(
                out,
                "| `{}` | {} |",
                a.path,
                alias_meaning(&a.kind).replace('|', "\\|")
            );
        }
    }
    out
}

fn roff_escape(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let line = line.replace('\\', "\\e");
        if line.starts_with('.') || line.starts_with('\'') {
            out.push_str("\\&");
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

fn man(entries: &[Entry], aliases: &[AliasDoc]) -> String {
    let mut out = String::from(
        ".TH IMAGO-OPTIONS 5 \"\" \"imago\" \"Imago options\"\n\
         .SH NAME\nimago-options \\- the options of an Imago system configuration\n\
         .SH OPTIONS\n",
    );
    for e in entries {
        let d = &e.doc;
        let _ = write!(
            out,
            ".TP\n.B {}\n",
            roff_escape(&d.path.to_string()).trim_end()
        );
        if let Some(text) = &d.description {
            out.push_str(&roff_escape(text.trim()));
        }
        let _ = write!(out, ".sp\nType: {}", roff_escape(&d.ty));
        if let Some(v) = &d.default {
            let _ = write!(out, ".br\nDefault: {}", roff_escape(v));
        }
        if let Some(v) = &d.example {
            let _ = write!(out, ".br\nExample: {}", roff_escape(v));
        }
        if d.read_only {
            out.push_str(".br\nRead-only\n");
        }
        let _ = write!(out, ".br\nDeclared in: {}", roff_escape(&e.declared));
    }
    if !aliases.is_empty() {
        out.push_str(".SH OTHER NAMES\n");
        for a in aliases {
            let _ = write!(
                out,
                ".TP\n.B {}\n{}",
                roff_escape(&a.path.to_string()).trim_end(),
                roff_escape(&alias_meaning(&a.kind))
            );
        }
    }
    out
}

fn plain(entries: &[Entry], aliases: &[AliasDoc]) -> String {
    let mut out = String::new();
    for e in entries {
        let d = &e.doc;
        let _ = writeln!(out, "{}", d.path);
        let _ = writeln!(out, "    type: {}", d.ty);
        if let Some(v) = &d.default {
            let _ = writeln!(out, "    default: {}", v.replace('\n', "\n      "));
        }
        if let Some(v) = &d.example {
            let _ = writeln!(out, "    example: {}", v.replace('\n', "\n      "));
        }
        if d.read_only {
            let _ = writeln!(out, "    read-only");
        }
        if let Some(text) = &d.description {
            let _ = writeln!(out, "    {}", text.trim().replace('\n', "\n    "));
        }
        let _ = writeln!(out, "    declared in {}", e.declared);
    }
    for a in aliases {
        let _ = writeln!(out, "{}\n    {}", a.path, alias_meaning(&a.kind));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;
    use imago_lang::modules::OptionPath;

    fn entry() -> Entry {
        Entry {
            doc: OptionDoc {
                path: OptionPath::parse("services.demo.enable").unwrap(),
                ty: "boolean".into(),
                default: Some("false".into()),
                example: Some("{\n  a = 1;\n}".into()),
                description: Some("Whether to enable demo.".into()),
                read_only: false,
                declared: Site::new("x", None),
            },
            declared: "modules/demo.imago:3".into(),
        }
    }

    #[test]
    fn parses_formats() {
        let cli = Cli::try_parse_from(["imago", "options", "--markdown"]).unwrap();
        let Command::Options(args) = cli.command else {
            panic!("not options")
        };
        assert!(args.markdown && args.file.is_none());
        assert!(Cli::try_parse_from(["imago", "options", "--json", "--man"]).is_err());
    }

    fn renamed() -> AliasDoc {
        AliasDoc {
            path: OptionPath::parse("boot.kernel.params").unwrap(),
            kind: AliasKind::Renamed {
                to: OptionPath::parse("boot.kernelParams").unwrap(),
            },
            declared: Site::new("x", None),
        }
    }

    #[test]
    fn markdown_lists_other_names_in_a_table() {
        let mut gone = renamed();
        gone.path = OptionPath::parse("services.xserver").unwrap();
        gone.kind = AliasKind::Unsupported {
            message: "No X | Wayland.".into(),
        };
        let md = markdown(&[entry()], &[renamed(), gone]);
        assert!(md.contains("\n## Other names\n"), "{md}");
        assert!(
            md.contains(
                "| `boot.kernel.params` | Renamed: definitions apply to `boot.kernelParams`, with a warning. |"
            ),
            "{md}"
        );
        assert!(
            md.contains("| `services.xserver` | Not in Imago (an error). No X \\| Wayland. |"),
            "{md}"
        );
        assert!(plain(&[entry()], &[renamed()]).contains("boot.kernel.params\n    Renamed"));
        assert!(man(&[entry()], &[renamed()]).contains(".SH OTHER NAMES"));
    }

    #[test]
    fn markdown_has_a_section_per_option() {
        let md = markdown(&[entry()], &[]);
        assert!(md.contains("## `services.demo.enable`"), "{md}");
        assert!(md.contains("- Type: `boolean`"), "{md}");
        assert!(md.contains("- Default: `false`"), "{md}");
        assert!(md.contains("```\n{\n  a = 1;\n}\n```"), "{md}");
        assert!(md.contains("- Declared in: `modules/demo.imago:3`"), "{md}");
    }

    #[test]
    fn man_page_escapes_roff() {
        let mut e = entry();
        e.doc.description = Some(".starts with a dot \\ and a backslash".into());
        let page = man(&[e], &[]);
        assert!(page.starts_with(".TH IMAGO-OPTIONS 5"), "{page}");
        assert!(
            page.contains("\\&.starts with a dot \\e and a backslash"),
            "{page}"
        );
    }

    #[test]
    fn json_is_keyed_by_option_name() {
        let text = to_json(&[entry()]).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["services.demo.enable"]["type"], "boolean");
        assert_eq!(
            v["services.demo.enable"]["declarations"][0],
            "modules/demo.imago:3"
        );
    }
}
