//! `imago lock`: resolve the Debian packages a configuration uses and write
//! `imago.lock` beside it.
//!
//! The roots are the names given with `--package`, or else the packages the
//! configuration requests when its attribute (`-A`, by default the system's
//! toplevel) is evaluated with the step table in record mode
//! (`crate::pipeline::requested_packages`). Packages already in the lock keep their pinned
//! versions (passed to apt as `NAME=VERSION`) unless `--update` names them
//! (or names nothing, which means all). Before apt runs, every root is
//! looked up in the package lists (`debian::index`): names that are not
//! there, or only virtual, are one error pointing at each `pkgs.NAME` that
//! asked for them. apt resolves the closure in its
//! private directory (see `debian::apt`); the new lock holds exactly the
//! closure of the roots, so entries nothing uses any more disappear and are
//! listed as removed in the summary. An entry apt resolved to the same file
//! as before keeps its recorded snapshot time, so re-locking an unchanged
//! configuration rewrites the same bytes.
//!
//! `--check` resolves nothing: it asks every package source whether each
//! locked file is still there (HEAD requests; see `debian::fetch::check`)
//! and fails when a build on a fresh machine would.

use super::GlobalArgs;
use crate::debian::apt::{AptEnv, Request, default_apt_dir, default_deb_cache, versions_not_found};
use crate::debian::components::Components;
use crate::debian::control::is_package_name;
use crate::debian::fetch::{self, Availability, Http};
use crate::debian::index::{KnownPackages, Sites, check_names};
use crate::debian::lock::{Lock, LockDiff};
use crate::debian::platform::Platform;
use anyhow::{Context, bail};
use imago_lang::diag::Diagnostic;
use imago_lang::source::SourceMap;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The configuration files (all in one directory: they share the
    /// imago.lock written beside them).
    #[arg(required = true, num_args = 1..)]
    pub files: Vec<PathBuf>,
    /// The attribute whose packages are locked: `config.<option path>` for a
    /// system, or a path into the file's own value.
    #[arg(short = 'A', long = "attr", default_value = crate::pipeline::DEFAULT_ATTR, value_name = "ATTR.PATH")]
    pub attr: String,
    /// The module library directory.
    #[arg(long, env = crate::system_eval::MODULES_ENV, value_name = "DIR")]
    pub modules: Option<PathBuf>,
    /// Lock these packages instead of the ones the configuration uses
    /// (repeatable).
    #[arg(long = "package", short = 'p', value_name = "NAME")]
    pub packages: Vec<String>,
    /// Move the named packages (or, with no names, all) to the newest
    /// versions in the package lists, after refreshing them.
    #[arg(long, num_args = 0.., value_name = "NAME")]
    pub update: Option<Vec<String>>,
    /// Remove lock entries that none of the files uses (by default they are
    /// kept, since other configurations beside these may share the lock,
    /// and only reported).
    #[arg(long)]
    pub prune: bool,
    /// Change nothing: ask the package sources whether every locked file is
    /// still there (no downloads) and exit non-zero when some file has no
    /// source left, so a build on a fresh machine would fail.
    #[arg(long, conflicts_with_all = ["update", "prune", "packages"])]
    pub check: bool,
}

