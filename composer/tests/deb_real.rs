//! Resolves, downloads and unpacks real Debian packages through the private
//! apt (network: Debian's mirror). The apt directory and the .deb cache live
//! under `$XDG_CACHE_HOME/imago` (default `~/.cache/imago`), so later runs
//! reuse them and need no network.

// Test helpers outside #[test] functions panic on failure too.
#![allow(clippy::unwrap_used)]

use imago::debian::apt::{AptEnv, Request, default_cache_root};
use imago::debian::fetch::{FetchOptions, ensure_cached};
use imago::debian::lock::Lock;
use imago::debian::unpack::{Limits, unpack_deb};
use std::time::Instant;

#[test]
fn resolves_downloads_and_unpacks_busybox_and_the_cloud_kernel() {
    let root = default_cache_root();
    let opts = FetchOptions {
        cache_dir: root.join("debs"),
        apt_dir: root.join("apt"),
        offline: false,
    };
    let entries = {
        let apt = AptEnv::open(&opts.apt_dir).unwrap();
        let t = Instant::now();
        apt.ensure_lists().unwrap();
        eprintln!("lists ready in {:?}", t.elapsed());
        let t = Instant::now();
        let entries = apt
            .resolve(&[
                Request {
                    name: "busybox-static".into(),
                    version: None,
                },
                Request {
                    name: "linux-image-cloud-amd64".into(),
                    version: None,
                },
            ])
            .unwrap();
        eprintln!("resolved {} packages in {:?}", entries.len(), t.elapsed());
        entries
    };
    let mut lock = Lock::new("amd64");
    for e in &entries {
        lock.packages.insert(e.name.clone(), e.clone());
    }
    // The lock is consistent: every dependency is itself locked.
    let closure = lock
        .closure(["busybox-static", "linux-image-cloud-amd64"])
        .unwrap();
    assert_eq!(closure.len(), lock.packages.len(), "{closure:?}");
    let kernel_pkg = lock.packages["linux-image-cloud-amd64"]
        .depends
        .iter()
        .find(|d| d.starts_with("linux-image-"))
        .cloned()
        .expect("the meta package depends on a versioned kernel package");
    let tmp = tempfile::tempdir().unwrap();
    let lock_path = tmp.path().join("imago.lock");
    lock.write(&lock_path).unwrap();
    assert_eq!(Lock::read(&lock_path).unwrap(), lock);

    let t = Instant::now();
    let paths = ensure_cached(&entries, &opts).unwrap();
    eprintln!("cache ready in {:?}", t.elapsed());
    // A second call finds everything cached: no apt, no network.
    let offline = FetchOptions {
        offline: true,
        ..opts.clone()
    };
    assert_eq!(ensure_cached(&entries, &offline).unwrap(), paths);

    let path_of = |name: &str| {
        let i = entries.iter().position(|e| e.name == name).unwrap();
        paths[i].clone()
    };
    let busybox_out = tmp.path().join("busybox");
    let file = std::fs::File::open(path_of("busybox-static")).unwrap();
    unpack_deb(
        std::io::BufReader::new(file),
        "busybox-static",
        &busybox_out,
        &Limits::default(),
    )
    .unwrap();
    assert!(busybox_out.join("usr/bin/busybox").is_file());
    assert!(!busybox_out.join("bin").exists());

    let kernel_out = tmp.path().join("kernel");
    let t = Instant::now();
    let file = std::fs::File::open(path_of(&kernel_pkg)).unwrap();
    // Debian's kernel ships names that differ only in case (xt_DSCP.ko and
    // xt_dscp.ko): the default limits refuse them, the `deb` builder's allow.
    let strict = unpack_deb(
        std::io::BufReader::new(std::fs::File::open(path_of(&kernel_pkg)).unwrap()),
        &kernel_pkg,
        &tmp.path().join("strict"),
        &Limits::default(),
    );
    assert!(strict.unwrap_err().to_string().contains("only in case"));
    let limits = Limits {
        allow_case_only_collisions: true,
        ..Limits::default()
    };
    let summary = unpack_deb(
        std::io::BufReader::new(file),
        &kernel_pkg,
        &kernel_out,
        &limits,
    )
    .unwrap();
    eprintln!(
        "unpacked {kernel_pkg}: {} entries, {} bytes in {:?}",
        summary.entries,
        summary.bytes,
        t.elapsed()
    );
    let boot: Vec<String> = std::fs::read_dir(kernel_out.join("boot"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(boot.iter().any(|n| n.starts_with("vmlinuz-")), "{boot:?}");
    let modules: Vec<_> = std::fs::read_dir(kernel_out.join("usr/lib/modules"))
        .unwrap()
        .collect();
    assert_eq!(modules.len(), 1);
    let version_dir = modules[0].as_ref().unwrap().path();
    let virtio_blk = walkdir::WalkDir::new(&version_dir)
        .into_iter()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().starts_with("virtio_blk.ko"));
    assert!(
        virtio_blk,
        "virtio_blk module missing under {}",
        version_dir.display()
    );
    assert!(
        std::fs::read_to_string(kernel_out.join(".imago/deb/control"))
            .unwrap()
            .contains(&kernel_pkg)
    );
}
