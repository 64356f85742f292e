//! Boots a real system under QEMU (TCG): Debian's cloud kernel and
//! busybox-static (downloaded with `apt-get download` into a cache reused
//! across runs), the kernel and initrd made by the real builders, the real
//! stage 1, and a hand-assembled toplevel in a temporary store whose stage 2
//! prints a marker and powers off.

// Helpers outside #[test] functions unwrap too: this whole file is a test.
#![allow(clippy::unwrap_used)]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use imago::boot::kmod::{self, ModuleIndex};
use imago::boot::qemu::Accel;
use imago::boot::{InitrdBuilder, KernelBuilder};
use imago::builders::{BuildContext, Builder, ResolvedStep};

use crate::support::boot as boot_support;

use boot_support::*;

/// The system every test boots, built once per test process.
fn system() -> &'static System {
    static SYSTEM: OnceLock<System> = OnceLock::new();
    SYSTEM.get_or_init(|| build_system("boot-vm-store"))
}

#[test]
fn boots_to_stage_2_under_tcg() {
    let sys = system();
    let (console, elapsed) = boot_until(&launch(sys, &[]), MARKER, Duration::from_secs(90));
    eprintln!("console:\n{console}");
    eprintln!(
        "boot to marker: {:.2} s wall; initrd {} KiB (built in {:.2} s)",
        elapsed.as_secs_f64(),
        sys.initrd_bytes / 1024,
        sys.initrd_build.as_secs_f64()
    );
    assert!(
        console.contains(&format!("imago stage 1: switching to {}", sys.toplevel)),
        "{console}"
    );
    assert!(
        console.contains(&format!("{MARKER} pid=1")),
        "stage 2 runs as PID 1:\n{console}"
    );
    assert!(
        !console.contains("stage 2:"),
        "layout check failed:\n{console}"
    );
    assert!(
        sys.initrd_bytes < 3 * 1024 * 1024,
        "initrd is {} bytes",
        sys.initrd_bytes
    );
}

#[test]
fn stage_1_failure_names_what_failed() {
    let sys = system();
    // A second imago.system= overrides the first: a system that is not there.
    let (console, _) = boot_until(
        &launch(
            sys,
            &["imago.system=/imago/store/00000000000000000000000000000009-missing"],
        ),
        "rebooting in 10 s",
        Duration::from_secs(90),
    );
    assert!(
        console.contains(
            "stage 1: system /imago/store/00000000000000000000000000000009-missing has no executable init"
        ),
        "{console}"
    );
}

#[test]
fn real_kernel_module_index() {
    let sys = system();
    let kernel = sys.store.join(sys.kernel.rsplit('/').next().unwrap());
    let version = std::fs::read_to_string(kernel.join("version")).unwrap();
    let version = version.trim();
    let dir = kernel.join("lib/modules").join(version);
    let virtio_pci = dir.join("kernel/drivers/virtio/virtio_pci.ko");
    let info = kmod::parse_modinfo(&virtio_pci, &kmod::read_module(&virtio_pci).unwrap()).unwrap();
    let mut depends = info.depends.clone();
    depends.sort();
    assert_eq!(
        depends,
        [
            "virtio",
            "virtio_pci_legacy_dev",
            "virtio_pci_modern_dev",
            "virtio_ring"
        ]
    );
    assert!(
        info.aliases.iter().any(|a| a.starts_with("pci:v00001AF4")),
        "{:?}",
        info.aliases
    );

    let index = ModuleIndex::load(&dir, version).unwrap();
    assert_eq!(
        index.closure(&["virtio_blk"]).unwrap(),
        ["virtio_ring", "virtio", "virtio_blk"]
    );
    assert!(
        index.closure(&["ext4"]).unwrap().is_empty(),
        "ext4 is built in"
    );
    let err = index.closure(&["virtio-bkl"]).unwrap_err().to_string();
    assert!(err.contains("did you mean virtio_blk"), "{err}");
    // The index read back gives what a fresh scan of the tree gives.
    let scanned = ModuleIndex::scan(&dir, version).unwrap();
    assert_eq!(scanned.modules.len(), index.modules.len());
    assert_eq!(scanned.aliases, index.aliases);
    for (name, module) in &scanned.modules {
        assert_eq!(module.path, index.modules[name].path);
        assert_eq!(
            scanned.closure(&[name]).unwrap(),
            index.closure(&[name]).unwrap(),
            "{name}"
        );
    }
}

