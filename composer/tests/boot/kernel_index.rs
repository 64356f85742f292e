//! The kernel builder's module indexes for Debian's real cloud kernels,
//! bookworm's (modules as plain `.ko`) and trixie's (`.ko.xz`), for amd64
//! and trixie's for arm64, read by the host's real kmod and compared with
//! what the host's `depmod` writes for the same tree. Each kernel is the
//! one the examples' lock for its release pins, fetched by hash into
//! Imago's download cache.
//!
//! Needs kmod's `modprobe` and `depmod` on the host (`.ci/host-tools.sh
//! test` installs them).

// Test helpers outside #[test] functions panic on failure too.
#![allow(clippy::unwrap_used)]

use crate::support::boot as boot_support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use imago::arch::Architecture;
use imago::boot::kernel::build_kernel;
use imago::boot::kmod::index::read_index;

/// An index's entries: key to `(priority, value)`.
type Entries = BTreeMap<String, Vec<(u32, String)>>;

fn host_tool(name: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/sbin", "/usr/bin", "/bin"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return p;
        }
    }
    panic!(
        "this test needs kmod's `{name}` (Debian package kmod; `.ci/host-tools.sh test` installs it)"
    );
}

/// A release's kernel: the examples' lock that pins it and the file name
/// extension of its modules.
#[derive(Clone, Copy)]
struct Release {
    lock: &'static str,
    module: &'static str,
    arch: Architecture,
}

const BOOKWORM: Release = Release {
    lock: "bookworm/imago.lock",
    module: ".ko",
    arch: Architecture::Amd64,
};

const TRIXIE: Release = Release {
    lock: "imago.lock",
    module: ".ko.xz",
    arch: Architecture::Amd64,
};

const TRIXIE_ARM64: Release = Release {
    lock: "arm64/imago.lock",
    module: ".ko.xz",
    arch: Architecture::Arm64,
};

struct Kernel {
    _dir: tempfile::TempDir,
    /// The kernel object (`<root>/lib/modules/<version>`).
    root: PathBuf,
    version: String,
    config: PathBuf,
}

impl Kernel {
    fn modules(&self) -> PathBuf {
        self.root.join("lib/modules").join(&self.version)
    }

    /// `modprobe --show-depends name` as lines with the tree's path removed.
    fn show_depends(&self, name: &str) -> Vec<String> {
        let out = Command::new(host_tool("modprobe"))
            .arg("-C")
            .arg(&self.config)
            .arg("-d")
            .arg(&self.root)
            .args(["-S", &self.version, "--show-depends", name])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "modprobe --show-depends {name}: {stderr}"
        );
        let prefix = format!("{}/", self.modules().display());
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.trim().replace(&prefix, ""))
            .collect()
    }

    fn index(&self, file: &str) -> Entries {
        let path = self.modules().join(file);
        read_index(&std::fs::read(&path).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }
}

/// Unpacks the kernel package and runs the kernel builder on it.
fn built_kernel(release: Release) -> Kernel {
    let deb = boot_support::kernel_image_deb(release.lock);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    std::fs::create_dir(&store).unwrap();
    let logical = boot_support::unpack(&deb, &store, 1, "linux-image-cloud");
    let physical = store.join(logical.trim_start_matches("/imago/store/"));
    let root = dir.path().join("kernel");
    let mut log = Vec::new();
    build_kernel(&[(logical, physical)], release.arch, &root, &mut log).unwrap();
    eprintln!("{}", String::from_utf8_lossy(&log));
    let version = std::fs::read_to_string(root.join("version"))
        .unwrap()
        .trim()
        .to_owned();
    let config = dir.path().join("modprobe.d");
    std::fs::create_dir(&config).unwrap();
    Kernel {
        _dir: dir,
        root,
        version,
        config,
    }
}

#[test]
fn real_modprobe_loads_nf_tables_and_autofs4_from_the_built_bookworm_kernel() {
    modprobe_loads_nf_tables_and_autofs4(BOOKWORM);
}

#[test]
fn real_modprobe_loads_nf_tables_and_autofs4_from_the_built_trixie_kernel() {
    modprobe_loads_nf_tables_and_autofs4(TRIXIE);
}

fn modprobe_loads_nf_tables_and_autofs4(release: Release) {
    let kernel = built_kernel(release);
    let insmod = |module: &str| format!("insmod kernel/{module}{}", release.module);
    for file in [
        "modules.dep.bin",
        "modules.alias.bin",
        "modules.symbols.bin",
        "modules.builtin.bin",
        "modules.builtin.alias.bin",
        "modules.softdep",
        "modules.devname",
        "modules.dep",
        "modules.alias",
    ] {
        assert!(kernel.modules().join(file).is_file(), "{file} is missing");
    }
    let nf_tables = kernel.show_depends("nf_tables");
    assert_eq!(
        nf_tables.last(),
        Some(&insmod("net/netfilter/nf_tables")),
        "{nf_tables:?}"
    );
    let position = |module: &str| {
        nf_tables
            .iter()
            .position(|l| l == &insmod(module))
            .unwrap_or_else(|| panic!("{module} not loaded: {nf_tables:?}"))
    };
    // Its dependencies, and libcrc32c's soft dependency on crc32c first.
    position("net/netfilter/nfnetlink");
    assert!(position("arch/x86/crypto/crc32c-intel") < position("lib/libcrc32c"));
    assert_eq!(
        kernel.show_depends("autofs4"),
        [insmod("fs/autofs/autofs4")]
    );
    assert_eq!(kernel.show_depends("ext4"), ["builtin ext4"]);
    assert_eq!(
        kernel.show_depends("symbol:nft_do_chain"),
        kernel.show_depends("nf_tables")
    );
    let devname = std::fs::read_to_string(kernel.modules().join("modules.devname")).unwrap();
    assert!(devname.contains("\nautofs4 autofs c10:235\n"), "{devname}");
}

