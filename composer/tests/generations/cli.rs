//! `imago generations` and `imago rollback` on a profile directory and an
//! ESP in a temporary directory: listing, deleting by number and by age
//! (with the boot entries and kernels that go with them), rolling back, and
//! refusals that change nothing.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Machine {
    dir: tempfile::TempDir,
}

fn top(n: u32) -> String {
    format!("/imago/store/{n:0>32}-imago-system-web")
}

impl Machine {
    /// Generations 1..=3 of `web`, 3 current; each with an entry on the ESP
    /// (3 still counting) and its own kernel, all sharing one initrd.
    fn new() -> Machine {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("profiles");
        let esp = dir.path().join("esp");
        fs::create_dir_all(&p).unwrap();
        fs::create_dir_all(esp.join("loader/entries")).unwrap();
        fs::create_dir_all(esp.join("EFI/imago")).unwrap();
        fs::write(
            esp.join("loader/loader.conf"),
            "default imago-web-*\ntimeout 0\n",
        )
        .unwrap();
        fs::write(esp.join("EFI/imago/i-initrd"), "i").unwrap();
        for n in 1..=3 {
            symlink(top(n), p.join(format!("system-{n}-link"))).unwrap();
            fs::write(esp.join(format!("EFI/imago/k{n}-bzImage")), "k").unwrap();
            let name = if n == 3 {
                "imago-web-3+2-1.conf".to_owned()
            } else {
                format!("imago-web-{n}.conf")
            };
            fs::write(
                esp.join("loader/entries").join(name),
                format!(
                    "title web (generation {n})\nversion {n}\nlinux /EFI/imago/k{n}-bzImage\ninitrd /EFI/imago/i-initrd\noptions console=ttyS0 imago.system={} rw\n",
                    top(n)
                ),
            )
            .unwrap();
        }
        symlink("system-3-link", p.join("system")).unwrap();
        fs::create_dir_all(dir.path().join("run")).unwrap();
        Machine { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// `imago ARGS --profile <profiles>`, and `--run <run>` for the
    /// commands that take the machine's lock (never the host's /run).
    fn imago(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_imago"));
        cmd.args(args).arg("--profile").arg(self.path("profiles"));
        if matches!(args.first(), Some(&"generations" | &"rollback")) {
            cmd.arg("--run").arg(self.path("run"));
        }
        cmd.output().unwrap()
    }

    /// Dates the links of generations `numbers` back to 2020.
    fn make_old(&self, numbers: &[u32]) {
        for n in numbers {
            let st = Command::new("touch")
                .args(["-h", "-d", "2020-01-01"])
                .arg(self.path(&format!("profiles/system-{n}-link")))
                .status()
                .unwrap();
            assert!(st.success());
        }
    }

    fn with_esp(&self, args: &[&str]) -> Output {
        let esp = self.path("esp");
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--esp", esp.to_str().unwrap()]);
        self.imago(&all)
    }

    fn names(&self, rel: &str) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(self.path(rel))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    fn state(&self) -> Vec<(String, Vec<String>)> {
        ["profiles", "esp/loader/entries", "esp/EFI/imago"]
            .iter()
            .map(|d| (d.to_string(), self.names(d)))
            .chain(std::iter::once((
                "loader.conf".to_owned(),
                vec![fs::read_to_string(self.path("esp/loader/loader.conf")).unwrap()],
            )))
            .chain(std::iter::once((
                "system".to_owned(),
                vec![
                    fs::read_link(self.path("profiles/system"))
                        .unwrap()
                        .display()
                        .to_string(),
                ],
            )))
            .collect()
    }
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn fails(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn list_shows_generations_the_current_one_and_entries() {
    let m = Machine::new();
    let out = ok(&m.with_esp(&["generations", "list"]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].trim_start().starts_with("1  ")
            && lines[0].ends_with(&format!("{}  [entry]", top(1))),
        "{out}"
    );
    assert!(
        lines[2].contains("(current)  [entry: not yet good, 2 tries left]"),
        "{out}"
    );
    // `list` is the default action.
    let plain = ok(&m.imago(&["generations"]));
    assert!(
        plain.lines().nth(2).unwrap().ends_with("(current)"),
        "{plain}"
    );
}

#[test]
fn delete_removes_links_entries_and_unused_kernels() {
    let m = Machine::new();
    let out = ok(&m.with_esp(&["generations", "delete", "1"]));
    assert!(
        out.contains(&format!("deleted generation 1 ({})", top(1))),
        "{out}"
    );
    assert_eq!(
        m.names("profiles"),
        ["system", "system-2-link", "system-3-link"]
    );
    assert_eq!(
        m.names("esp/loader/entries"),
        ["imago-web-2.conf", "imago-web-3+2-1.conf"]
    );
    assert_eq!(
        m.names("esp/EFI/imago"),
        ["i-initrd", "k2-bzImage", "k3-bzImage"]
    );
}

#[test]
fn the_current_or_a_missing_generation_is_refused_and_nothing_changes() {
    let m = Machine::new();
    let before = m.state();
    let err = fails(&m.with_esp(&["generations", "delete", "1", "3"]));
    assert!(
        err.contains("generation 3 is the current generation of"),
        "{err}"
    );
    let err = fails(&m.with_esp(&["generations", "delete", "1", "7"]));
    assert!(err.contains("generation 7 does not exist in"), "{err}");
    assert_eq!(m.state(), before);
    let err = fails(&m.imago(&["generations", "delete", "--older-than", "30days"]));
    assert!(err.contains("invalid age `30days`"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_imago"))
        .args(["generations", "--profile", "/nonexistent/profiles"])
        .output()
        .unwrap();
    let err = fails(&out);
    assert!(
        err.contains("/nonexistent/profiles is not a profile directory"),
        "{err}"
    );
    assert_eq!(m.state(), before);
}

#[test]
fn delete_older_than_keeps_recent_and_current_generations() {
    let m = Machine::new();
    m.make_old(&[1, 3]);
    let out = ok(&m.with_esp(&["generations", "delete", "--older-than", "30d"]));
    assert!(out.contains("deleted generation 1"), "{out}");
    assert_eq!(
        m.names("profiles"),
        ["system", "system-2-link", "system-3-link"]
    );
    assert!(
        m.names("esp/loader/entries")
            .iter()
            .all(|n| !n.starts_with("imago-web-1"))
    );
}

#[test]
fn rollback_moves_the_profile_and_the_boot_default() {
    let m = Machine::new();
    let out = ok(&m.with_esp(&["rollback"]));
    assert!(
        out.contains("rolled back from generation 3 to generation 2"),
        "{out}"
    );
    assert_eq!(
        fs::read_link(m.path("profiles/system")).unwrap(),
        Path::new("system-2-link")
    );
    assert_eq!(
        fs::read_to_string(m.path("esp/loader/loader.conf")).unwrap(),
        "default imago-web-2.conf\ntimeout 0\n"
    );
    ok(&m.imago(&["rollback"]));
    assert_eq!(
        fs::read_link(m.path("profiles/system")).unwrap(),
        Path::new("system-1-link")
    );
    let before = m.state();
    let err = fails(&m.imago(&["rollback"]));
    assert!(err.contains("generation 1 is the oldest"), "{err}");
    assert_eq!(m.state(), before);
}

#[test]
fn rollback_without_an_entry_for_the_target_changes_nothing() {
    let m = Machine::new();
    fs::remove_file(m.path("esp/loader/entries/imago-web-2.conf")).unwrap();
    let before = m.state();
    let err = fails(&m.with_esp(&["rollback"]));
    assert!(err.contains("generation 2 has no boot entry on"), "{err}");
    assert_eq!(m.state(), before);
}

/// `imago --store STORE gc --esp <esp> --run-dir <run> EXTRA...` on `m`.
fn gc_esp(m: &Machine, store: &Path, extra: &[&str]) -> Output {
    let (esp, run) = (m.path("esp"), m.path("run"));
    let mut args = vec![
        "--store",
        store.to_str().unwrap(),
        "gc",
        "--esp",
        esp.to_str().unwrap(),
        "--run-dir",
        run.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    m.imago(&args)
}

/// `imago gc --esp`: generations deleted from the profile lose their boot
/// entries and the kernels only they used, except the booted generation's
/// and the one loader.conf names; `--dry-run` only lists.
#[test]
fn gc_removes_entries_of_deleted_generations_but_not_the_booted_or_default_one() {
    let m = Machine::new();
    // Generations 1 and 2 were deleted without --esp; 2 is still booted.
    fs::remove_file(m.path("profiles/system-1-link")).unwrap();
    fs::remove_file(m.path("profiles/system-2-link")).unwrap();
    fs::create_dir_all(m.path("run")).unwrap();
    symlink(top(2), m.path("run/booted-system")).unwrap();
    let gc = |extra: &[&str]| gc_esp(&m, &m.path("store"), extra);

    let before = m.state();
    let out = ok(&gc(&["--dry-run"]));
    assert!(
        out.contains("would remove") && out.contains("imago-web-1.conf"),
        "{out}"
    );
    assert!(!out.contains("imago-web-2.conf"), "{out}");
    assert_eq!(m.state(), before);

    let out = ok(&gc(&[]));
    assert!(out.contains("imago-web-1.conf"), "{out}");
    assert_eq!(
        m.names("esp/loader/entries"),
        ["imago-web-2.conf", "imago-web-3+2-1.conf"]
    );
    // Every remaining entry's kernel and initrd exist; k1 went with its entry.
    assert_eq!(
        m.names("esp/EFI/imago"),
        ["i-initrd", "k2-bzImage", "k3-bzImage"]
    );

    // The entry loader.conf names is kept even when nothing else keeps it.
    fs::remove_file(m.path("run/booted-system")).unwrap();
    fs::write(
        m.path("esp/loader/loader.conf"),
        "default imago-web-2.conf\ntimeout 0\n",
    )
    .unwrap();
    ok(&gc(&[]));
    assert_eq!(
        m.names("esp/loader/entries"),
        ["imago-web-2.conf", "imago-web-3+2-1.conf"]
    );
}

/// On a machine, /imago/store holds objects but no database: `imago gc
/// --esp` collects the boot entries and leaves the store alone (instead of
/// taking every object for a crash leftover); a plain `imago gc` refuses.
#[test]
fn gc_on_a_machines_own_store_leaves_its_objects_alone() {
    let m = Machine::new();
    fs::remove_file(m.path("profiles/system-1-link")).unwrap();
    let object = m.path("machine-store/0123456789abcdfghijklmnpqrsvwxyz-system");
    fs::create_dir_all(&object).unwrap();
    let store = m.path("machine-store");
    let out = ok(&gc_esp(&m, &store, &[]));
    assert!(out.contains("imago-web-1.conf"), "{out}");
    assert!(out.contains("has no store database"), "{out}");
    assert!(object.exists());
    let plain = m.imago(&["--store", store.to_str().unwrap(), "gc"]);
    assert_eq!(plain.status.code(), Some(1));
    let err = String::from_utf8_lossy(&plain.stderr);
    assert!(err.contains("no Imago store database"), "{err}");
    assert!(object.exists());
    assert!(!store.join(".imago").exists());
}

/// systemd-boot matches loader.conf's `default` against an entry's id, the
/// file name without its boot counter (`imago-web-2.conf` for
/// `imago-web-2+1-2.conf`), and renames a counted entry at each try: the
/// default names the generation, not the file as it is now.
#[test]
fn rollback_to_an_entry_still_being_counted_names_it_without_the_counter() {
    let m = Machine::new();
    fs::rename(
        m.path("esp/loader/entries/imago-web-2.conf"),
        m.path("esp/loader/entries/imago-web-2+1-2.conf"),
    )
    .unwrap();
    let out = ok(&m.with_esp(&["rollback"]));
    assert!(out.contains("boot default: imago-web-2.conf"), "{out}");
    assert_eq!(
        fs::read_to_string(m.path("esp/loader/loader.conf")).unwrap(),
        "default imago-web-2.conf\ntimeout 0\n"
    );
}

/// As the script's `delete-generations`: the generations that
/// `<run>/booted-system` and `<run>/current-system` name are never
/// deleted, by number (refused, nothing changes) or by age (skipped).
#[test]
fn the_booted_and_the_running_generation_are_not_deleted() {
    let m = Machine::new();
    symlink(top(1), m.path("run/booted-system")).unwrap();
    symlink(top(2), m.path("run/current-system")).unwrap();
    let before = m.state();
    for n in ["1", "2"] {
        let err = fails(&m.with_esp(&["generations", "delete", n]));
        assert!(
            err.contains(&format!("generation {n} of "))
                && err.contains("is the booted or the running system")
                && err.contains("nothing was deleted"),
            "{err}"
        );
        assert_eq!(m.state(), before);
    }
    m.make_old(&[1, 2, 3]);
    let out = ok(&m.with_esp(&["generations", "delete", "--older-than", "30d"]));
    assert!(out.contains("no generation deleted"), "{out}");
    assert_eq!(m.state(), before);
    let list = ok(&m.with_esp(&["generations", "list"]));
    assert!(list.lines().next().unwrap().contains("(booted)"), "{list}");
}

/// `imago generations delete` takes the machine's lock as
/// switch-to-configuration does: a live holder makes it refuse, a stale
/// lock is taken over, and nothing is left behind.
#[test]
fn delete_takes_the_machines_lock() {
    let m = Machine::new();
    let lock = m.path("run/imago-switch.lock");
    let mut holder = Command::new("sleep").arg("60").spawn().unwrap();
    symlink(holder.id().to_string(), &lock).unwrap();
    let before = m.state();
    let err = fails(&m.with_esp(&["generations", "delete", "1"]));
    assert!(
        err.contains(&format!("(pid {}) holds the lock", holder.id()))
            && err.contains("nothing was changed"),
        "{err}"
    );
    assert_eq!(m.state(), before);
    assert!(lock.is_symlink());
    holder.kill().unwrap();
    holder.wait().unwrap();
    // Its holder is gone: taken over, and released at the end.
    ok(&m.with_esp(&["generations", "delete", "1"]));
    assert_eq!(
        m.names("profiles"),
        ["system", "system-2-link", "system-3-link"]
    );
    assert_eq!(m.names("run"), Vec::<String>::new());
    // A file in its place is no lock: refused.
    fs::write(&lock, "").unwrap();
    let err = fails(&m.with_esp(&["generations", "delete", "2"]));
    assert!(err.contains("is not a lock (a symlink)"), "{err}");
}
