//! Debian control-file syntax (deb822): paragraphs of `Field: value` lines
//! with indented continuation lines, separated by blank lines, and the
//! relationship fields (`Depends`, `Pre-Depends`) with their alternatives,
//! version constraints, architecture restrictions and `:any` qualifiers.
//!
//! Field names are case-insensitive (Debian policy 5.1); a paragraph keeps
//! them in file order and looks them up ignoring case.

/// One deb822 paragraph: fields in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Paragraph {
    fields: Vec<(String, String)>,
}

impl Paragraph {
    /// The value of `name` (case-insensitive). Continuation lines are joined
    /// with `\n`, each without its leading space.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn fields(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// A control-file syntax error, with its 1-based line number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ControlError {
    pub line: usize,
    pub message: String,
}

impl ControlError {
    /// The stable code of this error (docs/errors.md, E06xx).
    pub fn code(&self) -> crate::codes::Code {
        crate::codes::CONTROL
    }
}

/// Parses every paragraph of `text`. Comment lines (`#`) are skipped.
pub fn parse_paragraphs(text: &str) -> Result<Vec<Paragraph>, ControlError> {
    let mut out = Vec::new();
    let mut current = Paragraph::default();
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        if line.trim().is_empty() {
            if !current.fields.is_empty() {
                out.push(std::mem::take(&mut current));
            }
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        if line.starts_with(' ') || line.starts_with('\t') {
            let Some((_, value)) = current.fields.last_mut() else {
                return Err(ControlError {
                    line: line_no,
                    message: "continuation line before any field".into(),
                });
            };
            let rest = &line[1..];
            value.push('\n');
            // A lone "." stands for an empty line inside a multi-line value.
            value.push_str(if rest.trim() == "." { "" } else { rest });
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(ControlError {
                line: line_no,
                message: format!("expected `Field: value`, found `{line}`"),
            });
        };
        let name = name.trim();
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(ControlError {
                line: line_no,
                message: format!("invalid field name `{name}`"),
            });
        }
        current
            .fields
            .push((name.to_string(), value.trim().to_string()));
    }
    if !current.fields.is_empty() {
        out.push(current);
    }
    Ok(out)
}

/// A version constraint: `(>= 1.2)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionConstraint {
    /// One of `<<`, `<=`, `=`, `>=`, `>>`.
    pub relation: String,
    pub version: String,
}

/// One alternative of a relationship: `name:any (>= 1) [amd64]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    pub name: String,
    /// The architecture qualifier after `:` (`any`, `native`, `amd64`).
    pub arch_qualifier: Option<String>,
    pub version: Option<VersionConstraint>,
    /// The architecture restriction list inside `[...]`, verbatim words.
    pub architectures: Vec<String>,
}

impl Relation {
    /// Whether this alternative applies on `arch` (Debian policy 7.1:
    /// `[amd64 i386]` lists the architectures it applies to, `[!armel]`
    /// those it does not).
    pub fn applies_to(&self, arch: &str) -> bool {
        if self.architectures.is_empty() {
            return true;
        }
        let negated = self.architectures.iter().all(|a| a.starts_with('!'));
        if negated {
            !self.architectures.iter().any(|a| &a[1..] == arch)
        } else {
            self.architectures.iter().any(|a| a == arch || a == "any")
        }
    }
}

/// A relationship field: a conjunction of groups, each a disjunction of
/// alternatives (`a | b, c`).
pub type Relations = Vec<Vec<Relation>>;

/// Parses a relationship field such as `Depends`.
pub fn parse_relations(value: &str) -> Result<Relations, String> {
    let mut groups = Vec::new();
    for group in value.split(',') {
        let group = group.trim();
        if group.is_empty() {
            continue;
        }
        let mut alternatives = Vec::new();
        for alternative in group.split('|') {
            alternatives.push(parse_relation(alternative.trim())?);
        }
        groups.push(alternatives);
    }
    Ok(groups)
}

