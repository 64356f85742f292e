//! The pass after `mkfs.ext4 -d` over every inode it created: what mkfs
//! copies from the staging tree but must not reach the image is set to a
//! constant with one `debugfs -w` script.
//!
//! - the change time (mkfs copies each source's ctime, which no program can
//!   set): 1 s after the epoch, like every other timestamp;
//! - the owner (mkfs copies each source's uid and gid — the builder's, or
//!   whoever owns the store): [`OWNER_UID`]:[`OWNER_GID`], root. `-E
//!   root_owner=0:0` covers `/` alone. debugfs's `uid` and `gid` fields
//!   write the high 16 bits too, so a builder's uid above 65535 leaves no
//!   trace either.
//!
//! Every inode is addressed by its path in the staging tree, which mirrors
//! the file system mkfs wrote; hard links name one inode twice, harmlessly.

use super::{ImageError, Result};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Command;

/// The owner of every inode of an image's root file system. No module's
/// owner reaches the image: the tree holds only the store and empty
/// directories, and owners a module declares (home directories,
/// `environment.etc.<name>.user`, tmpfiles rules) are applied by activation
/// on the booted machine.
pub const OWNER_UID: u32 = 0;
/// See [`OWNER_UID`].
pub const OWNER_GID: u32 = 0;

/// Sets the change time and owner of `/`, `/lost+found` and every inode
/// staged below `stage` in the ext4 file system at `offset` in `image`.
pub fn normalize(stage: &Path, image: &Path, offset: u64, time: i64) -> Result<()> {
    let mut script = Vec::new();
    for path in [&b"\"/\""[..], &b"\"/lost+found\""[..]] {
        push_fields(&mut script, path, time);
    }
    for entry in walkdir::WalkDir::new(stage)
        .min_depth(1)
        .sort_by_file_name()
    {
        let entry =
            entry.map_err(|e| ImageError::Invalid(format!("walking the staging tree: {e}")))?;
        let rel = entry
            .path()
            .strip_prefix(stage)
            .map_err(|e| ImageError::Invalid(e.to_string()))?
            .as_os_str()
            .as_bytes();
        if rel.contains(&b'\n') {
            return Err(ImageError::Invalid(format!(
                "{} has a newline in its name, which debugfs cannot address",
                entry.path().display()
            )));
        }
        push_fields(&mut script, &quote(rel), time);
    }
    run_debugfs(&script, image, offset, time)
}

/// `"/<rel>"` for debugfs: inside double quotes a quote is written twice and
/// every other byte stands for itself.
fn quote(rel: &[u8]) -> Vec<u8> {
    let mut quoted = b"\"/".to_vec();
    for &b in rel {
        if b == b'"' {
            quoted.push(b'"');
        }
        quoted.push(b);
    }
    quoted.push(b'"');
    quoted
}

/// One `sif` line per field of the inode at the quoted `path`.
fn push_fields(script: &mut Vec<u8>, path: &[u8], time: i64) {
    let fields = [
        format!("ctime {time}"),
        "ctime_extra 0".to_owned(),
        format!("uid {OWNER_UID}"),
        format!("gid {OWNER_GID}"),
    ];
    for field in fields {
        script.extend_from_slice(b"sif ");
        script.extend_from_slice(path);
        script.push(b' ');
        script.extend_from_slice(field.as_bytes());
        script.push(b'\n');
    }
}

fn run_debugfs(script: &[u8], image: &Path, offset: u64, time: i64) -> Result<()> {
    let mut cmds =
        tempfile::NamedTempFile::new().map_err(ImageError::io("creating the debugfs script"))?;
    std::io::Write::write_all(&mut cmds, script)
        .map_err(ImageError::io("writing the debugfs script"))?;
    let device = format!("{}?offset={offset}", image.display());
    let out = Command::new("debugfs")
        .env("E2FSPROGS_FAKE_TIME", time.to_string())
        .arg("-w")
        .arg("-f")
        .arg(cmds.path())
        .arg(&device)
        .output()
        .map_err(ImageError::io("running debugfs (package e2fsprogs)"))?;
    // debugfs echoes each command on stderr and exits 0 even when one fails:
    // anything else on stderr is an error.
    let stderr = String::from_utf8_lossy(&out.stderr);
    let problems: Vec<&str> = stderr
        .lines()
        .filter(|l| {
            !l.starts_with("debugfs ") && !l.starts_with("debugfs:") && !l.trim().is_empty()
        })
        .collect();
    if !out.status.success() || !problems.is_empty() {
        return Err(ImageError::Tool {
            command: "debugfs".to_owned(),
            status: out.status.to_string(),
            stderr: problems.join("\n"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_inode_gets_a_fixed_ctime_and_root_as_owner() {
        let mut script = Vec::new();
        push_fields(&mut script, &quote(b"etc/a \"b\""), 1);
        assert_eq!(
            String::from_utf8(script).unwrap_or_default(),
            "sif \"/etc/a \"\"b\"\"\" ctime 1\n\
             sif \"/etc/a \"\"b\"\"\" ctime_extra 0\n\
             sif \"/etc/a \"\"b\"\"\" uid 0\n\
             sif \"/etc/a \"\"b\"\"\" gid 0\n"
        );
    }
}
