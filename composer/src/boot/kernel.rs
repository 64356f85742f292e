//! The "kernel" builder: turns unpacked Debian kernel packages into a kernel
//! object with a module index.
//!
//! Params: `{ architecture = "amd64"; packages = [ <deb objects> ] }` — the
//! system's architecture and a kernel package with the `linux-image-*`
//! packages it depends on, transitively (see
//! [`KernelBuilder::reads_dependency`](Builder::reads_dependency)). Exactly
//! one package must hold `boot/vmlinuz-<ver>`, a kernel image of that
//! architecture (checked by its magic, see
//! [`Architecture::kernel_magic`]); its modules are in
//! `usr/lib/modules/<ver>` (merged /usr) or `lib/modules/<ver>` of any
//! package. Output (a directory):
//!
//! ```text
//! bzImage or Image              hard link (or copy) of vmlinuz-<ver>, named
//!                               as the architecture's format
//!                               ([`Architecture::kernel_image`])
//! version                       "<ver>\n"
//! lib/modules/<ver>/kernel/...  the module files, hard links
//! lib/modules/<ver>/modules.{builtin,builtin.modinfo,order}   from the package
//! lib/modules/<ver>/modules.{dep,alias,symbols,softdep,devname}   computed,
//! lib/modules/<ver>/modules.{dep,alias,symbols,builtin,builtin.alias}.bin   as depmod would
//! ```
//!
//! kmod (modprobe, systemd) reads the binary `.bin` indexes, busybox the text
//! files; see [`kmod::depmod`]. Output depends only on the inputs' contents:
//! walks are sorted and the indexes are rendered in sorted order.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::kmod::{self, ModuleIndex};
use crate::arch::Architecture;
use crate::builders::confine::confined;
use crate::builders::{BuildContext, BuildError, Builder, ResolvedStep, fsutil};
use imago_lang::hook::StepValue;

/// Parameters of the "kernel" builder.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelParams {
    pub architecture: Architecture,
    pub packages: Vec<String>,
}

/// The "kernel" builder.
#[derive(Debug, Default, Clone, Copy)]
pub struct KernelBuilder;

impl Builder for KernelBuilder {
    /// 2: the binary kmod indexes and `modules.{symbols,softdep,devname}`.
    /// 3: the architecture's image name and format check.
    fn version(&self) -> u32 {
        3
    }

    /// A kernel metapackage (`linux-image-cloud-amd64`) names its image
    /// package (`linux-image-6.12.57+deb13-cloud-amd64`), which holds the
    /// image and the modules. The image package's other dependencies
    /// (kmod, initramfs-tools, and through them most of a base system)
    /// serve maintainer scripts that Imago never runs, so the kernel does
    /// not wait for them to be unpacked. `linux-image-*` is Debian's name
    /// for the packages that hold kernels (apt keeps them from autoremoval
    /// by that pattern).
    fn reads_dependency(&self, package: &str) -> bool {
        package.starts_with("linux-image-")
    }

    /// As much as unpacking its largest package, the one holding the
    /// modules: every module is linked and read for the indexes.
    fn weight(&self, _params: &BTreeMap<String, StepValue>, inputs: &[u64]) -> u64 {
        inputs.iter().copied().max().unwrap_or(0)
    }

    fn build(
        &self,
        ctx: &BuildContext,
        step: &ResolvedStep,
        out: &Path,
        log: &mut dyn Write,
    ) -> Result<(), BuildError> {
        let params: KernelParams = step.params()?;
        let packages = params
            .packages
            .iter()
            .map(|p| Ok((p.clone(), ctx.physical(p)?)))
            .collect::<Result<Vec<_>, BuildError>>()?;
        build_kernel(&packages, params.architecture, out, log)
    }
}