#[test]
fn boots_from_an_ext4_disk_by_label() {
    let sys = system();
    // A root file system holding just the toplevel's objects in /imago/store.
    let scratch = tempfile::tempdir().unwrap();
    let rootfs = scratch.path().join("rootfs");
    std::fs::create_dir_all(rootfs.join("imago/store")).unwrap();
    for object in &sys.closure {
        let status = Command::new("cp")
            .arg("-a")
            .arg(sys.store.join(object))
            .arg(rootfs.join("imago/store"))
            .status()
            .unwrap();
        assert!(status.success());
    }
    let disk = scratch.path().join("root.img");
    let out = Command::new("mkfs.ext4")
        .args(["-q", "-L", "imago-root", "-E", "root_owner=0:0", "-d"])
        .arg(&rootfs)
        .arg(&disk)
        .arg("64M")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut vm = launch(sys, &[]);
    vm.config.store = None;
    vm.config.cmdline = vm.spec.cmdline(
        &sys.toplevel,
        &[
            "root=LABEL=imago-root".into(),
            "rootfstype=ext4".into(),
            "console=ttyS0".into(),
        ],
    );
    let mut drive = std::ffi::OsString::from("file=");
    drive.push(&disk);
    drive.push(",if=none,id=root,format=raw");
    vm.config.extra_args = vec![
        "-drive".into(),
        drive,
        "-device".into(),
        "virtio-blk-pci,drive=root".into(),
    ];
    let (console, elapsed) = boot_until(&vm, MARKER, Duration::from_secs(90));
    eprintln!("disk boot to marker: {:.2} s wall", elapsed.as_secs_f64());
    assert!(console.contains(&format!("{MARKER} pid=1")), "{console}");
    assert!(
        !console.contains("stage 2:"),
        "layout check failed:\n{console}"
    );
}

#[test]
fn missing_root_device_times_out_with_a_message() {
    let sys = system();
    let mut vm = launch(sys, &[]);
    vm.config.store = None;
    vm.config.cmdline = vm.spec.cmdline(
        &sys.toplevel,
        &["root=LABEL=nothere".into(), "console=ttyS0".into()],
    );
    let (console, _) = boot_until(&vm, "rebooting in 10 s", Duration::from_secs(120));
    assert!(
        console.contains("imago stage 1: waiting for root device LABEL=nothere"),
        "{console}"
    );
    assert!(
        console.contains("stage 1: root device LABEL=nothere did not appear within 30 s"),
        "{console}"
    );
}

/// Runs `builder` into a temporary build dir of `store` and adds the result.
fn build_in_store(
    store: &imago::store::Store,
    builder: &dyn Builder,
    name: &str,
    params: serde_json::Value,
    inputs: &[imago::store::StorePath],
) -> imago::store::StorePath {
    let ctx = BuildContext {
        store_dir: store.dir().to_owned(),
        deb_cache: PathBuf::new(),
        offline: true,
    };
    let tmp = store.temp_output().unwrap();
    let step = ResolvedStep {
        builder: name.into(),
        name: name.into(),
        params,
        inputs: inputs.iter().map(|p| p.to_absolute()).collect(),
        closure: store
            .closure(inputs)
            .unwrap()
            .iter()
            .map(|p| p.to_absolute())
            .collect(),
    };
    let mut log = Vec::new();
    builder
        .build(&ctx, &step, &tmp.out(), &mut log)
        .unwrap_or_else(|e| panic!("{name}: {e:#}\n{}", String::from_utf8_lossy(&log)));
    store.add(tmp, name, inputs, Some(name)).unwrap()
}

