//! Disk images built from a small synthetic system in a temporary store:
//! the partition table, the ESP and the root file system are read back with
//! independent readers (the `gpt` and `fatfs` crates, e2fsprogs' debugfs),
//! and two builds must be byte-identical.

// Test helpers outside #[test] functions panic on failure too.
#![allow(clippy::unwrap_used)]

use imago::image::{ImageError, ImageIds, ImageOptions, MIB, build_raw};
use imago::store::{Store, StorePath};
use std::fs;
use std::io::Read;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Command;

const AWKWARD: &str = "system-systemd\\x2dcryptsetup \"quoted\".slice";

struct System {
    _dir: tempfile::TempDir,
    store: Store,
    toplevel: StorePath,
    bootloader: Vec<u8>,
}

fn add_file(store: &Store, dir: &Path, name: &str, bytes: &[u8]) -> StorePath {
    let src = dir.join(name);
    fs::write(&src, bytes).unwrap();
    store.add_path(&src, name).unwrap()
}

/// A toplevel with a kernel, an initrd, a boot loader and a little /usr.
fn system(with_bootloader: bool) -> System {
    system_for(with_bootloader, "amd64", b"MZ")
}

/// [`system`] of the architecture `arch`, its kernel image starting with
/// `head` (the EFI stub's `MZ`, or not).
fn system_for(with_bootloader: bool, arch: &str, head: &[u8]) -> System {
    let image = if arch == "arm64" { "Image" } else { "bzImage" };
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let scratch = dir.path().join("scratch");
    fs::create_dir(&scratch).unwrap();

    let kernel_src = scratch.join("linux");
    fs::create_dir(&kernel_src).unwrap();
    let mut kernel_image = head.to_vec();
    kernel_image.resize(300_000, 0x4d);
    fs::write(kernel_src.join(image), kernel_image).unwrap();
    // Names like systemd's escaped unit names must survive the debugfs pass.
    fs::write(kernel_src.join(AWKWARD), b"x").unwrap();
    let kernel = store.add_path(&kernel_src, "linux").unwrap();
    let initrd = add_file(&store, &scratch, "initrd", &[0x07; 100_000]);
    let bootloader: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
    let efi = add_file(&store, &scratch, "systemd-bootx64.efi", &bootloader);

    let tmp = store.temp_output().unwrap();
    let out = tmp.out();
    fs::create_dir(&out).unwrap();
    let k = format!("{}/{image}", kernel.to_absolute());
    let boot_json = serde_json::json!({
        "version": 1, "label": "test (Imago)", "system_name": "test",
        "architecture": arch,
        "kernel": k, "initrd": initrd.to_absolute(),
        "kernel_params": ["console=ttyS0"], "init": "init",
    });
    fs::write(out.join("boot.json"), boot_json.to_string()).unwrap();
    symlink(&k, out.join("kernel")).unwrap();
    symlink(initrd.to_absolute(), out.join("initrd")).unwrap();
    if with_bootloader {
        symlink(efi.to_absolute(), out.join("systemd-boot.efi")).unwrap();
    }
    let refs = [kernel.clone(), initrd.clone(), efi.clone()];
    let toplevel = store.add(tmp, "imago-system-test", &refs, None).unwrap();
    System {
        _dir: dir,
        store,
        toplevel,
        bootloader,
    }
}

fn build(sys: &System, name: &str) -> Result<std::path::PathBuf, ImageError> {
    let out = sys._dir.path().join(name);
    build_raw(
        &sys.store,
        &sys.toplevel,
        &ImageOptions {
            size: None,
            esp_size: 64 * MIB,
            output: out.clone(),
        },
    )?;
    Ok(out)
}

#[test]
fn two_builds_are_byte_identical() {
    let sys = system(true);
    let a = fs::read(build(&sys, "a.raw").unwrap()).unwrap();
    let b = fs::read(build(&sys, "b.raw").unwrap()).unwrap();
    assert_eq!(a.len(), b.len());
    assert!(a == b, "two builds of the same system differ");
}

#[test]
fn partition_table_has_esp_and_root_with_derived_guids() {
    let sys = system(true);
    let image = build(&sys, "disk.raw").unwrap();
    let disk = gpt::GptConfig::new().open(&image).unwrap();
    let ids = ImageIds::derive(&sys.toplevel);
    assert_eq!(*disk.guid(), ids.disk_guid);
    let parts = disk.partitions();
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[&1].part_type_guid, gpt::partition_types::EFI);
    assert_eq!(parts[&1].part_guid, ids.esp_part_guid);
    assert_eq!(parts[&1].first_lba * 512, MIB);
    assert_eq!(
        parts[&2].part_type_guid,
        gpt::partition_types::LINUX_ROOT_X64
    );
    assert_eq!(parts[&2].part_guid, ids.root_part_guid);
    assert!(parts[&2].first_lba > parts[&1].last_lba);
}

