//! Kernel module metadata: what `depmod` would compute, without running it.
//!
//! Debian's kernel packages ship no `modules.dep` or other index (depmod runs
//! in postinst), so the kernel builder computes them itself. Every module is
//! an ELF relocatable object (possibly `.xz`, `.zst` or `.gz` compressed)
//! whose `.modinfo` section is a sequence of NUL-terminated `key=value`
//! strings: `depends=` names the modules it needs, each `alias=` a device
//! pattern it drives, each `softdep=` a soft dependency. The symbols it
//! exports are its defined `__ksymtab_NAME` symbols.
//!
//! [`ModuleIndex`] holds that data for one module tree (`lib/modules/<ver>`):
//! it is built either by scanning the `.ko` files ([`ModuleIndex::scan`]) or
//! by reading back the `modules.dep`/`modules.alias` files it writes
//! ([`ModuleIndex::load`], which has no symbols or softdeps).
//! [`ModuleIndex::closure`] turns a list of requested names into a load
//! order (dependencies first, deterministic), skipping built-in modules and
//! rejecting unknown names with suggestions.
//!
//! Files written for a kernel's tree ([`depmod::write_indexes`]), because
//! two different readers look modules up:
//!
//! - kmod — `modprobe`, `modinfo` and systemd's libkmod on a booted system —
//!   reads **only** the binary trie indexes ([`index`]): `modules.dep.bin`,
//!   `modules.alias.bin`, `modules.symbols.bin`, `modules.builtin.bin`,
//!   `modules.builtin.alias.bin` (from the kernel's `modules.builtin.modinfo`),
//!   plus the text `modules.softdep` and `modules.devname`. With the text
//!   `modules.dep` alone it finds no module at all.
//! - busybox `modprobe` (stage 1 in the initrd) reads the text files:
//!   `modules.dep` lines are `path: dep-path ...` with the *full* transitive
//!   dependency list in reverse load order (the last one is loaded first),
//!   `modules.alias` lines are `alias <pattern> <module>`, `modules.symbols`
//!   lines `alias symbol:<name> <module>`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use object::{Object, ObjectSection};

/// What can go wrong reading module metadata.
#[derive(Debug, thiserror::Error)]
pub enum KmodError {
    #[error("cannot read `{path}`")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{path}` is not a valid ELF kernel module")]
    Elf {
        path: PathBuf,
        #[source]
        source: object::read::Error,
    },
    #[error("`{path}` has no .modinfo section, so it is not a kernel module")]
    NoModinfo { path: PathBuf },
    #[error(
        "`{path}`: unsupported module compression `.{ext}` (supported: .ko, .ko.xz, .ko.zst, .ko.gz)"
    )]
    Compression { path: PathBuf, ext: String },
    #[error("`{path}`: cannot decompress module")]
    Decompress {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("module `{name}` exists twice: `{first}` and `{second}`")]
    Duplicate {
        name: String,
        first: String,
        second: String,
    },
    #[error("unknown kernel module `{name}` (kernel {version}){}", did_you_mean(.suggestions))]
    Unknown {
        name: String,
        version: String,
        suggestions: Vec<String>,
    },
    #[error("module `{module}` depends on `{missing}`, which is not in the module tree")]
    MissingDependency { module: String, missing: String },
    #[error("module dependency cycle: {}", .cycle.join(" -> "))]
    Cycle { cycle: Vec<String> },
    #[error("{file}:{line}: malformed line `{text}`")]
    Malformed {
        file: PathBuf,
        line: usize,
        text: String,
    },
    #[error("cannot write `{file}`")]
    Index {
        file: String,
        #[source]
        source: index::IndexError,
    },
}

impl KmodError {
    /// The stable code of this error (docs/errors.md, E08xx).
    pub fn code(&self) -> crate::codes::Code {
        crate::codes::KERNEL_MODULES
    }
}

fn did_you_mean(suggestions: &[String]) -> String {
    if suggestions.is_empty() {
        String::new()
    } else {
        format!("; did you mean {}?", suggestions.join(", "))
    }
}

/// Normalizes a module name the way the kernel does (`-` and `_` are the same).
pub fn normalize_name(name: &str) -> String {
    name.replace('-', "_")
}

