//! `imago copy --to CACHE PATH...` and `imago copy --from CACHE PATH...`:
//! copy closures to and from a binary cache; `--to CACHE --lock FILE`
//! copies the .debs a lock names too (docs/cache.md).

use super::GlobalArgs;
use crate::cache::{self, CopyReport, Location, Progress, SecretKey};
use crate::debian::apt::default_deb_cache;
use crate::debian::fetch;
use crate::debian::lock::Lock;
use crate::settings::Settings;
use anyhow::Context;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Copy the closures into this cache (`file:///DIR`, `http(s)://…`
    /// with PUT, `oci://HOST[:PORT]/REPO`).
    #[arg(
        long,
        value_name = "CACHE",
        conflicts_with = "from",
        required_unless_present = "from"
    )]
    pub to: Option<String>,
    /// Copy the closures from this cache (`file:///DIR`, `http(s)://…`,
    /// `oci://HOST[:PORT]/REPO`) into the store.
    #[arg(long, value_name = "CACHE")]
    pub from: Option<String>,
    /// Objects: `/imago/store/<hash>-<name>`, `<hash>-<name>`, or out-links.
    #[arg(required_unless_present = "locks")]
    pub paths: Vec<String>,
    /// Also copy every .deb this lock names into the cache, by SHA-256
    /// (repeatable; missing ones are fetched first).
    #[arg(long = "lock", value_name = "FILE", requires = "to")]
    pub locks: Vec<PathBuf>,
    /// Sign what is copied to the cache with this secret key file.
    #[arg(long, value_name = "KEYFILE", requires = "to")]
    pub sign: Option<PathBuf>,
    /// With a registry cache, also tag an index of the closures' objects
    /// (for instance a system's name and generation).
    #[arg(long, value_name = "NAME", requires_all = ["to", "paths"])]
    pub tag: Option<String>,
    /// Print a JSON summary on stdout (and no progress bar).
    #[arg(long)]
    pub json: bool,
}

impl Args {
    pub fn run(self, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
        let progress = Progress::on_terminal(!self.json);
        let (report, url, direction) = match (&self.to, &self.from) {
            (Some(url), _) => (self.copy_to(global, url, &progress)?, url, "to"),
            (None, Some(url)) => {
                let store = super::store::open_store(global)?;
                let paths = self.objects(&store)?;
                let location = Location::parse(url)?;
                let trusted = super::trust::trusted_keys(global, &Settings::load()?)?;
                let report = cache::pull(&store, &location, &paths, &trusted, &progress)?;
                (report, url, "from")
            }
            (None, None) => anyhow::bail!("pass --to CACHE or --from CACHE"),
        };
        if self.json {
            let summary = serde_json::json!({
                "direction": direction,
                "cache": url,
                "objects_copied": report.copied.len(),
                "bytes_copied": report.bytes_copied,
                "objects_already_there": report.already_there,
                "signatures_added": report.signatures_added,
                "step_records": report.step_records,
                "debs_copied": report.debs_copied,
                "deb_bytes_copied": report.deb_bytes_copied,
                "debs_already_there": report.debs_already_there,
                "copied": report.copied.iter().map(|p| p.to_absolute()).collect::<Vec<_>>(),
            });
            println!("{}", serde_json::to_string_pretty(&summary)?);
        } else {
            for p in &report.copied {
                println!("{}", p.to_absolute());
            }
            if !self.paths.is_empty() {
                eprintln!(
                    "copied {} objects ({} bytes) {direction} {url}; {} already there; {} step records written",
                    report.copied.len(),
                    report.bytes_copied,
                    report.already_there,
                    report.step_records
                );
            }
            if !self.locks.is_empty() {
                eprintln!(
                    "copied {} packages ({} bytes) {direction} {url}; {} already there",
                    report.debs_copied, report.deb_bytes_copied, report.debs_already_there
                );
            }
        }
        Ok(ExitCode::SUCCESS)
    }

    fn objects(&self, store: &crate::store::Store) -> anyhow::Result<Vec<crate::store::StorePath>> {
        self.paths
            .iter()
            .map(|p| super::store::parse_object_arg(store, p))
            .collect()
    }

    /// `--to`: the .debs of the locks (fetched into the download cache
    /// first if missing), then the closures of the paths.
    fn copy_to(
        &self,
        global: &GlobalArgs,
        url: &str,
        progress: &Progress,
    ) -> anyhow::Result<CopyReport> {
        let location = Location::parse(url)?;
        let key = self.sign.as_deref().map(SecretKey::read).transpose()?;
        if let Some(tag) = &self.tag {
            // Refuse a tag that cannot be before copying anything.
            location.check_tag(tag)?;
        }
        let mut entries = Vec::new();
        for path in &self.locks {
            let lock = Lock::read(path)?;
            entries.extend(lock.packages.into_values());
        }
        let mut report = CopyReport::default();
        if !entries.is_empty() {
            let deb_cache = default_deb_cache();
            let mut options =
                super::fetching::fetch_options(global, deb_cache.clone(), false, None)?;
            options.progress = !self.json;
            fetch::ensure_cached(&entries, &options).context("fetching the locked packages")?;
            report = cache::push_debs(&location, &entries, &deb_cache, progress)?;
        }
        if self.paths.is_empty() {
            return Ok(report);
        }
        let store = super::store::open_store(global)?;
        let paths = self.objects(&store)?;
        let pushed = cache::push(&store, &location, &paths, key.as_ref(), progress)?;
        if let Some(tag) = &self.tag {
            location.tag_closure(&store, tag, &paths)?;
        }
        Ok(CopyReport {
            debs_copied: report.debs_copied,
            deb_bytes_copied: report.deb_bytes_copied,
            debs_already_there: report.debs_already_there,
            ..pushed
        })
    }
}
