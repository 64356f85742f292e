//! A targets file (`imago deploy --targets FILE`): one machine a line,
//! `ssh://[user@]host[:port]`, optionally followed by `attr=NAME` (the
//! attribute of the configuration that is this machine's system); `#`
//! starts a comment, blank lines are skipped.

use super::error::DeployError;
use super::ssh::{SshTarget, parse_target};
use std::path::Path;

/// One machine of a rollout and where it was named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetEntry {
    pub target: SshTarget,
    /// Its system's attribute, when not the command line's.
    pub attr: Option<String>,
    /// `FILE:LINE`, or `--target`.
    pub place: String,
}

/// Reads and parses the targets file at `path`.
pub fn read_targets_file(path: &Path) -> Result<Vec<TargetEntry>, DeployError> {
    let text = std::fs::read_to_string(path).map_err(|source| DeployError::TargetsFile {
        path: path.to_owned(),
        source,
    })?;
    parse_targets(&path.display().to_string(), &text)
}

/// Parses a targets file's text; `name` is the file's name in messages.
pub fn parse_targets(name: &str, text: &str) -> Result<Vec<TargetEntry>, DeployError> {
    let mut entries = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let place = format!("{name}:{}", n + 1);
        let line = line.split('#').next().unwrap_or_default();
        let mut words = line.split_whitespace();
        let Some(first) = words.next() else {
            continue;
        };
        let bad = |message: String| DeployError::TargetLine {
            place: place.clone(),
            message,
        };
        let target = parse_target(first).map_err(bad)?;
        let mut attr = None;
        for word in words {
            match word.split_once('=') {
                Some(("attr", value)) if !value.is_empty() && attr.is_none() => {
                    attr = Some(value.to_owned());
                }
                Some(("attr", _)) if attr.is_some() => {
                    return Err(bad("attr= is given twice".to_owned()));
                }
                _ => {
                    return Err(bad(format!(
                        "`{word}` is not `attr=NAME` (the only setting after a target)"
                    )));
                }
            }
        }
        entries.push(TargetEntry {
            target,
            attr,
            place,
        });
    }
    Ok(entries)
}

/// Refuses a machine named twice (on the command line or in the file).
pub fn check_unique(entries: &[TargetEntry]) -> Result<(), DeployError> {
    for (i, a) in entries.iter().enumerate() {
        if let Some(b) = entries[..i].iter().find(|b| b.target == a.target) {
            return Err(DeployError::TargetTwice {
                target: a.target.to_string(),
                first: b.place.clone(),
                second: a.place.clone(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_comments_and_attributes() {
        let text = "# the web fleet\n\nssh://root@web1\n  ssh://root@web2:2222   attr=web2  # the odd one\n";
        let entries = parse_targets("fleet.txt", text).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].target.destination, "root@web1");
        assert_eq!(entries[0].attr, None);
        assert_eq!(entries[0].place, "fleet.txt:3");
        assert_eq!(entries[1].target.port, Some(2222));
        assert_eq!(entries[1].attr.as_deref(), Some("web2"));
        assert_eq!(entries[1].place, "fleet.txt:4");
        check_unique(&entries).unwrap();
    }

    #[test]
    fn bad_lines_name_the_file_and_line() {
        for (text, want) in [
            ("ssh://a\nweb1\n", "f:2: `web1`: the target must be ssh://"),
            ("ssh://a role=x\n", "f:1: `role=x` is not `attr=NAME`"),
            ("ssh://a attr=\n", "f:1: `attr=` is not `attr=NAME`"),
            ("ssh://a attr=x attr=y\n", "f:1: attr= is given twice"),
            ("ssh://-o@h\n", "f:1: `ssh://-o@h`: `-o` is not a user name"),
        ] {
            let err = parse_targets("f", text).unwrap_err().to_string();
            assert!(err.starts_with(want), "{text:?}: {err}");
        }
        let twice = parse_targets("f", "ssh://a\n\nssh://a:22\nssh://a\n").unwrap();
        let err = check_unique(&twice).unwrap_err().to_string();
        assert_eq!(err, "ssh://a is listed twice (f:1 and f:4)");
    }
}
