use super::*;
use crate::boot::kernel::build_kernel;
use crate::boot::kmod::tests::{VIRTIO_TREE, write_tree};
use std::process::{Command, Stdio};

const SCRIPT: &str =
    "#!/bin/sh\n# imago-applets: mount modprobe\n# imago-applets: switch_root\necho hi\n";

struct Fixture {
    _dir: tempfile::TempDir,
    inputs: InitrdInputs,
}

fn fixture(modules: &[&str], available: &[&str]) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let pkg = dir.path().join("pkg");
    std::fs::create_dir_all(pkg.join("boot")).unwrap();
    std::fs::write(
        pkg.join("boot/vmlinuz-6.1.0-9-cloud-amd64"),
        crate::boot::kernel::tests::fake_image(crate::arch::Architecture::Amd64),
    )
    .unwrap();
    let mods = pkg.join("usr/lib/modules/6.1.0-9-cloud-amd64");
    std::fs::create_dir_all(&mods).unwrap();
    write_tree(
        &mods,
        VIRTIO_TREE,
        &["kernel/lib/crc32c.ko", "kernel/fs/ext4/ext4.ko"],
    );
    let kernel = dir.path().join("kernel");
    build_kernel(
        &[("/imago/store/pkg".into(), pkg)],
        crate::arch::Architecture::Amd64,
        &kernel,
        &mut Vec::new(),
    )
    .unwrap();

    let busybox = dir.path().join("busybox");
    std::fs::create_dir_all(busybox.join("usr/bin")).unwrap();
    std::fs::write(busybox.join("usr/bin/busybox"), b"\x7fELF busybox").unwrap();
    let stage1 = dir.path().join("stage-1.sh");
    std::fs::write(&stage1, SCRIPT).unwrap();
    let inputs = InitrdInputs {
        kernel,
        busybox,
        stage1,
        modules: modules.iter().map(|s| (*s).to_owned()).collect(),
        available_modules: available.iter().map(|s| (*s).to_owned()).collect(),
        extra_files: BTreeMap::new(),
    };
    Fixture { _dir: dir, inputs }
}