impl Args {
    pub fn run(self, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
        let lock_path = Lock::path_for(&self.files[0]);
        if let Some(other) = self.files.iter().find(|f| Lock::path_for(f) != lock_path) {
            bail!(
                "{} and {} are in different directories, so they do not share a lock; lock them separately",
                self.files[0].display(),
                other.display()
            );
        }
        if self.check {
            return check(global, &self.files, &lock_path);
        }
        let existed = lock_path.exists();
        let old = Lock::read_or_default(&lock_path)?;
        let mut roots = BTreeSet::new();
        let mut sites = Sites::default();
        // The release and architecture of the files (each says its own).
        let mut platforms: Vec<(Platform, &Path)> = Vec::new();
        // The archive components: those of the files and the lock's own, so
        // that relocking one file keeps what another one needs.
        let mut components = if existed {
            old.components.clone()
        } else {
            Components::default()
        };
        if self.packages.is_empty() {
            for file in &self.files {
                let found = crate::pipeline::requested_packages(
                    &super::build::settings(global),
                    file,
                    &self.attr,
                    self.modules.as_deref(),
                )
                .with_context(|| format!("finding the packages {} uses", file.display()))?;
                match found {
                    Ok(requested) => {
                        platforms.extend(requested.platform.map(|p| (p, file.as_path())));
                        if let Some(c) = &requested.components {
                            components = components.union(c);
                        }
                        roots.extend(requested.packages);
                        sites.merge(requested.sites);
                    }
                    Err(failure) => {
                        super::build::print_failure(global, &failure);
                        return Ok(ExitCode::from(1));
                    }
                }
            }
        } else {
            roots.extend(self.packages.iter().cloned());
        }
        for name in roots.iter().chain(self.update.iter().flatten()) {
            if !is_package_name(name) {
                bail!("`{name}` is not a valid Debian package name");
            }
        }
        if roots.is_empty() {
            bail!(
                "{} uses no Debian packages: nothing to lock",
                self.files[0].display()
            );
        }
        if let Some(names) = &self.update {
            for name in names {
                if !old.packages.contains_key(name) && !roots.contains(name) {
                    bail!(
                        "--update {name}: `{name}` is not in {} (locked packages are updated by name)",
                        lock_path.display()
                    );
                }
            }
        }
        let platform = choose_platform(&platforms, existed.then_some(&old), &lock_path)?;
        let requests = plan_requests(&old, &roots, self.update.as_deref());
        let apt_dir = default_apt_dir(platform);
        let apt = AptEnv::open(&apt_dir, platform, &components).with_context(|| {
            format!("preparing the private apt directory {}", apt_dir.display())
        })?;
        if self.update.is_some() || !apt.has_lists() {
            let t = Instant::now();
            apt.update().context("refreshing the package lists")?;
            eprintln!(
                "package lists refreshed in {:.1}s",
                t.elapsed().as_secs_f64()
            );
        }
        let known = KnownPackages::from_lists(&apt.root().join("state/lists"))
            .map_err(anyhow::Error::msg)?;
        if let Some((diag, sources)) =
            check_names(&known, roots.iter().map(String::as_str), &sites, platform)
        {
            eprint!("{}", render_diagnostic(global, &diag, &sources)?);
            return Ok(ExitCode::from(1));
        }
        let t = Instant::now();
        let entries = match apt.resolve(&requests) {
            Ok(entries) => entries,
            Err(e) => {
                let gone = versions_not_found(&e);
                if gone.is_empty() {
                    return Err(anyhow::Error::new(e).context(format!(
                        "resolving {}",
                        roots.iter().cloned().collect::<Vec<_>>().join(", ")
                    )));
                }
                let listed: Vec<String> = gone.iter().map(|(n, v)| format!("{n} {v}")).collect();
                let names: Vec<&str> = gone.iter().map(|(n, _)| n.as_str()).collect();
                let files: Vec<String> =
                    self.files.iter().map(|f| f.display().to_string()).collect();
                bail!(
                    "{} keeps versions that Debian's index no longer lists: {}\nmove them to current versions with:\n  imago lock {} --update {}",
                    lock_path.display(),
                    listed.join(", "),
                    files.join(" "),
                    names.join(" ")
                );
            }
        };
        let mut new = Lock::new(platform);
        new.components = components;
        for entry in entries {
            new.packages.insert(entry.name.clone(), entry);
        }
        keep_snapshot_times(&old, &mut new);
        let keep = new
            .closure(roots.iter().map(String::as_str))
            .map_err(|missing| anyhow::anyhow!("apt did not resolve: {}", missing.join(", ")))?;
        new.packages.retain(|name, _| keep.contains(name));
        eprintln!(
            "resolved {} packages in {:.1}s",
            new.packages.len(),
            t.elapsed().as_secs_f64()
        );
        if !self.prune {
            keep_unused(&old, &mut new);
        }
        let unused = new.unused(roots.iter().map(String::as_str));
        new.write(&lock_path)?;
        print!("{}", summary(&lock_path, &old, &new, &unused));
        Ok(ExitCode::SUCCESS)
    }
}

/// The release and architecture to lock for: the one every file states
/// (files that disagree cannot share a lock), else the existing lock's,
/// else the default. An existing lock of another one is refused: one lock
/// holds one release and architecture.
pub fn choose_platform(
    files: &[(Platform, &Path)],
    old: Option<&Lock>,
    lock_path: &Path,
) -> anyhow::Result<Platform> {
    let Some(&(first, first_file)) = files.first() else {
        return Ok(old.map_or(Platform::DEFAULT, |l| l.platform));
    };
    if let Some((other, other_file)) = files.iter().find(|(p, _)| *p != first) {
        bail!(
            "{} is a Debian {first} system and {} a Debian {other} one: one lock holds one release and architecture, so lock them in separate folders",
            first_file.display(),
            other_file.display()
        );
    }
    if let Some(old) = old {
        old.check_platform(first, lock_path, first_file)?;
    }
    Ok(first)
}

/// A diagnostic in the format `--error-format` asks for.
fn render_diagnostic(
    global: &GlobalArgs,
    diag: &Diagnostic,
    sources: &SourceMap,
) -> anyhow::Result<String> {
    super::printed::diagnostic_style(global.error_format)
        .render(std::slice::from_ref(diag), sources)
}