/// The module name of a path such as `kernel/fs/fuse/virtiofs.ko.xz`.
pub fn module_name_of(path: &str) -> Option<String> {
    let file = path.rsplit('/').next()?;
    let stem = file.split_once(".ko").map(|(s, _)| s)?;
    if stem.is_empty() {
        return None;
    }
    Some(normalize_name(stem))
}

/// What the index needs from a module: fields of its `.modinfo` section and
/// the symbols it exports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModInfo {
    pub depends: Vec<String>,
    pub aliases: Vec<String>,
    /// `softdep=` values (`pre: a b post: c`), in section order.
    pub softdeps: Vec<String>,
    /// Exported symbols: the `NAME` of each defined `__ksymtab_NAME` symbol
    /// (what `EXPORT_SYMBOL*` leaves in a module), sorted.
    pub exports: Vec<String>,
}

/// Parses the `.modinfo` section and the exported symbols of an
/// (uncompressed) ELF module image.
pub fn parse_modinfo(path: &Path, elf: &[u8]) -> Result<ModInfo, KmodError> {
    let file = object::File::parse(elf).map_err(|source| KmodError::Elf {
        path: path.to_owned(),
        source,
    })?;
    let section = file
        .section_by_name(".modinfo")
        .ok_or_else(|| KmodError::NoModinfo {
            path: path.to_owned(),
        })?;
    let data = section.data().map_err(|source| KmodError::Elf {
        path: path.to_owned(),
        source,
    })?;
    let mut info = ModInfo::default();
    for field in data.split(|&b| b == 0).filter(|f| !f.is_empty()) {
        let field = String::from_utf8_lossy(field);
        if let Some(deps) = field.strip_prefix("depends=") {
            info.depends.extend(
                deps.split(',')
                    .filter(|d| !d.is_empty())
                    .map(normalize_name),
            );
        } else if let Some(alias) = field.strip_prefix("alias=") {
            info.aliases.push(alias.to_owned());
        } else if let Some(softdep) = field.strip_prefix("softdep=") {
            info.softdeps.push(softdep.to_owned());
        }
    }
    info.exports = exported_symbols(&file);
    Ok(info)
}

/// The names of the `__ksymtab_NAME` symbols a module defines.
fn exported_symbols(file: &object::File) -> Vec<String> {
    use object::{ObjectSymbol, SymbolKind};
    let mut exports: Vec<String> = file
        .symbols()
        .filter(|s| !s.is_undefined() && s.kind() != SymbolKind::Section)
        .filter_map(|s| {
            let name = s.name().ok()?.strip_prefix("__ksymtab_")?;
            (!name.is_empty()).then(|| name.to_owned())
        })
        .collect();
    exports.sort();
    exports.dedup();
    exports
}

/// Reads a module file, decompressing it according to its extension.
pub fn read_module(path: &Path) -> Result<Vec<u8>, KmodError> {
    let mut buffers = ModuleBuffers::default();
    read_module_into(path, &mut buffers)?;
    Ok(buffers.take())
}

/// Buffers for reading modules one after another: a module tree holds a
/// thousand or more, and fresh buffers for each cost page faults and
/// regrowth.
#[derive(Debug, Default)]
pub struct ModuleBuffers {
    raw: Vec<u8>,
    decoded: Vec<u8>,
    /// Whether the module was compressed: then it is in `decoded`.
    compressed: bool,
}

impl ModuleBuffers {
    /// The module last read.
    pub fn module(&self) -> &[u8] {
        if self.compressed {
            &self.decoded
        } else {
            &self.raw
        }
    }

    fn take(self) -> Vec<u8> {
        if self.compressed {
            self.decoded
        } else {
            self.raw
        }
    }
}

/// The most memory an xz decoder may use for one module.
const XZ_MEMLIMIT: u64 = 256 << 20;

