//! The store half of `switch-to-configuration` (modules/system/switch/
//! store.sh and lock.sh), run under the host's busybox on a machine in
//! a temporary directory: `delete-generations` deletes the store objects that
//! no remaining generation, nor the booted or running system, lists in its
//! toplevel's `closure` file, and nothing else; it deletes nothing when a
//! toplevel has no closure file or one that cannot be trusted; an
//! interrupted collection is finished by the next; `boot`/`test`/`switch`
//! refuse a system whose closure is not all in the store; and one run at a
//! time holds the lock.

#![allow(clippy::unwrap_used)]

use crate::support::cli::{stderr, stdout};
use crate::support::switch as switch_support;

use std::fs;
use std::io::Read;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use switch_support::{Fixture, hash, names};

/// A machine whose generation 1 (booted and running, outside the store) and
/// generations 2 and 3 (toplevels in the store, 3 current) all have closure
/// files. Generation 2 alone uses `only-2`, its kernel and initrd; `orphan`
/// and `link` (a symlink out of the store) are used by none.
struct Machine {
    f: Fixture,
    sys2: PathBuf,
    sys3: PathBuf,
}

impl Machine {
    fn new() -> Machine {
        let f = Fixture::new();
        for (n, name) in [
            (100, "shared"),
            (101, "only-2"),
            (102, "only-3"),
            (103, "orphan"),
        ] {
            object(&f, n, name);
        }
        fs::write(f.root().join("outside"), "not in the store\n").unwrap();
        symlink(
            f.root().join("outside"),
            store(&f).join(format!("{}-link", hash(104))),
        )
        .unwrap();
        let sys1 = f.root().join("sys1");
        let sys2 = f.system(&format!("store/{}-imago-system-web", hash(200)), 2, 20);
        let sys3 = f.system(&format!("store/{}-imago-system-web", hash(300)), 3, 30);
        write_closure(&sys1, &[&linux(1), &initrd(10), &obj(100, "shared")]);
        write_closure(
            &sys2,
            &[
                &linux(2),
                &initrd(20),
                &obj(100, "shared"),
                &obj(101, "only-2"),
            ],
        );
        write_closure(
            &sys3,
            &[
                &linux(3),
                &initrd(30),
                &obj(100, "shared"),
                &obj(102, "only-3"),
            ],
        );
        for name in names(&store(&f)) {
            read_only(&store(&f).join(name));
        }
        f.ok(&sys2, "boot");
        f.ok(&sys3, "boot");
        Machine { f, sys2, sys3 }
    }

    /// No run left anything behind: no lock, no lists, no trash.
    fn left_no_trace(&self) {
        assert_eq!(
            names(&self.f.root().join("run")),
            ["booted-system", "current-system"]
        );
        let trash = store(&self.f).join(".imago-gc");
        assert!(!trash.exists() && !trash.is_symlink());
    }

    fn store_names(&self) -> Vec<String> {
        names(&store(&self.f))
    }

    /// Runs `delete-generations ARGS` through generation 3's script.
    fn delete(&self, args: &str) -> std::process::Output {
        self.f
            .switch(&self.sys3, &format!("delete-generations {args}"), &[])
    }
}

fn store(f: &Fixture) -> PathBuf {
    f.root().join("store")
}

fn obj(n: u32, name: &str) -> String {
    format!("{}-{name}", hash(n))
}

fn linux(k: u32) -> String {
    obj(k, "linux")
}

fn initrd(i: u32) -> String {
    obj(i, "initrd")
}

/// A directory object `<hash(n)>-<name>` holding a file and a subdirectory.
fn object(f: &Fixture, n: u32, name: &str) -> String {
    let name = obj(n, name);
    let dir = store(f).join(&name);
    fs::create_dir_all(dir.join("lib")).unwrap();
    fs::write(dir.join("lib/data"), format!("{name}\n")).unwrap();
    name
}

/// `sys`'s closure file: `/imago/store/<name>` for each of `objects`,
/// sorted.
fn write_closure(sys: &Path, objects: &[&str]) {
    let mut lines: Vec<String> = objects
        .iter()
        .map(|o| format!("/imago/store/{o}\n"))
        .collect();
    lines.sort();
    set_closure(sys, &lines.concat());
}

fn set_closure(sys: &Path, text: &str) {
    let file = sys.join("closure");
    if file.exists() {
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
    }
    fs::write(file, text).unwrap();
}

