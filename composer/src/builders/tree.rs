//! The `tree` builder: a directory described entry by entry, used for /etc
//! trees and the system toplevel.
//!
//! Parameters: `{ entries = { "<relative/path>" = ENTRY; ... }; }` where ENTRY
//! is exactly one of
//! - `{ text = "..."; executable ? false; }` — a file with that content,
//!   created read-only as the store keeps it (0444, or 0555 when executable);
//! - `{ source = "/imago/store/..."; }` — a hard link to a store file, or a
//!   recursive copy of a store directory (directories created, files
//!   hard-linked, symlinks recreated); the source must lie inside one of the
//!   step's inputs;
//! - `{ symlink = "<target>"; }` — a symlink;
//! - `{ closure = true; }` — a file (0444) listing the closure of the step's
//!   inputs ([`ResolvedStep::closure`]), one absolute store path per line,
//!   sorted, each line ending in a newline (empty when the step has no
//!   inputs). The file names exactly the objects the output can refer to,
//!   so the output's references are exactly its lines: a machine reads the
//!   system toplevel's `closure` to know which store objects to keep.
//!
//! Paths are validated before anything is written: relative, no `.`, `..` or
//! empty components, no two entries naming the same path (even up to
//! case), and no entry below
//! another entry (a file, a symlink or a copied source). Parent directories
//! are created with mode 0755.

use super::fsutil::{copy_tree, create_dir, set_mode, store_source, write_new_file};
use super::profile::relative;
use super::{BuildContext, BuildError, Builder, ResolvedStep};
use crate::store::STORE_PREFIX;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    entries: BTreeMap<String, RawEntry>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    text: Option<String>,
    executable: Option<bool>,
    source: Option<String>,
    symlink: Option<String>,
    closure: Option<bool>,
}

#[derive(Debug, PartialEq)]
enum Entry {
    Text { text: String, executable: bool },
    Source(String),
    Symlink(String),
    Closure,
}

impl Entry {
    fn from_raw(path: &str, raw: RawEntry) -> Result<Entry, BuildError> {
        let bad = |why: &str| BuildError::Params(format!("builder `tree`: entry `{path}` {why}"));
        match raw {
            RawEntry {
                text: Some(text),
                executable,
                source: None,
                symlink: None,
                closure: None,
            } => Ok(Entry::Text {
                text,
                executable: executable.unwrap_or(false),
            }),
            RawEntry {
                text: None,
                executable: None,
                source: Some(source),
                symlink: None,
                closure: None,
            } => Ok(Entry::Source(source)),
            RawEntry {
                text: None,
                executable: None,
                source: None,
                symlink: Some(target),
                closure: None,
            } => {
                if target.is_empty() || target.contains('\0') {
                    return Err(bad("has an empty symlink target or one containing NUL"));
                }
                Ok(Entry::Symlink(target))
            }
            RawEntry {
                text: None,
                executable: None,
                source: None,
                symlink: None,
                closure: Some(true),
            } => Ok(Entry::Closure),
            RawEntry {
                text: None,
                executable: None,
                source: None,
                symlink: None,
                closure: Some(false),
            } => Err(bad(
                "has `closure = false`; an entry listing the closure is `{ closure = true; }`",
            )),
            RawEntry {
                text: None,
                source: None,
                symlink: None,
                closure: None,
                ..
            } => Err(bad("needs one of `text`, `source`, `symlink` or `closure`")),
            RawEntry {
                executable: Some(_),
                text: None,
                ..
            } => Err(bad("has `executable`, which only goes with `text`")),
            _ => Err(bad(
                "has more than one of `text`, `source`, `symlink` and `closure`",
            )),
        }
    }
}

/// Builds a directory from a list of entries.
#[derive(Debug, Clone, Copy, Default)]
pub struct TreeBuilder;

