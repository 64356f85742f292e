//! Guest commands: argv vectors or, where a pipeline is needed, shell scripts.
//!
//! Every command method of a machine takes `impl Into<GuestCommand>`: an
//! array or `Vec` of words becomes an argv whose words are quoted for `sh`
//! (so a file name with spaces or `$` is passed as is), a `&str`/`String` is
//! a shell script run as written. Both are displayed readably in the step log
//! and in errors.

use std::fmt;

/// A command to run in the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestCommand {
    /// A program and its arguments, passed unchanged.
    Argv(Vec<String>),
    /// A shell script, run with `sh`.
    Shell(String),
}

impl GuestCommand {
    /// The shell script the backdoor runs.
    pub fn script(&self) -> String {
        match self {
            Self::Argv(words) => {
                let quoted: Vec<String> = words.iter().map(|w| shell_quote(w)).collect();
                format!("exec {}", quoted.join(" "))
            }
            Self::Shell(script) => script.clone(),
        }
    }
}

impl fmt::Display for GuestCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Argv(words) => {
                let quoted: Vec<String> = words.iter().map(|w| shell_quote(w)).collect();
                write!(f, "[{}]", quoted.join(" "))
            }
            Self::Shell(script) => write!(f, "`{}`", script.trim()),
        }
    }
}

impl From<&str> for GuestCommand {
    fn from(script: &str) -> Self {
        Self::Shell(script.to_owned())
    }
}

impl From<String> for GuestCommand {
    fn from(script: String) -> Self {
        Self::Shell(script)
    }
}

impl From<&String> for GuestCommand {
    fn from(script: &String) -> Self {
        Self::Shell(script.clone())
    }
}

impl<S: AsRef<str>, const N: usize> From<[S; N]> for GuestCommand {
    fn from(words: [S; N]) -> Self {
        Self::Argv(words.iter().map(|w| w.as_ref().to_owned()).collect())
    }
}

impl<S: AsRef<str>> From<Vec<S>> for GuestCommand {
    fn from(words: Vec<S>) -> Self {
        Self::Argv(words.iter().map(|w| w.as_ref().to_owned()).collect())
    }
}

/// Quotes a word for POSIX `sh`: unchanged when it only has safe characters,
/// otherwise in single quotes (with `'` written as `'\''`).
pub fn shell_quote(word: &str) -> String {
    let safe = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
    if safe {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("abc/d.e"), "abc/d.e");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's $HOME"), r"'it'\''s $HOME'");
    }

    #[test]
    fn argv_and_shell_forms() {
        let argv = GuestCommand::from(["touch", "/tmp/a b"]);
        assert_eq!(argv.script(), "exec touch '/tmp/a b'");
        assert_eq!(argv.to_string(), "[touch '/tmp/a b']");
        let shell = GuestCommand::from("echo hi | wc -c\n");
        assert_eq!(shell.script(), "echo hi | wc -c\n");
        assert_eq!(shell.to_string(), "`echo hi | wc -c`");
        let owned = GuestCommand::from(vec!["ls".to_owned()]);
        assert_eq!(owned, GuestCommand::Argv(vec!["ls".to_owned()]));
    }
}