/// Runs the system `cpio` on `archive` in `dir` and returns its stdout.
fn cpio(args: &[&str], archive: &[u8], dir: &Path) -> String {
    let mut child = Command::new("cpio")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(archive).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn archive_holds_init_busybox_modules_and_index() {
    let f = fixture(&["virtio_pci", "virtio_blk", "ext4"], &["virtiofs"]);
    let mut log = Vec::new();
    let bytes = build_archive(&f.inputs, &mut log).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let listing = cpio(&["-t", "--quiet"], &bytes, dir.path());
    let base = "lib/modules/6.1.0-9-cloud-amd64";
    for expected in [
        "init",
        "bin/busybox",
        "bin/mount",
        "bin/modprobe",
        "bin/switch_root",
        "bin/sh",
        "dev/console",
        "proc",
        "sys",
        "sysroot",
        "run",
        "etc/initrd-modules",
        &format!("{base}/modules.dep"),
        &format!("{base}/modules.alias"),
        &format!("{base}/modules.builtin"),
        &format!("{base}/kernel/drivers/block/virtio_blk.ko"),
        &format!("{base}/kernel/fs/fuse/fuse.ko"),
        &format!("{base}/kernel/fs/fuse/virtiofs.ko"),
    ] {
        assert!(
            listing.lines().any(|l| l == expected),
            "`{expected}` missing:\n{listing}"
        );
    }
    assert!(
        !listing.contains(".zst") && !listing.contains(".xz"),
        "{listing}"
    );
    assert!(
        !listing.contains("ext4"),
        "built-in modules are skipped:\n{listing}"
    );

    cpio(
        &[
            "-i",
            "--quiet",
            "--make-directories",
            "--nonmatching",
            "dev/console",
        ],
        &bytes,
        dir.path(),
    );
    let root = dir.path();
    assert_eq!(std::fs::read_to_string(root.join("init")).unwrap(), SCRIPT);
    assert_eq!(
        std::fs::read_to_string(root.join("etc/initrd-modules")).unwrap(),
        "virtio_ring\nvirtio_pci_modern_dev\nvirtio_pci_legacy_dev\nvirtio\nvirtio_pci\nvirtio_blk\n"
    );
    // The compressed module was stored decompressed: a parseable ELF.
    let blk = root.join(base).join("kernel/drivers/block/virtio_blk.ko");
    let info = kmod::parse_modinfo(&blk, &std::fs::read(&blk).unwrap()).unwrap();
    assert_eq!(info.aliases, ["virtio:d00000002v*"]);
    let dep = std::fs::read_to_string(root.join(base).join("modules.dep")).unwrap();
    assert!(
        dep.contains(
            "kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko\n"
        ),
        "{dep}"
    );
    assert!(!dep.contains("virtio_pci_modern_dev.ko:") || dep.contains("virtio_pci.ko:"));
    let alias = std::fs::read_to_string(root.join(base).join("modules.alias")).unwrap();
    assert!(
        alias.contains("alias virtio:d0000001Av* virtiofs"),
        "{alias}"
    );
    let log = String::from_utf8(log).unwrap();
    assert!(log.contains("8 modules"), "{log}");
}

#[test]
fn archive_is_deterministic() {
    let a = fixture(&["virtio_blk"], &["virtiofs"]);
    let b = fixture(&["virtio_blk"], &["virtiofs"]);
    assert_eq!(
        build_archive(&a.inputs, &mut Vec::new()).unwrap(),
        build_archive(&b.inputs, &mut Vec::new()).unwrap()
    );
}

#[test]
fn unknown_module_is_named_with_suggestions() {
    let f = fixture(&["virtio_pci", "virtiofss"], &[]);
    let err = build_archive(&f.inputs, &mut Vec::new()).unwrap_err();
    let msg = format!("{:#}", anyhow::Error::new(err));
    assert!(msg.contains("unknown kernel module `virtiofss`"), "{msg}");
    assert!(msg.contains("did you mean virtiofs"), "{msg}");
}

#[test]
fn extra_files_are_added_and_collisions_rejected() {
    let mut f = fixture(&[], &[]);
    let extra = f.inputs.stage1.parent().unwrap().join("extra");
    std::fs::create_dir_all(extra.join("sub")).unwrap();
    std::fs::write(extra.join("sub/file"), b"data").unwrap();
    std::os::unix::fs::symlink("sub/file", extra.join("link")).unwrap();
    f.inputs.extra_files.insert("/etc/extra".into(), extra);
    let bytes = build_archive(&f.inputs, &mut Vec::new()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let listing = cpio(&["-tv", "--quiet"], &bytes, dir.path());
    assert!(listing.contains("etc/extra/sub/file"), "{listing}");
    assert!(listing.contains("etc/extra/link -> sub/file"), "{listing}");

    let mut g = fixture(&[], &[]);
    g.inputs
        .extra_files
        .insert("init".into(), g.inputs.stage1.clone());
    let err = build_archive(&g.inputs, &mut Vec::new())
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "initrd: extraFiles `init`: archive path `init` added twice"
    );
}

#[test]
fn missing_busybox_is_named() {
    let mut f = fixture(&[], &[]);
    std::fs::remove_file(f.inputs.busybox.join("usr/bin/busybox")).unwrap();
    f.inputs.busybox = f.inputs.busybox.clone();
    let err = build_archive(&f.inputs, &mut Vec::new())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("has neither usr/bin/busybox nor bin/busybox"),
        "{err}"
    );
}