/// What to ask apt for: pinned versions for everything kept from the old
/// lock, bare names for new roots and for packages being updated.
pub fn plan_requests(
    old: &Lock,
    roots: &BTreeSet<String>,
    update: Option<&[String]>,
) -> Vec<Request> {
    let updating = |name: &str| match update {
        None => false,
        Some([]) => true,
        Some(names) => names.iter().any(|n| n == name),
    };
    let locked_roots = roots
        .iter()
        .filter(|r| old.packages.contains_key(*r))
        .map(String::as_str);
    let old_closure = old.closure(locked_roots).unwrap_or_default();
    let mut requests = BTreeSet::new();
    for name in roots {
        if !old.packages.contains_key(name) || updating(name) {
            requests.insert(Request {
                name: name.clone(),
                version: None,
            });
        }
    }
    for name in &old_closure {
        if updating(name) {
            continue;
        }
        if let Some(entry) = old.packages.get(name) {
            requests.insert(Request {
                name: name.clone(),
                version: Some(entry.version.clone()),
            });
        }
    }
    requests.into_iter().collect()
}

/// Entries resolved to the same file as in `old` keep `old`'s snapshot time
/// (the file was in the archive then too), so re-locking is stable.
pub fn keep_snapshot_times(old: &Lock, new: &mut Lock) {
    for entry in new.packages.values_mut() {
        if let Some(prev) = old.packages.get(&entry.name)
            && prev.version == entry.version
            && prev.sha256 == entry.sha256
            && prev.archive == entry.archive
            && prev.snapshot.is_some()
        {
            entry.snapshot = prev.snapshot.clone();
        }
    }
}