/// The FAT file system of an image's ESP.
fn esp_of(image: &Path) -> fatfs::FileSystem<std::io::Cursor<Vec<u8>>> {
    let disk = gpt::GptConfig::new().open(image).unwrap();
    let esp = &disk.partitions()[&1];
    let mut bytes = fs::read(image).unwrap();
    let start = (esp.first_lba * 512) as usize;
    let end = ((esp.last_lba + 1) * 512) as usize;
    let part = std::io::Cursor::new(bytes.drain(start..end).collect::<Vec<u8>>());
    fatfs::FileSystem::new(part, fatfs::FsOptions::new()).unwrap()
}

#[test]
fn an_arm64_image_has_an_arm64_root_and_bootaa64() {
    let sys = system_for(true, "arm64", b"MZ");
    let image = build(&sys, "arm64.raw").unwrap();
    let disk = gpt::GptConfig::new().open(&image).unwrap();
    assert_eq!(
        disk.partitions()[&2].part_type_guid,
        gpt::partition_types::LINUX_ROOT_ARM_64
    );
    let fs = esp_of(&image);
    let root = fs.root_dir();
    for path in ["EFI/BOOT/BOOTAA64.EFI", "EFI/systemd/systemd-bootaa64.efi"] {
        let mut efi = Vec::new();
        root.open_file(path).unwrap().read_to_end(&mut efi).unwrap();
        assert!(
            efi == sys.bootloader,
            "{path} is not the system's boot loader"
        );
    }
    assert!(root.open_file("EFI/BOOT/BOOTX64.EFI").is_err());
    let mut entry = String::new();
    root.open_file("loader/entries/imago-test-1.conf")
        .unwrap()
        .read_to_string(&mut entry)
        .unwrap();
    assert!(entry.contains("-linux-Image\n"), "{entry}");
}

#[test]
fn a_kernel_without_the_efi_stub_is_refused() {
    let sys = system_for(true, "arm64", &[0x1f, 0x8b]);
    let err = build(&sys, "gz.raw").unwrap_err().to_string();
    assert!(
        err.contains("is not an EFI program") && err.contains("/Image"),
        "{err}"
    );
    assert!(!sys._dir.path().join("gz.raw").exists());
}

#[test]
fn esp_holds_systemd_boot_the_kernel_and_a_bls_entry() {
    let sys = system(true);
    let image = build(&sys, "disk.raw").unwrap();
    let disk = gpt::GptConfig::new().open(&image).unwrap();
    let esp = &disk.partitions()[&1];
    let mut bytes = fs::read(&image).unwrap();
    let start = (esp.first_lba * 512) as usize;
    let end = ((esp.last_lba + 1) * 512) as usize;
    let part = std::io::Cursor::new(bytes.drain(start..end).collect::<Vec<u8>>());
    let fs = fatfs::FileSystem::new(part, fatfs::FsOptions::new()).unwrap();
    assert_eq!(fs.fat_type(), fatfs::FatType::Fat32);
    let root = fs.root_dir();
    let mut efi = Vec::new();
    root.open_file("EFI/BOOT/BOOTX64.EFI")
        .unwrap()
        .read_to_end(&mut efi)
        .unwrap();
    assert!(
        efi == sys.bootloader,
        "BOOTX64.EFI is not the system's boot loader"
    );
    let mut entry = String::new();
    root.open_file("loader/entries/imago-test-1.conf")
        .unwrap()
        .read_to_string(&mut entry)
        .unwrap();
    let ids = ImageIds::derive(&sys.toplevel);
    assert!(entry.contains("title test (generation 1)\n"), "{entry}");
    assert!(
        entry.contains(&format!("imago.system={}", sys.toplevel.to_absolute())),
        "{entry}"
    );
    assert!(
        entry.contains(&format!("root=UUID={}", ids.root_fs_uuid)),
        "{entry}"
    );
    let linux = entry
        .lines()
        .find_map(|l| l.strip_prefix("linux /"))
        .unwrap();
    let mut kernel = Vec::new();
    root.open_file(linux)
        .unwrap()
        .read_to_end(&mut kernel)
        .unwrap();
    assert_eq!(kernel.len(), 300_000);
    assert!(
        kernel.starts_with(b"MZ") && kernel[2..].iter().all(|&b| b == 0x4d),
        "the ESP's kernel is not the system's"
    );
    let mut loader = String::new();
    root.open_file("loader/loader.conf")
        .unwrap()
        .read_to_string(&mut loader)
        .unwrap();
    assert!(loader.contains("default imago-test-*\n"), "{loader}");
}

