//! The files `depmod` writes for a module tree, computed from a scanned
//! [`ModuleIndex`] instead of running depmod (which Debian runs in the
//! kernel package's postinst, so the package ships none of them).
//!
//! Two readers need them, and they read different files:
//!
//! - kmod (`modprobe`, `modinfo`, systemd's libkmod) reads only the binary
//!   indexes ([`super::index`]): `modules.dep.bin`, `modules.alias.bin`,
//!   `modules.symbols.bin`, `modules.builtin.bin`,
//!   `modules.builtin.alias.bin`; and as text `modules.softdep` (soft
//!   dependencies, e.g. libcrc32c's `pre: crc32c`) and `modules.devname`
//!   (the device nodes `kmod static-nodes` creates so that opening
//!   `/dev/fuse` or `/dev/autofs` loads the module). Without
//!   `modules.builtin.bin`, libkmod's `kmod_load_resources` (which udev and
//!   systemd call) fails for every index, so it is always written.
//! - busybox `modprobe` (stage 1, in the initrd) reads the text files
//!   `modules.dep`, `modules.alias` and `modules.symbols`.
//!
//! Keys and values are those depmod writes: a module's name maps to its
//! `modules.dep` line, `alias` patterns (with `-` read as `_` outside
//! brackets, as kmod normalizes lookups) and `symbol:NAME` map to module
//! names, built-in names map to an empty value. Priorities, which order the
//! values of one key, are the modules' positions in the kernel's
//! `modules.order` (unlisted modules after, by name), as depmod orders them.

use std::collections::BTreeMap;
use std::path::Path;

use super::index::{IndexBuilder, IndexError};
use super::{KmodError, ModuleIndex, module_name_of};

/// depmod's output for one tree.
#[derive(Debug, Clone, Default)]
pub struct DepmodOutput {
    /// `(file name, contents)`, in the order they are written.
    pub files: Vec<(&'static str, Vec<u8>)>,
    /// `(alias, module)` pairs kmod cannot index (an unmatched `[` or `]`),
    /// left out of the binary alias indexes as depmod leaves them out.
    pub skipped_aliases: Vec<(String, String)>,
}

impl DepmodOutput {
    /// The contents of file `name`, if it is part of the output.
    pub fn file(&self, name: &str) -> Option<&[u8]> {
        self.files
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, c)| c.as_slice())
    }
}

/// Renders every index file for `index`, whose tree is `dir`
/// (`lib/modules/<ver>`), then writes them into `dir`. `modules.order` and
/// `modules.builtin.modinfo` are read from `dir` when present.
pub fn write_indexes(index: &ModuleIndex, dir: &Path) -> Result<DepmodOutput, KmodError> {
    let order = read_optional(&dir.join("modules.order"))?;
    let builtin_modinfo = read_optional(&dir.join("modules.builtin.modinfo"))?;
    let order = String::from_utf8_lossy(order.as_deref().unwrap_or_default());
    let output = render(index, &order, builtin_modinfo.as_deref())?;
    for (name, contents) in &output.files {
        let path = dir.join(name);
        std::fs::write(&path, contents).map_err(|source| KmodError::Io { path, source })?;
    }
    Ok(output)
}

fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, KmodError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(KmodError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Every index file for `index`, from the text of `modules.order` and the
/// bytes of `modules.builtin.modinfo` (`modules.builtin.alias.bin` is
/// written only when that file exists).
pub fn render(
    index: &ModuleIndex,
    order: &str,
    builtin_modinfo: Option<&[u8]>,
) -> Result<DepmodOutput, KmodError> {
    let priority = priorities(index, order);
    let prio = |module: &str| priority.get(module).copied().unwrap_or(u32::MAX);
    let same_path = |m: &super::Module| m.path.clone();
    let mut skipped_aliases = Vec::new();

    let mut deps = Bin::new("modules.dep.bin");
    for name in index.modules.keys() {
        deps.insert(name, &index.dep_line(name, &same_path)?, prio(name))?;
    }

    let mut aliases = Bin::new("modules.alias.bin");
    for (pattern, module) in &index.aliases {
        match normalize_alias(pattern) {
            Some(key) => aliases.insert(&key, module, prio(module))?,
            None => skipped_aliases.push((pattern.clone(), module.clone())),
        }
    }

    let mut symbols = Bin::new("modules.symbols.bin");
    let mut symbols_text = String::from("# Aliases for symbols, used by symbol_request().\n");
    for (symbol, module) in &index.exports {
        let key = format!("symbol:{symbol}");
        symbols.insert(&key, module, prio(module))?;
        symbols_text.push_str(&format!("alias {key} {module}\n"));
    }

    let mut builtin = Bin::new("modules.builtin.bin");
    for name in &index.builtin {
        builtin.insert(name, "", 0)?;
    }

    let mut files = vec![
        (
            "modules.dep",
            index.render_dep(None, &same_path)?.into_bytes(),
        ),
        deps.finish()?,
        ("modules.alias", index.render_alias(None).into_bytes()),
        aliases.finish()?,
        ("modules.softdep", render_softdep(index).into_bytes()),
        ("modules.symbols", symbols_text.into_bytes()),
        symbols.finish()?,
        builtin.finish()?,
        ("modules.devname", render_devname(index).into_bytes()),
    ];
    if let Some(modinfo) = builtin_modinfo {
        let mut builtin_aliases = Bin::new("modules.builtin.alias.bin");
        for (pattern, module) in builtin_aliases_of(modinfo) {
            match normalize_alias(&pattern) {
                Some(key) => builtin_aliases.insert(&key, &module, 0)?,
                None => skipped_aliases.push((pattern, module)),
            }
        }
        files.push(builtin_aliases.finish()?);
    }
    Ok(DepmodOutput {
        files,
        skipped_aliases,
    })
}

/// An index under construction for one file, whose errors name the file.
struct Bin {
    file: &'static str,
    index: IndexBuilder,
}

impl Bin {
    fn new(file: &'static str) -> Self {
        Bin {
            file,
            index: IndexBuilder::new(),
        }
    }

    fn insert(&mut self, key: &str, value: &str, priority: u32) -> Result<(), KmodError> {
        self.index
            .insert(key, value, priority)
            .map_err(|source| self.error(source))
    }

    fn finish(self) -> Result<(&'static str, Vec<u8>), KmodError> {
        match self.index.to_bytes() {
            Ok(bytes) => Ok((self.file, bytes)),
            Err(source) => Err(self.error(source)),
        }
    }

    fn error(&self, source: IndexError) -> KmodError {
        KmodError::Index {
            file: self.file.to_owned(),
            source,
        }
    }
}

/// Each module's priority: its position in `modules.order`, then the
/// modules the order does not list, by name.
fn priorities<'a>(index: &'a ModuleIndex, order: &str) -> BTreeMap<&'a str, u32> {
    let mut priority = BTreeMap::new();
    let listed = order
        .lines()
        .filter_map(|line| module_name_of(line.trim()))
        .filter_map(|name| index.modules.get_key_value(&name).map(|(k, _)| k.as_str()));
    for name in listed.chain(index.modules.keys().map(String::as_str)) {
        let next = u32::try_from(priority.len()).unwrap_or(u32::MAX);
        priority.entry(name).or_insert(next);
    }
    priority
}

