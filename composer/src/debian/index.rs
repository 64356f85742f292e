//! The names in Debian's package index, for checking what a configuration
//! asks for before apt resolves it.
//!
//! `imago lock` reads the package lists the private apt downloaded
//! (`state/lists/*_Packages`: bookworm, -updates and -security, amd64) and
//! notes every `Package:` and every name a `Provides:` field offers. Each
//! requested name is then one of:
//!
//! - a real package: apt resolves it;
//! - a *virtual* package only (`mail-transport-agent`, `awk`): refused,
//!   naming the packages that provide it. apt would pick a provider when
//!   there is exactly one, but a lock entry and a `pkgs.NAME` store object
//!   are one concrete package, so the configuration must name it;
//! - unknown: refused with up to three close names by edit distance.
//!
//! All refused names are reported in one diagnostic, each at the place in
//! the configuration that asked for it ([`Sites`], recorded by the
//! evaluator), so a misspelt package is an error at `file:line:col`
//! instead of apt's long command line.

use imago_lang::diag::{Code, Diagnostic, did_you_mean, suggest};
use imago_lang::source::{SourceMap, Span};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};

/// How many providers of a virtual package a message lists.
const SHOWN_PROVIDERS: usize = 6;

/// Package names known to the index.
#[derive(Debug, Default, Clone)]
pub struct KnownPackages {
    real: HashSet<String>,
    /// Virtual name → the real packages that provide it.
    provided: HashMap<String, BTreeSet<String>>,
}

/// What the index says about one name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Real,
    /// Only provided by these packages (sorted).
    Virtual(Vec<String>),
    /// Not in the index; the closest names.
    Unknown(Vec<String>),
}

impl KnownPackages {
    /// Reads every `*_Packages` list (plain, or compressed with gzip, xz or
    /// zstd) in apt's lists directory.
    pub fn from_lists(dir: &Path) -> Result<KnownPackages, String> {
        let entries = std::fs::read_dir(dir)
            .map_err(|e| format!("reading the package lists in {}: {e}", dir.display()))?;
        let mut files: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .map(|n| n.to_string_lossy())
                    .is_some_and(|n| n.ends_with("_Packages") || n.contains("_Packages."))
            })
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(format!(
                "no package lists in {} (run `imago lock FILE --update`)",
                dir.display()
            ));
        }
        let mut known = KnownPackages::default();
        for file in files {
            let text = read_list(&file).map_err(|e| format!("reading {}: {e}", file.display()))?;
            known.add_list(&text);
        }
        Ok(known)
    }

    /// Adds the names of one Packages file (deb822 paragraphs).
    pub fn add_list(&mut self, text: &str) {
        let mut package: Option<&str> = None;
        let mut provides = String::new();
        let mut in_provides = false;
        let mut flush = |package: &mut Option<&str>, provides: &mut String| {
            if let Some(name) = package.take() {
                self.real.insert(name.to_owned());
                for item in provides.split(',') {
                    // `name (= version)`, possibly with an `:arch` qualifier.
                    let virt = item.split_whitespace().next().unwrap_or("");
                    let virt = virt.split(':').next().unwrap_or("");
                    if !virt.is_empty() {
                        self.provided
                            .entry(virt.to_owned())
                            .or_default()
                            .insert(name.to_owned());
                    }
                }
            }
            provides.clear();
        };
        for line in text.lines() {
            if line.trim().is_empty() {
                flush(&mut package, &mut provides);
                in_provides = false;
                continue;
            }
            if line.starts_with([' ', '\t']) {
                if in_provides {
                    provides.push(',');
                    provides.push_str(line);
                }
                continue;
            }
            in_provides = false;
            if let Some(v) = line.strip_prefix("Package:") {
                package = Some(v.trim());
            } else if let Some(v) = line.strip_prefix("Provides:") {
                provides.push_str(v);
                in_provides = true;
            }
        }
        flush(&mut package, &mut provides);
    }

    pub fn len(&self) -> usize {
        self.real.len()
    }

    pub fn is_empty(&self) -> bool {
        self.real.is_empty()
    }

    pub fn lookup(&self, name: &str) -> Lookup {
        if self.real.contains(name) {
            return Lookup::Real;
        }
        if let Some(providers) = self.provided.get(name) {
            return Lookup::Virtual(providers.iter().cloned().collect());
        }
        // Only real packages are suggested: a virtual one would be refused.
        Lookup::Unknown(suggest(name, self.real.iter().map(String::as_str)))
    }
}

fn read_list(path: &Path) -> std::io::Result<String> {
    let file = std::fs::File::open(path)?;
    let name = path.to_string_lossy();
    let mut reader: Box<dyn Read> = if name.ends_with(".gz") {
        Box::new(flate2::read::GzDecoder::new(file))
    } else if name.ends_with(".xz") {
        Box::new(liblzma::read::XzDecoder::new(file))
    } else if name.ends_with(".zst") {
        Box::new(zstd::stream::read::Decoder::new(file)?)
    } else if name.ends_with("_Packages") {
        Box::new(file)
    } else {
        return Err(std::io::Error::other(
            "a compression imago cannot read (plain, .gz, .xz or .zst)",
        ));
    };
    let mut text = String::new();
    reader.read_to_string(&mut text)?;
    Ok(text)
}

/// Where each package was asked for, in a form that can leave the
/// evaluation thread: the files involved (path and text) and, per name, a
/// file and byte range.
#[derive(Debug, Default, Clone)]
pub struct Sites {
    files: Vec<(PathBuf, String)>,
    sites: BTreeMap<String, (usize, u32, u32)>,
}