fn debugfs(image: &Path, offset: u64, request: &str) -> String {
    let out = Command::new("debugfs")
        .arg("-R")
        .arg(request)
        .arg(format!("{}?offset={offset}", image.display()))
        .output()
        .expect("debugfs (e2fsprogs) runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn root_holds_the_closure_and_generation_one() {
    let sys = system(true);
    let image = build(&sys, "disk.raw").unwrap();
    let disk = gpt::GptConfig::new().open(&image).unwrap();
    let offset = disk.partitions()[&2].first_lba * 512;
    let listing = debugfs(&image, offset, "ls -p /imago/store");
    for path in sys
        .store
        .closure(std::slice::from_ref(&sys.toplevel))
        .unwrap()
    {
        assert!(
            listing.contains(path.as_str()),
            "{path} missing:\n{listing}"
        );
    }
    let link = debugfs(&image, offset, "cat /imago/var/profiles/system-1-link");
    assert!(link.contains(&sys.toplevel.to_absolute()), "{link}");
    let kernel = debugfs(
        &image,
        offset,
        &format!(
            "stat /imago/store/{}/bzImage",
            sys.store
                .closure(std::slice::from_ref(&sys.toplevel))
                .unwrap()
                .iter()
                .find(|p| p.name() == "linux")
                .unwrap()
        ),
    );
    assert!(kernel.contains("Size: 300000"), "{kernel}");
    assert!(kernel.contains("mtime: 0x00000001"), "{kernel}");
    assert!(kernel.contains("ctime: 0x00000001"), "{kernel}");
    let linux = sys
        .store
        .closure(std::slice::from_ref(&sys.toplevel))
        .unwrap()
        .into_iter()
        .find(|p| p.name() == "linux")
        .unwrap();
    let awkward = debugfs(
        &image,
        offset,
        &format!(
            "stat \"/imago/store/{linux}/{}\"",
            AWKWARD.replace('"', "\"\"")
        ),
    );
    assert!(awkward.contains("ctime: 0x00000001"), "{awkward}");
    let usr = debugfs(&image, offset, "stat /bin");
    assert!(usr.contains("Type: symlink"), "{usr}");
}

#[test]
fn a_size_too_small_for_the_closure_is_refused() {
    let sys = system(true);
    let err = build_raw(
        &sys.store,
        &sys.toplevel,
        &ImageOptions {
            size: Some(32 * MIB),
            esp_size: 64 * MIB,
            output: sys._dir.path().join("small.raw"),
        },
    )
    .unwrap_err();
    assert!(matches!(err, ImageError::TooSmall { .. }), "{err}");
    assert!(!sys._dir.path().join("small.raw").exists());
}

#[test]
fn a_system_without_a_boot_loader_is_refused_and_nothing_is_left() {
    let sys = system(false);
    let err = build(&sys, "disk.raw").unwrap_err();
    assert!(err.to_string().contains("no boot loader"), "{err}");
    assert!(!sys._dir.path().join("disk.raw").exists());
    let leftovers: Vec<_> = fs::read_dir(sys._dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".imago-image-"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

/// Reliability catalogue case 28 (an image made by an ordinary user): the
/// image of a store owned by another uid (above 65535, so ext4's high owner
/// bits matter too) has every inode owned by root and is byte-identical to
/// the image of the same store owned by root. Without root, the store is
/// the current (ordinary) user's and only the owners are checked.
#[test]
fn an_image_of_a_store_owned_by_another_uid_is_roots() {
    let sys = system(true);
    let as_root = rustix::process::geteuid().is_root();
    let before = if as_root {
        let a = fs::read(build(&sys, "root.raw").unwrap()).unwrap();
        for e in walkdir::WalkDir::new(sys._dir.path().join("store")) {
            std::os::unix::fs::lchown(e.unwrap().path(), Some(100_001), Some(100_001)).unwrap();
        }
        Some(a)
    } else {
        None
    };
    let image = build(&sys, "user.raw").unwrap();
    let disk = gpt::GptConfig::new().open(&image).unwrap();
    let offset = disk.partitions()[&2].first_lba * 512;
    let linux = sys
        .store
        .closure(std::slice::from_ref(&sys.toplevel))
        .unwrap()
        .into_iter()
        .find(|p| p.name() == "linux")
        .unwrap();
    for path in [
        "/".to_owned(),
        "/etc".to_owned(),
        "/root".to_owned(),
        "/tmp".to_owned(),
        "/imago".to_owned(),
        "/imago/store".to_owned(),
        "/imago/var/profiles/system".to_owned(),
        format!("/imago/store/{linux}"),
        format!("/imago/store/{linux}/bzImage"),
        format!("/imago/store/{}/kernel", sys.toplevel),
    ] {
        let stat = debugfs(&image, offset, &format!("stat {path}"));
        assert!(
            stat.contains("User:     0   Group:     0 "),
            "{path} is not root's:\n{stat}"
        );
    }
    if let Some(a) = before {
        let b = fs::read(&image).unwrap();
        assert!(
            a == b,
            "the image of the store owned by uid 100001 differs from root's"
        );
    }
}
