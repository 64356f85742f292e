//! The real file system behind the evaluator's IO trait.
//!
//! [`FsIo`] implements [`EvalIo`] with `std::fs`: files are read whole and must
//! be UTF-8 (an error names the file and the first bad byte offset); `kind`
//! follows symlinks, so a symlink to a directory imports like the directory,
//! and a dangling symlink is reported as a symlink rather than as missing.

use imago_lang::io::{EvalIo, FileKind};
use std::io;
use std::path::Path;

/// [`EvalIo`] over the local file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct FsIo;

impl EvalIo for FsIo {
    fn read_file(&self, path: &Path) -> io::Result<String> {
        let bytes = std::fs::read(path)?;
        String::from_utf8(bytes).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "`{}` is not valid UTF-8 (bad byte at offset {})",
                    path.display(),
                    e.utf8_error().valid_up_to()
                ),
            )
        })
    }

    fn kind(&self, path: &Path) -> io::Result<Option<FileKind>> {
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => Ok(Some(FileKind::Directory)),
            Ok(_) => Ok(Some(FileKind::File)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                match std::fs::symlink_metadata(path) {
                    Ok(_) => Ok(Some(FileKind::Symlink)),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_files_and_kinds() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.imago");
        std::fs::write(&f, "1").unwrap();
        assert_eq!(FsIo.read_file(&f).unwrap(), "1");
        assert_eq!(FsIo.kind(&f).unwrap(), Some(FileKind::File));
        assert_eq!(FsIo.kind(dir.path()).unwrap(), Some(FileKind::Directory));
        assert_eq!(FsIo.kind(&dir.path().join("nope")).unwrap(), None);
    }

    #[test]
    fn non_utf8_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("bin.imago");
        std::fs::write(&f, b"ab\xff").unwrap();
        let e = FsIo.read_file(&f).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("bin.imago"), "{e}");
        assert!(e.to_string().contains("offset 2"), "{e}");
    }

    #[test]
    fn dangling_symlink_is_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let l = dir.path().join("l");
        std::os::unix::fs::symlink(dir.path().join("missing"), &l).unwrap();
        assert_eq!(FsIo.kind(&l).unwrap(), Some(FileKind::Symlink));
    }
}