/// Makes `path` read-only the way the store leaves its objects (files 0444
/// or 0555, directories 0555), when running as root: only root deletes inside them,
/// as on a machine.
fn read_only(path: &Path) {
    if !rustix::process::geteuid().is_root() {
        return;
    }
    for e in walkdir::WalkDir::new(path).contents_first(true) {
        let e = e.unwrap();
        if e.path_is_symlink() {
            continue;
        }
        let executable = e.metadata().unwrap().permissions().mode() & 0o111 != 0;
        let mode = if e.file_type().is_dir() || executable {
            0o555
        } else {
            0o444
        };
        fs::set_permissions(e.path(), fs::Permissions::from_mode(mode)).unwrap();
    }
}

#[test]
fn delete_generations_deletes_what_only_deleted_generations_used() {
    let m = Machine::new();
    let root = m.f.root();
    // Entries that are not objects are never touched, whatever they hold.
    let odd = [
        ".imago-deploy-77".to_owned(),
        "lost+found".to_owned(),
        format!("{}-short", &hash(106)[1..]),
        format!("{}e-bad-hash", &hash(107)[1..]),
        format!("{}-.hidden", hash(108)),
        format!("{}-new\nline", hash(109)),
        format!("{}-sp ace", hash(110)),
        format!("{}-{}", hash(111), "n".repeat(201)),
    ];
    for name in &odd {
        fs::create_dir(store(&m.f).join(name)).unwrap();
        fs::write(store(&m.f).join(name).join("x"), "x").unwrap();
    }
    // An unusual but valid name is an object like any other.
    let weird = object(&m.f, 112, "a+b_c?d=e.f-G");
    read_only(&store(&m.f).join(&weird));
    let out = m.delete("2");
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("deleted generation 2"), "{text}");
    let mut gone = vec![
        format!("{}-imago-system-web", hash(200)),
        linux(2),
        initrd(20),
        obj(101, "only-2"),
        obj(103, "orphan"),
        obj(104, "link"),
        weird,
    ];
    gone.sort();
    for name in &gone {
        assert!(
            text.contains(&format!("deleted /imago/store/{name}\n")),
            "{name}: {text}"
        );
    }
    assert!(
        text.contains("deleted 7 store objects, ") && text.contains(" KiB freed; 7 kept\n"),
        "{text}"
    );
    let mut kept = vec![
        format!("{}-imago-system-web", hash(300)),
        linux(1),
        linux(3),
        initrd(10),
        initrd(30),
        obj(100, "shared"),
        obj(102, "only-3"),
    ];
    kept.extend(odd.iter().cloned());
    kept.sort();
    assert_eq!(m.store_names(), kept);
    // Kept objects are whole; a deleted symlink's target is not touched.
    assert_eq!(
        fs::read_to_string(store(&m.f).join(obj(100, "shared")).join("lib/data")).unwrap(),
        format!("{}\n", obj(100, "shared"))
    );
    assert_eq!(
        fs::read_to_string(root.join("outside")).unwrap(),
        "not in the store\n"
    );
    for name in &odd {
        assert!(store(&m.f).join(name).join("x").exists(), "{name}");
    }
    m.left_no_trace();

    // Nothing more to delete the second time.
    let out = m.delete("1");
    assert_eq!(out.status.code(), Some(1), "generation 1 is booted");
    let sys4 =
        m.f.system(&format!("store/{}-imago-system-web", hash(400)), 3, 30);
    write_closure(&sys4, &[&linux(3), &initrd(30)]);
    m.f.ok(&sys4, "boot");
    let out = m.f.ok(&sys4, "delete-generations 3");
    assert!(
        out.contains(&format!(
            "deleted /imago/store/{}-imago-system-web\n",
            hash(300)
        )),
        "{out}"
    );
    assert!(
        out.contains("deleted 2 store objects, ") && out.contains("; 6 kept\n"),
        "{out}"
    );
    assert!(!m.store_names().contains(&obj(102, "only-3")));
    assert!(
        m.store_names().contains(&obj(100, "shared")),
        "generation 1 uses it"
    );
}

#[test]
fn a_toplevel_without_a_closure_file_keeps_the_whole_store() {
    let m = Machine::new();
    fs::remove_file(m.f.root().join("sys1/closure")).unwrap();
    let before = m.store_names();
    let out = m.delete("2");
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("deleted generation 2"), "{text}");
    assert!(
        text.contains(
            "has no closure file (built by an older Imago?); store objects were not collected"
        ),
        "{text}"
    );
    assert_eq!(m.store_names(), before);
    assert!(!m.f.root().join("profiles/system-2-link").exists());
}

