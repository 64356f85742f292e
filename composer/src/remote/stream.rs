//! The tar stream `imago deploy` sends: store objects as GNU tar entries
//! (long names as GNU long-name records, which busybox and GNU tar read)
//! with their modes and modification times, and no local owner — uid and
//! gid 0, no user or group name — whoever owns the sending store. The
//! receiving script also unpacks with `--no-same-owner`, so the target's
//! objects are root's (the user the script runs as) whatever a stream says.

use crate::store::{Store, StorePath};
use anyhow::Context;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;
use tar::{Builder, Header, HeaderMode};

/// Writes `objects` (each a file, symlink or directory tree, entries of a
/// directory in name order) as one tar stream to `out`.
pub fn write_objects(
    store: &Store,
    objects: &[StorePath],
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let mut tar = Builder::new(out);
    for p in objects {
        append_tree(&mut tar, &store.physical(p), Path::new(p.as_str()))
            .with_context(|| format!("sending {}", p.to_absolute()))?;
    }
    tar.finish()?;
    Ok(())
}

fn append_tree<W: Write>(tar: &mut Builder<W>, path: &Path, name: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(path)?;
    let mut header = Header::new_gnu();
    header.set_metadata_in_mode(&meta, HeaderMode::Complete);
    // The sending store's owner means nothing on the target.
    header.set_uid(0);
    header.set_gid(0);
    let ft = meta.file_type();
    if ft.is_symlink() {
        tar.append_link(&mut header, name, fs::read_link(path)?)
    } else if ft.is_dir() {
        tar.append_data(&mut header, name, io::empty())?;
        let mut entries: Vec<_> = fs::read_dir(path)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()?;
        entries.sort();
        for entry in entries {
            append_tree(tar, &path.join(&entry), &name.join(&entry))?;
        }
        Ok(())
    } else if ft.is_file() {
        tar.append_data(&mut header, name, File::open(path)?)
    } else {
        Err(io::Error::other(format!(
            "{} is not a file, directory or symlink",
            path.display()
        )))
    }
}
