//! A target fetching store objects from a binary cache itself
//! ([`super::substitute`] decides which): a script run on the target
//! (`fetch.sh`, after [`store_preamble`]) downloads, checks and unpacks
//! each archive into a temporary directory of its store, which the copy's
//! second script empties into the store ([`super::deploy`]).

use super::preamble::store_preamble;
use super::substitute::Fetch;
use super::{Remote, sh_quote, stderr_suffix};
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// A name for the temporary directory a target fetches into, unique to
/// this deployer and copy.
pub(super) fn fetch_dir_name() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        ".imago-fetch-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The target's side of a fetch: reads `NAME URL SHA256 SIZE` lines on
/// stdin, fetches each archive with curl or wget (a busybox's, the
/// system's tools' first, when neither is on PATH), checks its size and
/// SHA-256, unpacks it with zstd and tar into `$store/$dir/NAME` and
/// prints `ok NAME`, or `failed NAME REASON`; `unavailable REASON` when a
/// tool is missing (nothing is fetched). The directory stays for the
/// copy's second script, which moves the objects into the store; a script
/// that fails removes it.
const FETCH_SCRIPT: &str = include_str!("fetch.sh");

/// Has the target fetch `fetches` into `$remote_store/$dir`; what became of
/// each object by name: `None` fetched, `Some(why)` not. The key `""`
/// says why nothing was fetched, when nothing was.
pub(super) fn fetch_on_target(
    remote: &dyn Remote,
    remote_store: &str,
    dir: &str,
    fetches: &[Fetch],
) -> BTreeMap<String, Option<String>> {
    let script = format!(
        "{}fetch=\"$store\"/{}\n{FETCH_SCRIPT}",
        store_preamble(remote_store),
        sh_quote(dir)
    );
    let mut list = String::new();
    for f in fetches {
        list.push_str(&format!("{} {} {} {}\n", f.object, f.url, f.sha256, f.size));
    }
    let mut write = |out: &mut dyn Write| -> anyhow::Result<()> {
        out.write_all(list.as_bytes())?;
        Ok(())
    };
    let mut results = BTreeMap::new();
    let out = match remote.run(&script, Some(&mut write)) {
        Ok(out) => out,
        Err(e) => {
            results.insert(String::new(), Some(format!("the fetch did not run: {e:#}")));
            return results;
        }
    };
    for line in out.stdout_text().lines() {
        if let Some(name) = line.strip_prefix("ok ") {
            results.insert(name.to_owned(), None);
        } else if let Some(rest) = line.strip_prefix("failed ") {
            let (name, why) = rest.split_once(' ').unwrap_or((rest, "failed"));
            results.insert(name.to_owned(), Some(why.to_owned()));
        } else if let Some(why) = line.strip_prefix("unavailable ") {
            results.insert(
                String::new(),
                Some(format!("the machine cannot fetch: {why}")),
            );
        }
    }
    if !out.success() {
        // Whatever it said of single objects, their directory is gone.
        results.clear();
        results.insert(
            String::new(),
            Some(format!(
                "the machine's fetch failed ({}){}",
                out.describe_status(),
                stderr_suffix(&out)
            )),
        );
    }
    results
}
