//! Resolves, downloads and unpacks real Debian packages through the private
//! apt (network: Debian's mirror). The apt directory and the .deb cache live
//! under `$XDG_CACHE_HOME/imago` (default `~/.cache/imago`), so later runs
//! reuse them and need no network.

// Test helpers outside #[test] functions panic on failure too.
#![allow(clippy::unwrap_used)]

use imago::debian::apt::{AptEnv, Request, default_apt_dir};
use imago::debian::fetch::{FetchOptions, ensure_cached};
use imago::debian::lock::Lock;
use imago::debian::platform::Platform;
use imago::debian::unpack::{Limits, unpack_deb};
use imago::dirs::cache_root as default_cache_root;
use imago::settings::configured_sources;
use std::time::Instant;

#[test]
fn resolves_downloads_and_unpacks_busybox_and_the_cloud_kernel() {
    let root = default_cache_root();
    let opts = FetchOptions::new(root.join("debs"), configured_sources(&[]).unwrap());
    let entries = {
        let apt = AptEnv::open(
            &default_apt_dir(Platform::DEFAULT),
            Platform::DEFAULT,
            &Default::default(),
        )
        .unwrap();
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
    let mut lock = Lock::new(Platform::DEFAULT);
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
    // Every entry records where its file lives, for fetching it later.
    for e in &entries {
        assert!(e.archive.is_some() && e.snapshot.is_some(), "{e:?}");
    }
    // A second call finds everything cached: no network.
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

#[test]
fn imago_lock_writes_the_lock_and_reports_changes() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("system.imago");
    std::fs::write(&config, "{ }\n").unwrap();
    let imago = env!("CARGO_BIN_EXE_imago");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(imago)
            .arg("lock")
            .arg(&config)
            .args(args)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.code(), stdout, stderr)
    };
    let (code, stdout, stderr) = run(&["--package", "busybox-static"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("1 packages (1 added, 0 removed, 0 changed, 0 unused)"),
        "{stdout}"
    );
    // A definition that does not say is trixie's (busybox 1.37).
    assert!(stdout.contains("+ busybox-static 1:1.37.0"), "{stdout}");
    let lock = Lock::read(&dir.path().join("imago.lock")).unwrap();
    assert_eq!(lock.packages.keys().collect::<Vec<_>>(), ["busybox-static"]);

    // Same roots again: pinned, nothing changes.
    let (code, stdout, _) = run(&["--package", "busybox-static"]);
    assert_eq!(code, Some(0));
    assert!(
        stdout.contains("(0 added, 0 removed, 0 changed, 0 unused)"),
        "{stdout}"
    );

    // A different root: busybox-static is kept (the lock may be shared)
    // but reported as unused; --prune removes it.
    let (code, stdout, stderr) = run(&["-p", "zlib1g"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("unused by these files (kept; --prune removes them): busybox-static"),
        "{stdout}"
    );
    let lock = Lock::read(&dir.path().join("imago.lock")).unwrap();
    assert!(lock.packages.contains_key("busybox-static"));
    let (code, stdout, stderr) = run(&["-p", "zlib1g", "--prune"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("- busybox-static"), "{stdout}");
    let lock = Lock::read(&dir.path().join("imago.lock")).unwrap();
    assert!(!lock.packages.contains_key("busybox-static"));

    // An unknown package is a clear error, and the lock is left alone.
    let before = std::fs::read_to_string(dir.path().join("imago.lock")).unwrap();
    let (code, _, stderr) = run(&["-p", "no-such-package-xyz"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("no-such-package-xyz"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("imago.lock")).unwrap(),
        before
    );

    // A bad name is refused before apt runs.
    let (code, _, stderr) = run(&["-p", "Bad_Name"]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("`Bad_Name` is not a valid Debian package name"),
        "{stderr}"
    );
}

#[test]
fn imago_lock_reports_unknown_packages_where_they_are_used() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("system.imago");
    let lock = |text: &str| {
        std::fs::write(&config, text).unwrap();
        imago_lock(&config, &[])
    };
    let (code, stderr) = lock(
        "{ pkgs, ... }:\n{\n  boot.init = \"busybox\";\n  environment.systemPackages = [ pkgs.ngnix pkgs.busybox-static ];\n}\n",
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("error[E0215]: `ngnix` is not a package in Debian's index"),
        "{stderr}"
    );
    assert!(stderr.contains("system.imago:4:39"), "{stderr}");
    assert!(
        stderr.contains("`ngnix` is not a Debian package; did you mean one of `nginx`"),
        "{stderr}"
    );
    // apt was not asked: its long command line is not in the message.
    assert!(!stderr.contains("apt-get"), "{stderr}");
    assert!(!dir.path().join("imago.lock").exists());

    // A virtual package is refused with its providers.
    let (code, stderr) = lock(
        "{ pkgs, ... }:\n{\n  boot.init = \"busybox\";\n  environment.systemPackages = [ pkgs.mail-transport-agent ];\n}\n",
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("system.imago:4:39"), "{stderr}");
    assert!(
        stderr.contains("`mail-transport-agent` is a virtual package; name one that provides it:"),
        "{stderr}"
    );
    assert!(stderr.contains("`exim4-daemon-light`"), "{stderr}");
}

/// `system.debian.components`: a firmware package of `non-free-firmware` is
/// not in the index of `main`; asked for, the component's lists are
/// fetched, the package locks from its component's pool, and the lock
/// records the component (and keeps it when relocked without the file that
/// asked for it).
#[test]
fn imago_lock_resolves_from_the_components_a_system_asks_for() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("system.imago");
    let lock = |components: &str| {
        std::fs::write(
            &config,
            format!(
                "{{ pkgs, ... }}:\n{{\n  boot.init = \"busybox\";\n  {components}\n  environment.systemPackages = [ pkgs.amd64-microcode ];\n}}\n"
            ),
        )
        .unwrap();
        imago_lock(&config, &[])
    };
    let (code, stderr) = lock("");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("`amd64-microcode` is not a package in Debian's index"),
        "{stderr}"
    );
    assert!(!dir.path().join("imago.lock").exists());

    let (code, stderr) = lock("system.debian.components = [ \"main\" \"non-free-firmware\" ];");
    assert_eq!(code, Some(0), "{stderr}");
    let path = dir.path().join("imago.lock");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("components = [\"main\", \"non-free-firmware\"]"),
        "{text}"
    );
    let locked = Lock::read(&path).unwrap();
    assert_eq!(locked.components.names(), ["main", "non-free-firmware"]);
    let microcode = &locked.packages["amd64-microcode"];
    assert!(
        microcode.filename.starts_with("pool/non-free-firmware/"),
        "{microcode:?}"
    );
    // Relocked with `--package` alone, the lock keeps its components.
    let (code, stderr) = imago_lock(&config, &["-p", "busybox-static"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        Lock::read(&path).unwrap().components.names(),
        ["main", "non-free-firmware"]
    );
}

/// `imago lock CONFIG ARGS…`: its exit code and stderr.
fn imago_lock(config: &std::path::Path, args: &[&str]) -> (Option<i32>, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_imago"))
        .arg("lock")
        .arg(config)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