impl Sites {
    /// Copies the sites an evaluator recorded (`Evaluator::package_sites`)
    /// together with the text of their files.
    pub fn collect(sites: &BTreeMap<String, Span>, sources: &SourceMap) -> Sites {
        let mut out = Sites::default();
        let mut index: HashMap<u32, usize> = HashMap::new();
        for (name, span) in sites {
            let Some(file) = sources.get(span.file) else {
                continue;
            };
            let i = *index.entry(span.file.0).or_insert_with(|| {
                out.files.push((file.path.clone(), file.text.to_string()));
                out.files.len() - 1
            });
            out.sites.insert(name.clone(), (i, span.start, span.end));
        }
        out
    }

    /// Adds the sites of another evaluation; a name already here keeps its
    /// site.
    pub fn merge(&mut self, other: Sites) {
        let offset = self.files.len();
        self.files.extend(other.files);
        for (name, (f, start, end)) in other.sites {
            self.sites.entry(name).or_insert((f + offset, start, end));
        }
    }
}

/// Checks the requested names; `None` when all are real packages, else
/// one diagnostic for every name that is not (in `sources`, a source map
/// made for it, which `render` needs). `platform` names the package set
/// in the hint.
pub fn check_names<'a>(
    known: &KnownPackages,
    names: impl IntoIterator<Item = &'a str>,
    sites: &Sites,
    platform: super::platform::Platform,
) -> Option<(Diagnostic, SourceMap)> {
    let mut refused: Vec<(&str, Lookup)> = names
        .into_iter()
        .filter_map(|n| match known.lookup(n) {
            Lookup::Real => None,
            other => Some((n, other)),
        })
        .collect();
    if refused.is_empty() {
        return None;
    }
    refused.sort_by(|a, b| a.0.cmp(b.0));
    let unknown = refused
        .iter()
        .filter(|(_, l)| matches!(l, Lookup::Unknown(_)))
        .count();
    let virtuals = refused.len() - unknown;
    let message = match (unknown, virtuals) {
        (1, 0) => format!("`{}` is not a package in Debian's index", refused[0].0),
        (n, 0) => format!("{n} names are not packages in Debian's index"),
        (0, 1) => format!("`{}` is a virtual package", refused[0].0),
        (0, n) => format!("{n} names are virtual packages"),
        (u, v) => format!(
            "{} names cannot be locked: {u} not in Debian's index, {v} virtual",
            u + v
        ),
    };
    let map = SourceMap::new();
    let ids: Vec<_> = sites
        .files
        .iter()
        .map(|(path, text)| map.add(path.clone(), text.as_str()))
        .collect();
    let mut diag = Diagnostic::error(Code("E0215"), message);
    for (name, lookup) in &refused {
        let what = match lookup {
            Lookup::Unknown(close) => {
                let mut s = format!("`{name}` is not a Debian package");
                if let Some(hint) = did_you_mean(close) {
                    s.push_str("; ");
                    s.push_str(&hint);
                }
                s
            }
            Lookup::Virtual(providers) => {
                let mut shown: Vec<String> = providers
                    .iter()
                    .take(SHOWN_PROVIDERS)
                    .map(|p| format!("`{p}`"))
                    .collect();
                if providers.len() > SHOWN_PROVIDERS {
                    shown.push(format!("{} more", providers.len() - SHOWN_PROVIDERS));
                }
                format!(
                    "`{name}` is a virtual package; name one that provides it: {}",
                    shown.join(", ")
                )
            }
            Lookup::Real => continue,
        };
        match sites
            .sites
            .get(*name)
            .and_then(|&(f, start, end)| ids.get(f).map(|&id| Span::new(id, start, end)))
        {
            Some(span) => diag = diag.with_primary(span, what),
            None => diag = diag.with_note(format!("{what} (asked for on the command line)")),
        }
    }
    diag = diag.with_hint(format!(
        "`pkgs.NAME` is the Debian {} ({}) binary package NAME; `apt-cache search WORD` finds names",
        platform.release.name(),
        platform.architecture.name()
    ));
    Some((diag, map))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str = "\
Package: nginx
Version: 1.22.1-9
Provides: httpd, httpd-cgi
Depends: nginx-common

Package: exim4-daemon-light
Provides: mail-transport-agent
Description: lightweight exim
 continued description line

Package: postfix
Provides: default-mta,
 mail-transport-agent (= 3.7),
 libfoo:any
";

    #[test]
    fn real_virtual_and_unknown_names() {
        let mut known = KnownPackages::default();
        known.add_list(LIST);
        assert_eq!(known.len(), 3);
        assert_eq!(known.lookup("nginx"), Lookup::Real);
        assert_eq!(
            known.lookup("mail-transport-agent"),
            Lookup::Virtual(vec!["exim4-daemon-light".into(), "postfix".into()])
        );
        assert_eq!(
            known.lookup("libfoo"),
            Lookup::Virtual(vec!["postfix".into()])
        );
        assert_eq!(
            known.lookup("default-mta"),
            Lookup::Virtual(vec!["postfix".into()])
        );
        assert_eq!(known.lookup("ngnix"), Lookup::Unknown(vec!["nginx".into()]));
        assert_eq!(known.lookup("zzzzzzzz"), Lookup::Unknown(vec![]));
        // A description's continuation lines are not names.
        assert_eq!(known.lookup("continued"), Lookup::Unknown(vec![]));
    }
}
