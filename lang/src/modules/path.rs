//! Option paths such as `services.getty.enable`.
//!
//! An [`OptionPath`] is a list of attribute names. It prints the way a user
//! would write it: components that are not plain identifiers are quoted
//! (`users.users."my user".home`), except the documentation placeholders
//! `<name>` and `*` that stand for any attribute name or list element.

use smol_str::SmolStr;
use std::fmt;

/// The placeholder for "any attribute name" in documentation paths.
pub const ANY_NAME: &str = "<name>";

/// A path from the root of `config` (or of a submodule) to an option.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct OptionPath(Vec<SmolStr>);

impl OptionPath {
    pub fn root() -> Self {
        OptionPath(Vec::new())
    }

    /// This path with one more component.
    pub fn child(&self, name: &str) -> Self {
        let mut v = self.0.clone();
        v.push(SmolStr::new(name));
        OptionPath(v)
    }

    /// This path followed by `other`.
    pub fn join(&self, other: &OptionPath) -> Self {
        let mut v = self.0.clone();
        v.extend(other.0.iter().cloned());
        OptionPath(v)
    }

    pub fn components(&self) -> &[SmolStr] {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    pub fn last(&self) -> Option<&str> {
        self.0.last().map(SmolStr::as_str)
    }

    /// Parses `a.b."c d"` (as given to `-A` or `--explain`). Empty components
    /// and unterminated quotes are errors.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut out = Vec::new();
        let mut chars = text.chars().peekable();
        while chars.peek().is_some() {
            let mut name = String::new();
            if chars.peek() == Some(&'"') {
                chars.next();
                let mut closed = false;
                while let Some(c) = chars.next() {
                    match c {
                        '"' => {
                            closed = true;
                            break;
                        }
                        '\\' => {
                            if let Some(e) = chars.next() {
                                name.push(e);
                            }
                        }
                        c => name.push(c),
                    }
                }
                if !closed {
                    return Err(format!("unterminated quote in option path `{text}`"));
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c == '.' {
                        break;
                    }
                    name.push(c);
                    chars.next();
                }
                if name.is_empty() {
                    return Err(format!("empty component in option path `{text}`"));
                }
            }
            out.push(SmolStr::new(name));
            match chars.next() {
                None => {}
                Some('.') if chars.peek().is_some() => {}
                Some(c) => {
                    return Err(format!(
                        "unexpected `{c}` in option path `{text}` (expected `.` between names)"
                    ));
                }
            }
        }
        if out.is_empty() {
            return Err("the option path is empty".to_string());
        }
        Ok(OptionPath(out))
    }
}

impl From<Vec<SmolStr>> for OptionPath {
    fn from(v: Vec<SmolStr>) -> Self {
        OptionPath(v)
    }
}

fn is_plain(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '\''))
}

impl fmt::Display for OptionPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("<root>");
        }
        for (i, c) in self.0.iter().enumerate() {
            let index = c.starts_with('[') && c.ends_with(']');
            if i > 0 && !index {
                f.write_str(".")?;
            }
            if is_plain(c) || index || c == ANY_NAME || c == "*" {
                f.write_str(c)?;
            } else {
                write!(f, "\"{}\"", c.replace('\\', "\\\\").replace('"', "\\\""))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_and_parses_back() {
        let p = OptionPath::root()
            .child("users")
            .child("users")
            .child("my user")
            .child("home");
        assert_eq!(p.to_string(), r#"users.users."my user".home"#);
        assert_eq!(OptionPath::parse(&p.to_string()), Ok(p));
    }

    #[test]
    fn placeholders_and_indices_print_bare() {
        let p = OptionPath::root().child("a").child(ANY_NAME).child("b");
        assert_eq!(p.to_string(), "a.<name>.b");
        assert_eq!(
            OptionPath::root().child("xs").child("[2]").to_string(),
            "xs[2]"
        );
    }

    #[test]
    fn rejects_malformed_paths() {
        assert!(OptionPath::parse("").is_err());
        assert!(OptionPath::parse("a..b").is_err());
        assert!(OptionPath::parse("a.").is_err());
        assert!(OptionPath::parse("a.\"b").is_err());
        assert!(OptionPath::parse("\"a\"b").is_err());
    }
}