/// Builds the kernel object at `out` from `(logical, physical)` package dirs
/// for a system of `arch`.
pub fn build_kernel(
    packages: &[(String, PathBuf)],
    arch: Architecture,
    out: &Path,
    log: &mut dyn Write,
) -> Result<(), BuildError> {
    let (image, version) = find_image(packages)?;
    check_format(&image, arch)?;
    let modules_dir = find_modules(packages, &version)?;
    let _ = writeln!(log, "kernel {version}: image {} ({arch})", image.display());

    std::fs::create_dir_all(out).map_err(BuildError::io(format!("create {}", out.display())))?;
    fsutil::link_or_copy(&image, &out.join(arch.kernel_image()))?;
    std::fs::write(out.join("version"), format!("{version}\n"))
        .map_err(BuildError::io("write version"))?;

    let modules = out.join("lib/modules");
    std::fs::create_dir_all(&modules)
        .map_err(BuildError::io(format!("create {}", modules.display())))?;
    let target = modules.join(&version);
    if let Some(src) = &modules_dir {
        link_module_tree(src, &target)?;
    } else {
        let _ = writeln!(log, "kernel {version}: no module tree in any package");
        fsutil::create_dir(&target)?;
    }
    let index = ModuleIndex::scan(&target, &version).map_err(|e| BuildError::Other(e.into()))?;
    let output =
        kmod::depmod::write_indexes(&index, &target).map_err(|e| BuildError::Other(e.into()))?;
    let _ = writeln!(
        log,
        "kernel {version}: indexed {} modules, {} aliases, {} exported symbols, {} built in",
        index.modules.len(),
        index.aliases.len(),
        index.exports.len(),
        index.builtin.len()
    );
    let names: Vec<&str> = output.files.iter().map(|f| f.0).collect();
    let _ = writeln!(log, "kernel {version}: wrote {}", names.join(", "));
    for (alias, module) in &output.skipped_aliases {
        let _ = writeln!(
            log,
            "kernel {version}: alias `{alias}` of {module} has an unmatched bracket; not indexed"
        );
    }
    Ok(())
}

/// The one `boot/vmlinuz-<ver>` among the packages, and `<ver>`.
fn find_image(packages: &[(String, PathBuf)]) -> Result<(PathBuf, String), BuildError> {
    let mut found = Vec::new();
    for (logical, physical) in packages {
        let Some(boot) = confined(physical, "boot")?.filter(|b| b.is_dir()) else {
            continue;
        };
        let entries =
            std::fs::read_dir(&boot).map_err(BuildError::io(format!("read {}", boot.display())))?;
        for entry in entries {
            let entry = entry.map_err(BuildError::io(format!("read {}", boot.display())))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(version) = name.strip_prefix("vmlinuz-") {
                let image = confined(physical, &format!("boot/{name}"))?
                    .filter(|p| p.is_file())
                    .ok_or_else(|| {
                        BuildError::Failed(format!("kernel: {logical}/boot/{name} is not a file"))
                    })?;
                found.push((format!("{logical}/boot/{name}"), image, version.to_owned()));
            }
        }
    }
    found.sort();
    match found.len() {
        1 => {
            let (_, path, version) = found.remove(0);
            Ok((path, version))
        }
        0 => Err(BuildError::Failed(format!(
            "kernel: no package has boot/vmlinuz-*; packages given: {}",
            list(packages.iter().map(|p| p.0.as_str()))
        ))),
        _ => Err(BuildError::Failed(format!(
            "kernel: expected exactly one boot/vmlinuz-*, found {}: {}",
            found.len(),
            list(found.iter().map(|f| f.0.as_str()))
        ))),
    }
}

