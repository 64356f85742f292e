//! The `nftables-ruleset` builder: `{ text, packages }` → a file holding
//! `text` (0444), an nftables ruleset that `nft -c -f` accepted on the build
//! machine.
//!
//! `packages` is the dependency closure of Debian's `nftables` (the graph
//! expands it). The check runs that package's own `nft` — not the host's,
//! whose version may differ — through the closure's dynamic loader
//! (`ld-linux*.so` of libc6, `--library-path` the closure's library
//! directories), inside a fresh network namespace (`unshare --net`, and
//! `--user --map-root-user` when the builder is not root), so it sees an
//! empty ruleset and changes nothing on the host. `nft -c` parses the
//! ruleset and has the kernel validate the transaction without committing
//! it.
//!
//! The check is only as strong as the build machine allows: without
//! `unshare`, user namespaces or nf_tables in its kernel nft cannot run, and
//! the nft of a system of another architecture (an arm64 system built on
//! an amd64 host; told by the loader's multiarch directory) is not even
//! tried. A known-good probe ruleset tells that case
//! (logged, and the file is written unchecked: the machine reports a bad
//! ruleset when it loads it) from a ruleset nft rejects, which fails the
//! step with nft's own message. The output is the text either way, so the
//! store object does not depend on the build machine.

use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::confine::confined;
use super::fsutil::write_new_file;
use super::{BuildContext, BuildError, Builder, ResolvedStep};
use crate::arch::Architecture;

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    text: String,
    packages: Vec<String>,
}

/// A ruleset every nft and kernel with nf_tables accepts: if it fails, the
/// build machine cannot check rulesets at all.
const PROBE: &str = "table inet imago-probe {\n  chain input {\n    type filter hook input priority filter; policy accept;\n    ct state established accept\n  }\n}\n";

/// How long one `nft -c` may take.
const NFT_TIMEOUT: Duration = Duration::from_secs(60);

/// Checks and writes an nftables ruleset.
#[derive(Debug, Clone, Copy, Default)]
pub struct NftablesRulesetBuilder;

impl Builder for NftablesRulesetBuilder {
    fn build(
        &self,
        ctx: &BuildContext,
        step: &ResolvedStep,
        out: &Path,
        log: &mut dyn Write,
    ) -> Result<(), BuildError> {
        let params: Params = step.params()?;
        let packages = params
            .packages
            .iter()
            .map(|p| ctx.physical(p))
            .collect::<Result<Vec<_>, BuildError>>()?;
        let nft = Nft::find(&packages)?;
        write_new_file(out, params.text.as_bytes(), false)?;
        let probe = match nft.foreign() {
            Some(why) => Err(why),
            None => nft.check(PROBE, "probe"),
        };
        match probe {
            Ok(Ok(())) => {}
            Ok(Err(message)) | Err(message) => {
                // The log is shown only when a step fails: say it on
                // stderr too, where the build's progress goes.
                let warning = format!(
                    "warning: {} is not checked: this machine cannot run nft -c ({}); the machine reports a bad ruleset when it loads it",
                    step.name,
                    message.trim()
                );
                let _ = writeln!(log, "{warning}");
                eprintln!("{warning}");
                return Ok(());
            }
        }
        match nft.check(&params.text, &step.name) {
            Ok(Ok(())) => {
                let _ = writeln!(log, "nftables-ruleset: nft -c accepts {}", step.name);
                Ok(())
            }
            Ok(Err(message)) => Err(BuildError::Failed(format!(
                "nft rejects the ruleset {}:\n{}\nthe ruleset:\n{}",
                step.name,
                message.trim_end(),
                numbered(&params.text)
            ))),
            Err(message) => Err(BuildError::Failed(format!(
                "nft -c could check a probe ruleset but not {}: {message}",
                step.name
            ))),
        }
    }
}

/// The text with line numbers, as nft's messages count them.
fn numbered(text: &str) -> String {
    text.lines()
        .enumerate()
        .map(|(i, l)| format!("{:>4} | {l}\n", i + 1))
        .collect()
}

/// The nftables package's `nft`, runnable through the closure's loader.
struct Nft {
    loader: PathBuf,
    library_path: String,
    nft: PathBuf,
}