/// Debian's arm64 cloud kernel, built on this (amd64) host: its image is
/// `Image` (uncompressed, with the EFI stub: a PE/COFF program systemd-boot
/// starts) and the devices of QEMU's `virt` machine resolve: the PCI
/// transport, virtiofs, the console and ext4 are built in, the disk,
/// network and virtio-mmio drivers are modules.
#[test]
fn the_arm64_kernel_is_an_efi_image_and_resolves_the_virt_machines_virtio_drivers() {
    let kernel = built_kernel(TRIXIE_ARM64);
    let image = std::fs::read(kernel.root.join("Image")).unwrap();
    assert!(!kernel.root.join("bzImage").exists());
    assert_eq!(&image[..2], b"MZ", "the EFI stub's PE/COFF header");
    assert_eq!(&image[0x38..0x3c], b"ARM\x64", "the arm64 image header");
    let insmod = |module: &str| format!("insmod kernel/{module}{}", TRIXIE_ARM64.module);
    for builtin in ["virtio_pci", "virtiofs", "virtio_console", "ext4"] {
        assert_eq!(
            kernel.show_depends(builtin),
            [format!("builtin {builtin}")],
            "{builtin}"
        );
    }
    assert_eq!(
        kernel.show_depends("virtio_blk"),
        [insmod("drivers/block/virtio_blk")]
    );
    assert_eq!(
        kernel.show_depends("virtio_mmio"),
        [insmod("drivers/virtio/virtio_mmio")]
    );
    assert_eq!(
        kernel.show_depends("virtio_net").last(),
        Some(&insmod("drivers/net/virtio_net"))
    );
}

/// `(key -> values without priorities)` of an index.
fn values(index: &Entries) -> BTreeMap<&str, Vec<&str>> {
    index
        .iter()
        .map(|(k, v)| (k.as_str(), v.iter().map(|(_, s)| s.as_str()).collect()))
        .collect()
}

/// The non-comment lines of a text file, sorted.
fn sorted_lines(path: &Path) -> Vec<String> {
    let mut lines: Vec<String> = std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

#[test]
fn the_bookworm_indexes_match_what_the_hosts_depmod_writes() {
    indexes_match_depmod(BOOKWORM);
}

#[test]
fn the_trixie_indexes_match_what_the_hosts_depmod_writes() {
    indexes_match_depmod(TRIXIE);
}

fn indexes_match_depmod(release: Release) {
    let kernel = built_kernel(release);
    let dir = kernel.modules();
    let ours: BTreeMap<&str, Entries> = [
        "modules.dep.bin",
        "modules.alias.bin",
        "modules.symbols.bin",
        "modules.builtin.bin",
        "modules.builtin.alias.bin",
    ]
    .into_iter()
    .map(|f| (f, kernel.index(f)))
    .collect();
    let texts = [
        "modules.softdep",
        "modules.devname",
        "modules.symbols",
        "modules.alias",
    ];
    let our_texts: Vec<Vec<String>> = texts.iter().map(|f| sorted_lines(&dir.join(f))).collect();
    // Indexes whose values have one order only (priorities from
    // modules.order, as depmod's): depmod writes the same bytes.
    let identical = [
        "modules.alias.bin",
        "modules.symbols.bin",
        "modules.builtin.bin",
        "modules.builtin.alias.bin",
    ];
    let our_bytes: Vec<Vec<u8>> = identical
        .iter()
        .map(|f| std::fs::read(dir.join(f)).unwrap())
        .collect();

    // depmod rewrites every index in place.
    let status = Command::new(host_tool("depmod"))
        .arg("-b")
        .arg(&kernel.root)
        .arg(&kernel.version)
        .status()
        .unwrap();
    assert!(status.success());

    for file in [
        "modules.alias.bin",
        "modules.symbols.bin",
        "modules.builtin.bin",
        "modules.builtin.alias.bin",
    ] {
        let theirs = kernel.index(file);
        assert!(theirs.len() > 10, "{file}: {theirs:?}");
        assert_eq!(values(&ours[file]), values(&theirs), "{file}");
    }
    for (file, ours) in identical.iter().zip(&our_bytes) {
        let theirs = std::fs::read(dir.join(file)).unwrap();
        assert!(&theirs == ours, "{file}: not the bytes depmod writes");
    }
    // The same modules with the same paths and transitive dependencies (the
    // order within a line may differ; both are valid load orders).
    let split = |index: &Entries| -> BTreeMap<String, (String, BTreeSet<String>)> {
        index
            .iter()
            .map(|(name, v)| {
                assert_eq!(v.len(), 1, "{name}: {v:?}");
                let (path, deps) = v[0].1.split_once(':').unwrap();
                let deps = deps.split_whitespace().map(str::to_owned).collect();
                (name.clone(), (path.to_owned(), deps))
            })
            .collect()
    };
    let our_deps = split(&ours["modules.dep.bin"]);
    let their_deps = split(&kernel.index("modules.dep.bin"));
    assert!(their_deps.len() > 1000, "{}", their_deps.len());
    assert_eq!(our_deps.len(), their_deps.len());
    for (name, theirs) in &their_deps {
        assert_eq!(our_deps.get(name), Some(theirs), "{name}");
    }
    for (file, ours) in texts.iter().zip(&our_texts) {
        assert_eq!(ours, &sorted_lines(&dir.join(file)), "{file}");
    }
}