/// Fails unless `image` is a kernel image of `arch`: a kernel of another
/// architecture (a `boot.kernel.package` from elsewhere) or a compressed
/// image no boot loader here starts is found at build time, not at boot.
fn check_format(image: &Path, arch: Architecture) -> Result<(), BuildError> {
    use std::io::Read;
    let magic = arch.kernel_magic();
    let mut head = Vec::new();
    std::fs::File::open(image)
        .and_then(|f| f.take(4096).read_to_end(&mut head))
        .map_err(BuildError::io(format!("read {}", image.display())))?;
    if magic.matches(&head) {
        return Ok(());
    }
    let found = Architecture::ALL
        .into_iter()
        .find(|a| a.kernel_magic().matches(&head))
        .map(|a| format!("{}, a kernel for {a}", a.kernel_magic().format))
        .unwrap_or_else(|| match head.get(..2) {
            Some([0x1f, 0x8b]) => "gzip-compressed data".to_owned(),
            _ => "no kernel image format Imago knows".to_owned(),
        });
    Err(BuildError::Failed(format!(
        "kernel: {} is not {} for this {arch} system: it is {found}",
        image.display(),
        magic.format
    )))
}

fn list<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let items: Vec<&str> = items.collect();
    if items.is_empty() {
        "(none)".to_owned()
    } else {
        items.join(", ")
    }
}

/// The package directory holding `lib/modules/<version>` (merged or not).
fn find_modules(
    packages: &[(String, PathBuf)],
    version: &str,
) -> Result<Option<PathBuf>, BuildError> {
    if version.contains('/') || version == ".." {
        return Err(BuildError::Failed(format!(
            "kernel: invalid kernel version `{version}`"
        )));
    }
    let mut found: Vec<(String, PathBuf)> = Vec::new();
    for (logical, physical) in packages {
        for prefix in ["usr/lib/modules", "lib/modules"] {
            let Some(dir) = confined(physical, &format!("{prefix}/{version}"))? else {
                continue;
            };
            // `lib` may be a symlink to `usr/lib`: the same directory twice.
            if dir.is_dir() && !found.iter().any(|f| f.1 == dir) {
                found.push((format!("{logical}/{prefix}/{version}"), dir));
            }
        }
    }
    match found.len() {
        0 => Ok(None),
        1 => Ok(found.pop().map(|f| f.1)),
        _ => Err(BuildError::Failed(format!(
            "kernel: modules for {version} found in several places: {}",
            list(found.iter().map(|f| f.0.as_str()))
        ))),
    }
}

