//! apt in a private directory: resolving package closures for `imago lock`
//! with Debian's own tools and signature checks, without ever reading or
//! changing the host's package state. (Builds fetch by hash, without apt:
//! see `fetch/`; [`AptEnv::download`] remains for the benchmark that
//! compares the two.)
//!
//! One private directory per release and architecture (default
//! `$XDG_CACHE_HOME/imago/apt/<release>-<arch>`, e.g. `apt/bookworm-amd64`),
//! laid out as:
//!
//! ```text
//! apt.conf                   APT_CONFIG for every apt call (see write_config)
//! lock                       held (flock) while we use apt here
//! etc/sources.list.d/imago.sources   <release> main (+ updates, security)
//! etc/apt.conf.d/ etc/preferences.d/ etc/trusted.gpg.d/   empty
//! state/status               empty: apt believes nothing is installed
//! state/lists/               the downloaded, signature-checked indices
//! cache/                     apt's own cache (pkgcache.bin, archives/)
//! ```
//!
//! Because apt reads `APT_CONFIG` before anything else and that file points
//! every `Dir::Etc` setting at the private `etc/`, the host's apt
//! configuration, sources and dpkg status are never consulted. The mirror
//! URIs and `Signed-By` keyring come from the host's
//! `/etc/apt/sources.list.d/debian.sources` when it exists (so a snapshot
//! mirror configured there is honoured), otherwise from deb.debian.org with
//! Debian's archive keyring.

use super::archive::{self, SnapshotTime};
use super::components::Components;
use super::control::{self, Paragraph};
use super::lock::LockEntry;
use super::platform::{Platform, Release};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const HOST_SOURCES: &str = "/etc/apt/sources.list.d/debian.sources";
const DEFAULT_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

#[derive(Debug, thiserror::Error)]
pub enum AptError {
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}):\n{stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("unexpected output from `{command}`: {message}")]
    Output { command: String, message: String },
}

impl AptError {
    /// The stable code of this error (docs/errors.md, E06xx).
    pub fn code(&self) -> crate::codes::Code {
        crate::codes::APT
    }
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> AptError {
    let what = what.into();
    move |source| AptError::Io { what, source }
}

/// The private apt directory of a release and architecture:
/// `<cache root>/apt/<release>-<arch>`.
pub fn default_apt_dir(platform: Platform) -> PathBuf {
    crate::dirs::cache_root()
        .join("apt")
        .join(platform.dir_name())
}

/// The default download cache for .deb files: `<cache root>/debs`.
pub fn default_deb_cache() -> PathBuf {
    crate::dirs::cache_root().join("debs")
}

/// A private apt environment, locked for this process while it lives.
#[derive(Debug)]
pub struct AptEnv {
    root: PathBuf,
    conf: PathBuf,
    /// Mirror URIs per archive, as written into our sources.
    mirrors: BTreeMap<String, Vec<String>>,
    platform: Platform,
    /// The sources the lists must have been fetched for.
    sources: String,
    _lock: File,
}

/// One package to resolve: a name, optionally pinned to a version.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Request {
    pub name: String,
    pub version: Option<String>,
}

impl Request {
    fn arg(&self) -> String {
        match &self.version {
            Some(v) => format!("{}={v}", self.name),
            None => self.name.clone(),
        }
    }
}