/// `imago lock --check`: which locked files each source still has.
fn check(global: &GlobalArgs, files: &[PathBuf], lock_path: &Path) -> anyhow::Result<ExitCode> {
    let lock = Lock::read(lock_path)?;
    let t = Instant::now();
    let options = super::fetching::fetch_options(global, default_deb_cache(), false, None)?;
    let http = Http::new(options.http.clone()).map_err(anyhow::Error::msg)?;
    let entries: Vec<_> = lock.packages.values().cloned().collect();
    let reports = fetch::check(&entries, &options.sources, &http);
    let count = |a: Availability| reports.iter().filter(|r| r.availability == a).count();
    let (nowhere, elsewhere) = (count(Availability::Nowhere), count(Availability::Elsewhere));
    println!(
        "{}: {} packages: {} on a mirror, {elsewhere} only in a package cache or the snapshot archive, {nowhere} nowhere ({:.1}s)",
        lock_path.display(),
        reports.len(),
        count(Availability::Mirror),
        t.elapsed().as_secs_f64()
    );
    for r in reports
        .iter()
        .filter(|r| r.availability != Availability::Mirror)
    {
        match r.availability {
            Availability::Elsewhere => {
                let found: Vec<String> = r.found.iter().map(|(s, l)| format!("{s} {l}")).collect();
                println!(
                    "  {} {}: gone from the mirrors; still at {}",
                    r.name,
                    r.version,
                    found.join(", ")
                );
            }
            _ => println!("  {} {}: no source has it", r.name, r.version),
        }
        for a in &r.failed {
            println!("      {} {}: {}", a.source, a.location, a.failure);
        }
    }
    let stale: Vec<&str> = reports
        .iter()
        .filter(|r| r.availability != Availability::Mirror)
        .map(|r| r.name.as_str())
        .collect();
    if !stale.is_empty() {
        let shown: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        println!(
            "to move them to versions the archive has: imago lock {} --update {}",
            shown.join(" "),
            stale.join(" ")
        );
    }
    Ok(if nowhere == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Carries over the old entries the new resolution did not produce (with
/// what they depend on), so a lock shared by several configurations keeps
/// the others' pins.
pub fn keep_unused(old: &Lock, new: &mut Lock) {
    let missing: Vec<&str> = old
        .packages
        .keys()
        .filter(|n| !new.packages.contains_key(*n))
        .map(String::as_str)
        .collect();
    for name in old.closure(missing).unwrap_or_default() {
        if let Some(entry) = old.packages.get(&name) {
            new.packages.entry(name).or_insert_with(|| entry.clone());
        }
    }
}

/// The short report `imago lock` prints.
pub fn summary(path: &Path, old: &Lock, new: &Lock, unused: &[String]) -> String {
    let diff = LockDiff::between(old, new);
    let mut out = format!(
        "{}: {} packages ({} added, {} removed, {} changed, {} unused)\n",
        path.display(),
        new.packages.len(),
        diff.added.len(),
        diff.removed.len(),
        diff.changed.len(),
        unused.len()
    );
    for (name, version) in &diff.added {
        out.push_str(&format!("  + {name} {version}\n"));
    }
    for (name, version) in &diff.removed {
        out.push_str(&format!("  - {name} {version}\n"));
    }
    for (name, from, to) in &diff.changed {
        out.push_str(&format!("  ~ {name} {from} -> {to}\n"));
    }
    if !unused.is_empty() {
        out.push_str(&format!(
            "  unused by these files (kept; --prune removes them): {}\n",
            unused.join(", ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use crate::debian::lock::LockEntry;
    use clap::Parser;

    fn entry(name: &str, version: &str, depends: &[&str]) -> LockEntry {
        LockEntry {
            name: name.into(),
            version: version.into(),
            architecture: "amd64".into(),
            size: 1,
            sha256: "0".repeat(64),
            filename: format!("pool/{name}.deb"),
            archive: Some("debian".into()),
            snapshot: Some("20261206T000000Z".into()),
            depends: depends.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn lock(entries: &[LockEntry]) -> Lock {
        let mut l = Lock::new(Platform::DEFAULT);
        for e in entries {
            l.packages.insert(e.name.clone(), e.clone());
        }
        l
    }

    fn parse(args: &[&str]) -> Args {
        match Cli::try_parse_from(args).unwrap().command {
            Command::Lock(a) => a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parses_packages_and_update() {
        let a = parse(&[
            "imago",
            "lock",
            "c.imago",
            "-p",
            "busybox-static",
            "--package",
            "systemd",
        ]);
        assert_eq!(a.packages, ["busybox-static", "systemd"]);
        assert_eq!(a.update, None);
        let a = parse(&["imago", "lock", "c.imago", "--update"]);
        assert_eq!(a.update, Some(vec![]));
        let a = parse(&["imago", "lock", "c.imago", "--update", "libc6", "systemd"]);
        assert_eq!(
            a.update,
            Some(vec!["libc6".to_string(), "systemd".to_string()])
        );
        assert!(Cli::try_parse_from(["imago", "lock"]).is_err());
        let a = parse(&["imago", "lock", "a.imago", "b.imago", "--prune"]);
        assert_eq!(a.files.len(), 2);
        assert!(a.prune);
        assert_eq!(a.attr, "config.system.build.toplevel");
    }

    #[test]
    fn kept_packages_are_pinned_and_updated_ones_are_not() {
        let old = lock(&[
            entry("a", "1", &["libc6"]),
            entry("libc6", "2", &[]),
            entry("stale", "3", &[]),
        ]);
        let roots: BTreeSet<String> = ["a".to_string(), "new".to_string()].into();
        let r = plan_requests(&old, &roots, None);
        let shown: Vec<String> = r.iter().map(|r| r.arg_for_test()).collect();
        assert_eq!(shown, ["a=1", "libc6=2", "new"]);
        let r = plan_requests(&old, &roots, Some(&["libc6".to_string()]));
        let shown: Vec<String> = r.iter().map(|r| r.arg_for_test()).collect();
        assert_eq!(shown, ["a=1", "new"]);
        let r = plan_requests(&old, &roots, Some(&[]));
        let shown: Vec<String> = r.iter().map(|r| r.arg_for_test()).collect();
        assert_eq!(shown, ["a", "new"]);
    }

    #[test]
    fn summary_lists_changes_and_unused_entries() {
        let old = lock(&[entry("a", "1", &[]), entry("gone", "1", &[])]);
        let new = lock(&[entry("a", "2", &[]), entry("b", "1", &[])]);
        let text = summary(Path::new("imago.lock"), &old, &new, &["b".to_string()]);
        assert!(
            text.starts_with("imago.lock: 2 packages (1 added, 1 removed, 1 changed, 1 unused)"),
            "{text}"
        );
        assert!(text.contains("+ b 1"));
        assert!(text.contains("- gone 1"));
        assert!(text.contains("~ a 1 -> 2"));
        assert!(text.contains("unused by these files (kept; --prune removes them): b"));
    }

    #[test]
    fn unused_entries_are_kept_with_their_dependencies() {
        let old = lock(&[
            entry("other", "1", &["libx"]),
            entry("libx", "1", &[]),
            entry("mine", "1", &[]),
        ]);
        let mut new = lock(&[entry("mine", "2", &[])]);
        keep_unused(&old, &mut new);
        assert_eq!(
            new.packages.keys().collect::<Vec<_>>(),
            ["libx", "mine", "other"]
        );
        assert_eq!(new.packages["mine"].version, "2");
        assert_eq!(new.unused(["mine"]), ["libx", "other"]);
    }

    trait ArgForTest {
        fn arg_for_test(&self) -> String;
    }

    impl ArgForTest for Request {
        fn arg_for_test(&self) -> String {
            match &self.version {
                Some(v) => format!("{}={v}", self.name),
                None => self.name.clone(),
            }
        }
    }
}
