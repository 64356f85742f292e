//! The boot entries Imago keeps on an EFI system partition:
//! `loader/entries/imago-<name>-<N>[+<left>[-<done>]].conf` (Boot Loader
//! Specification type 1, with systemd-boot's boot counting in the name),
//! kernels and initrds under `EFI/imago/` shared by entries, and
//! `loader/loader.conf` whose `default` names the entry to boot. Files are
//! replaced by writing a temporary file, syncing it and renaming it over the
//! old one (single-file renames are the only atomic step FAT offers).

use super::GenerationsError;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Where kernels and initrds live on the ESP.
const KERNEL_DIR: &str = "EFI/imago";

/// One `imago-*` boot entry file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryFile {
    pub path: PathBuf,
    /// The system name part of the file name.
    pub system_name: String,
    pub generation: u32,
    /// Tries left, when the entry is still being assessed.
    pub tries_left: Option<u32>,
    /// `linux` and `initrd` paths on the ESP (`/EFI/imago/...`).
    pub linux: Option<String>,
    pub initrd: Option<String>,
    /// The `imago.system=` store path of the `options` line.
    pub system: Option<String>,
}

impl EntryFile {
    /// Parses a file name `imago-<name>-<N>[+L[-D]].conf`.
    fn parse_name(file_name: &str) -> Option<(String, u32, Option<u32>)> {
        let stem = file_name.strip_prefix("imago-")?.strip_suffix(".conf")?;
        let (base, tries_left) = match stem.split_once('+') {
            Some((base, counter)) => {
                let left = counter.split('-').next()?;
                (base, Some(left.parse().ok()?))
            }
            None => (stem, None),
        };
        let (name, number) = base.rsplit_once('-')?;
        if name.is_empty() || number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some((name.to_owned(), number.parse().ok()?, tries_left))
    }

    /// The file name without the boot counter: what a blessed entry is called.
    pub fn blessed_name(&self) -> String {
        format!("imago-{}-{}.conf", self.system_name, self.generation)
    }
}

/// A mounted (or unpacked) EFI system partition.
#[derive(Debug, Clone)]
pub struct Esp {
    root: PathBuf,
}

impl Esp {
    pub fn open(root: &Path) -> Result<Esp, GenerationsError> {
        if !root.join("loader").is_dir() {
            return Err(GenerationsError::NoEsp {
                path: root.to_owned(),
            });
        }
        Ok(Esp {
            root: root.to_owned(),
        })
    }

    fn entries_dir(&self) -> PathBuf {
        self.root.join("loader/entries")
    }

    /// Imago's entries, sorted by system name and generation.
    pub fn entries(&self) -> Result<Vec<EntryFile>, GenerationsError> {
        let dir = self.entries_dir();
        let read = |path: &Path, source| GenerationsError::Read {
            path: path.to_owned(),
            source,
        };
        let iter = match fs::read_dir(&dir) {
            Ok(it) => it,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(read(&dir, e)),
        };
        let mut out = Vec::new();
        for entry in iter {
            let entry = entry.map_err(|e| read(&dir, e))?;
            let Some((system_name, generation, tries_left)) =
                entry.file_name().to_str().and_then(EntryFile::parse_name)
            else {
                continue;
            };
            let path = entry.path();
            let text = fs::read_to_string(&path).map_err(|e| read(&path, e))?;
            let field = |key: &str| {
                text.lines().find_map(|l| {
                    let (k, v) = l.trim().split_once(char::is_whitespace)?;
                    (k == key).then(|| v.trim().to_owned())
                })
            };
            let system = field("options").and_then(|o| {
                o.split_whitespace()
                    .filter_map(|w| w.strip_prefix("imago.system="))
                    .next_back()
                    .map(str::to_owned)
            });
            out.push(EntryFile {
                linux: field("linux"),
                initrd: field("initrd"),
                path,
                system_name,
                generation,
                tries_left,
                system,
            });
        }
        out.sort_by(|a, b| (&a.system_name, a.generation).cmp(&(&b.system_name, b.generation)));
        Ok(out)
    }

    /// Removes the entries of generation `generation` that boot `system`
    /// (a toplevel path), then every kernel or initrd no entry uses.
    /// Returns the removed files.
    pub fn remove_generation(
        &self,
        generation: u32,
        system: &str,
    ) -> Result<Vec<PathBuf>, GenerationsError> {
        let mut removed = Vec::new();
        for e in self.entries()? {
            if e.generation == generation && e.system.as_deref() == Some(system) {
                remove(&e.path)?;
                removed.push(e.path);
            }
        }
        removed.extend(self.remove_unused_files()?);
        Ok(removed)
    }