impl Nft {
    /// Finds `usr/sbin/nft`, the dynamic loader and the library directories
    /// among the unpacked packages.
    fn find(packages: &[PathBuf]) -> Result<Nft, BuildError> {
        let mut nft = None;
        let mut loader = None;
        let mut dirs = Vec::new();
        for package in packages {
            for rel in ["usr/sbin/nft", "sbin/nft"] {
                if let Some(found) = confined(package, rel)? {
                    nft.get_or_insert(found);
                }
            }
            for lib in ["usr/lib", "lib"] {
                let Some(lib) = confined(package, lib)?.filter(|p| p.is_dir()) else {
                    continue;
                };
                let mut entries: Vec<_> = std::fs::read_dir(&lib)
                    .map_err(BuildError::io(format!("read {}", lib.display())))?
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .collect();
                entries.sort();
                for dir in entries {
                    let name = dir.file_name().unwrap_or_default().to_string_lossy();
                    // Multiarch directories: x86_64-linux-gnu, aarch64-linux-gnu.
                    if !name.contains("-linux-") || !dir.is_dir() {
                        continue;
                    }
                    if loader.is_none() {
                        loader = ld_so(&dir)?;
                    }
                    dirs.push(dir);
                }
            }
        }
        let nft = nft.ok_or_else(|| {
            BuildError::Params(
                "no package of `packages` has usr/sbin/nft (pass the closure of nftables)".into(),
            )
        })?;
        let loader = loader.ok_or_else(|| {
            BuildError::Params(
                "no package of `packages` has a dynamic loader (usr/lib/<triplet>/ld-linux*.so.*)"
                    .into(),
            )
        })?;
        let library_path = dirs
            .iter()
            .map(|d| d.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(":");
        Ok(Nft {
            loader,
            library_path,
            nft,
        })
    }

    /// Why this nft cannot run here, when its loader is of another
    /// architecture than this machine's.
    fn foreign(&self) -> Option<String> {
        let triplet = self.loader.parent()?.file_name()?.to_str()?;
        let system = Architecture::from_multiarch(triplet)?;
        let host = Architecture::host()?;
        (system != host)
            .then(|| format!("the system's nft is an {system} program and this machine is {host}"))
    }

    /// `nft -c -f -` on `ruleset` in a network namespace of its own (nft's
    /// messages call it `name`):
    /// `Ok(Ok(()))` accepted, `Ok(Err(nft's message))` rejected,
    /// `Err(why)` when nft could not be run or did not finish.
    fn check(&self, ruleset: &str, name: &str) -> Result<Result<(), String>, String> {
        // unshare is the build machine's (found on imago's PATH); nft gets
        // an empty environment.
        let mut cmd = Command::new("unshare");
        cmd.env_clear();
        if let Some(path) = std::env::var_os("PATH") {
            cmd.env("PATH", path);
        }
        if !rustix::process::geteuid().is_root() {
            cmd.args(["--user", "--map-root-user"]);
        }
        cmd.arg("--net")
            .arg("--")
            .arg(&self.loader)
            .arg("--library-path")
            .arg(&self.library_path)
            .arg(&self.nft)
            .args(["-c", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null());
        let mut errors = tempfile::tempfile().map_err(|e| format!("temporary file: {e}"))?;
        cmd.stderr(
            errors
                .try_clone()
                .map_err(|e| format!("temporary file: {e}"))?,
        );
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot run unshare: {e}"))?;
        if let Some(mut stdin) = child.stdin.take() {
            // A write error shows as nft's failure below.
            let _ = stdin.write_all(ruleset.as_bytes());
        }
        let deadline = Instant::now() + NFT_TIMEOUT;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!("nft -c did not finish within {NFT_TIMEOUT:?}"));
                }
                Err(e) => return Err(format!("waiting for nft: {e}")),
            }
        };
        let mut message = String::new();
        errors
            .rewind()
            .and_then(|()| errors.take(64 * 1024).read_to_string(&mut message))
            .map_err(|e| format!("reading nft's messages: {e}"))?;
        if status.success() {
            return Ok(Ok(()));
        }
        // unshare itself failing (no namespaces) or a loader that cannot
        // start (another architecture) exits the same way as a rejected
        // ruleset; the probe tells these apart before the real check.
        let message = message.replace("/dev/stdin", name);
        Ok(Err(if message.trim().is_empty() {
            format!("nft exited with {status} and said nothing")
        } else {
            message
        }))
    }
}

/// The dynamic loader in a multiarch library directory, if it has one.
fn ld_so(dir: &Path) -> Result<Option<PathBuf>, BuildError> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(BuildError::io(format!("read {}", dir.display())))?
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("ld-linux") && n.contains(".so."))
        .collect();
    names.sort();
    Ok(names.first().map(|n| dir.join(n)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_lines_start_at_one() {
        assert_eq!(numbered("a\nb\n"), "   1 | a\n   2 | b\n");
    }

    #[test]
    fn a_closure_without_nft_is_a_parameter_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("usr/lib/x86_64-linux-gnu")).unwrap();
        let err = Nft::find(&[dir.path().to_path_buf()]).err().unwrap();
        assert!(err.to_string().contains("usr/sbin/nft"), "{err}");
    }

    #[test]
    fn nft_and_the_loader_are_found_in_their_packages() {
        let dir = tempfile::tempdir().unwrap();
        let nftables = dir.path().join("nftables");
        let libc = dir.path().join("libc6");
        std::fs::create_dir_all(nftables.join("usr/sbin")).unwrap();
        std::fs::write(nftables.join("usr/sbin/nft"), b"").unwrap();
        let multiarch = libc.join("usr/lib/x86_64-linux-gnu");
        std::fs::create_dir_all(&multiarch).unwrap();
        std::fs::write(multiarch.join("ld-linux-x86-64.so.2"), b"").unwrap();
        std::fs::write(multiarch.join("libc.so.6"), b"").unwrap();
        let nft = Nft::find(&[nftables.clone(), libc.clone()]).unwrap();
        assert!(nft.nft.ends_with("nftables/usr/sbin/nft"));
        assert!(
            nft.loader
                .ends_with("x86_64-linux-gnu/ld-linux-x86-64.so.2")
        );
        assert!(nft.library_path.ends_with("libc6/usr/lib/x86_64-linux-gnu"));
    }

    #[test]
    fn the_nft_of_another_architecture_is_not_run() {
        let nft = |loader: &str| Nft {
            loader: PathBuf::from(loader),
            library_path: String::new(),
            nft: PathBuf::from("/s/usr/sbin/nft"),
        };
        let arm = nft("/s/usr/lib/aarch64-linux-gnu/ld-linux-aarch64.so.1");
        let amd = nft("/s/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2");
        if Architecture::host() == Some(Architecture::Amd64) {
            assert_eq!(
                arm.foreign().as_deref(),
                Some("the system's nft is an arm64 program and this machine is amd64")
            );
            assert_eq!(amd.foreign(), None);
        }
    }
}