impl Builder for TreeBuilder {
    fn build(
        &self,
        ctx: &BuildContext,
        step: &ResolvedStep,
        out: &Path,
        _log: &mut dyn Write,
    ) -> Result<(), BuildError> {
        let params: Params = step.params()?;
        let entries = validate(step, params)?;
        create_dir(out)?;
        set_mode(out, 0o755)?;
        for (rel, entry) in &entries {
            let target = out.join(rel);
            if let Some(parent) = rel.parent() {
                make_parents(out, parent)?;
            }
            match entry {
                Entry::Text { text, executable } => {
                    write_new_file(&target, text.as_bytes(), *executable)?;
                }
                Entry::Symlink(link) => std::os::unix::fs::symlink(link, &target).map_err(
                    BuildError::io(format!("creating symlink `{}`", target.display())),
                )?,
                Entry::Source(source) => copy_tree(&store_source(ctx, source)?, &target, true)?,
                Entry::Closure => write_new_file(&target, closure_text(step).as_bytes(), false)?,
            }
        }
        Ok(())
    }
}

/// The closure file: one store path a line, sorted (the scheduler sorts the
/// closure already; sorting here keeps the file the same whoever made the
/// step), each line newline-terminated.
fn closure_text(step: &ResolvedStep) -> String {
    let paths: BTreeSet<&str> = step.closure.iter().map(String::as_str).collect();
    paths.into_iter().map(|p| format!("{p}\n")).collect()
}

/// Checks every path and entry; returns the entries sorted by path.
fn validate(step: &ResolvedStep, params: Params) -> Result<BTreeMap<PathBuf, Entry>, BuildError> {
    let mut entries = BTreeMap::new();
    for (path, raw) in params.entries {
        let rel = relative(&path).map_err(|why| {
            BuildError::Params(format!("builder `tree`: entry path `{path}` {why}"))
        })?;
        let entry = Entry::from_raw(&path, raw)?;
        if let Entry::Source(source) = &entry {
            check_source(step, &path, source)?;
        }
        if entries.insert(rel, entry).is_some() {
            return Err(BuildError::Params(format!(
                "builder `tree`: entry `{path}` is given twice"
            )));
        }
    }
    // Two paths that differ only in case collide on case-insensitive file
    // systems (an ESP, a copy on another machine): refuse them too.
    let mut folded: BTreeMap<String, &PathBuf> = BTreeMap::new();
    for rel in entries.keys() {
        let key = rel.to_string_lossy().to_lowercase();
        if let Some(other) = folded.insert(key, rel) {
            return Err(BuildError::Params(format!(
                "builder `tree`: entries `{}` and `{}` name the same path up to case",
                other.display(),
                rel.display()
            )));
        }
    }
    // Sorted order puts `a` right before everything under `a/`, so checking
    // each entry against its ancestors finds every nesting.
    for rel in entries.keys() {
        if let Some(ancestor) = rel.ancestors().skip(1).find(|a| entries.contains_key(*a)) {
            let kind = match &entries[ancestor] {
                Entry::Text { .. } | Entry::Closure => "a file",
                Entry::Source(_) => "a copied store path",
                Entry::Symlink(_) => "a symlink",
            };
            return Err(BuildError::Params(format!(
                "builder `tree`: entry `{}` lies under entry `{}`, which is {kind}",
                rel.display(),
                ancestor.display()
            )));
        }
    }
    Ok(entries)
}

/// A `source` must be a store path inside one of the step's inputs.
fn check_source(step: &ResolvedStep, path: &str, source: &str) -> Result<(), BuildError> {
    let inside = step.inputs.iter().any(|input| {
        source == input
            || source
                .strip_prefix(input.as_str())
                .is_some_and(|rest| rest.starts_with('/'))
    });
    if !source.starts_with(STORE_PREFIX) || !inside {
        return Err(BuildError::Params(format!(
            "builder `tree`: entry `{path}`: source `{source}` is not inside one of the step's inputs"
        )));
    }
    Ok(())
}

