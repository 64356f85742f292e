//! A self-made test guest: Debian's cloud kernel and a busybox initramfs
//! running the backdoor, built without Imago.
//!
//! The kernel image package (the one `linux-image-cloud-amd64` depends on)
//! and `busybox-static`, as the bookworm examples' lock pins them, are
//! fetched by hash (Imago's fetcher and download cache), linked into a cache
//! under the cargo target directory and unpacked with `dpkg-deb` once; a file
//! lock makes concurrent test processes share the work. The initramfs is
//! assembled in memory on every run (so edits to backdoor.sh take effect):
//! busybox, the `/init` below, backdoor.sh, and the kernel modules for
//! virtio-pci, -console, -net, -blk and virtiofs with their dependencies, whose load
//! order comes from each module's `.modinfo` `depends=` (the .deb ships no
//! modules.dep).

mod cpio;

use std::collections::BTreeMap;
use std::fs;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use object::{Object, ObjectSection};

/// What /init prints once the backdoor runs.
pub const READY_MARKER: &str = "imago-guest: ready";

/// The modules the guest loads (with their dependencies, in order).
const ROOT_MODULES: &[&str] = &[
    "virtio_pci",
    "virtio_console",
    "virtio_net",
    "virtio_blk",
    "virtiofs",
];

/// The kernel command line of the guest. `no_timer_check`: under TCG on a
/// loaded host the IO-APIC timer check can fail and panic the kernel.
pub const CMDLINE: &str = "console=ttyS0 quiet no_timer_check";

/// `/init`: mount the API file systems, load the modules, start the
/// backdoor, announce readiness, then echo what is typed on the console.
const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
for m in $(cat /etc/modules); do
    insmod "/lib/modules/$m.ko" || echo "imago-guest: insmod $m failed"
