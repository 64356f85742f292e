//! Source files and byte-offset spans.
//!
//! Every AST node carries a [`Span`]: a [`FileId`] into the [`SourceMap`] and a
//! half-open byte range. Line and column numbers are computed only when a
//! diagnostic is rendered.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// Index of a file in a [`SourceMap`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId(pub u32);

/// A half-open byte range `start..end` in one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Span {
    pub file: FileId,
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub fn new(file: FileId, start: u32, end: u32) -> Self {
        Span { file, start, end }
    }

    /// The smallest span covering both `self` and `other` (same file).
    pub fn to(self, other: Span) -> Span {
        Span {
            file: self.file,
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }

    pub fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// One source file: its path (absolute for real files, a display name such as
/// `<command line>` otherwise) and its text.
#[derive(Debug)]
pub struct SourceFile {
    pub path: PathBuf,
    pub text: Rc<str>,
    /// Where each line starts; built on the first diagnostic, since a file
    /// that evaluates cleanly never needs it.
    line_starts: std::cell::OnceCell<Vec<u32>>,
}

impl SourceFile {
    fn new(path: PathBuf, text: Rc<str>) -> Self {
        SourceFile {
            path,
            text,
            line_starts: std::cell::OnceCell::new(),
        }
    }

    fn line_starts(&self) -> &[u32] {
        self.line_starts.get_or_init(|| {
            let mut starts = vec![0];
            starts.extend(
                self.text
                    .bytes()
                    .enumerate()
                    .filter(|&(_, b)| b == b'\n')
                    .map(|(i, _)| (i + 1) as u32),
            );
            starts
        })
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: u32) -> (usize, usize) {
        let starts = self.line_starts();
        let line = match starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        let start = starts[line] as usize;
        let end = (offset as usize).min(self.text.len());
        let col = self
            .text
            .get(start..end)
            .map_or(end - start, |s| s.chars().count());
        (line + 1, col + 1)
    }

    /// The text of 1-based line `line`, without its newline.
    pub fn line_text(&self, line: usize) -> &str {
        let starts = self.line_starts();
        let start = starts.get(line - 1).copied().unwrap_or(0) as usize;
        let end = starts.get(line).map_or(self.text.len(), |&e| e as usize);
        self.text
            .get(start..end)
            .unwrap_or("")
            .trim_end_matches(['\n', '\r'])
    }
}

/// All files seen by one evaluation. Files are only ever added, so a
/// [`FileId`] stays valid for the life of the map.
///
/// Messages name files by their *display name*: the path, except under a
/// display root, where the root is replaced by a short name (the module
/// library directory prints as `<modules>`, so messages never show the
/// absolute path of the tree the binary was built in).
#[derive(Debug, Default)]
pub struct SourceMap {
    files: RefCell<Vec<Rc<SourceFile>>>,
    display_roots: RefCell<Vec<(PathBuf, String)>>,
}

impl SourceMap {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&self, path: impl Into<PathBuf>, text: impl Into<Rc<str>>) -> FileId {
        let mut files = self.files.borrow_mut();
        let id = FileId(files.len() as u32);
        files.push(Rc::new(SourceFile::new(path.into(), text.into())));
        id
    }

    pub fn get(&self, id: FileId) -> Option<Rc<SourceFile>> {
        self.files.borrow().get(id.0 as usize).cloned()
    }

    pub fn path(&self, id: FileId) -> Option<PathBuf> {
        self.get(id).map(|f| f.path.clone())
    }

    /// The id of an already loaded file with this path.
    pub fn find(&self, path: &Path) -> Option<FileId> {
        self.files
            .borrow()
            .iter()
            .position(|f| f.path == path)
            .map(|i| FileId(i as u32))
    }

    pub fn len(&self) -> usize {
        self.files.borrow().len()
    }

    /// Files under `dir` are named `NAME/<rest>` in messages.
    pub fn set_display_root(&self, dir: impl Into<PathBuf>, name: impl Into<String>) {
        let dir = dir.into();
        let mut roots = self.display_roots.borrow_mut();
        roots.retain(|(d, _)| *d != dir);
        roots.push((dir, name.into()));
    }

    /// How a path is named in messages (see [`SourceMap::set_display_root`]).
    pub fn display_path(&self, path: &Path) -> String {
        for (dir, name) in self.display_roots.borrow().iter() {
            if let Ok(rest) = path.strip_prefix(dir) {
                return format!("{name}/{}", rest.display());
            }
        }
        path.display().to_string()
    }

    /// How the file `id` is named in messages.
    pub fn display_name(&self, id: FileId) -> Option<String> {
        self.get(id).map(|f| self.display_path(&f.path))
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_under_a_display_root_get_its_name() {
        let map = SourceMap::new();
        map.set_display_root("/src/tree/modules", "<modules>");
        let lib = map.add("/src/tree/modules/services/openssh.imago", "");
        let user = map.add("/home/me/system.imago", "");
        let sibling = map.add("/src/tree/modules-extra/x.imago", "");
        assert_eq!(
            map.display_name(lib).as_deref(),
            Some("<modules>/services/openssh.imago")
        );
        assert_eq!(
            map.display_name(user).as_deref(),
            Some("/home/me/system.imago")
        );
        // A prefix of the name is not a parent directory.
        assert_eq!(
            map.display_name(sibling).as_deref(),
            Some("/src/tree/modules-extra/x.imago")
        );
    }
}