impl AptEnv {
    /// Opens (creating if needed) the private apt directory of `platform`
    /// at `root` and waits for its lock.
    pub fn open(
        root: &Path,
        platform: Platform,
        components: &Components,
    ) -> Result<AptEnv, AptError> {
        for sub in [
            "etc/sources.list.d",
            "etc/apt.conf.d",
            "etc/preferences.d",
            "etc/trusted.gpg.d",
            "state/lists/partial",
            "cache/archives/partial",
            "log",
        ] {
            std::fs::create_dir_all(root.join(sub))
                .map_err(io_err(format!("creating {}", root.join(sub).display())))?;
        }
        let lock_path = root.join("lock");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err(format!("opening {}", lock_path.display())))?;
        lock.lock()
            .map_err(io_err(format!("locking {}", lock_path.display())))?;
        let status = root.join("state/status");
        std::fs::write(&status, b"").map_err(io_err(format!("writing {}", status.display())))?;
        let sources = sources_text(
            std::fs::read_to_string(HOST_SOURCES).ok().as_deref(),
            platform.release,
            components,
        );
        let sources_path = root.join("etc/sources.list.d/imago.sources");
        write_if_changed(&sources_path, &sources)?;
        let conf = root.join("apt.conf");
        write_if_changed(&conf, &config_text(root, platform)?)?;
        Ok(AptEnv {
            root: root.to_path_buf(),
            conf,
            mirrors: archive::mirrors_from_sources(&sources),
            platform,
            sources: sources.clone(),
            _lock: lock,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The release and architecture this directory resolves for.
    pub fn platform(&self) -> Platform {
        self.platform
    }

    /// Whether `apt-get update` has fetched the package lists.
    /// Whether there are package lists, fetched for the sources as they
    /// are now: a component or mirror added since the last update needs
    /// another.
    pub fn has_lists(&self) -> bool {
        let lists = self.root.join("state/lists");
        let fetched_for = std::fs::read_to_string(lists.join(LISTS_STAMP)).ok();
        fetched_for.as_deref() == Some(self.sources.as_str())
            && std::fs::read_dir(&lists)
                .map(|d| {
                    d.flatten().any(|e| {
                        let name = e.file_name();
                        let name = name.to_string_lossy();
                        name.ends_with("_Packages") || name.contains("_Packages.")
                    })
                })
                .unwrap_or(false)
    }

    /// `apt-get update` (network); records the sources the lists are of.
    pub fn update(&self) -> Result<(), AptError> {
        let stamp = self.root.join("state/lists").join(LISTS_STAMP);
        // Gone first: an update that fails half-way leaves no stamp.
        match std::fs::remove_file(&stamp) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io_err(format!("removing {}", stamp.display()))(e));
            }
            _ => {}
        }
        self.run("apt-get", &["-q", "update"], None)?;
        std::fs::write(&stamp, &self.sources)
            .map_err(io_err(format!("writing {}", stamp.display())))
    }

    /// Runs `apt-get update` unless the lists are already there.
    pub fn ensure_lists(&self) -> Result<(), AptError> {
        if self.has_lists() {
            Ok(())
        } else {
            self.update()
        }
    }

    /// Resolves the closure of `requests` (no recommends) and returns one
    /// lock entry per package apt would install, sorted by name, each with
    /// the archive its file is in and the time of resolving (for
    /// snapshot.debian.org).
    pub fn resolve(&self, requests: &[Request]) -> Result<Vec<LockEntry>, AptError> {
        let mut args = vec![
            "-q".to_string(),
            "--simulate".into(),
            "--no-install-recommends".into(),
            "install".into(),
        ];
        args.extend(requests.iter().map(Request::arg));
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = self.run("apt-get", &argv, None)?;
        let chosen = parse_simulation(&out);
        if chosen.is_empty() {
            return Err(AptError::Output {
                command: "apt-get --simulate install".into(),
                message: "no packages to install".into(),
            });
        }
        let mut entries = self.describe(&chosen)?;
        self.locate(&mut entries)?;
        Ok(entries)
    }

    /// Records each entry's archive (from the URI apt would download it
    /// from: `apt-get download --print-uris`) and the snapshot time.
    fn locate(&self, entries: &mut [LockEntry]) -> Result<(), AptError> {
        let mut args = vec!["-q".to_string(), "--print-uris".into(), "download".into()];
        args.extend(entries.iter().map(|e| format!("{}={}", e.name, e.version)));
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = self.run("apt-get", &argv, None)?;
        let uris: BTreeSet<String> = out
            .lines()
            .filter_map(|l| l.strip_prefix('\'')?.split('\'').next())
            .map(percent_decode)
            .collect();
        let now = SnapshotTime::now();
        for entry in entries.iter_mut() {
            let archive = self.mirrors.iter().find_map(|(archive, bases)| {
                bases
                    .iter()
                    .any(|b| uris.contains(&format!("{b}/{}", entry.filename)))
                    .then(|| archive.clone())
            });
            let archive = archive.ok_or_else(|| AptError::Output {
                command: "apt-get --print-uris download".into(),
                message: format!(
                    "no URI for `{}` ({}) under any configured mirror",
                    entry.name, entry.filename
                ),
            })?;
            entry.archive = Some(archive);
            entry.snapshot = Some(now.to_string());
        }
        Ok(())
    }

    /// Reads each chosen package's record with `apt-cache show` and builds
    /// its lock entry, resolving alternatives against the chosen set.
    fn describe(&self, chosen: &BTreeMap<String, String>) -> Result<Vec<LockEntry>, AptError> {
        let mut args = vec!["show".to_string()];
        args.extend(chosen.iter().map(|(n, v)| format!("{n}={v}")));
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = self.run("apt-cache", &argv, None)?;
        let command = "apt-cache show".to_string();
        let paragraphs = control::parse_paragraphs(&out).map_err(|e| AptError::Output {
            command: command.clone(),
            message: e.to_string(),
        })?;
        let mut records: BTreeMap<String, Paragraph> = BTreeMap::new();
        for p in paragraphs {
            let (Some(name), Some(version)) = (p.get("Package"), p.get("Version")) else {
                continue;
            };
            if chosen.get(name).map(String::as_str) == Some(version) && !records.contains_key(name)
            {
                records.insert(name.to_string(), p);
            }
        }
        // Virtual names → the chosen packages that provide them.
        let mut provides: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (name, p) in &records {
            if let Some(value) = p.get("Provides") {
                let rels = control::parse_relations(value).map_err(|m| AptError::Output {
                    command: command.clone(),
                    message: format!("{name}: Provides: {m}"),
                })?;
                for rel in rels.into_iter().flatten() {
                    provides.entry(rel.name).or_default().push(name.clone());
                }
            }
        }
        let mut entries = Vec::new();
        for name in chosen.keys() {
            let p = records.get(name).ok_or_else(|| AptError::Output {
                command: command.clone(),
                message: format!("no record for `{name}`"),
            })?;
            let arch = self.platform.architecture.name();
            entries.push(
                entry_from(name, p, &records, &provides, arch).map_err(|message| {
                    AptError::Output {
                        command: command.clone(),
                        message,
                    }
                })?,
            );
        }
        Ok(entries)
    }

    /// `apt-get download NAME=VERSION...` into `dir`.
    pub fn download(&self, packages: &[&LockEntry], dir: &Path) -> Result<(), AptError> {
        let mut args = vec!["-q".to_string(), "download".into()];
        args.extend(packages.iter().map(|e| format!("{}={}", e.name, e.version)));
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        self.run("apt-get", &argv, Some(dir)).map(|_| ())
    }

    fn run(&self, program: &str, args: &[&str], cwd: Option<&Path>) -> Result<String, AptError> {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env("APT_CONFIG", &self.conf)
            .env("LC_ALL", "C.UTF-8")
            .env("DEBIAN_FRONTEND", "noninteractive");
        if let Some(dir) = cwd {
            cmd.current_dir(dir);
        }
        let shown = shown_command(program, args);
        let output = cmd.output().map_err(io_err(format!("running `{shown}`")))?;
        if !output.status.success() {
            return Err(AptError::Command {
                command: shown,
                status: output.status.to_string(),
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

/// A command line for messages: long package lists are cut short, so an
/// error stays readable (the packages are named where they matter).
fn shown_command(program: &str, args: &[&str]) -> String {
    const SHOWN: usize = 6;
    if args.len() <= SHOWN {
        return format!("{program} {}", args.join(" "));
    }
    format!(
        "{program} {} … ({} more arguments)",
        args[..SHOWN].join(" "),
        args.len() - SHOWN
    )
}

/// The `NAME=VERSION` requests apt refused because its index no longer
/// has that version (`E: Version 'V' for 'N' was not found`).
pub fn versions_not_found(error: &AptError) -> Vec<(String, String)> {
    let AptError::Command { stderr, .. } = error else {
        return Vec::new();
    };
    stderr
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("E: Version '")?;
            let (version, rest) = rest.split_once("' for '")?;
            let name = rest.strip_suffix("' was not found")?;
            Some((name.to_string(), version.to_string()))
        })
        .collect()
}

/// The file in the lists directory that holds the sources the lists were
/// fetched for.
const LISTS_STAMP: &str = "imago-sources";

fn write_if_changed(path: &Path, text: &str) -> Result<(), AptError> {
    if std::fs::read_to_string(path).ok().as_deref() == Some(text) {
        return Ok(());
    }
    std::fs::write(path, text).map_err(io_err(format!("writing {}", path.display())))
}

/// The APT_CONFIG file: every directory private, one architecture.
fn config_text(root: &Path, platform: Platform) -> Result<String, AptError> {
    let arch = platform.architecture.name();
    let r = root
        .to_str()
        .filter(|s| !s.contains('"'))
        .ok_or_else(|| AptError::Io {
            what: format!("apt directory {}", root.display()),
            source: std::io::Error::other("path must be valid UTF-8 without `\"`"),
        })?;
    let mut text = format!(
        "// Generated by imago: a private apt that never touches the host's state.\n\
         Dir::State \"{r}/state\";\n\
         Dir::State::status \"{r}/state/status\";\n\
         Dir::Cache \"{r}/cache\";\n\
         Dir::Log \"{r}/log\";\n\
         Dir::Etc \"{r}/etc\";\n\
         Dir::Etc::main \"/dev/null\";\n\
         Dir::Etc::Parts \"{r}/etc/apt.conf.d\";\n\
         Dir::Etc::SourceList \"/dev/null\";\n\
         Dir::Etc::SourceParts \"{r}/etc/sources.list.d\";\n\
         Dir::Etc::Preferences \"/dev/null\";\n\
         Dir::Etc::PreferencesParts \"{r}/etc/preferences.d\";\n\
         Dir::Etc::Trusted \"/dev/null\";\n\
         Dir::Etc::TrustedParts \"{r}/etc/trusted.gpg.d\";\n\
         APT::Architecture \"{arch}\";\n\
         APT::Architectures {{ \"{arch}\"; }};\n\
         APT::Install-Recommends \"false\";\n\
         APT::Install-Suggests \"false\";\n\
         Acquire::Languages \"none\";\n\
         Debug::NoLocking \"true\";\n"
    );
    if rustix::process::geteuid().is_root() {
        text.push_str("APT::Sandbox::User \"root\";\n");
    }
    Ok(text)
}

/// Our deb822 sources: the release, its -updates and -security suites
/// (`trixie`, `trixie-updates`, `trixie-security`), component main, with
/// the host's mirrors and keyring when it has them (a host of another
/// release has mirrors but no entry for these suites: the mirrors' base
/// URIs are the same, so only uncovered suites fall back to
/// deb.debian.org).
pub fn sources_text(host: Option<&str>, release: Release, components: &Components) -> String {
    let wanted = release.suites();
    let suite = release.name();
    let mut out = String::from("# Generated by imago.\n");
    let mut covered = BTreeSet::new();
    let paragraphs = host
        .and_then(|t| control::parse_paragraphs(t).ok())
        .unwrap_or_default();
    for (p, uris, suites) in archive::binary_sources(&paragraphs) {
        let suites: Vec<&str> = suites
            .split_whitespace()
            .filter(|s| wanted.iter().any(|w| w == s))
            .collect();
        if suites.is_empty() {
            continue;
        }
        covered.extend(suites.iter().map(|s| s.to_string()));
        let signed_by = p.get("Signed-By").unwrap_or(DEFAULT_KEYRING);
        out.push_str(&paragraph(uris, &suites.join(" "), components, signed_by));
    }
    let main_missing = !covered.contains(suite);
    let security_missing = !covered.contains(&wanted[2]);
    if main_missing {
        out.push_str(&paragraph(
            "http://deb.debian.org/debian",
            &format!("{suite} {suite}-updates"),
            components,
            DEFAULT_KEYRING,
        ));
    }
    if security_missing {
        out.push_str(&paragraph(
            "http://deb.debian.org/debian-security",
            &wanted[2],
            components,
            DEFAULT_KEYRING,
        ));
    }
    out
}

fn paragraph(uris: &str, suites: &str, components: &Components, signed_by: &str) -> String {
    // An inline key spans several lines: continuation lines start with a
    // space and an empty line is written as ` .`.
    let signed_by = signed_by
        .split('\n')
        .map(|l| if l.is_empty() { "." } else { l })
        .collect::<Vec<_>>()
        .join("\n ");
    format!(
        "\nTypes: deb\nURIs: {uris}\nSuites: {suites}\nComponents: {components}\nSigned-By: {signed_by}\n"
    )
}

/// `%XX` escapes decoded (apt prints `+` in URIs as `%2b`); a `%` not
/// followed by two hex digits stays as it is.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `Inst NAME (VERSION ...)` lines of `apt-get --simulate install`.
pub fn parse_simulation(output: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in output.lines() {
        let Some(rest) = line.strip_prefix("Inst ") else {
            continue;
        };
        let mut words = rest.split_whitespace();
        let Some(name) = words.next() else { continue };
        let name = name.split(':').next().unwrap_or(name);
        let version = words
            .find(|w| w.starts_with('('))
            .map(|w| w.trim_start_matches('(').to_string());
        if let Some(version) = version {
            out.insert(name.to_string(), version);
        }
    }
    out
}

fn entry_from(
    name: &str,
    p: &Paragraph,
    records: &BTreeMap<String, Paragraph>,
    provides: &BTreeMap<String, Vec<String>>,
    arch: &str,
) -> Result<LockEntry, String> {
    let field = |f: &str| {
        p.get(f)
            .map(str::to_string)
            .ok_or_else(|| format!("{name}: no {f} field"))
    };
    let size = field("Size")?
        .parse::<u64>()
        .map_err(|e| format!("{name}: bad Size: {e}"))?;
    let mut depends = BTreeSet::new();
    for key in ["Pre-Depends", "Depends"] {
        let Some(value) = p.get(key) else { continue };
        let groups = control::parse_relations(value).map_err(|m| format!("{name}: {key}: {m}"))?;
        for group in groups {
            let alternatives: Vec<_> = group.iter().filter(|r| r.applies_to(arch)).collect();
            if alternatives.is_empty() {
                continue;
            }
            let pick = alternatives
                .iter()
                .find_map(|r| records.contains_key(&r.name).then(|| r.name.clone()))
                .or_else(|| {
                    alternatives
                        .iter()
                        .find_map(|r| provides.get(&r.name).and_then(|v| v.first().cloned()))
                });
            match pick {
                Some(dep) if dep != name => {
                    depends.insert(dep);
                }
                Some(_) => {}
                None => {
                    let text: Vec<&str> = group.iter().map(|r| r.name.as_str()).collect();
                    return Err(format!(
                        "{name}: {key} `{}` is not satisfied by the resolved set",
                        text.join(" | ")
                    ));
                }
            }
        }
    }
    Ok(LockEntry {
        name: name.to_string(),
        version: field("Version")?,
        architecture: field("Architecture")?,
        size,
        sha256: field("SHA256")?,
        filename: field("Filename")?,
        archive: None,
        snapshot: None,
        depends: depends.into_iter().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vanished_versions_are_read_from_apt_errors() {
        let e = AptError::Command {
            command: shown_command("apt-get", &["install"; 9]),
            status: "exit status: 100".into(),
            stderr: "E: Version '6.1.192-2' for 'linux-image-cloud-amd64' was not found\nE: other"
                .into(),
        };
        assert_eq!(
            versions_not_found(&e),
            [(
                "linux-image-cloud-amd64".to_string(),
                "6.1.192-2".to_string()
            )]
        );
        assert!(e.to_string().contains("(3 more arguments)"), "{e}");
    }

    #[test]
    fn uris_are_percent_decoded() {
        assert_eq!(
            percent_decode("http://d/pool/b/base-files_12.4%2bdeb12u15_amd64.deb"),
            "http://d/pool/b/base-files_12.4+deb12u15_amd64.deb"
        );
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
    }

    #[test]
    fn simulation_lines() {
        let out = "NOTE: x\nInst libc6 (2.36-9+deb12u10 Debian:12.10/stable [amd64])\nInst gcc-12-base:amd64 (12.2.0-14 Debian [amd64])\nConf libc6 (2.36)\n";
        let m = parse_simulation(out);
        assert_eq!(m.len(), 2);
        assert_eq!(m["libc6"], "2.36-9+deb12u10");
        assert_eq!(m["gcc-12-base"], "12.2.0-14");
    }

    #[test]
    fn sources_follow_the_host() {
        let host = "Types: deb\nURIs: http://snapshot.example/debian\nSuites: bookworm bookworm-updates\nComponents: main contrib\nSigned-By: /k.gpg\n\nTypes: deb-src\nURIs: http://x\nSuites: bookworm\nComponents: main\n";
        let text = sources_text(Some(host), Release::Bookworm, &Components::default());
        assert!(text.contains("URIs: http://snapshot.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /k.gpg"));
        assert!(
            text.contains("URIs: http://deb.debian.org/debian-security\nSuites: bookworm-security")
        );
        assert!(!text.contains("http://x"));
        let default = sources_text(None, Release::Bookworm, &Components::default());
        assert!(
            default.contains("http://deb.debian.org/debian\nSuites: bookworm bookworm-updates")
        );
        assert!(default.contains(DEFAULT_KEYRING));
        // A bookworm host's sources do not cover trixie: its suites come
        // from deb.debian.org.
        let trixie = sources_text(Some(host), Release::Trixie, &Components::default());
        let firmware = Components::parse(["non-free-firmware"]).unwrap();
        let with_firmware = sources_text(Some(host), Release::Trixie, &firmware);
        assert_eq!(
            with_firmware
                .matches("\nComponents: main non-free-firmware\n")
                .count(),
            2,
            "{with_firmware}"
        );
        assert!(!trixie.contains("snapshot.example"));
        assert!(trixie.contains("http://deb.debian.org/debian\nSuites: trixie trixie-updates"));
        assert!(trixie.contains("http://deb.debian.org/debian-security\nSuites: trixie-security"));
    }

    #[test]
    fn alternatives_resolve_to_the_chosen_package() {
        let recs = control::parse_paragraphs(
            "Package: a\nVersion: 1\nArchitecture: amd64\nSize: 10\nSHA256: x\nFilename: pool/a.deb\nDepends: awk | mawk, libc6 (>= 2), c-virtual\n\nPackage: mawk\nVersion: 1\n\nPackage: libc6\nVersion: 2\n\nPackage: cimpl\nVersion: 1\nProvides: c-virtual (= 1)\n",
        )
        .unwrap();
        let records: BTreeMap<String, Paragraph> = recs
            .into_iter()
            .map(|p| (p.get("Package").unwrap().to_string(), p))
            .collect();
        let mut provides = BTreeMap::new();
        provides.insert("c-virtual".to_string(), vec!["cimpl".to_string()]);
        let e = entry_from("a", &records["a"], &records, &provides, "amd64").unwrap();
        assert_eq!(e.depends, vec!["cimpl", "libc6", "mawk"]);
        assert_eq!(e.size, 10);
    }
}