/// The whole pipeline through the real store and the real deb unpacker, then
/// `imago run --toplevel` as a user runs it.
#[test]
fn imago_run_boots_a_toplevel_from_a_real_store() {
    use imago::debian::builder::DEB_FILE;
    use imago::store::Store;

    let debs = debs();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    // busybox goes through the real deb unpacker. The kernel package is
    // unpacked with dpkg-deb: it holds names that differ only in case
    // (xt_DSCP.ko and xt_dscp.ko), which the deb unpacker refuses.
    let busybox_deb = store.add_path(&debs[0], "busybox-static.deb").unwrap();
    let busybox = build_in_store(
        &store,
        &DEB_FILE,
        "busybox-static",
        serde_json::json!({ "file": busybox_deb.to_absolute() }),
        &[busybox_deb],
    );
    let scratch = dir.path().join("unpacked");
    std::fs::create_dir_all(&scratch).unwrap();
    let mut unpacked = vec![busybox];
    for (n, (deb, name)) in debs[1..]
        .iter()
        .zip(["linux-image-cloud-amd64", "linux-image-cloud"])
        .enumerate()
    {
        unpack(deb, &scratch, n, name);
        let object = scratch.join(object_name(n, name));
        unpacked.push(store.add_path(&object, name).unwrap());
    }
    let kernel = build_in_store(
        &store,
        &KernelBuilder,
        "kernel",
        serde_json::json!({ "architecture": "amd64", "packages": [unpacked[1].to_absolute(), unpacked[2].to_absolute()] }),
        &unpacked[1..],
    );
    let script = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../modules/boot/stage-1.sh"
    ));
    let stage1 = store.add_path(script, "stage-1.sh").unwrap();
    let initrd = build_in_store(
        &store,
        &InitrdBuilder,
        "initrd",
        serde_json::json!({
            "kernel": kernel.to_absolute(),
            "busybox": unpacked[0].to_absolute(),
            "stage1": stage1.to_absolute(),
            "modules": ["virtio_pci"],
            "availableModules": ["virtiofs"],
        }),
        &[kernel.clone(), unpacked[0].clone(), stage1.clone()],
    );

    // The toplevel, with the links the layout promises.
    let tmp = store.temp_output().unwrap();
    let top = tmp.out();
    std::fs::create_dir_all(top.join("sw/usr/bin")).unwrap();
    std::fs::copy(
        store.physical(&unpacked[0]).join("usr/bin/busybox"),
        top.join("sw/usr/bin/busybox"),
    )
    .unwrap();
    write_exec(
        &top.join("init"),
        &format!(
            "#!/usr/bin/busybox sh\n/usr/bin/busybox echo {MARKER}\n/usr/bin/busybox poweroff -f\n"
        ),
    );
    let kernel_image = format!("{}/bzImage", kernel.to_absolute());
    std::os::unix::fs::symlink(&kernel_image, top.join("kernel")).unwrap();
    std::os::unix::fs::symlink(initrd.to_absolute(), top.join("initrd")).unwrap();
    std::os::unix::fs::symlink(
        format!("{}/lib/modules", kernel.to_absolute()),
        top.join("kernel-modules"),
    )
    .unwrap();
    std::fs::write(
        top.join("boot.json"),
        serde_json::json!({
            "version": 1, "label": "cli", "system_name": "cli-test",
            "kernel": kernel_image, "initrd": initrd.to_absolute(),
            "kernel_params": ["panic=-1", "quiet"], "init": "init",
        })
        .to_string(),
    )
    .unwrap();
    let system = store
        .add(tmp, "system", &[kernel.clone(), initrd.clone()], None)
        .unwrap();

    // `imago run --toplevel` through an out-link-like symlink.
    let link = dir.path().join("result");
    std::os::unix::fs::symlink(store.physical(&system), &link).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_imago"))
        .arg("--store")
        .arg(store.dir())
        .args(["run", "--memory", "512M", "--toplevel"])
        .arg(&link)
        .env("IMAGO_ACCEL", "tcg")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let out = child.wait_with_output().unwrap();
        let _ = tx.send(());
        out
    });
    if rx.recv_timeout(Duration::from_secs(120)).is_err() {
        // Kill imago, QEMU and virtiofsd together.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .status();
    }
    let out = waiter.join().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "imago run failed: {}\n{stderr}\n{stdout}",
        out.status
    );
    assert!(stderr.contains("with tcg: IMAGO_ACCEL=tcg"), "{stderr}");
    assert!(
        stdout.contains(&format!(
            "imago stage 1: switching to {}",
            system.to_absolute()
        )),
        "{stdout}"
    );
    assert!(stdout.contains(MARKER), "{stdout}");
}

/// The accelerator probe decides once, then answers from its cache.
#[test]
fn accelerator_probe_is_decided_once_and_cached() {
    let first = imago::boot::kvm::choose(imago::arch::Architecture::Amd64).unwrap();
    eprintln!("accelerator: {} ({})", first.accel.name(), first.reason);
    let started = Instant::now();
    let second = imago::boot::kvm::choose(imago::arch::Architecture::Amd64).unwrap();
    assert_eq!(first.accel, second.accel);
    if let Ok(forced) = std::env::var("IMAGO_ACCEL") {
        assert_eq!(second.reason, format!("IMAGO_ACCEL={forced}"));
    } else if Path::new("/dev/kvm").exists() && second.reason.contains("cached") {
        eprintln!("cached answer in {:?}", started.elapsed());
    } else {
        assert_eq!(second.accel, Accel::Tcg);
        assert!(second.reason.contains("/dev/kvm"), "{}", second.reason);
    }
}

#[test]
fn a_store_that_does_not_mount_is_reported() {
    let sys = system();
    let mut vm = launch(sys, &[]);
    vm.config.cmdline = vm.config.cmdline.replace(
        "imago.store=virtiofs:imago-store",
        "imago.store=virtiofs:wrong-tag",
    );
    let (console, _) = boot_until(&vm, "rebooting in 10 s", Duration::from_secs(120));
    assert!(
        console.contains(
            "stage 1: cannot mount the store: virtiofs share 'wrong-tag' did not mount within 10 s: mount:"
        ),
        "{console}"
    );
}

#[test]
fn debug1_gives_a_shell_on_failure() {
    let sys = system();
    let vm = launch(
        sys,
        &[
            "imago.debug1",
            "imago.system=/imago/store/00000000000000000000000000000009-missing",
        ],
    );
    let (console, _) = boot_with_input(
        &vm,
        "DEBUG-42",
        Duration::from_secs(90),
        Some(("starting a shell", "echo DEBUG-$((6*7))\n")),
    );
    assert!(
        console.contains("stage 1: starting a shell (imago.debug1); exit it to reboot"),
        "{console}"
    );
}