/// An alias as kmod looks it up: `-` becomes `_` except inside `[...]`.
/// `None` for an unmatched bracket, which kmod cannot match either.
pub fn normalize_alias(alias: &str) -> Option<String> {
    let mut out = String::with_capacity(alias.len());
    let mut in_brackets = false;
    for c in alias.chars() {
        match c {
            '[' if !in_brackets => in_brackets = true,
            ']' if in_brackets => in_brackets = false,
            ']' => return None,
            _ => {}
        }
        out.push(if c == '-' && !in_brackets { '_' } else { c });
    }
    (!in_brackets).then_some(out)
}

/// `(alias, module)` pairs of `modules.builtin.modinfo`, whose records are
/// NUL-terminated `module.key=value` strings.
fn builtin_aliases_of(modinfo: &[u8]) -> Vec<(String, String)> {
    modinfo
        .split(|&b| b == 0)
        .filter_map(|record| {
            let record = String::from_utf8_lossy(record);
            let (module, field) = record.split_once('.')?;
            let alias = field.strip_prefix("alias=")?;
            (!module.is_empty() && !alias.is_empty()).then(|| (alias.to_owned(), module.to_owned()))
        })
        .collect()
}

/// `modules.softdep`: `softdep <module> <value>` per `softdep=` field.
fn render_softdep(index: &ModuleIndex) -> String {
    let mut out = String::from("# Soft dependencies extracted from modules themselves.\n");
    for (module, softdep) in &index.softdeps {
        out.push_str(&format!("softdep {module} {softdep}\n"));
    }
    out
}

/// `modules.devname`: `<module> <devname> <c|b><major>:<minor>` for each
/// module with both a `devname:` alias and a `char-major-`/`block-major-`
/// alias (the first of each, in alias order).
fn render_devname(index: &ModuleIndex) -> String {
    let mut out = String::from("# Device nodes to trigger on-demand module loading.\n");
    let mut by_module: BTreeMap<&str, DeviceNode> = BTreeMap::new();
    for (pattern, module) in &index.aliases {
        let entry = by_module.entry(module.as_str()).or_default();
        if let Some(devname) = pattern.strip_prefix("devname:") {
            entry.name = entry.name.or(Some(devname));
        } else if let Some(number) = device_number(pattern) {
            entry.number = entry.number.or(Some(number));
        }
    }
    for (module, node) in by_module {
        if let (Some(devname), Some((kind, major, minor))) = (node.name, node.number) {
            out.push_str(&format!("{module} {devname} {kind}{major}:{minor}\n"));
        }
    }
    out
}

/// What a module's aliases say about its device node.
#[derive(Default)]
struct DeviceNode<'a> {
    /// From `devname:<name>`.
    name: Option<&'a str>,
    /// From `char-major-<major>-<minor>` or `block-major-…`.
    number: Option<(char, u32, u32)>,
}

/// `char-major-10-229` → `('c', 10, 229)`; `block-major-…` → `'b'`.
fn device_number(alias: &str) -> Option<(char, u32, u32)> {
    let (kind, numbers) = if let Some(n) = alias.strip_prefix("char-major-") {
        ('c', n)
    } else {
        ('b', alias.strip_prefix("block-major-")?)
    };
    let (major, minor) = numbers.split_once('-')?;
    Some((kind, major.parse().ok()?, minor.parse().ok()?))
}

#[cfg(test)]
#[path = "kmod_depmod_tests.rs"]
mod tests;