fn make_parents(out: &Path, parent: &Path) -> Result<(), BuildError> {
    let mut dir = out.to_path_buf();
    for part in parent.components() {
        dir.push(part);
        match std::fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(BuildError::Failed(format!(
                    "builder `tree`: `{}` is not a directory",
                    dir.display()
                )));
            }
            Err(_) => {
                create_dir(&dir)?;
                set_mode(&dir, 0o755)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn step(entries: serde_json::Value, closure: &[&str]) -> ResolvedStep {
        ResolvedStep {
            builder: "tree".into(),
            name: "t".into(),
            params: serde_json::json!({ "entries": entries }),
            inputs: vec![],
            closure: closure.iter().map(|p| (*p).to_owned()).collect(),
        }
    }

    fn build(step: &ResolvedStep) -> Result<tempfile::TempDir, BuildError> {
        let dir = tempfile::tempdir().map_err(BuildError::io("temp dir"))?;
        let ctx = BuildContext {
            store_dir: dir.path().join("store"),
            deb_cache: dir.path().join("debs"),
            offline: true,
        };
        TreeBuilder.build(&ctx, step, &dir.path().join("out"), &mut Vec::new())?;
        Ok(dir)
    }

    const A: &str = "/imago/store/0000000000000000000000000000000a-a";
    const B: &str = "/imago/store/0000000000000000000000000000000b-b";

    #[test]
    fn a_closure_entry_lists_the_closure_sorted_one_path_a_line() {
        // Given out of order and twice: the file is sorted all the same.
        let s = step(
            serde_json::json!({ "closure": { "closure": true }, "sub/c": { "closure": true } }),
            &[B, A, B],
        );
        let dir = build(&s).unwrap();
        let out = dir.path().join("out");
        let want = format!("{A}\n{B}\n");
        assert_eq!(std::fs::read_to_string(out.join("closure")).unwrap(), want);
        assert_eq!(std::fs::read_to_string(out.join("sub/c")).unwrap(), want);
        let mode = std::fs::metadata(out.join("closure"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o444);
    }

    #[test]
    fn the_closure_of_a_step_without_inputs_is_an_empty_file() {
        let dir = build(&step(
            serde_json::json!({ "closure": { "closure": true } }),
            &[],
        ))
        .unwrap();
        assert_eq!(std::fs::read(dir.path().join("out/closure")).unwrap(), b"");
    }

    #[test]
    fn bad_closure_entries_are_refused_by_name() {
        for (entry, why) in [
            (
                serde_json::json!({ "closure": false }),
                "has `closure = false`",
            ),
            (
                serde_json::json!({ "closure": true, "text": "x" }),
                "more than one of `text`, `source`, `symlink` and `closure`",
            ),
            (
                serde_json::json!({ "closure": true, "symlink": "/x" }),
                "more than one of",
            ),
            (
                serde_json::json!({ "closure": true, "source": A }),
                "more than one of",
            ),
            (
                serde_json::json!({ "closure": true, "executable": true }),
                "only goes with `text`",
            ),
            (serde_json::json!({ "closure": "yes" }), "invalid type"),
            (
                serde_json::json!({}),
                "needs one of `text`, `source`, `symlink` or `closure`",
            ),
        ] {
            let err = build(&step(serde_json::json!({ "etc/list": entry }), &[A]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(why), "{entry}: {err}");
            // Every message names the entry, except serde's own type error,
            // which names the builder.
            assert!(
                err.contains("`etc/list`") || err.contains("builder `tree`"),
                "{entry}: {err}"
            );
        }
    }

    #[test]
    fn nothing_may_lie_under_a_closure_file() {
        let s = step(
            serde_json::json!({ "c": { "closure": true }, "c/x": { "text": "x" } }),
            &[],
        );
        let err = build(&s).unwrap_err().to_string();
        assert!(
            err.contains("`c/x` lies under entry `c`, which is a file"),
            "{err}"
        );
    }
}
