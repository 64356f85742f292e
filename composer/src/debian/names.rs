//! Entry names of Debian archives: validation into plain path components,
//! the merged-/usr mapping (`bin/x` → `usr/bin/x`), and rewriting relative
//! symlink targets that the mapping moved.

use super::rule::Rule;

/// Top-level directories that merged /usr moves under `usr/`.
pub(super) const MERGED_DIRS: &[&str] = &["bin", "sbin", "lib", "lib32", "lib64", "libx32"];

/// An entry name without `./` and trailing `/`, to tell a true duplicate
/// from two names that only meet through the /usr merge.
pub(super) fn plain(raw: &str) -> &str {
    let raw = raw.strip_prefix("./").unwrap_or(raw);
    raw.strip_suffix('/').unwrap_or(raw)
}

/// The longest entry name or link target accepted, in bytes (Linux's
/// `PATH_MAX`).
pub const MAX_NAME_BYTES: usize = 4096;

/// Validates an entry name and returns its components (empty for the root).
pub fn validate_name(raw: &[u8], max_depth: usize) -> Result<Vec<String>, Rule> {
    if raw.len() > MAX_NAME_BYTES {
        return Err(Rule::NameTooLong(MAX_NAME_BYTES));
    }
    if raw.contains(&0) {
        return Err(Rule::BadName("contains a NUL byte"));
    }
    let text = std::str::from_utf8(raw).map_err(|_| Rule::BadName("not valid UTF-8"))?;
    if text.is_empty() {
        return Err(Rule::BadName("empty name"));
    }
    if text.starts_with('/') {
        return Err(Rule::AbsolutePath);
    }
    let text = text.strip_prefix("./").unwrap_or(text);
    let text = text.strip_suffix('/').unwrap_or(text);
    if text.is_empty() || text == "." {
        return Ok(Vec::new());
    }
    let mut comps = Vec::new();
    for comp in text.split('/') {
        match comp {
            "" => return Err(Rule::BadName("empty path component")),
            "." => return Err(Rule::BadName("`.` path component")),
            ".." => return Err(Rule::ParentComponent),
            _ => comps.push(comp.to_string()),
        }
        if comps.len() > max_depth {
            return Err(Rule::TooDeep(max_depth));
        }
    }
    if comps[0] == ".imago" {
        return Err(Rule::Reserved);
    }
    Ok(comps)
}

/// `bin/x` → `usr/bin/x` (and the other merged directories).
pub fn merge_usr(mut comps: Vec<String>) -> Vec<String> {
    if comps
        .first()
        .is_some_and(|c| MERGED_DIRS.contains(&c.as_str()))
    {
        comps.insert(0, "usr".to_string());
    }
    comps
}

/// Whether a top-level entry is the merge itself: a link `bin` whose target
/// is `usr/bin` (or `/usr/bin`), as trixie's base-files ships them. `comps`
/// are the entry's components before [`merge_usr`].
pub(super) fn is_merge_link(comps: &[String], target: Option<&[u8]>) -> bool {
    let [name] = comps else { return false };
    let Some(target) = target else { return false };
    let target = target.strip_prefix(b"/").unwrap_or(target);
    MERGED_DIRS.contains(&name.as_str()) && target.strip_prefix(b"usr/") == Some(name.as_bytes())
}

/// A relative symlink target written for `/bin/x` must still reach the same
/// place from `/usr/bin/x`: resolve it lexically against the original
/// location, map it through the merge, and make it relative again.
pub(super) fn relocate_target(target: &[u8], new_comps: &[String]) -> Vec<u8> {
    let Ok(text) = std::str::from_utf8(target) else {
        return target.to_vec();
    };
    if text.starts_with('/') {
        return target.to_vec();
    }
    // Original parent: the new path without `usr/` and without the name.
    let mut abs: Vec<&str> = new_comps[1..new_comps.len() - 1]
        .iter()
        .map(String::as_str)
        .collect();
    for comp in text.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                abs.pop();
            }
            c => abs.push(c),
        }
    }
    let mapped = merge_usr(abs.iter().map(|s| s.to_string()).collect());
    let from = &new_comps[..new_comps.len() - 1];
    let common = from.iter().zip(&mapped).take_while(|(a, b)| a == b).count();
    let mut rel: Vec<&str> = vec![".."; from.len() - common];
    rel.extend(mapped[common..].iter().map(String::as_str));
    if rel.is_empty() {
        return b".".to_vec();
    }
    rel.join("/").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated() {
        assert_eq!(
            validate_name(b"./usr/bin/x", 256).unwrap(),
            vec!["usr", "bin", "x"]
        );
        assert_eq!(validate_name(b"./", 256).unwrap(), Vec::<String>::new());
        assert_eq!(validate_name(b"../x", 256), Err(Rule::ParentComponent));
        assert_eq!(validate_name(b"a/../../x", 256), Err(Rule::ParentComponent));
        assert_eq!(validate_name(b"/etc/passwd", 256), Err(Rule::AbsolutePath));
        assert!(matches!(validate_name(b"a//b", 256), Err(Rule::BadName(_))));
        assert!(matches!(
            validate_name(b"a/./b", 256),
            Err(Rule::BadName(_))
        ));
        assert!(matches!(validate_name(b"", 256), Err(Rule::BadName(_))));
        assert_eq!(validate_name(b"a/b/c", 2), Err(Rule::TooDeep(2)));
        assert_eq!(validate_name(b"./.imago/x", 256), Err(Rule::Reserved));
        let long = vec![b'a'; MAX_NAME_BYTES + 1];
        assert_eq!(
            validate_name(&long, 256),
            Err(Rule::NameTooLong(MAX_NAME_BYTES))
        );
        assert_eq!(validate_name(&long[1..], 256).unwrap().len(), 1);
    }

    #[test]
    fn only_links_that_are_the_merge_itself_are_recognised() {
        let one = |n: &str| vec![n.to_string()];
        assert!(is_merge_link(&one("bin"), Some(b"usr/bin")));
        assert!(is_merge_link(&one("lib64"), Some(b"/usr/lib64")));
        assert!(!is_merge_link(&one("bin"), Some(b"usr/sbin")));
        assert!(!is_merge_link(&one("bin"), Some(b"usr/bin/")));
        assert!(!is_merge_link(&one("bin"), Some(b"../usr/bin")));
        assert!(!is_merge_link(&one("etc"), Some(b"usr/etc")));
        assert!(!is_merge_link(
            &["bin".into(), "x".into()],
            Some(b"usr/bin")
        ));
        assert!(!is_merge_link(&one("bin"), None));
    }

    #[test]
    fn relative_symlinks_follow_the_merge() {
        let comps: Vec<String> = ["usr", "bin", "x"].iter().map(|s| s.to_string()).collect();
        assert_eq!(relocate_target(b"y", &comps), b"y".to_vec());
        assert_eq!(relocate_target(b"../usr/bin/z", &comps), b"z".to_vec());
        assert_eq!(relocate_target(b"../sbin/z", &comps), b"../sbin/z".to_vec());
        assert_eq!(relocate_target(b"/bin/z", &comps), b"/bin/z".to_vec());
    }
}
