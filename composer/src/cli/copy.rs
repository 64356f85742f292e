//! `imago copy --to CACHE PATH...` and `imago copy --from CACHE PATH...`:
//! copy closures to and from a binary cache (docs/cache.md).

use super::GlobalArgs;
use crate::cache::{self, Location, Progress, SecretKey};
use crate::settings::Settings;
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
    #[arg(required = true)]
    pub paths: Vec<String>,
    /// Sign what is copied to the cache with this secret key file.
    #[arg(long, value_name = "KEYFILE", requires = "to")]
    pub sign: Option<PathBuf>,
    /// With a registry cache, also tag an index of the closures' objects
    /// (for instance a system's name and generation).
    #[arg(long, value_name = "NAME", requires = "to")]
    pub tag: Option<String>,
    /// Print a JSON summary on stdout (and no progress bar).
    #[arg(long)]
    pub json: bool,
}

impl Args {
    pub fn run(self, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
        let store = super::store::open_store(global)?;
        let progress = Progress::on_terminal(!self.json);
        let mut paths = Vec::new();
        for p in &self.paths {
            paths.push(super::store::parse_object_arg(&store, p)?);
        }
        let (report, url, direction) = match (&self.to, &self.from) {
            (Some(url), _) => {
                let location = Location::parse(url)?;
                let key = self.sign.as_deref().map(SecretKey::read).transpose()?;
                if let Some(tag) = &self.tag {
                    // Refuse a tag that cannot be before copying anything.
                    location.check_tag(tag)?;
                }
                let report = cache::push(&store, &location, &paths, key.as_ref(), &progress)?;
                if let Some(tag) = &self.tag {
                    location.tag_closure(&store, tag, &paths)?;
                }
                (report, url, "to")
            }
            (None, Some(url)) => {
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
                "copied": report.copied.iter().map(|p| p.to_absolute()).collect::<Vec<_>>(),
            });
            println!("{}", serde_json::to_string_pretty(&summary)?);
        } else {
            for p in &report.copied {
                println!("{}", p.to_absolute());
            }
            eprintln!(
                "copied {} objects ({} bytes) {direction} {url}; {} already there; {} step records written",
                report.copied.len(),
                report.bytes_copied,
                report.already_there,
                report.step_records
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}