/// Hard-links the module tree `src` to `dst` (copies across file systems),
/// then drops stale depmod output: the index is recomputed.
fn link_module_tree(src: &Path, dst: &Path) -> Result<(), BuildError> {
    fsutil::copy_tree(src, dst, true)?;
    let entries =
        std::fs::read_dir(dst).map_err(BuildError::io(format!("read {}", dst.display())))?;
    for entry in entries {
        let entry = entry.map_err(BuildError::io(format!("read {}", dst.display())))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if kmod::is_depmod_output(&name) && entry.path().is_file() {
            std::fs::remove_file(entry.path())
                .map_err(BuildError::io(format!("remove {}", entry.path().display())))?;
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::boot::kmod::tests::{VIRTIO_TREE, write_tree};

    /// The first bytes of a kernel image of `arch`: its magic at its place.
    pub(crate) fn fake_image(arch: Architecture) -> Vec<u8> {
        let magic = arch.kernel_magic();
        let mut image = vec![0_u8; 0x400];
        image[magic.offset..magic.offset + magic.magic.len()].copy_from_slice(magic.magic);
        image
    }

    /// The error of building `packages` for `arch`, as text.
    fn build_error(packages: &[(String, PathBuf)], arch: Architecture, out: &Path) -> String {
        build_kernel(packages, arch, out, &mut Vec::new())
            .unwrap_err()
            .to_string()
    }

    fn package(root: &Path, name: &str) -> (String, PathBuf) {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        (format!("/imago/store/{name}"), dir)
    }

    fn kernel_packages(root: &Path) -> Vec<(String, PathBuf)> {
        let meta = package(root, "aaaa-linux-image-cloud-amd64");
        std::fs::create_dir_all(meta.1.join("usr/share/doc")).unwrap();
        let image = package(root, "bbbb-linux-image-6.1.0-9-cloud-amd64");
        std::fs::create_dir_all(image.1.join("boot")).unwrap();
        std::fs::write(
            image.1.join("boot/vmlinuz-6.1.0-9-cloud-amd64"),
            fake_image(Architecture::Amd64),
        )
        .unwrap();
        let mods = image.1.join("usr/lib/modules/6.1.0-9-cloud-amd64");
        std::fs::create_dir_all(&mods).unwrap();
        write_tree(&mods, VIRTIO_TREE, &["kernel/lib/crc32c.ko"]);
        std::fs::write(mods.join("modules.order"), "kernel/fs/fuse/fuse.ko\n").unwrap();
        std::fs::write(mods.join("modules.dep.bin"), "stale").unwrap();
        vec![meta, image]
    }

    #[test]
    fn builds_image_version_modules_and_index() {
        let dir = tempfile::tempdir().unwrap();
        let packages = kernel_packages(dir.path());
        let out = dir.path().join("out");
        build_kernel(&packages, Architecture::Amd64, &out, &mut Vec::new()).unwrap();
        assert_eq!(
            std::fs::read(out.join("bzImage")).unwrap(),
            fake_image(Architecture::Amd64)
        );
        assert_eq!(
            std::fs::read_to_string(out.join("version")).unwrap(),
            "6.1.0-9-cloud-amd64\n"
        );
        let mods = out.join("lib/modules/6.1.0-9-cloud-amd64");
        assert!(mods.join("kernel/fs/fuse/virtiofs.ko").is_file());
        assert!(mods.join("modules.order").is_file());
        assert!(mods.join("modules.builtin").is_file());
        assert_ne!(
            std::fs::read(mods.join("modules.dep.bin")).unwrap(),
            b"stale",
            "stale depmod output is replaced"
        );
        let dep = std::fs::read_to_string(mods.join("modules.dep")).unwrap();
        assert!(dep.contains("kernel/fs/fuse/virtiofs.ko: "), "{dep}");
        let alias = std::fs::read_to_string(mods.join("modules.alias")).unwrap();
        assert!(
            alias.contains("alias virtio:d0000001Av* virtiofs"),
            "{alias}"
        );
        // The binary indexes kmod reads (the package's stale one replaced).
        let dep_bin =
            kmod::index::read_index(&std::fs::read(mods.join("modules.dep.bin")).unwrap()).unwrap();
        assert_eq!(dep_bin.len(), 8);
        assert!(
            dep_bin["virtiofs"][0]
                .1
                .starts_with("kernel/fs/fuse/virtiofs.ko: "),
            "{dep_bin:?}"
        );
        let builtin =
            kmod::index::read_index(&std::fs::read(mods.join("modules.builtin.bin")).unwrap())
                .unwrap();
        assert!(builtin.contains_key("crc32c"), "{builtin:?}");

        // Deterministic: a second build has identical index files.
        let out2 = dir.path().join("out2");
        build_kernel(&packages, Architecture::Amd64, &out2, &mut Vec::new()).unwrap();
        for f in [
            "modules.dep",
            "modules.alias",
            "modules.symbols",
            "modules.softdep",
            "modules.devname",
            "modules.dep.bin",
            "modules.alias.bin",
            "modules.symbols.bin",
            "modules.builtin.bin",
        ] {
            assert_eq!(
                std::fs::read(mods.join(f)).unwrap(),
                std::fs::read(out2.join("lib/modules/6.1.0-9-cloud-amd64").join(f)).unwrap()
            );
        }
    }

    #[test]
    fn no_image_is_an_error_listing_the_packages() {
        let dir = tempfile::tempdir().unwrap();
        let packages = vec![package(dir.path(), "aaaa-busybox-static")];
        let err = build_kernel(
            &packages,
            Architecture::Amd64,
            &dir.path().join("out"),
            &mut Vec::new(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "kernel: no package has boot/vmlinuz-*; packages given: /imago/store/aaaa-busybox-static"
        );
    }

    #[test]
    fn two_images_are_an_error_naming_both() {
        let dir = tempfile::tempdir().unwrap();
        let mut packages = kernel_packages(dir.path());
        let other = package(dir.path(), "cccc-linux-image-6.1.0-10-cloud-amd64");
        std::fs::create_dir_all(other.1.join("boot")).unwrap();
        std::fs::write(other.1.join("boot/vmlinuz-6.1.0-10-cloud-amd64"), b"x").unwrap();
        packages.push(other);
        let err = build_error(&packages, Architecture::Amd64, &dir.path().join("out"));
        assert!(
            err.contains("expected exactly one boot/vmlinuz-*, found 2"),
            "{err}"
        );
        assert!(
            err.contains("bbbb-linux-image-6.1.0-9-cloud-amd64/boot/vmlinuz-6.1.0-9"),
            "{err}"
        );
        assert!(
            err.contains("cccc-linux-image-6.1.0-10-cloud-amd64/boot/vmlinuz-6.1.0-10"),
            "{err}"
        );
    }

    #[test]
    fn a_module_tree_linked_out_of_the_package_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let packages = kernel_packages(dir.path());
        let mods = packages[1].1.join("usr/lib/modules");
        std::fs::remove_dir_all(&mods).unwrap();
        let outside = dir.path().join("host-modules/6.1.0-9-cloud-amd64");
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(dir.path().join("host-modules"), &mods).unwrap();
        let err = build_error(&packages, Architecture::Amd64, &dir.path().join("out"));
        assert!(err.contains("outside the object"), "{err}");
    }

    #[test]
    fn lib_linked_to_usr_lib_is_one_module_tree() {
        let dir = tempfile::tempdir().unwrap();
        let packages = kernel_packages(dir.path());
        std::os::unix::fs::symlink("usr/lib", packages[1].1.join("lib")).unwrap();
        build_kernel(
            &packages,
            Architecture::Amd64,
            &dir.path().join("out"),
            &mut Vec::new(),
        )
        .unwrap();
    }

    #[test]
    fn an_arm64_kernel_is_an_image_and_an_x86_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let packages = kernel_packages(dir.path());
        let vmlinuz = packages[1].1.join("boot/vmlinuz-6.1.0-9-cloud-amd64");
        let err = build_error(&packages, Architecture::Arm64, &dir.path().join("out"));
        assert!(
            err.ends_with(
                "vmlinuz-6.1.0-9-cloud-amd64 is not an arm64 Image for this arm64 system: it is an x86 bzImage, a kernel for amd64"
            ),
            "{err}"
        );
        std::fs::write(&vmlinuz, fake_image(Architecture::Arm64)).unwrap();
        let out = dir.path().join("out-arm64");
        build_kernel(&packages, Architecture::Arm64, &out, &mut Vec::new()).unwrap();
        assert_eq!(
            std::fs::read(out.join("Image")).unwrap(),
            fake_image(Architecture::Arm64)
        );
        assert!(!out.join("bzImage").exists());
        std::fs::write(&vmlinuz, [0x1f, 0x8b, 8, 0]).unwrap();
        let err = build_error(&packages, Architecture::Arm64, &dir.path().join("out-gz"));
        assert!(err.ends_with("it is gzip-compressed data"), "{err}");
    }

    #[test]
    fn unknown_params_are_rejected() {
        let step = ResolvedStep {
            builder: "kernel".into(),
            name: "kernel".into(),
            params: serde_json::json!({ "architecture": "amd64", "packages": [], "pakages": [] }),
            inputs: vec![],
            closure: vec![],
        };
        let err = step.params::<KernelParams>().unwrap_err().to_string();
        assert!(err.contains("pakages"), "{err}");
    }
}