fn parse_relation(text: &str) -> Result<Relation, String> {
    let name_end = text
        .find(|c: char| c.is_whitespace() || c == '(' || c == '[' || c == '<')
        .unwrap_or(text.len());
    let (full_name, mut rest) = text.split_at(name_end);
    if full_name.is_empty() {
        return Err(format!("missing package name in `{text}`"));
    }
    let (name, arch_qualifier) = match full_name.split_once(':') {
        Some((n, q)) => (n, Some(q.to_string())),
        None => (full_name, None),
    };
    if !is_package_name(name) {
        return Err(format!("invalid package name `{name}` in `{text}`"));
    }
    let mut version = None;
    let mut architectures = Vec::new();
    loop {
        rest = rest.trim_start();
        if let Some(inner) = rest.strip_prefix('(') {
            let close = inner
                .find(')')
                .ok_or_else(|| format!("unclosed `(` in `{text}`"))?;
            let body = inner[..close].trim();
            let op_len = body
                .find(|c: char| !matches!(c, '<' | '>' | '='))
                .unwrap_or(body.len());
            let relation = &body[..op_len];
            if !matches!(relation, "<<" | "<=" | "=" | ">=" | ">>" | "<" | ">") {
                return Err(format!("invalid version relation `{relation}` in `{text}`"));
            }
            let v = body[op_len..].trim();
            if v.is_empty() {
                return Err(format!("missing version in `{text}`"));
            }
            version = Some(VersionConstraint {
                relation: relation.to_string(),
                version: v.to_string(),
            });
            rest = &inner[close + 1..];
        } else if let Some(inner) = rest.strip_prefix('[') {
            let close = inner
                .find(']')
                .ok_or_else(|| format!("unclosed `[` in `{text}`"))?;
            architectures.extend(inner[..close].split_whitespace().map(str::to_string));
            rest = &inner[close + 1..];
        } else if let Some(inner) = rest.strip_prefix('<') {
            // Build profiles (`<!nocheck>`) only appear in build dependencies;
            // skip them so such fields still parse.
            let close = inner
                .find('>')
                .ok_or_else(|| format!("unclosed `<` in `{text}`"))?;
            rest = &inner[close + 1..];
        } else if rest.is_empty() {
            break;
        } else {
            return Err(format!("unexpected `{rest}` in `{text}`"));
        }
    }
    Ok(Relation {
        name: name.to_string(),
        arch_qualifier,
        version,
        architectures,
    })
}

/// Debian policy 5.6.1: lowercase letters, digits, `+`, `-`, `.`; at least
/// two characters, starting with an alphanumeric.
pub fn is_package_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    bytes.len() >= 2
        && bytes[0].is_ascii_alphanumeric()
        && bytes.iter().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paragraphs_with_continuations() {
        let text =
            "Package: a\nDescription: short\n long line\n .\n more\n\n\nPackage: b\nversion: 1\n";
        let ps = parse_paragraphs(text).unwrap();
        assert_eq!(ps.len(), 2);
        assert_eq!(ps[0].get("description"), Some("short\nlong line\n\nmore"));
        assert_eq!(ps[1].get("Version"), Some("1"));
    }

    #[test]
    fn continuation_first_is_an_error() {
        let err = parse_paragraphs(" x\n").unwrap_err();
        assert_eq!(err.line, 1);
        let err = parse_paragraphs("A: b\nno colon\n").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.message.contains("no colon"));
    }

    #[test]
    fn relations_with_alternatives_versions_and_arches() {
        let rels = parse_relations(
            "libc6 (>= 2.34), awk | mawk:any (>>1.3) [amd64 i386], perl:any, xy [!amd64]",
        )
        .unwrap();
        assert_eq!(rels.len(), 4);
        assert_eq!(rels[0][0].name, "libc6");
        assert_eq!(
            rels[0][0].version,
            Some(VersionConstraint {
                relation: ">=".into(),
                version: "2.34".into()
            })
        );
        assert_eq!(rels[1].len(), 2);
        assert_eq!(rels[1][1].name, "mawk");
        assert_eq!(rels[1][1].arch_qualifier.as_deref(), Some("any"));
        assert_eq!(rels[1][1].version.as_ref().unwrap().relation, ">>");
        assert!(rels[1][1].applies_to("amd64"));
        assert!(!rels[1][1].applies_to("arm64"));
        assert!(!rels[3][0].applies_to("amd64"));
        assert!(rels[3][0].applies_to("arm64"));
    }

    #[test]
    fn bad_relations_are_errors() {
        assert!(
            parse_relations("libc6 (>= 2.34")
                .unwrap_err()
                .contains("unclosed")
        );
        assert!(
            parse_relations("Bad_Name")
                .unwrap_err()
                .contains("invalid package name")
        );
        assert!(
            parse_relations("ab (~ 1)")
                .unwrap_err()
                .contains("relation")
        );
    }
}