#[test]
fn a_closure_file_that_cannot_be_trusted_deletes_nothing() {
    let h = hash(120);
    let long = "n".repeat(201);
    for (text, why) in [
        ("/imago/store/../../etc\n".to_owned(), "line 1 of"),
        ("/imago/store/*\n".to_owned(), "line 1 of"),
        (format!("/imago/store/{h}-ok/sub\n"), "line 1 of"),
        (format!("{h}-relative\n"), "line 1 of"),
        (format!("/elsewhere/{h}-x\n"), "line 1 of"),
        (format!(" /imago/store/{h}-x\n"), "line 1 of"),
        (format!("/imago/store/{h}-x\n\n"), "line 2 of"),
        (format!("/imago/store/{}e-x\n", &h[1..]), "line 1 of"),
        (format!("/imago/store/{h}-.x\n"), "line 1 of"),
        (format!("/imago/store/{h}-{long}\n"), "line 1 of"),
        (
            format!("/imago/store/{h}-x\n/imago/store/{h}-y"),
            "does not end with a newline",
        ),
    ] {
        let m = Machine::new();
        set_closure(&m.sys3, &text);
        let before = m.store_names();
        let out = m.delete("2");
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{text:?}: {err}");
        assert!(err.contains(why), "{text:?}: {err}");
        assert!(
            err.contains(
                "cannot be trusted; the generations were deleted, store objects were not collected"
            ),
            "{text:?}: {err}"
        );
        assert_eq!(m.store_names(), before, "{text:?}");
        m.left_no_trace();
    }
}

#[test]
fn switch_refuses_a_system_whose_closure_is_not_all_in_the_store() {
    let f = Fixture::new();
    let sys2 = f.system(&format!("store/{}-imago-system-web", hash(200)), 2, 20);
    f.activation(&sys2, "busybox", false);
    f.write(&sys2.join("etc/inittab"), "::sysinit:/s\n");
    // Copied, then deleted by a collection before the switch.
    let missing = obj(150, "etc");
    write_closure(&sys2, &[&linux(2), &initrd(20), &missing]);
    let before = f.snapshot();
    for action in ["switch", "boot", "test"] {
        let out = f.switch(&sys2, action, &[]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{action}: {err}");
        assert!(
            err.contains(&format!(
                "{} needs the store object /imago/store/{missing}, which is not in",
                sys2.display()
            )),
            "{action}: {err}"
        );
        assert!(
            err.contains(
                "nothing was changed: copy the system again ('imago deploy' does) and retry"
            ),
            "{action}: {err}"
        );
        assert_eq!(f.snapshot(), before, "{action}");
        assert!(f.calls().is_empty(), "{action}: nothing was activated");
    }

    // A closure file that cannot be trusted is refused the same way.
    set_closure(&sys2, "/imago/store/../x\n");
    let out = f.switch(&sys2, "switch", &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cannot be trusted; nothing was changed"),
        "{err}"
    );

    // Copied again: the switch goes through.
    write_closure(&sys2, &[&linux(2), &initrd(20), &missing]);
    object(&f, 150, "etc");
    let out = f.ok(&sys2, "switch");
    assert!(out.contains("is the running system"), "{out}");
    assert_eq!(f.link("system"), PathBuf::from("system-2-link"));
}

#[test]
fn an_interrupted_collection_is_finished_by_the_next_run() {
    let m = Machine::new();
    // Stopped (and killed) once the objects are out of the store, before
    // they are removed: none is left half-deleted under its name.
    let mut child =
        m.f.paused_after(&m.sys3, "delete-generations 2", "store-moved");
    child.kill().unwrap();
    assert_eq!(child.wait().unwrap().signal(), Some(9));
    let trash = store(&m.f).join(".imago-gc");
    assert!(trash.join(obj(101, "only-2")).join("lib/data").exists());
    assert!(!store(&m.f).join(obj(101, "only-2")).exists());
    // The killed run's lock is stale: the next run takes it over and removes
    // what the killed one left.
    assert!(m.f.root().join("run/imago-switch.lock").is_symlink());
    let sys4 =
        m.f.system(&format!("store/{}-imago-system-web", hash(400)), 3, 30);
    write_closure(&sys4, &[&linux(3), &initrd(30), &obj(102, "only-3")]);
    m.f.ok(&sys4, "boot");
    let out = m.f.ok(&sys4, "delete-generations 3");
    assert!(out.contains("deleted 1 store objects, "), "{out}");
    m.left_no_trace();
}

#[test]
fn a_store_with_a_database_is_left_to_imago_gc() {
    let m = Machine::new();
    fs::create_dir(store(&m.f).join(".imago")).unwrap();
    fs::write(store(&m.f).join(".imago/db.sqlite"), "").unwrap();
    let before = m.store_names();
    let out = m.delete("2");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out)
            .contains("has a store database: its objects are collected by 'imago gc', not here"),
        "{}",
        stdout(&out)
    );
    assert_eq!(m.store_names(), before);
}

