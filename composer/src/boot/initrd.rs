//! The "initrd" builder: a zstd-compressed cpio newc archive holding busybox,
//! the stage-1 script as `/init`, and the kernel modules stage 1 needs.
//!
//! Params:
//!
//! ```text
//! { kernel = <kernel object>;          # from the "kernel" builder
//!   busybox = <busybox-static object>; # usr/bin/busybox (or bin/busybox)
//!   stage1 = <store path of the script>;
//!   modules = [ "virtio_pci" ... ];    # always loaded, in this order
//!   availableModules = [ ... ];        # included, loaded by modalias
//!   extraFiles ? { "<path>" = <store path>; }; }
//! ```
//!
//! Contents: `/init`, `/bin/busybox` with a symlink per applet the script
//! declares on `# imago-applets:` lines (plus a few for the debug shell),
//! `/lib/modules/<ver>/` with the module closure stored decompressed (the
//! archive as a whole is compressed) and a `modules.dep`/`modules.alias` for
//! just those, `modules.builtin`, `/etc/initrd-modules` (the always-load list
//! with dependencies, in load order), `/dev/console` and the empty mount
//! points. The archive is deterministic (see [`super::cpio`]).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::cpio::{Archive, Entry};
use super::kmod::{self, ModuleIndex};
use crate::builders::confine::confined;
use crate::builders::{BuildContext, BuildError, Builder, ResolvedStep};

/// zstd level for the archive. Measured with `cargo bench --bench boot` on a
/// virtio initrd (3.0 MB of cpio, shared 2-core machine under load): level 9
/// gives 1226 KiB in 0.08–0.2 s, level 19 gives 1121 KiB in 0.9–3.7 s. 9% of
/// size is not worth ten times the build time; the kernel unpacks either in
/// a blink.
pub const ZSTD_LEVEL: i32 = 9;

/// Applets linked for the debug shell whatever the script declares.
const SHELL_APPLETS: &[&str] = &["sh", "ls", "cat", "dmesg", "mount", "umount", "ps", "vi"];

/// Parameters of the "initrd" builder.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct InitrdParams {
    pub kernel: String,
    pub busybox: String,
    pub stage1: String,
    #[serde(default)]
    pub modules: Vec<String>,
    #[serde(default)]
    pub available_modules: Vec<String>,
    #[serde(default)]
    pub extra_files: BTreeMap<String, String>,
}

/// The "initrd" builder.
#[derive(Debug, Default, Clone, Copy)]
pub struct InitrdBuilder;

impl Builder for InitrdBuilder {
    fn build(
        &self,
        ctx: &BuildContext,
        step: &ResolvedStep,
        out: &Path,
        log: &mut dyn Write,
    ) -> Result<(), BuildError> {
        let params: InitrdParams = step.params()?;
        let inputs = InitrdInputs {
            kernel: ctx.physical(&params.kernel)?,
            busybox: ctx.physical(&params.busybox)?,
            stage1: ctx.physical(&params.stage1)?,
            modules: params.modules,
            available_modules: params.available_modules,
            extra_files: params
                .extra_files
                .into_iter()
                .map(|(k, v)| Ok((k, ctx.physical(&v)?)))
                .collect::<Result<_, BuildError>>()?,
        };
        let bytes = build_archive(&inputs, log)?;
        write_compressed(&bytes, out, log)
    }
}

/// The builder's inputs with physical paths.
#[derive(Debug, Clone)]
pub struct InitrdInputs {
    pub kernel: PathBuf,
    pub busybox: PathBuf,
    pub stage1: PathBuf,
    pub modules: Vec<String>,
    pub available_modules: Vec<String>,
    pub extra_files: BTreeMap<String, PathBuf>,
}

fn failed(e: impl std::error::Error + Send + Sync + 'static) -> BuildError {
    BuildError::Other(anyhow::Error::new(e))
}

/// Reads a file that must be a regular file, not a symlink to one.
fn read_regular(path: &Path, what: &str) -> Result<Vec<u8>, BuildError> {
    let meta = std::fs::symlink_metadata(path)
        .map_err(BuildError::io(format!("{what}: {}", path.display())))?;
    if !meta.is_file() {
        return Err(BuildError::Failed(format!(
            "initrd: {what} {} is not a regular file",
            path.display()
        )));
    }
    read(path)
}

fn read(path: &Path) -> Result<Vec<u8>, BuildError> {
    std::fs::read(path).map_err(BuildError::io(format!("read {}", path.display())))
}

