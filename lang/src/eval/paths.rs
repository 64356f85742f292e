//! Path values: lexical normalisation and the file-name helpers behind
//! `baseNameOf` and `dirOf`.
//!
//! Paths are normalised without touching the file system: `.` components are
//! dropped and `..` removes the previous component (`..` at the root stays at
//! the root), as Nix does. Symlinks are not resolved.

use std::path::{Component, Path, PathBuf};

/// `/a/./b/../c` → `/a/c`. Relative input stays relative.
pub fn normalize(p: &Path) -> PathBuf {
    let mut out: Vec<Component<'_>> = Vec::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => match out.last() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                Some(Component::RootDir) | Some(Component::Prefix(_)) => {}
                _ => out.push(c),
            },
            other => out.push(other),
        }
    }
    if out.is_empty() {
        return PathBuf::from(".");
    }
    out.iter().collect()
}

/// The last component of a path string, ignoring one trailing slash.
pub fn base_name(s: &str) -> &str {
    let s = s.strip_suffix('/').unwrap_or(s);
    match s.rfind('/') {
        Some(i) => &s[i + 1..],
        None => s,
    }
}

/// Everything before the last `/` (`"/"` for a top-level entry, `"."` when
/// there is no slash), as Nix's `dirOf`.
pub fn dir_name(s: &str) -> &str {
    let trimmed = s.strip_suffix('/').filter(|t| !t.is_empty()).unwrap_or(s);
    match trimmed.rfind('/') {
        Some(0) => "/",
        Some(i) => &trimmed[..i],
        None => ".",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_lexically() {
        assert_eq!(normalize(Path::new("/a/./b/../c")), PathBuf::from("/a/c"));
        assert_eq!(normalize(Path::new("/../x")), PathBuf::from("/x"));
        assert_eq!(normalize(Path::new("/a/b/")), PathBuf::from("/a/b"));
    }

    #[test]
    fn base_and_dir_names() {
        assert_eq!(base_name("/a/b.txt"), "b.txt");
        assert_eq!(base_name("/a/b/"), "b");
        assert_eq!(dir_name("/a/b"), "/a");
        assert_eq!(dir_name("/a"), "/");
        assert_eq!(dir_name("a"), ".");
    }
}