/// Reads the module at `path` into `buffers` (see
/// [`ModuleBuffers::module`]), decompressing it according to its extension.
///
/// xz's own check (CRC32 in Debian's modules) is not verified: modules are
/// read from store objects, whose bytes were hashed when they were added
/// (a package's against its locked SHA-256), and a damaged stream still
/// fails to decode.
pub fn read_module_into(path: &Path, buffers: &mut ModuleBuffers) -> Result<(), KmodError> {
    let io_err = |source| KmodError::Io {
        path: path.to_owned(),
        source,
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = name.split_once(".ko").map(|(_, e)| e).unwrap_or("");
    buffers.raw.clear();
    buffers.decoded.clear();
    buffers.compressed = !ext.is_empty();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_end(&mut buffers.raw))
        .map_err(io_err)?;
    let decompress_err = |source| KmodError::Decompress {
        path: path.to_owned(),
        source,
    };
    let raw = &buffers.raw[..];
    let out = &mut buffers.decoded;
    match ext {
        "" => Ok(()),
        ".xz" => {
            let stream = liblzma::stream::Stream::new_stream_decoder(
                XZ_MEMLIMIT,
                liblzma::stream::IGNORE_CHECK,
            )
            .map_err(|e| decompress_err(e.into()))?;
            liblzma::read::XzDecoder::new_stream(raw, stream)
                .read_to_end(out)
                .map_err(decompress_err)?;
            Ok(())
        }
        ".zst" => zstd::stream::read::Decoder::new(raw)
            .and_then(|mut d| d.read_to_end(out))
            .map(drop)
            .map_err(decompress_err),
        ".gz" => {
            flate2::read::GzDecoder::new(raw)
                .read_to_end(out)
                .map_err(decompress_err)?;
            Ok(())
        }
        other => Err(KmodError::Compression {
            path: path.to_owned(),
            ext: other.trim_start_matches('.').to_owned(),
        }),
    }
}

/// One loadable module of a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    /// Path relative to `lib/modules/<ver>`, e.g. `kernel/fs/fuse/fuse.ko`.
    pub path: String,
    /// Direct dependencies (module names).
    pub depends: Vec<String>,
}

/// The dependency and alias index of one module tree.
#[derive(Debug, Clone, Default)]
pub struct ModuleIndex {
    /// The kernel version (the directory name under `lib/modules`).
    pub version: String,
    /// Loadable modules by (normalized) name.
    pub modules: BTreeMap<String, Module>,
    /// `(pattern, module)` pairs, in the order they are written.
    pub aliases: Vec<(String, String)>,
    /// Names of modules built into the kernel image.
    pub builtin: BTreeSet<String>,
    /// `(symbol, module)` for every exported symbol, sorted (empty when
    /// the index was [loaded](ModuleIndex::load) from text files).
    pub exports: Vec<(String, String)>,
    /// `(module, softdep value)`, sorted by module (empty when loaded).
    pub softdeps: Vec<(String, String)>,
}

/// The file names that hold `depmod` output; the kernel builder writes its own
/// `modules.dep`/`modules.alias` and drops the others (they would be stale).
pub fn is_depmod_output(file_name: &str) -> bool {
    matches!(
        file_name,
        "modules.dep"
            | "modules.alias"
            | "modules.symbols"
            | "modules.softdep"
            | "modules.devname"
            | "modules.weakdep"
    ) || (file_name.starts_with("modules.") && file_name.ends_with(".bin"))
}

impl ModuleIndex {
    /// Scans every `*.ko*` file under `dir` (a `lib/modules/<ver>` directory)
    /// and reads `modules.builtin` if present.
    pub fn scan(dir: &Path, version: &str) -> Result<Self, KmodError> {
        use rayon::prelude::*;
        let mut paths = Vec::new();
        for entry in walkdir::WalkDir::new(dir).sort_by_file_name() {
            let entry = entry.map_err(|e| KmodError::Io {
                path: e
                    .path()
                    .map(Path::to_owned)
                    .unwrap_or_else(|| dir.to_owned()),
                source: e.into(),
            })?;
            if !entry.file_type().is_file() {
                continue;
            }
            let name = entry.file_name().to_string_lossy();
            if name.contains(".ko") && !name.starts_with("modules.") {
                paths.push(entry.path().to_owned());
            }
        }
        let infos: Vec<(String, ModInfo)> = paths
            .par_iter()
            .map_init(ModuleBuffers::default, |buffers, path| {
                let rel = path
                    .strip_prefix(dir)
                    .unwrap_or(path)
                    .to_string_lossy()
                    .into_owned();
                read_module_into(path, buffers)?;
                let info = parse_modinfo(path, buffers.module())?;
                Ok((rel, info))
            })
            .collect::<Result<_, KmodError>>()?;
        let mut index = ModuleIndex {
            version: version.to_owned(),
            builtin: read_builtin(&dir.join("modules.builtin"))?,
            ..Default::default()
        };
        for (rel, info) in infos {
            let Some(name) = module_name_of(&rel) else {
                continue;
            };
            for alias in &info.aliases {
                index.aliases.push((alias.clone(), name.clone()));
            }
            for symbol in &info.exports {
                index.exports.push((symbol.clone(), name.clone()));
            }
            for softdep in &info.softdeps {
                index.softdeps.push((name.clone(), softdep.clone()));
            }
            index.insert(name, rel, info.depends)?;
        }
        index
            .aliases
            .sort_by(|a, b| (&a.1, &a.0).cmp(&(&b.1, &b.0)));
        index.exports.sort();
        // Stable: a module's softdeps stay in section order.
        index.softdeps.sort_by(|a, b| a.0.cmp(&b.0));
        index.check_dependencies()?;
        Ok(index)
    }