/// Assembles the uncompressed cpio archive.
pub fn build_archive(inputs: &InitrdInputs, log: &mut dyn Write) -> Result<Vec<u8>, BuildError> {
    let mut archive = Archive::new();
    for dir in ["bin", "dev", "etc", "proc", "sys", "sysroot", "run", "tmp"] {
        archive.mkdir_p(dir).map_err(failed)?;
    }
    archive
        .add("dev/console", Entry::CharDev { major: 5, minor: 1 })
        .map_err(failed)?;

    let script = read_regular(&inputs.stage1, "stage1")?;
    add_busybox(&mut archive, &inputs.busybox, &script)?;
    archive
        .add(
            "init",
            Entry::File {
                data: script,
                executable: true,
            },
        )
        .map_err(failed)?;

    let always = add_modules(&mut archive, inputs, log)?;
    archive
        .add(
            "etc/initrd-modules",
            Entry::File {
                data: always
                    .iter()
                    .map(|m| format!("{m}\n"))
                    .collect::<String>()
                    .into_bytes(),
                executable: false,
            },
        )
        .map_err(failed)?;

    for (path, source) in &inputs.extra_files {
        add_extra(&mut archive, path.trim_start_matches('/'), source)?;
    }
    archive.write(Vec::new()).map_err(failed)
}

/// The applets a stage-1 script declares on `# imago-applets:` lines.
pub fn declared_applets(script: &str) -> BTreeSet<String> {
    script
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("# imago-applets:"))
        .flat_map(|l| l.split_whitespace().map(str::to_owned))
        .collect()
}

fn add_busybox(archive: &mut Archive, object: &Path, script: &[u8]) -> Result<(), BuildError> {
    let mut binary = None;
    for candidate in ["usr/bin/busybox", "bin/busybox"] {
        if let Some(path) = confined(object, candidate)?.filter(|p| p.is_file()) {
            binary = Some(path);
            break;
        }
    }
    let binary = binary.ok_or_else(|| {
        BuildError::Failed(format!(
            "initrd: busybox object {} has neither usr/bin/busybox nor bin/busybox",
            object.display()
        ))
    })?;
    archive
        .add(
            "bin/busybox",
            Entry::File {
                data: read(&binary)?,
                executable: true,
            },
        )
        .map_err(failed)?;
    let mut applets = declared_applets(&String::from_utf8_lossy(script));
    applets.extend(SHELL_APPLETS.iter().map(|s| (*s).to_owned()));
    for applet in applets {
        if applet == "busybox" || applet.contains('/') {
            return Err(BuildError::Failed(format!(
                "initrd: stage-1 script declares invalid applet `{applet}`"
            )));
        }
        archive
            .add(
                &format!("bin/{applet}"),
                Entry::Symlink {
                    target: "busybox".into(),
                },
            )
            .map_err(failed)?;
    }
    Ok(())
}

