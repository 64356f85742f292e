//! A profile directory: numbered generation links `system-<N>-link` pointing
//! at toplevels, and `system` pointing at the current link by name. Changes
//! are atomic: a new link is made under a temporary name and renamed over
//! the old one; deleting a generation unlinks one symlink.

use super::GenerationsError;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The profile name: links are `<PROFILE>-<N>-link`, the current one `<PROFILE>`.
const PROFILE: &str = "system";

/// One generation of a profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generation {
    pub number: u32,
    /// The generation link (`…/system-<N>-link`).
    pub link: PathBuf,
    /// Where it points: the toplevel.
    pub target: PathBuf,
    /// When the link was made (its own modification time).
    pub created: SystemTime,
    pub current: bool,
}

/// A profile directory such as `/imago/var/profiles`.
#[derive(Debug, Clone)]
pub struct Profile {
    dir: PathBuf,
}

/// The generation number of a link name `system-<N>-link`.
fn link_number(name: &str) -> Option<u32> {
    let digits = name
        .strip_prefix(PROFILE)?
        .strip_prefix('-')?
        .strip_suffix("-link")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.starts_with('0') {
        return None;
    }
    digits.parse().ok()
}

fn link_name(number: u32) -> String {
    format!("{PROFILE}-{number}-link")
}

impl Profile {
    /// Opens an existing profile directory.
    pub fn open(dir: &Path) -> Result<Profile, GenerationsError> {
        if !dir.is_dir() {
            return Err(GenerationsError::NoProfile {
                path: dir.to_owned(),
            });
        }
        Ok(Profile {
            dir: dir.to_owned(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The current generation's number: `system` names `system-<N>-link`
    /// and that link exists.
    pub fn current(&self) -> Result<Option<u32>, GenerationsError> {
        let path = self.dir.join(PROFILE);
        let target = match fs::read_link(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(GenerationsError::Read { path, source }),
        };
        let Some(number) = target.to_str().and_then(link_number) else {
            return Ok(None);
        };
        let exists = self.dir.join(link_name(number)).symlink_metadata().is_ok();
        Ok(exists.then_some(number))
    }

    /// All generations, oldest first. Other files in the directory are ignored.
    pub fn generations(&self) -> Result<Vec<Generation>, GenerationsError> {
        let read = |source| GenerationsError::Read {
            path: self.dir.clone(),
            source,
        };
        let current = self.current()?;
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(read)? {
            let entry = entry.map_err(read)?;
            let Some(number) = entry.file_name().to_str().and_then(link_number) else {
                continue;
            };
            let link = entry.path();
            let meta = link
                .symlink_metadata()
                .map_err(|source| GenerationsError::Read {
                    path: link.clone(),
                    source,
                })?;
            if !meta.file_type().is_symlink() {
                continue;
            }
            let target = fs::read_link(&link).map_err(|source| GenerationsError::Read {
                path: link.clone(),
                source,
            })?;
            out.push(Generation {
                number,
                link,
                target,
                created: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                current: current == Some(number),
            });
        }
        out.sort_by_key(|g| g.number);
        Ok(out)
    }

    /// Deletes the given generations (their links). Refused, before
    /// anything is deleted: a number that does not exist, the current
    /// generation, and a generation whose toplevel `<run>/booted-system` or
    /// `<run>/current-system` names (the rules of the script's
    /// `delete-generations`). The caller holds the lock of `run`.
    pub fn delete(&self, numbers: &[u32], run: &Path) -> Result<Vec<Generation>, GenerationsError> {
        let all = self.generations()?;
        let in_use = super::in_use_systems(run);
        let mut doomed = Vec::new();
        for &number in numbers {
            let Some(g) = all.iter().find(|g| g.number == number) else {
                return Err(GenerationsError::NoSuchGeneration {
                    number,
                    profile: self.dir.clone(),
                });
            };
            if g.current {
                return Err(GenerationsError::DeleteCurrent {
                    number,
                    profile: self.dir.clone(),
                });
            }
            if in_use.iter().any(|s| Path::new(s) == g.target) {
                return Err(GenerationsError::DeleteInUse {
                    number,
                    profile: self.dir.clone(),
                    run: run.to_owned(),
                });
            }
            if !doomed.contains(g) {
                doomed.push(g.clone());
            }
        }
        self.remove(&doomed)?;
        Ok(doomed)
    }

    /// Deletes every generation older than `age` at `now`, except the
    /// current one and the booted and running ones (of `run`).
    pub fn delete_older_than(
        &self,
        age: Duration,
        now: SystemTime,
        run: &Path,
    ) -> Result<Vec<Generation>, GenerationsError> {
        let cutoff = now.checked_sub(age).unwrap_or(SystemTime::UNIX_EPOCH);
        let in_use = super::in_use_systems(run);
        let doomed: Vec<Generation> = self
            .generations()?
            .into_iter()
            .filter(|g| {
                !g.current && g.created < cutoff && !in_use.iter().any(|s| Path::new(s) == g.target)
            })
            .collect();
        self.remove(&doomed)?;
        Ok(doomed)
    }

    fn remove(&self, doomed: &[Generation]) -> Result<(), GenerationsError> {
        for g in doomed {
            fs::remove_file(&g.link).map_err(|source| GenerationsError::Write {
                path: g.link.clone(),
                source,
            })?;
        }
        Ok(())
    }

    /// Makes generation `number` current: `system` → `system-<N>-link`,
    /// replaced by one rename.
    pub fn set_current(&self, number: u32) -> Result<(), GenerationsError> {
        let name = link_name(number);
        if self.dir.join(&name).symlink_metadata().is_err() {
            return Err(GenerationsError::NoSuchGeneration {
                number,
                profile: self.dir.clone(),
            });
        }
        let tmp = self.dir.join(format!("{PROFILE}.imago-tmp"));
        let write = |path: &Path, source| GenerationsError::Write {
            path: path.to_owned(),
            source,
        };
        match fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(write(&tmp, e)),
        }
        std::os::unix::fs::symlink(&name, &tmp).map_err(|e| write(&tmp, e))?;
        let dest = self.dir.join(PROFILE);
        if let Err(e) = fs::rename(&tmp, &dest) {
            let _ = fs::remove_file(&tmp);
            return Err(write(&dest, e));
        }
        Ok(())
    }

    /// Rolls back to the newest generation older than the current one and
    /// returns (from, to).
    pub fn rollback(&self) -> Result<(u32, u32), GenerationsError> {
        let current = self.current()?.ok_or_else(|| GenerationsError::NoCurrent {
            profile: self.dir.clone(),
        })?;
        let previous = self
            .generations()?
            .iter()
            .map(|g| g.number)
            .filter(|&n| n < current)
            .max()
            .ok_or_else(|| GenerationsError::NothingOlder {
                current,
                profile: self.dir.clone(),
            })?;
        self.set_current(previous)?;
        Ok((current, previous))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_names() {
        assert_eq!(link_number("system-1-link"), Some(1));
        assert_eq!(link_number("system-42-link"), Some(42));
        for bad in [
            "system",
            "system--link",
            "system-01-link",
            "system-x-link",
            "system-1-link.imago-tmp",
            "other-1-link",
            "system-99999999999-link",
        ] {
            assert_eq!(link_number(bad), None, "{bad}");
        }
    }
}
