//! Shared by the boot tests and the boot benchmark: fetching Debian's cloud
//! kernel and busybox-static (pinned by the examples' lock), building a
//! kernel, an initrd and a busybox toplevel with the real builders, and
//! booting it under TCG while watching the console.

#![allow(clippy::unwrap_used, dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use imago::boot::qemu::Accel;
use imago::boot::run::{RunOptions, VmLaunch};
use imago::boot::{InitrdBuilder, KernelBuilder};
use imago::builders::{BuildContext, Builder, ResolvedStep};

pub const MARKER: &str = "IMAGO-BOOT-OK";

/// The three .debs — busybox-static, linux-image-cloud-amd64 and the
/// kernel image package it depends on — as the bookworm examples' lock pins them,
/// fetched by hash into Imago's download cache like any build's.
pub fn debs() -> Vec<PathBuf> {
    let lock = examples_lock("bookworm/imago.lock");
    let image = kernel_image_package(&lock);
    fetch(
        &lock,
        &["busybox-static", "linux-image-cloud-amd64", &image],
    )
}

/// The versioned cloud kernel package (not the metapackage) that the lock
/// `examples/<lock>` pins, fetched by hash into Imago's download cache.
pub fn kernel_image_deb(lock: &str) -> PathBuf {
    let lock = examples_lock(lock);
    let image = kernel_image_package(&lock);
    fetch(&lock, &[&image]).swap_remove(0)
}

fn examples_lock(name: &str) -> imago::debian::lock::Lock {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    imago::debian::lock::Lock::read(&examples.join(name)).unwrap()
}

/// The package the lock's cloud kernel metapackage (of the lock's
/// architecture) depends on for the image.
fn kernel_image_package(lock: &imago::debian::lock::Lock) -> String {
    let meta = format!("linux-image-cloud-{}", lock.platform.architecture.name());
    lock.packages[&meta]
        .depends
        .iter()
        .find(|d| d.starts_with("linux-image-6."))
        .unwrap_or_else(|| panic!("{meta} depends on a linux-image-6.* package"))
        .clone()
}

fn fetch(lock: &imago::debian::lock::Lock, names: &[&str]) -> Vec<PathBuf> {
    let entries: Vec<_> = names
        .iter()
        .map(|name| lock.packages[*name].clone())
        .collect();
    let opts = imago::debian::fetch::FetchOptions::new(
        imago::debian::apt::default_deb_cache(),
        imago::settings::configured_sources(&[]).unwrap(),
    );
    imago::debian::fetch::ensure_cached(&entries, &opts).unwrap()
}

/// A fake but well-formed store name for object number `n`.
pub fn object_name(n: usize, name: &str) -> String {
    format!("{n:0>32}-{name}")
}

/// Unpacks a .deb into the store as the deb builder does: merged /usr.
pub fn unpack(deb: &Path, store: &Path, n: usize, name: &str) -> String {
    let object = object_name(n, name);
    let out = store.join(&object);
    let status = Command::new("dpkg-deb")
        .arg("-x")
        .arg(deb)
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    for dir in ["bin", "sbin", "lib", "lib64"] {
        let from = out.join(dir);
        if from.is_dir() && !from.is_symlink() {
            merge_into(&from, &out.join("usr").join(dir));
        }
    }
    format!("/imago/store/{object}")
}

pub fn merge_into(from: &Path, to: &Path) {
    if !to.exists() {
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::rename(from, to).unwrap();
        return;
    }
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() && target.is_dir() {
            merge_into(&entry.path(), &target);
        } else {
            std::fs::rename(entry.path(), target).unwrap();
        }
    }
    std::fs::remove_dir(from).unwrap();
}

pub struct System {
    /// The store (under the target dir; recreated by each run).
    pub store: PathBuf,
    pub kernel: String,
    pub initrd: String,
    pub toplevel: String,
    /// The toplevel's object and those it links to (what a disk needs).
    pub closure: Vec<String>,
    pub initrd_bytes: u64,
    pub initrd_build: Duration,
}