done
ip link set lo up
while ! grep -qs org.imago.backdoor /sys/class/virtio-ports/*/name; do sleep 0.05; done
setsid sh /etc/backdoor.sh &
echo "imago-guest: ready"
while :; do
    if read -r line; then
        echo "imago-guest: got $line"
    else
        sleep 1
    fi
done
"#;

/// The built guest.
pub struct Guest {
    /// The kernel image.
    pub kernel: PathBuf,
    /// The initramfs.
    pub initrd: PathBuf,
}

/// The guest, built once per process. Panics with the reason if it cannot
/// be built (no network for the first download, no dpkg-deb, ...).
pub fn guest() -> &'static Guest {
    static GUEST: OnceLock<Result<Guest, String>> = OnceLock::new();
    match GUEST.get_or_init(build) {
        Ok(guest) => guest,
        Err(why) => panic!("cannot build the test guest: {why}"),
    }
}

fn cache_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("imago-test-guest")
}

fn run(command: &mut Command) -> Result<Vec<u8>, String> {
    let output = command
        .output()
        .map_err(|e| format!("cannot run {command:?}: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "{command:?} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(output.stdout)
}

fn build() -> Result<Guest, String> {
    let cache = cache_dir();
    fs::create_dir_all(&cache).map_err(|e| format!("creating {}: {e}", cache.display()))?;
    let lock = fs::File::create(cache.join(".lock")).map_err(|e| format!("lock file: {e}"))?;
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| format!("locking the guest cache: {e}"))?;

    let debs = cache.join("debs");
    if !debs.is_dir() {
        download(&debs)?;
    }
    let kernel_root = unpack(&debs, "linux-image-", &cache.join("kernel"))?;
    let busybox_root = unpack(&debs, "busybox-static_", &cache.join("busybox"))?;

    let kernel = fs::read_dir(kernel_root.join("boot"))
        .map_err(|e| format!("reading the kernel package: {e}"))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
        .ok_or("the kernel package has no /boot/vmlinuz-*")?;

    let modules = module_closure(&kernel_root.join("lib/modules"))?;
    let initrd = initramfs(&busybox_root.join("bin/busybox"), &modules)?;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    initrd.hash(&mut hasher);
    let initrd_path = cache.join(format!("initrd-{:016x}.cpio", hasher.finish()));
    if !initrd_path.exists() {
        let tmp = cache.join(format!("initrd.tmp-{}", std::process::id()));
        fs::write(&tmp, &initrd).map_err(|e| format!("writing the initrd: {e}"))?;
        fs::rename(&tmp, &initrd_path).map_err(|e| format!("writing the initrd: {e}"))?;
    }
    Ok(Guest {
        kernel,
        initrd: initrd_path,
    })
}

/// Puts the kernel image and busybox-static packages, as the bookworm
/// examples' lock pins them (the guest takes the modules from the kernel
/// package's `lib/modules`, uncompressed), into `debs`: fetched by hash
/// into Imago's download cache like any build's, then linked (or copied)
/// here.
fn download(debs: &Path) -> Result<(), String> {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/bookworm");
    let lock = imago::debian::lock::Lock::read(&examples.join("imago.lock"))
        .map_err(|e| format!("reading the bookworm examples' lock: {e}"))?;
    let meta = lock
        .packages
        .get("linux-image-cloud-amd64")
        .ok_or("the examples' lock has no linux-image-cloud-amd64")?;
    let image = meta
        .depends
        .iter()
        .find(|p| p.starts_with("linux-image-"))
        .ok_or("linux-image-cloud-amd64 depends on no linux-image-* package in the lock")?;
    let entries: Vec<_> = [image.as_str(), "busybox-static"]
        .iter()
        .filter_map(|name| lock.packages.get(*name).cloned())
        .collect();
    let sources = imago::settings::configured_sources(&[]).map_err(|e| e.to_string())?;
    let opts =
        imago::debian::fetch::FetchOptions::new(imago::debian::apt::default_deb_cache(), sources);
    let paths = imago::debian::fetch::ensure_cached(&entries, &opts)
        .map_err(|e| format!("fetching the guest's packages: {e}"))?;
    let tmp = debs.with_extension("tmp");
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp).map_err(|e| format!("creating {}: {e}", tmp.display()))?;
    for path in paths {
        let dest = tmp.join(path.file_name().unwrap_or_default());
        fs::hard_link(&path, &dest)
            .or_else(|_| fs::copy(&path, &dest).map(|_| ()))
            .map_err(|e| format!("copying {}: {e}", path.display()))?;
    }
    fs::rename(&tmp, debs).map_err(|e| format!("renaming {}: {e}", tmp.display()))
}

/// Unpacks the package in `debs` whose file name starts with `prefix` into
/// `dest` (once).
fn unpack(debs: &Path, prefix: &str, dest: &Path) -> Result<PathBuf, String> {
    if dest.is_dir() {
        return Ok(dest.to_owned());
    }
    let deb = fs::read_dir(debs)
        .map_err(|e| format!("reading {}: {e}", debs.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
        })
        .ok_or_else(|| format!("no {prefix}*.deb in {}", debs.display()))?;
    let tmp = dest.with_extension("tmp");
    let _ = fs::remove_dir_all(&tmp);
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&tmp))?;
    fs::rename(&tmp, dest).map_err(|e| format!("renaming {}: {e}", tmp.display()))?;
    Ok(dest.to_owned())
}

/// The module files needed for [`ROOT_MODULES`], dependencies first.
fn module_closure(modules_dir: &Path) -> Result<Vec<(String, PathBuf)>, String> {
    let mut index = BTreeMap::new();
    let mut stack = vec![modules_dir.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).map_err(|e| format!("reading {}: {e}", dir.display()))? {
            let path = entry.map_err(|e| e.to_string())?.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Some(name) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".ko"))
            {
                index.insert(name.replace('-', "_"), path);
            }
        }
    }
    let mut order = Vec::new();
    for root in ROOT_MODULES {
        visit(root, &index, &mut order, &mut Vec::new())?;
    }
    Ok(order)
}

fn visit(
    name: &str,
    index: &BTreeMap<String, PathBuf>,
    order: &mut Vec<(String, PathBuf)>,
    path: &mut Vec<String>,
) -> Result<(), String> {
    if order.iter().any(|(n, _)| n == name) {
        return Ok(());
    }
    if path.iter().any(|n| n == name) {
        return Err(format!("module dependency cycle: {path:?} -> {name}"));
    }
    let file = index
        .get(name)
        .ok_or_else(|| format!("module {name} is not in the kernel package"))?;
    path.push(name.to_owned());
    for dep in depends(file)? {
        visit(&dep, index, order, path)?;
    }
    path.pop();
    order.push((name.to_owned(), file.clone()));
    Ok(())
}

/// The `depends=` list of a module's `.modinfo` section.
fn depends(file: &Path) -> Result<Vec<String>, String> {
    let data = fs::read(file).map_err(|e| format!("reading {}: {e}", file.display()))?;
    let elf = object::File::parse(&*data).map_err(|e| format!("{}: {e}", file.display()))?;
    let modinfo = elf
        .section_by_name(".modinfo")
        .ok_or_else(|| format!("{} has no .modinfo", file.display()))?
        .data()
        .map_err(|e| format!("{}: {e}", file.display()))?;
    Ok(modinfo
        .split(|&b| b == 0)
        .filter_map(|field| field.strip_prefix(b"depends="))
        .flat_map(|list| {
            String::from_utf8_lossy(list)
                .split(',')
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter(|dep| !dep.is_empty())
        .collect())
}

fn initramfs(busybox: &Path, modules: &[(String, PathBuf)]) -> Result<Vec<u8>, String> {
    let mut cpio = cpio::Cpio::default();
    for dir in [
        "bin",
        "dev",
        "etc",
        "lib",
        "lib/modules",
        "proc",
        "root",
        "run",
        "sys",
        "tmp",
    ] {
        cpio.dir(dir);
    }
    cpio.char_device("dev/console", 0o600, 5, 1);
    let busybox = fs::read(busybox).map_err(|e| format!("reading {}: {e}", busybox.display()))?;
    cpio.file("bin/busybox", 0o755, &busybox);
    cpio.file("init", 0o755, INIT.as_bytes());
    cpio.file(
        "etc/backdoor.sh",
        0o755,
        imago_vm_tests::BACKDOOR_SCRIPT.as_bytes(),
    );
    let mut list = String::new();
    for (name, path) in modules {
        let data = fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        cpio.file(&format!("lib/modules/{name}.ko"), 0o644, &data);
        list.push_str(name);
        list.push('\n');
    }
    cpio.file("etc/modules", 0o644, list.as_bytes());
    Ok(cpio.finish())
}