    /// Reads back an index from `modules.dep`, `modules.alias` and
    /// `modules.builtin` in `dir`.
    pub fn load(dir: &Path, version: &str) -> Result<Self, KmodError> {
        let mut index = ModuleIndex {
            version: version.to_owned(),
            builtin: read_builtin(&dir.join("modules.builtin"))?,
            ..Default::default()
        };
        let dep_file = dir.join("modules.dep");
        let text = read_text(&dep_file)?;
        let mut paths_to_names = BTreeMap::new();
        let mut raw = Vec::new();
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let malformed = || KmodError::Malformed {
                file: dep_file.clone(),
                line: n + 1,
                text: line.to_owned(),
            };
            let (path, deps) = line.split_once(':').ok_or_else(malformed)?;
            if !is_relative_inside(path) || deps.split_whitespace().any(|d| !is_relative_inside(d))
            {
                return Err(malformed());
            }
            let name = module_name_of(path).ok_or_else(malformed)?;
            paths_to_names.insert(path.to_owned(), name.clone());
            raw.push((name, path.to_owned(), deps.to_owned()));
        }
        for (name, path, deps) in raw {
            // The line holds the transitive dependencies in reverse load
            // order; reversed, it is a load order `closure` reproduces.
            let depends = deps
                .split_whitespace()
                .rev()
                .map(|p| {
                    paths_to_names
                        .get(p)
                        .cloned()
                        .ok_or_else(|| KmodError::MissingDependency {
                            module: name.clone(),
                            missing: p.to_owned(),
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
            index.insert(name, path, depends)?;
        }
        let alias_file = dir.join("modules.alias");
        if alias_file.exists() {
            for (n, line) in read_text(&alias_file)?.lines().enumerate() {
                if line.starts_with('#') || line.trim().is_empty() {
                    continue;
                }
                let mut words = line.split_whitespace();
                match (words.next(), words.next(), words.next(), words.next()) {
                    (Some("alias"), Some(pattern), Some(module), None) => index
                        .aliases
                        .push((pattern.to_owned(), normalize_name(module))),
                    _ => {
                        return Err(KmodError::Malformed {
                            file: alias_file,
                            line: n + 1,
                            text: line.to_owned(),
                        });
                    }
                }
            }
        }
        Ok(index)
    }

    fn insert(
        &mut self,
        name: String,
        path: String,
        depends: Vec<String>,
    ) -> Result<(), KmodError> {
        if let Some(existing) = self.modules.get(&name) {
            return Err(KmodError::Duplicate {
                name,
                first: existing.path.clone(),
                second: path,
            });
        }
        self.modules.insert(name, Module { path, depends });
        Ok(())
    }

    fn check_dependencies(&self) -> Result<(), KmodError> {
        for (name, module) in &self.modules {
            for dep in &module.depends {
                if !self.modules.contains_key(dep) && !self.builtin.contains(dep) {
                    return Err(KmodError::MissingDependency {
                        module: name.clone(),
                        missing: dep.clone(),
                    });
                }
            }
        }
        Ok(())
    }

    /// The load order for `requested` (names, `-` or `_`): every module after
    /// its dependencies, requested modules in the given order, each module
    /// once. Built-in modules are skipped; unknown names are an error with
    /// suggestions.
    pub fn closure<S: AsRef<str>>(&self, requested: &[S]) -> Result<Vec<String>, KmodError> {
        let mut order = Vec::new();
        let mut done = BTreeSet::new();
        for name in requested {
            let name = normalize_name(name.as_ref());
            if self.builtin.contains(&name) {
                continue;
            }
            if !self.modules.contains_key(&name) {
                return Err(KmodError::Unknown {
                    suggestions: imago_lang::diag::suggest(
                        &name,
                        self.modules.keys().chain(&self.builtin).map(String::as_str),
                    ),
                    version: self.version.clone(),
                    name,
                });
            }
            self.visit(&name, &mut Vec::new(), &mut done, &mut order)?;
        }
        Ok(order)
    }

    fn visit(
        &self,
        name: &str,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        order: &mut Vec<String>,
    ) -> Result<(), KmodError> {
        if done.contains(name) || self.builtin.contains(name) {
            return Ok(());
        }
        if let Some(pos) = stack.iter().position(|s| s == name) {
            let mut cycle = stack[pos..].to_vec();
            cycle.push(name.to_owned());
            return Err(KmodError::Cycle { cycle });
        }
        let module = self
            .modules
            .get(name)
            .ok_or_else(|| KmodError::MissingDependency {
                module: stack.last().cloned().unwrap_or_default(),
                missing: name.to_owned(),
            })?;
        stack.push(name.to_owned());
        for dep in &module.depends {
            self.visit(dep, stack, done, order)?;
        }
        stack.pop();
        done.insert(name.to_owned());
        order.push(name.to_owned());
        Ok(())
    }

    /// `modules.dep` text for the modules in `names` (all when `None`), with
    /// paths as given by `path_of` (so a subset can be renamed, e.g. when
    /// modules are stored decompressed).
    pub fn render_dep(
        &self,
        names: Option<&BTreeSet<String>>,
        path_of: &dyn Fn(&Module) -> String,
    ) -> Result<String, KmodError> {
        let mut lines = Vec::new();
        for (name, module) in &self.modules {
            if names.is_some_and(|n| !n.contains(name)) {
                continue;
            }
            lines.push((path_of(module), self.dep_line(name, path_of)?));
        }
        lines.sort();
        let mut out = String::new();
        for (_, line) in lines {
            out.push_str(&line);
            out.push('\n');
        }
        Ok(out)
    }

    /// The `modules.dep` line of module `name` (without newline), which is
    /// also its value in `modules.dep.bin`: `path:` then ` dep-path` for
    /// each transitive dependency in reverse load order. kmod reverses the
    /// list as it reads it and loads the modules in that order.
    pub fn dep_line(
        &self,
        name: &str,
        path_of: &dyn Fn(&Module) -> String,
    ) -> Result<String, KmodError> {
        let module = self.modules.get(name).ok_or_else(|| KmodError::Unknown {
            name: name.to_owned(),
            version: self.version.clone(),
            suggestions: Vec::new(),
        })?;
        // Transitive load order without the module itself.
        let mut order = self.closure(&[name])?;
        order.pop();
        let mut line = path_of(module);
        line.push(':');
        for dep in order.iter().rev() {
            if let Some(dep) = self.modules.get(dep) {
                line.push(' ');
                line.push_str(&path_of(dep));
            }
        }
        Ok(line)
    }

    /// `modules.alias` text for the modules in `names` (all when `None`).
    pub fn render_alias(&self, names: Option<&BTreeSet<String>>) -> String {
        let mut out = String::from("# Aliases extracted from modules themselves.\n");
        for (pattern, module) in &self.aliases {
            if names.is_some_and(|n| !n.contains(module)) {
                continue;
            }
            out.push_str(&format!("alias {pattern} {module}\n"));
        }
        out
    }
}

/// A relative path that stays below its directory (no `..`, no leading `/`).
fn is_relative_inside(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && path
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..")
}

fn read_text(path: &Path) -> Result<String, KmodError> {
    std::fs::read_to_string(path).map_err(|source| KmodError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Module names listed in a `modules.builtin` file (empty if it is absent).
fn read_builtin(path: &Path) -> Result<BTreeSet<String>, KmodError> {
    if !path.exists() {
        return Ok(BTreeSet::new());
    }
    Ok(read_text(path)?
        .lines()
        .filter_map(|l| module_name_of(l.trim()))
        .collect())
}

#[path = "kmod_index.rs"]
pub mod index;

#[path = "kmod_depmod.rs"]
pub mod depmod;

#[cfg(test)]
#[path = "kmod_tests.rs"]
pub(crate) mod tests;