pub fn build(
    ctx: &BuildContext,
    builder: &dyn Builder,
    n: usize,
    name: &str,
    params: serde_json::Value,
) -> String {
    let object = object_name(n, name);
    let step = ResolvedStep {
        builder: name.into(),
        name: name.into(),
        params,
        inputs: vec![],
        closure: vec![],
    };
    let mut log = Vec::new();
    let result = builder.build(ctx, &step, &ctx.store_dir.join(&object), &mut log);
    let log = String::from_utf8_lossy(&log);
    eprintln!("{log}");
    result.unwrap_or_else(|e| panic!("{name}: {e:#}\n{log}"));
    format!("/imago/store/{object}")
}

pub fn write_exec(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Builds the kernel, initrd and a busybox toplevel into a fresh store,
/// `<target tmp>/<dir_name>/<pid>`: one per test process (nextest runs each
/// test in its own), whose leftovers the next process removes.
pub fn build_system(dir_name: &str) -> System {
    let debs = debs();
    let parent = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(dir_name);
    std::fs::create_dir_all(&parent).unwrap();
    for entry in std::fs::read_dir(&parent).unwrap().flatten() {
        let name = entry.file_name();
        let alive = name
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
            .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
        if !alive {
            let path = entry.path();
            let _ = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
        }
    }
    let store = parent.join(std::process::id().to_string());
    std::fs::create_dir_all(&store).unwrap();
    let ctx = BuildContext {
        store_dir: store.clone(),
        deb_cache: PathBuf::new(),
        offline: true,
    };
    let busybox = unpack(&debs[0], &store, 1, "busybox-static");
    let meta = unpack(&debs[1], &store, 2, "linux-image-cloud-amd64");
    let image = unpack(&debs[2], &store, 3, "linux-image-cloud");

    let kernel = build(
        &ctx,
        &KernelBuilder,
        4,
        "kernel",
        serde_json::json!({ "architecture": "amd64", "packages": [meta, image] }),
    );
    let stage1 = object_name(5, "stage-1.sh");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../modules/boot/stage-1.sh");
    std::fs::copy(script, store.join(&stage1)).unwrap();
    let started = Instant::now();
    let initrd = build(
        &ctx,
        &InitrdBuilder,
        6,
        "initrd",
        serde_json::json!({
            "kernel": kernel,
            "busybox": busybox,
            "stage1": format!("/imago/store/{stage1}"),
            "modules": ["virtio_pci"],
            "availableModules": ["virtiofs", "virtio_net", "virtio_blk", "virtio_console", "virtio-rng"],
        }),
    );
    let initrd_build = started.elapsed();
    let initrd_bytes = std::fs::metadata(ctx.physical(&initrd).unwrap())
        .unwrap()
        .len();

    // The toplevel, laid out as the module library makes it: `sw` and `init`
    // are absolute symlinks to objects of their own. Stage 2 checks the
    // layout stage 1 promised, then reports.
    let sw_name = object_name(8, "sw");
    let sw = store.join(&sw_name);
    std::fs::create_dir_all(sw.join("usr/bin")).unwrap();
    std::fs::copy(
        ctx.physical(&format!("{busybox}/usr/bin/busybox")).unwrap(),
        sw.join("usr/bin/busybox"),
    )
    .unwrap();
    let top_name = object_name(7, "system");
    let init_name = object_name(9, "stage-2");
    write_exec(
        &store.join(&init_name),
        &format!(
            "#!/usr/bin/busybox sh\n\
             export PATH=/usr/bin\n\
             busybox test -x /bin/busybox || echo 'stage 2: /bin/busybox missing'\n\
             busybox test -d /imago/store/{top_name} || echo 'stage 2: store missing'\n\
             busybox touch /usr/x 2>/dev/null && echo 'stage 2: /usr is writable'\n\
             busybox touch /imago/store/x 2>/dev/null && echo 'stage 2: the store is writable'\n\
             busybox echo {MARKER} pid=$$\n\
             busybox poweroff -f\n"
        ),
    );
    let top = store.join(&top_name);
    std::fs::create_dir_all(&top).unwrap();
    for (link, object) in [("sw", &sw_name), ("init", &init_name)] {
        std::os::unix::fs::symlink(format!("/imago/store/{object}"), top.join(link)).unwrap();
    }
    std::fs::write(
        top.join("boot.json"),
        serde_json::json!({
            "version": 1, "label": "test", "system_name": "boot-vm-test",
            "kernel": format!("{kernel}/bzImage"), "initrd": initrd,
            "kernel_params": ["panic=-1", "loglevel=4"], "init": "init",
        })
        .to_string(),
    )
    .unwrap();
    System {
        store,
        kernel,
        initrd,
        toplevel: format!("/imago/store/{top_name}"),
        closure: vec![top_name, sw_name, init_name],
        initrd_bytes,
        initrd_build,
    }
}

/// Prepares a TCG boot of the test system with `kernel_params` added.
pub fn launch(sys: &System, kernel_params: &[&str]) -> VmLaunch {
    let toplevel = sys.store.join(sys.toplevel.rsplit('/').next().unwrap());
    let opts = RunOptions {
        accel: Some(Accel::Tcg),
        memory_mib: 512,
        kernel_params: kernel_params.iter().map(|s| (*s).to_owned()).collect(),
        ..RunOptions::default()
    };
    let mut launch = VmLaunch::prepare(&toplevel, &sys.toplevel, &sys.store, &opts).unwrap();
    launch.config.no_reboot = true;
    launch
}

/// Boots and returns the console and the time until `want` appeared (or
/// panics with the console on timeout). QEMU is killed either way.
pub fn boot_until(launch: &VmLaunch, want: &str, timeout: Duration) -> (String, Duration) {
    boot_with_input(launch, want, timeout, None)
}

/// Like [`boot_until`]; when a console line contains `input.0`, types
/// `input.1` on the console.
pub fn boot_with_input(
    launch: &VmLaunch,
    want: &str,
    timeout: Duration,
    input: Option<(&str, &str)>,
) -> (String, Duration) {
    use std::io::{Read, Write};
    let started = Instant::now();
    let mut vm = launch
        .spawn(Stdio::piped(), Stdio::piped(), Stdio::piped())
        .unwrap();
    let console = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = mpsc::channel();
    let stdout = vm.qemu.stdout.take().unwrap();
    let mut stdin = vm.qemu.stdin.take().unwrap();
    let mut stderr = vm.qemu.stderr.take().unwrap();
    let sink = Arc::clone(&console);
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        if !text.is_empty() {
            sink.lock()
                .unwrap()
                .push_str(&format!("[qemu stderr] {text}"));
        }
    });
    let sink = Arc::clone(&console);
    let want_owned = want.to_owned();
    let mut input = input.map(|(t, i)| (t.to_owned(), i.to_owned()));
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).split(b'\n').map_while(Result::ok) {
            let line = String::from_utf8_lossy(&line).into_owned();
            sink.lock().unwrap().push_str(&format!("{line}\n"));
            if line.contains(&want_owned) {
                let _ = tx.send(started.elapsed());
            }
            if let Some((trigger, text)) = &input
                && line.contains(trigger.as_str())
            {
                let _ = stdin.write_all(text.as_bytes());
                let _ = stdin.flush();
                input = None;
            }
        }
    });
    let result = rx.recv_timeout(timeout);
    drop(vm); // kills QEMU and virtiofsd if still running
    let text = console.lock().unwrap().clone();
    match result {
        Ok(elapsed) => (text, elapsed),
        Err(_) => panic!("`{want}` did not appear within {timeout:?}; console:\n{text}"),
    }
}