#[test]
fn applets_come_from_the_script_declaration() {
    let applets = declared_applets(SCRIPT);
    let expected: BTreeSet<String> = ["mount", "modprobe", "switch_root"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    assert_eq!(applets, expected);
    let real = declared_applets(include_str!("../../../modules/boot/stage-1.sh"));
    for needed in [
        "switch_root",
        "modprobe",
        "findfs",
        "mount",
        "poweroff",
        "reboot",
    ] {
        assert!(
            real.contains(needed),
            "stage-1.sh does not declare `{needed}`"
        );
    }
}

#[test]
fn compressed_output_decompresses_to_the_archive() {
    let f = fixture(&["virtio_blk"], &[]);
    let bytes = build_archive(&f.inputs, &mut Vec::new()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("initrd");
    write_compressed(&bytes, &out, &mut Vec::new()).unwrap();
    let back = zstd::decode_all(&std::fs::read(&out).unwrap()[..]).unwrap();
    assert_eq!(back, bytes);
}

#[test]
fn params_use_camel_case_and_reject_unknown_fields() {
    let step = |params| ResolvedStep {
        builder: "initrd".into(),
        name: "initrd".into(),
        params,
        inputs: vec![],
        closure: vec![],
    };
    let ok = step(serde_json::json!({
        "kernel": "/imago/store/a-k", "busybox": "/imago/store/b-bb", "stage1": "/imago/store/c-s",
        "modules": ["virtio_pci"], "availableModules": ["virtiofs"], "extraFiles": {}
    }));
    let p: InitrdParams = ok.params().unwrap();
    assert_eq!(p.available_modules, ["virtiofs"]);
    let bad = step(serde_json::json!({
        "kernel": "/imago/store/a-k", "busybox": "/imago/store/b-bb", "stage1": "/imago/store/c-s",
        "available_modules": []
    }));
    let err = bad.params::<InitrdParams>().unwrap_err().to_string();
    assert!(err.contains("available_modules"), "{err}");
}

#[test]
fn extra_file_paths_outside_the_archive_are_rejected() {
    for bad in ["../etc/x", "etc/../../x", "", "a//b"] {
        let mut f = fixture(&[], &[]);
        f.inputs
            .extra_files
            .insert(bad.into(), f.inputs.stage1.clone());
        let err = build_archive(&f.inputs, &mut Vec::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid archive path"), "{bad}: {err}");
    }
}

#[test]
fn a_kernel_without_a_version_file_is_named() {
    let f = fixture(&[], &[]);
    std::fs::remove_file(f.inputs.kernel.join("version")).unwrap();
    let err = build_archive(&f.inputs, &mut Vec::new())
        .unwrap_err()
        .to_string();
    assert!(err.contains("version"), "{err}");
}

#[test]
fn a_stage1_symlink_is_not_followed() {
    let mut f = fixture(&[], &[]);
    let link = f.inputs.stage1.with_file_name("stage1-link");
    std::os::unix::fs::symlink("/etc/hostname", &link).unwrap();
    f.inputs.stage1 = link;
    let err = build_archive(&f.inputs, &mut Vec::new())
        .unwrap_err()
        .to_string();
    assert!(err.contains("is not a regular file"), "{err}");
}

#[test]
fn busybox_linked_out_of_its_object_is_refused() {
    let f = fixture(&[], &[]);
    let bin = f.inputs.busybox.join("usr/bin/busybox");
    std::fs::remove_file(&bin).unwrap();
    std::os::unix::fs::symlink("/bin/sh", &bin).unwrap();
    let err = build_archive(&f.inputs, &mut Vec::new())
        .unwrap_err()
        .to_string();
    assert!(err.contains("outside the object"), "{err}");
}

#[test]
fn an_extra_file_symlink_object_stays_a_symlink() {
    let mut f = fixture(&[], &[]);
    let link = f.inputs.stage1.with_file_name("extra-link");
    std::os::unix::fs::symlink("/etc/hostname", &link).unwrap();
    f.inputs.extra_files.insert("etc/hostname".into(), link);
    let bytes = build_archive(&f.inputs, &mut Vec::new()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let listing = cpio(&["-tv", "--quiet"], &bytes, dir.path());
    assert!(
        listing.contains("etc/hostname -> /etc/hostname"),
        "{listing}"
    );
}
