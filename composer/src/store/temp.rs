//! [`TempOutput`]: where a build's output waits between the builder and the
//! commit. Both adding (`add.rs`) and the group commit (`commit.rs`) hold
//! one, so it lives below both.

use std::path::PathBuf;

use super::remove::remove_tree;

/// A fresh path under `.imago/tmp/` for one build's output, removed on drop
/// if it is still there. Nothing is created: the builder writes its output
/// (a file, a directory or a symlink) at [`TempOutput::out`], so that a
/// step costs no directory to create and remove around it.
#[derive(Debug)]
pub struct TempOutput {
    out: PathBuf,
}

impl TempOutput {
    /// Owns `out`, which the store chose inside its temporary directory.
    pub(super) fn at(out: PathBuf) -> Self {
        Self { out }
    }

    /// Where the builder writes its single output (does not exist yet).
    pub fn out(&self) -> PathBuf {
        self.out.clone()
    }

    /// Forgets the path, which was renamed away: dropping it then costs no
    /// lookup (in a large temporary directory, as much as the rename).
    pub(crate) fn moved(mut self) {
        self.out = PathBuf::new();
    }
}

impl Drop for TempOutput {
    fn drop(&mut self) {
        // Unless renamed into place (`moved`): the whole tree, best
        // effort; a failure here is collected at the next open.
        if self.out.as_os_str().is_empty() {
            return;
        }
        let _ = remove_tree(&self.out);
    }
}
