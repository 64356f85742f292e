//! File access for the evaluator.
//!
//! The evaluator reads files only through [`EvalIo`], so evaluation is pure:
//! the same files give the same value, and tests run on in-memory files
//! ([`MemoryIo`]). The composer provides the implementation that reads the
//! real file system.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

/// What kind of thing a path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    File,
    Directory,
    Symlink,
}

pub trait EvalIo {
    /// The whole file as UTF-8 text.
    fn read_file(&self, path: &Path) -> io::Result<String>;
    /// What `path` is, or `None` when nothing is there.
    fn kind(&self, path: &Path) -> io::Result<Option<FileKind>>;
}

/// In-memory files for tests. Directories exist implicitly as the parents of
/// the files added.
#[derive(Debug, Default, Clone)]
pub struct MemoryIo {
    files: BTreeMap<PathBuf, String>,
}

impl MemoryIo {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_file(mut self, path: impl Into<PathBuf>, text: impl Into<String>) -> Self {
        self.add(path, text);
        self
    }

    pub fn add(&mut self, path: impl Into<PathBuf>, text: impl Into<String>) {
        self.files.insert(path.into(), text.into());
    }
}

impl EvalIo for MemoryIo {
    fn read_file(&self, path: &Path) -> io::Result<String> {
        self.files
            .get(path)
            .cloned()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such file"))
    }

    fn kind(&self, path: &Path) -> io::Result<Option<FileKind>> {
        if self.files.contains_key(path) {
            Ok(Some(FileKind::File))
        } else if self.files.keys().any(|p| p.starts_with(path)) {
            Ok(Some(FileKind::Directory))
        } else {
            Ok(None)
        }
    }
}
