//! Reading inside an input object without being led out of it.
//!
//! Builders read files of their input objects by relative path
//! (`usr/bin/busybox`, `usr/lib/modules/<ver>`). A symlink in an object — a
//! hostile package's `usr/lib/modules -> /lib/modules`, say — would make a
//! plain `join` read the host instead. [`confined`] resolves the path and
//! refuses any result that is not inside the object.

use std::path::{Path, PathBuf};

use super::BuildError;

/// `base/rel` resolved (symlinks followed), or `None` if it does not exist.
/// An error if it resolves outside `base`.
pub fn confined(base: &Path, rel: &str) -> Result<Option<PathBuf>, BuildError> {
    let joined = base.join(rel);
    let resolved = match std::fs::canonicalize(&joined) {
        Ok(resolved) => resolved,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(BuildError::Io {
                context: format!("resolve {}", joined.display()),
                source,
            });
        }
    };
    let root = std::fs::canonicalize(base)
        .map_err(BuildError::io(format!("resolve {}", base.display())))?;
    if !resolved.starts_with(&root) {
        return Err(BuildError::Failed(format!(
            "`{rel}` in {} resolves to {}, outside the object",
            base.display(),
            resolved.display()
        )));
    }
    Ok(Some(resolved))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_inside_resolve_and_missing_ones_are_none() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("usr/bin")).unwrap();
        std::fs::write(dir.path().join("usr/bin/busybox"), b"x").unwrap();
        std::os::unix::fs::symlink("usr/bin", dir.path().join("bin")).unwrap();
        let found = confined(dir.path(), "bin/busybox").unwrap().unwrap();
        assert!(found.ends_with("usr/bin/busybox"));
        assert_eq!(confined(dir.path(), "sbin/x").unwrap(), None);
    }

    #[test]
    fn symlinks_out_of_the_object_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let object = dir.path().join("object");
        std::fs::create_dir_all(object.join("usr/lib")).unwrap();
        std::os::unix::fs::symlink("/etc", object.join("usr/lib/modules")).unwrap();
        std::os::unix::fs::symlink("../..", object.join("usr/up")).unwrap();
        let err = confined(&object, "usr/lib/modules")
            .unwrap_err()
            .to_string();
        assert!(err.contains("`usr/lib/modules`"), "{err}");
        assert!(
            err.contains("resolves to /etc, outside the object"),
            "{err}"
        );
        assert!(confined(&object, "usr/up").is_err());
        assert!(confined(&object, "../object/usr").unwrap().is_some());
        assert!(confined(&object, "..").is_err());
    }
}