#[test]
fn one_run_at_a_time_holds_the_lock() {
    let m = Machine::new();
    let lock = m.f.root().join("run/imago-switch.lock");
    // Held by a live process (the fixture's stand-in for init).
    let pid = m.f.init.borrow().id();
    symlink(pid.to_string(), &lock).unwrap();
    let before = m.f.snapshot();
    for action in ["boot", "test", "switch", "delete-generations 2"] {
        let out = m.f.switch(&m.sys2, action, &[]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{action}: {err}");
        assert!(
            err.contains(&format!(
                "another switch-to-configuration (pid {pid}) is running"
            )),
            "{action}: {err}"
        );
        assert_eq!(m.f.snapshot(), before, "{action}");
    }
    // Held by a process that is gone, or garbage: taken over, and released.
    let mut gone = Command::new("true").spawn().unwrap();
    let dead = gone.id();
    gone.wait().unwrap();
    fs::remove_file(&lock).unwrap();
    for holder in [dead.to_string(), "not-a-pid".to_owned()] {
        symlink(&holder, &lock).unwrap();
        m.f.ok(&m.sys3, "boot");
        assert!(!lock.is_symlink(), "{holder}");
    }
    // A stale lock another run is taking over (its guard exists): refused,
    // with the guard named for the case its run was killed.
    let guard = m.f.root().join("run/imago-switch.lock.takeover");
    symlink(dead.to_string(), &lock).unwrap();
    fs::create_dir(&guard).unwrap();
    let before = m.f.snapshot();
    let out = m.f.switch(&m.sys2, "boot", &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("another switch-to-configuration is taking over the stale lock")
            && err
                .contains("imago-switch.lock.takeover was left by one that was killed: remove it"),
        "{err}"
    );
    assert_eq!(m.f.snapshot(), before);
    assert!(guard.is_dir(), "the guard of another run was removed");
    // Once that guard is gone, the stale lock is taken over, and the run
    // leaves neither lock nor guard behind.
    fs::remove_dir(&guard).unwrap();
    m.f.ok(&m.sys3, "boot");
    assert!(!lock.is_symlink() && !guard.exists());
    // list-generations reads only: it takes no lock.
    symlink(pid.to_string(), &lock).unwrap();
    m.f.ok(&m.sys3, "list-generations");
}

/// Runs started together on a stale lock: whatever the interleaving, one
/// holds it and the others stop. Each run pauses once it holds the lock, so
/// two holders at once would both be seen paused.
#[test]
fn runs_racing_for_a_stale_lock_take_it_one_at_a_time() {
    let m = Machine::new();
    let lock = m.f.root().join("run/imago-switch.lock");
    let guard = m.f.root().join("run/imago-switch.lock.takeover");
    let mut gone = Command::new("true").spawn().unwrap();
    let dead = gone.id();
    gone.wait().unwrap();
    symlink(dead.to_string(), &lock).unwrap();
    for round in 0..15 {
        let runs: Vec<_> = (0..4)
            .map(|_| m.f.spawn_pausing(&m.sys3, "boot", "lock"))
            .collect();
        let mut holders = Vec::new();
        for mut run in runs {
            let mut err = run.stderr.take().unwrap();
            let mut text = String::new();
            let mut buf = [0u8; 256];
            loop {
                let n = err.read(&mut buf).unwrap();
                text.push_str(&String::from_utf8_lossy(&buf[..n]));
                if n == 0 || text.contains("paused after lock") {
                    break;
                }
            }
            if text.contains("paused after lock") {
                holders.push(run);
            } else {
                let status = run.wait().unwrap();
                assert_eq!(status.code(), Some(1), "round {round}: {text}");
                assert!(
                    text.contains("is running; nothing was changed")
                        || text.contains("is taking over the stale lock"),
                    "round {round}: {text}"
                );
            }
        }
        assert_eq!(holders.len(), 1, "round {round}: two runs held the lock");
        // Killed while holding it: the next round races for a stale lock
        // again.
        for mut h in holders {
            h.kill().unwrap();
            h.wait().unwrap();
        }
        assert!(lock.is_symlink() && !guard.exists(), "round {round}");
    }
}