/// Adds the module closure and its index; returns the always-load order.
fn add_modules(
    archive: &mut Archive,
    inputs: &InitrdInputs,
    log: &mut dyn Write,
) -> Result<Vec<String>, BuildError> {
    let version_file = confined(&inputs.kernel, "version")?.ok_or_else(|| {
        BuildError::Failed(format!(
            "initrd: kernel object {} has no version file",
            inputs.kernel.display()
        ))
    })?;
    let version = String::from_utf8_lossy(&read(&version_file)?)
        .trim()
        .to_owned();
    if version.is_empty() || version.contains('/') {
        return Err(BuildError::Failed(format!(
            "initrd: {} holds no valid kernel version",
            version_file.display()
        )));
    }
    let modules_dir =
        confined(&inputs.kernel, &format!("lib/modules/{version}"))?.ok_or_else(|| {
            BuildError::Failed(format!(
                "initrd: kernel object {} has no lib/modules/{version}",
                inputs.kernel.display()
            ))
        })?;
    let index = ModuleIndex::load(&modules_dir, &version).map_err(failed)?;
    let always = index.closure(&inputs.modules).map_err(failed)?;
    let available = index.closure(&inputs.available_modules).map_err(failed)?;
    let included: BTreeSet<String> = always.iter().chain(&available).cloned().collect();

    let base = format!("lib/modules/{version}");
    archive.mkdir_p(&base).map_err(failed)?;
    // Stored decompressed: `x.ko.xz` becomes `x.ko`.
    let stored_path = |m: &kmod::Module| match m.path.split_once(".ko") {
        Some((stem, _)) => format!("{stem}.ko"),
        None => m.path.clone(),
    };
    let mut total = 0;
    for name in &included {
        let module = &index.modules[name];
        let file = confined(&modules_dir, &module.path)?.ok_or_else(|| {
            BuildError::Failed(format!(
                "initrd: module `{name}` is missing: {}",
                modules_dir.join(&module.path).display()
            ))
        })?;
        let data = kmod::read_module(&file).map_err(failed)?;
        total += data.len();
        let path = format!("{base}/{}", stored_path(module));
        if let Some((parent, _)) = path.rsplit_once('/') {
            archive.mkdir_p(parent).map_err(failed)?;
        }
        archive
            .add(
                &path,
                Entry::File {
                    data,
                    executable: false,
                },
            )
            .map_err(failed)?;
    }
    let dep = index
        .render_dep(Some(&included), &stored_path)
        .map_err(failed)?;
    let text_file = |data: String| Entry::File {
        data: data.into_bytes(),
        executable: false,
    };
    archive
        .add(&format!("{base}/modules.dep"), text_file(dep))
        .map_err(failed)?;
    archive
        .add(
            &format!("{base}/modules.alias"),
            text_file(index.render_alias(Some(&included))),
        )
        .map_err(failed)?;
    if let Some(builtin) = confined(&modules_dir, "modules.builtin")? {
        archive
            .add(
                &format!("{base}/modules.builtin"),
                Entry::File {
                    data: read(&builtin)?,
                    executable: false,
                },
            )
            .map_err(failed)?;
    }
    let _ = writeln!(
        log,
        "initrd: kernel {version}, {} modules ({} KiB): always {}",
        included.len(),
        total / 1024,
        always.join(" ")
    );
    Ok(always)
}

/// Adds a store file or directory tree at `path` (symlinks kept as links).
fn add_extra(archive: &mut Archive, path: &str, source: &Path) -> Result<(), BuildError> {
    if let Some((parent, _)) = path.rsplit_once('/') {
        archive.mkdir_p(parent).map_err(failed)?;
    }
    // A symlink object stays a symlink: never read what it points at.
    let walk = walkdir::WalkDir::new(source)
        .follow_root_links(false)
        .sort_by_file_name();
    for entry in walk {
        let entry =
            entry.map_err(|e| BuildError::Failed(format!("initrd: extraFiles `{path}`: {e}")))?;
        let rel = entry
            .path()
            .strip_prefix(source)
            .map_err(|e| BuildError::Other(e.into()))?
            .to_string_lossy()
            .into_owned();
        let target = if rel.is_empty() {
            path.to_owned()
        } else {
            format!("{path}/{rel}")
        };
        let file_type = entry.file_type();
        let item = if file_type.is_dir() {
            Entry::Dir
        } else if file_type.is_symlink() {
            let link = std::fs::read_link(entry.path()).map_err(BuildError::io(format!(
                "read link {}",
                entry.path().display()
            )))?;
            Entry::Symlink {
                target: link.to_string_lossy().into_owned(),
            }
        } else if file_type.is_file() {
            use std::os::unix::fs::PermissionsExt;
            let mode = entry
                .metadata()
                .map_err(|e| {
                    BuildError::Failed(format!("initrd: {}: {e}", entry.path().display()))
                })?
                .permissions()
                .mode();
            Entry::File {
                data: read(entry.path())?,
                executable: mode & 0o111 != 0,
            }
        } else {
            return Err(BuildError::Failed(format!(
                "initrd: extraFiles `{path}`: {} is a special file",
                entry.path().display()
            )));
        };
        archive
            .add(&target, item)
            .map_err(|e| BuildError::Failed(format!("initrd: extraFiles `{path}`: {e}")))?;
    }
    Ok(())
}

/// Compresses the archive into the file `out`.
fn write_compressed(archive: &[u8], out: &Path, log: &mut dyn Write) -> Result<(), BuildError> {
    let started = std::time::Instant::now();
    let compressed = zstd::bulk::compress(archive, ZSTD_LEVEL)
        .map_err(BuildError::io("zstd-compress the initrd"))?;
    std::fs::write(out, &compressed).map_err(BuildError::io(format!("write {}", out.display())))?;
    let _ = writeln!(
        log,
        "initrd: {} KiB cpio -> {} KiB zstd-{ZSTD_LEVEL} in {:.2} s",
        archive.len() / 1024,
        compressed.len() / 1024,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[cfg(test)]
#[path = "initrd_tests.rs"]
mod tests;