    /// The entries of generations deleted from `profile`. An entry stays
    /// while `system-<N>-link` of its generation points at the system it
    /// boots, when it boots one of `in_use` (the booted and running
    /// systems), and when loader.conf's `default` names it exactly.
    pub fn deleted_generation_entries(
        &self,
        profile: &super::Profile,
        in_use: &[String],
    ) -> Result<Vec<EntryFile>, GenerationsError> {
        let links: Vec<(u32, String)> = profile
            .generations()?
            .into_iter()
            .map(|g| (g.number, g.target.to_string_lossy().into_owned()))
            .collect();
        let default = self.default_pattern()?;
        Ok(self
            .entries()?
            .into_iter()
            .filter(|e| {
                let Some(system) = e.system.as_deref() else {
                    return false;
                };
                let linked = links
                    .iter()
                    .any(|(n, target)| *n == e.generation && target == system);
                let is_default = default.as_deref() == Some(e.blessed_name().as_str());
                !(linked || is_default || in_use.iter().any(|s| s == system))
            })
            .collect())
    }

    /// Removes `entries`, then every kernel or initrd no entry uses, so no
    /// entry is left pointing at a missing file. Returns the removed files.
    pub fn remove_entries(&self, entries: &[EntryFile]) -> Result<Vec<PathBuf>, GenerationsError> {
        let mut removed = Vec::new();
        for e in entries {
            remove(&e.path)?;
            removed.push(e.path.clone());
        }
        removed.extend(self.remove_unused_files()?);
        Ok(removed)
    }

    /// Deletes files under `EFI/imago/` that no entry's `linux` or `initrd`
    /// names (any entry, Imago's or not), and leftover temporary files.
    pub fn remove_unused_files(&self) -> Result<Vec<PathBuf>, GenerationsError> {
        let dir = self.root.join(KERNEL_DIR);
        let mut used = Vec::new();
        let entries_dir = self.entries_dir();
        if let Ok(iter) = fs::read_dir(&entries_dir) {
            for entry in iter {
                let entry = entry.map_err(|source| GenerationsError::Read {
                    path: entries_dir.clone(),
                    source,
                })?;
                let path = entry.path();
                if path.extension().and_then(|e| e.to_str()) != Some("conf") {
                    continue;
                }
                let text = fs::read_to_string(&path)
                    .map_err(|source| GenerationsError::Read { path, source })?;
                for line in text.lines() {
                    let mut words = line.split_whitespace();
                    if let (Some("linux" | "initrd"), Some(v)) = (words.next(), words.next()) {
                        used.push(v.trim_start_matches('/').to_owned());
                    }
                }
            }
        }
        let mut removed = Vec::new();
        let iter = match fs::read_dir(&dir) {
            Ok(it) => it,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(removed),
            Err(source) => return Err(GenerationsError::Read { path: dir, source }),
        };
        for entry in iter {
            let entry = entry.map_err(|source| GenerationsError::Read {
                path: dir.clone(),
                source,
            })?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if used.contains(&format!("{KERNEL_DIR}/{name}")) {
                continue;
            }
            let path = entry.path();
            if path.is_file() {
                remove(&path)?;
                removed.push(path);
            }
        }
        Ok(removed)
    }

    /// Sets loader.conf's `default` to `pattern` (a file name or glob below
    /// loader/entries/), keeping its other lines.
    pub fn set_default(&self, pattern: &str) -> Result<(), GenerationsError> {
        let path = self.root.join("loader/loader.conf");
        let old = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => return Err(GenerationsError::Read { path, source }),
        };
        let mut text = format!("default {pattern}\n");
        for line in old.lines() {
            if line.split_whitespace().next() != Some("default") {
                text.push_str(line);
                text.push('\n');
            }
        }
        write_atomically(&path, text.as_bytes())
    }

    /// loader.conf's `default` value, if any.
    pub fn default_pattern(&self) -> Result<Option<String>, GenerationsError> {
        let path = self.root.join("loader/loader.conf");
        match fs::read_to_string(&path) {
            Ok(t) => Ok(t.lines().find_map(|l| {
                let (k, v) = l.trim().split_once(char::is_whitespace)?;
                (k == "default").then(|| v.trim().to_owned())
            })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(GenerationsError::Read { path, source }),
        }
    }
}

fn remove(path: &Path) -> Result<(), GenerationsError> {
    fs::remove_file(path).map_err(|source| GenerationsError::Write {
        path: path.to_owned(),
        source,
    })
}

/// Writes `bytes` to a temporary file next to `path`, syncs it and renames
/// it over `path`. The temporary file is removed on failure.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), GenerationsError> {
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".imago-tmp");
    let tmp = PathBuf::from(tmp_name);
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    result.map_err(|source| {
        let _ = fs::remove_file(&tmp);
        GenerationsError::Write {
            path: path.to_owned(),
            source,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_names() {
        assert_eq!(
            EntryFile::parse_name("imago-web-3.conf"),
            Some(("web".to_owned(), 3, None))
        );
        assert_eq!(
            EntryFile::parse_name("imago-my-web-12+3.conf"),
            Some(("my-web".to_owned(), 12, Some(3)))
        );
        assert_eq!(
            EntryFile::parse_name("imago-web-4+0-3.conf"),
            Some(("web".to_owned(), 4, Some(0)))
        );
        for bad in [
            "imago-web.conf",
            "imago--1.conf",
            "debian.conf",
            "imago-web-x.conf",
            "imago-web-1+x.conf",
        ] {
            assert_eq!(EntryFile::parse_name(bad), None, "{bad}");
        }
    }
}
