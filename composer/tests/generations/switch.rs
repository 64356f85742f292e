//! `switch-to-configuration boot` (modules/system/switch/, assembled by
//! switch.imago) run under the host's busybox against a profile directory
//! and an ESP in a temporary directory: generation numbering, the entry file and its boot
//! counter, kernels copied once, loader.conf's default, the entry limit, and
//! refusals (full ESP, unmounted ESP, foreign system) that change nothing.

#![allow(clippy::unwrap_used)]

use crate::support::switch as switch_support;

use std::fs;
use std::os::unix::fs::symlink;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use switch_support::{Fixture, hash};

#[test]
fn boot_adds_a_counted_entry_and_makes_it_the_default() {
    let f = Fixture::new();
    let sys2 = f.system("sys2", 2, 20);
    let out = f.ok(&sys2, "boot");
    assert!(out.contains("generation 2"), "{out}");

    assert_eq!(f.link("system-2-link"), sys2);
    assert_eq!(f.link("system"), PathBuf::from("system-2-link"));
    assert_eq!(f.entries(), ["imago-web-1.conf", "imago-web-2+3.conf"]);
    let entry = fs::read_to_string(f.root().join("esp/loader/entries/imago-web-2+3.conf")).unwrap();
    let lines: Vec<&str> = entry.lines().collect();
    assert!(
        lines[0].starts_with("title web (generation 2, 20"),
        "{entry}"
    );
    assert_eq!(
        &lines[1..],
        [
            "version 2".to_owned(),
            format!("linux /EFI/imago/{}-linux-bzImage", hash(2)),
            format!("initrd /EFI/imago/{}-initrd", hash(20)),
            format!(
                "options console=ttyS0 imago.system={} imago.generation=2 root=UUID=1234 rootfstype=ext4 rw",
                sys2.display()
            ),
        ]
    );
    assert_eq!(
        fs::read_to_string(
            f.root()
                .join(format!("esp/EFI/imago/{}-linux-bzImage", hash(2)))
        )
        .unwrap(),
        "kernel 2"
    );
    assert_eq!(
        fs::read_to_string(f.root().join("esp/loader/loader.conf")).unwrap(),
        "default imago-web-*\ntimeout 0\nconsole-mode keep\neditor no\n"
    );
    assert!(
        !f.snapshot()
            .keys()
            .any(|p| p.to_string_lossy().contains("imago-tmp")),
        "temporary files left behind"
    );

    // Again: the profile already is this system, nothing new.
    let before = f.snapshot();
    f.ok(&sys2, "boot");
    assert_eq!(f.snapshot(), before);
}

#[test]
fn a_system_that_names_its_root_keeps_it() {
    let f = Fixture::new();
    let sys2 = f.system_with("sys2", "web", 2, 20, 10, "root=LABEL=data console=ttyS0");
    f.ok(&sys2, "boot");
    let entry = fs::read_to_string(f.root().join("esp/loader/entries/imago-web-2+3.conf")).unwrap();
    assert!(
        entry.contains(&format!(
            "options root=LABEL=data console=ttyS0 imago.system={} imago.generation=2 rw\n",
            sys2.display()
        )),
        "{entry}"
    );
}

#[test]
fn a_shared_kernel_is_copied_once_and_kept() {
    let f = Fixture::new();
    let sys2 = f.system("sys2", 1, 20);
    f.ok(&sys2, "boot");
    assert_eq!(
        f.esp_files(),
        [
            format!("{}-linux-bzImage", hash(1)),
            format!("{}-initrd", hash(10)),
            format!("{}-initrd", hash(20))
        ]
    );
}

#[test]
fn a_full_esp_is_refused_before_anything_changes() {
    let f = Fixture::new();
    let sys2 = f.system("sys2", 2, 20);
    let before = f.snapshot();
    let out = f.switch(&sys2, "boot", &[("IMAGO_ESP_FREE_KIB", "1")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("has 1 KiB free but generation 2 needs"),
        "{stderr}"
    );
    assert!(stderr.contains("nothing was changed"), "{stderr}");
    assert_eq!(f.snapshot(), before);

    let out = f.switch(&sys2, "boot", &[("IMAGO_ESP_FREE_KIB", "lots")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot tell the free space"), "{stderr}");
    assert_eq!(f.snapshot(), before);
}

#[test]
fn an_unmounted_esp_is_refused() {
    let f = Fixture::new();
    let sys2 = f.system("sys2", 2, 20);
    fs::remove_dir_all(f.root().join("esp")).unwrap();
    fs::create_dir(f.root().join("esp")).unwrap();
    let before = f.snapshot();
    let out = f.switch(&sys2, "boot", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("is not mounted at"), "{stderr}");
    assert_eq!(f.snapshot(), before);
}

#[test]
fn another_systems_toplevel_is_refused() {
    let f = Fixture::new();
    let sys2 = f.system("sys2", 2, 20);
    let db = f.system_with("db", "db", 3, 30, 10, "console=ttyS0");
    let before = f.snapshot();
    let mut cmd = Command::new(sys2.join("bin/switch-to-configuration"));
    let out = cmd
        .args(["boot", &db.to_string_lossy()])
        .env("IMAGO_PROFILES", f.root().join("profiles"))
        .env("IMAGO_ESP", f.root().join("esp"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("is the system 'db', but this script belongs to 'web'"),
        "{stderr}"
    );
    assert_eq!(f.snapshot(), before);

    let out = f.switch(&sys2, "reboot", &[]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn the_limit_removes_old_entries_and_unused_kernels_but_not_the_booted_one() {
    let f = Fixture::new();
    for n in 2..=4 {
        let sys = f.system_with(&format!("sys{n}"), "web", n, n * 10, 2, "console=ttyS0");
        f.ok(&sys, "boot");
    }
    // Generation 1 is booted; 3 and 4 are the newest two; 2 goes.
    assert_eq!(
        f.entries(),
        [
            "imago-web-1.conf",
            "imago-web-3+3.conf",
            "imago-web-4+3.conf"
        ]
    );
    let mut want = vec![
        format!("{}-linux-bzImage", hash(1)),
        format!("{}-linux-bzImage", hash(3)),
        format!("{}-linux-bzImage", hash(4)),
        format!("{}-initrd", hash(10)),
        format!("{}-initrd", hash(30)),
        format!("{}-initrd", hash(40)),
    ];
    want.sort();
    assert_eq!(f.esp_files(), want);
    // The profile keeps every generation: deleting them is `imago generations delete`.
    assert_eq!(f.link("system-2-link"), f.root().join("sys2"));
    assert_eq!(f.link("system"), PathBuf::from("system-4-link"));
}

#[test]
fn test_on_systemd_stops_removed_units_then_reloads_starts_and_restarts_what_changed() {
    let f = Fixture::new();
    let sys1 = f.root().join("sys1");
    let sys2 = f.system("sys2", 2, 20);
    f.activation(&sys2, "systemd", false);
    let units = |s: &Path| s.join("etc/systemd/system");
    for (sys, unit, text) in [
        (&sys1, "same.service", "same"),
        (&sys1, "changed.service", "old"),
        (&sys1, "removed.service", "x"),
        (&sys1, "finished.service", "a oneshot that ran"),
        (&sys2, "same.service", "same"),
        (&sys2, "changed.service", "new"),
        (&sys2, "added.service", "y"),
    ] {
        f.write(&units(sys).join(unit), text);
        let wants = units(sys).join("multi-user.target.wants");
        fs::create_dir_all(&wants).unwrap();
        symlink(format!("../{unit}"), wants.join(unit)).unwrap();
    }
    // A removed unit that is not running is unloaded by the reload: it is
    // not stopped (systemctl would fail with "not loaded").
    let systemctl = f.root().join("tools/bin/systemctl");
    let text = fs::read_to_string(&systemctl).unwrap();
    fs::write(
        &systemctl,
        text.replace(
            "\necho",
            "\n[ \"$*\" = 'is-active --quiet finished.service' ] && exit 3\necho",
        ),
    )
    .unwrap();
    let out = f.ok(&sys2, "test");
    assert!(out.contains("is the running system"), "{out}");
    let mut calls = f.calls();
    // Removed units are stopped first, while their files and /etc exist.
    assert_eq!(
        calls[..5],
        [
            "systemctl is-active --quiet removed.service".to_owned(),
            "systemctl stop removed.service".to_owned(),
            format!("activate {}", sys2.display()),
            "systemctl daemon-reload".to_owned(),
            calls[4].clone(),
        ]
    );
    calls.drain(..4);
    calls.sort();
    assert_eq!(
        calls,
        [
            "systemctl restart changed.service",
            "systemctl start added.service",
        ]
    );
    assert!(!out.contains("finished.service"), "{out}");
    assert_eq!(
        fs::read_link(f.root().join("run/current-system")).unwrap(),
        sys2
    );
    // `test` leaves the boot default alone.
    assert_eq!(f.link("system"), PathBuf::from("system-1-link"));
    assert_eq!(f.entries(), ["imago-web-1.conf"]);
}

/// Timers, sockets and path units are switched as NixOS switches them:
/// removed ones are stopped before the services, newly wanted ones started,
/// changed timers restarted, changed path units left to the daemon-reload
/// and changed sockets left alone (said); a changed service that no target
/// wants is restarted only while it is active (started by its socket or
/// timer).
#[test]
fn test_on_systemd_switches_timers_sockets_and_paths_as_nixos_does() {
    let f = Fixture::new();
    let sys1 = f.root().join("sys1");
    let sys2 = f.system("sys2", 2, 20);
    f.activation(&sys2, "systemd", false);
    let units = |s: &Path| s.join("etc/systemd/system");
    // (system, unit, text, the target that wants it)
    for (sys, unit, text, target) in [
        (&sys1, "tick.service", "tick", None),
        (
            &sys1,
            "tick.timer",
            "OnCalendar=daily",
            Some("timers.target"),
        ),
        (&sys1, "job.service", "old job", None),
        (&sys1, "idle.service", "old idle", None),
        (
            &sys1,
            "echo.socket",
            "ListenStream=7000",
            Some("sockets.target"),
        ),
        (&sys1, "watch.path", "PathExists=/a", Some("paths.target")),
        (
            &sys1,
            "gone.timer",
            "OnCalendar=weekly",
            Some("timers.target"),
        ),
        (&sys1, "gone.service", "gone", None),
        (&sys1, "later.timer", "OnActiveSec=1", None),
        (&sys2, "tick.service", "tick", None),
        (
            &sys2,
            "tick.timer",
            "OnCalendar=hourly",
            Some("timers.target"),
        ),
        (&sys2, "job.service", "new job", None),
        (&sys2, "idle.service", "new idle", None),
        (
            &sys2,
            "echo.socket",
            "ListenStream=7001",
            Some("sockets.target"),
        ),
        (&sys2, "watch.path", "PathExists=/b", Some("paths.target")),
        (&sys2, "later.timer", "OnActiveSec=1", Some("timers.target")),
        (
            &sys2,
            "new.timer",
            "OnCalendar=daily",
            Some("timers.target"),
        ),
        (
            &sys2,
            "new.socket",
            "ListenStream=8000",
            Some("sockets.target"),
        ),
        (&sys2, "new.path", "PathExists=/c", Some("paths.target")),
    ] {
        f.write(&units(sys).join(unit), text);
        if let Some(target) = target {
            let wants = units(sys).join(format!("{target}.wants"));
            fs::create_dir_all(&wants).unwrap();
            symlink(format!("../{unit}"), wants.join(unit)).unwrap();
        }
    }
    // idle.service is not running; every other unit is.
    let systemctl = f.root().join("tools/bin/systemctl");
    let text = fs::read_to_string(&systemctl).unwrap();
    fs::write(
        &systemctl,
        text.replace(
            "\necho",
            "\n[ \"$*\" = 'is-active --quiet idle.service' ] && { echo \"systemctl $*\" >> CALLS; exit 3; }\necho",
        )
        .replace("CALLS", &f.root().join("calls.log").to_string_lossy()),
    )
    .unwrap();
    let out = f.ok(&sys2, "test");
    assert_eq!(
        f.calls(),
        [
            "systemctl is-active --quiet gone.timer".to_owned(),
            "systemctl stop gone.timer".to_owned(),
            "systemctl is-active --quiet gone.service".to_owned(),
            "systemctl stop gone.service".to_owned(),
            format!("activate {}", sys2.display()),
            "systemctl daemon-reload".to_owned(),
            "systemctl is-active --quiet idle.service".to_owned(),
            "systemctl is-active --quiet job.service".to_owned(),
            "systemctl restart job.service".to_owned(),
            "systemctl start new.socket".to_owned(),
            "systemctl start new.path".to_owned(),
            "systemctl start later.timer".to_owned(),
            "systemctl start new.timer".to_owned(),
            "systemctl restart tick.timer".to_owned(),
        ]
    );
    assert!(
        out.contains(
            "echo.socket changed: it is not restarted (its service may hold the socket); run 'systemctl restart echo.socket' or reboot to apply it"
        ),
        "{out}"
    );
    assert!(!out.contains("watch.path"), "{out}");
    assert!(out.contains("restarting tick.timer"), "{out}");
}

#[test]
fn test_on_systemd_reloads_a_changed_unit_that_asks_for_it() {
    let f = Fixture::new();
    let sys1 = f.root().join("sys1");
    let sys2 = f.system("sys2", 2, 20);
    f.activation(&sys2, "systemd", false);
    let units = |s: &Path| s.join("etc/systemd/system");
    // `reloadIfChanged` (the firewall): the changed unit is reloaded, with
    // the new unit's ExecReload; another changed unit is restarted.
    for (sys, unit, text) in [
        (
            &sys1,
            "firewall.service",
            "[Unit]\nX-ReloadIfChanged=true\n[Service]\nExecReload=/old start\n",
        ),
        (
            &sys2,
            "firewall.service",
            "[Unit]\nX-ReloadIfChanged=true\n[Service]\nExecReload=/new start\n",
        ),
        (
            &sys1,
            "web.service",
            "[Unit]\nDescription=X-ReloadIfChanged=true\n[Service]\nExecStart=/old\n",
        ),
        (
            &sys2,
            "web.service",
            "[Unit]\nDescription=X-ReloadIfChanged=true\n[Service]\nExecStart=/new\n",
        ),
    ] {
        f.write(&units(sys).join(unit), text);
        let wants = units(sys).join("multi-user.target.wants");
        fs::create_dir_all(&wants).unwrap();
        let link = wants.join(unit);
        if fs::symlink_metadata(&link).is_err() {
            symlink(format!("../{unit}"), link).unwrap();
        }
    }
    let out = f.ok(&sys2, "test");
    assert!(out.contains("reloading firewall.service"), "{out}");
    assert!(out.contains("restarting web.service"), "{out}");
    let mut calls = f.calls();
    calls.retain(|c| c.starts_with("systemctl ") && c != "systemctl daemon-reload");
    calls.sort();
    assert_eq!(
        calls,
        [
            "systemctl reload-or-restart firewall.service",
            "systemctl restart web.service",
        ]
    );
}

#[test]
fn failed_activation_keeps_the_old_system_current_and_touches_no_service() {
    let f = Fixture::new();
    let sys1 = f.root().join("sys1");
    let sys2 = f.system("sys2", 2, 20);
    f.activation(&sys2, "busybox", true);
    let out = f.switch(&sys2, "test", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("activate: users: broken"), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "activation of {} failed; the running system {} is still current",
            sys2.display(),
            sys1.display()
        )),
        "{stderr}"
    );
    assert!(f.calls().is_empty(), "{:?}", f.calls());
    assert_eq!(
        fs::read_link(f.root().join("run/current-system")).unwrap(),
        sys1
    );
}

#[test]
fn test_on_busybox_reloads_inittab_and_runs_new_once_services() {
    let f = Fixture::new();
    let sys1 = f.root().join("sys1");
    let sys2 = f.system("sys2", 2, 20);
    f.activation(&sys2, "busybox", false);
    let root = f.root().display().to_string();
    f.write(
        &sys1.join("etc/inittab"),
        &format!("::sysinit:/s\n::once:echo old >> {root}/ran.log\n"),
    );
    f.write(
        &sys2.join("etc/inittab"),
        &format!(
            "::sysinit:/s\n::once:echo old >> {root}/ran.log\n# ::once:echo comment >> {root}/ran.log\n::once:echo new >> {root}/ran.log\n"
        ),
    );
    f.ok(&sys2, "test");
    assert_eq!(f.calls(), [format!("activate {}", sys2.display())]);
    let status = f.init.borrow_mut().wait().unwrap();
    assert_eq!(status.signal(), Some(1), "init got SIGHUP");
    // The new service runs in the background.
    let ran = f.root().join("ran.log");
    for _ in 0..100 {
        if ran.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(fs::read_to_string(&ran).unwrap(), "new\n");
}

#[test]
fn switch_adds_the_generation_then_activates() {
    let f = Fixture::new();
    let sys2 = f.system("sys2", 2, 20);
    f.activation(&sys2, "busybox", false);
    f.write(&sys2.join("etc/inittab"), "::sysinit:/s\n");
    let out = f.ok(&sys2, "switch");
    assert!(out.contains("generation 2"), "{out}");
    assert!(out.contains("is the running system"), "{out}");
    assert_eq!(f.link("system"), PathBuf::from("system-2-link"));
    assert_eq!(
        fs::read_link(f.root().join("run/current-system")).unwrap(),
        sys2
    );
}

#[test]
fn a_failure_while_writing_the_esp_leaves_the_old_state() {
    let f = Fixture::new();
    let sys2 = f.system("sys2", 2, 20);
    // The loader.conf cannot be replaced: a directory is in the way of its
    // temporary file, after the kernel, initrd and entry were written.
    fs::create_dir(f.root().join("esp/loader/loader.conf.imago-tmp")).unwrap();
    let before = f.snapshot();
    let out = f.switch(&sys2, "boot", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("the boot default is unchanged"), "{stderr}");
    let after = f.snapshot();
    // Only the copied kernel and initrd remain (named by content, unused,
    // removed by the next successful run).
    let added: Vec<String> = after
        .keys()
        .filter(|p| !before.contains_key(*p))
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        added,
        [
            format!("{}-linux-bzImage", hash(2)),
            format!("{}-initrd", hash(20)),
        ]
    );
    for (p, v) in &before {
        assert_eq!(after.get(p), Some(v), "{}", p.display());
    }

    fs::remove_dir(f.root().join("esp/loader/loader.conf.imago-tmp")).unwrap();
    f.ok(&sys2, "boot");
    assert_eq!(f.link("system"), PathBuf::from("system-2-link"));
    assert_eq!(f.entries(), ["imago-web-1.conf", "imago-web-2+3.conf"]);
}

#[test]
fn rollback_makes_the_previous_generation_the_default_without_adding_one() {
    let f = Fixture::new();
    let sys2 = f.system("sys2", 2, 20);
    f.ok(&sys2, "boot");
    let out = f.ok(&sys2, "rollback");
    assert!(
        out.contains("rolling back from generation 2 to generation 1"),
        "{out}"
    );
    // Generation 1's own script ran: no generation 3, and generation 1's
    // entry is named as the default (the glob would pick generation 2).
    assert_eq!(f.link("system"), PathBuf::from("system-1-link"));
    assert!(!f.root().join("profiles/system-3-link").exists());
    assert_eq!(f.entries(), ["imago-web-1.conf", "imago-web-2+3.conf"]);
    let loader = fs::read_to_string(f.root().join("esp/loader/loader.conf")).unwrap();
    assert_eq!(loader.lines().next(), Some("default imago-web-1.conf"));
    // `rollback` ran `switch`: generation 1 was activated too.
    assert_eq!(
        fs::read_link(f.root().join("run/current-system")).unwrap(),
        f.root().join("sys1")
    );

    // Nothing older than generation 1.
    let out = f.switch(&sys2, "rollback", &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("generation 1 is the oldest"), "{stderr}");

    // A new generation is the newest again: back to "newest good".
    let sys3 = f.system("sys3", 3, 30);
    f.ok(&sys3, "boot");
    let loader = fs::read_to_string(f.root().join("esp/loader/loader.conf")).unwrap();
    assert_eq!(loader.lines().next(), Some("default imago-web-*"));
}

#[test]
fn rollback_boot_only_changes_the_default() {
    let f = Fixture::new();
    let sys2 = f.system("sys2", 2, 20);
    f.activation(&sys2, "busybox", false);
    f.write(&sys2.join("etc/inittab"), "::sysinit:/s\n");
    f.ok(&sys2, "switch");
    f.ok(&sys2, "rollback boot");
    assert_eq!(f.link("system"), PathBuf::from("system-1-link"));
    // Still running generation 2 until the next boot.
    assert_eq!(
        fs::read_link(f.root().join("run/current-system")).unwrap(),
        sys2
    );
    assert_eq!(
        f.switch(&sys2, "rollback sideways", &[]).status.code(),
        Some(2)
    );
}

#[test]
fn list_generations_marks_the_current_and_booted_ones() {
    let f = Fixture::new();
    let sys2 = f.system("sys2", 2, 20);
    f.ok(&sys2, "boot");
    let out = f.ok(&sys2, "list-generations");
    assert_eq!(
        out,
        format!(
            "1\tbooted\t{}\timago-web-1.conf\n2\tcurrent\t{}\timago-web-2+3.conf\n",
            f.root().join("sys1").display(),
            sys2.display()
        )
    );
}

#[test]
fn delete_generations_removes_links_entries_and_unused_files_but_never_one_in_use() {
    let f = Fixture::new();
    let sys2 = f.system("sys2", 2, 20);
    let sys3 = f.system("sys3", 3, 30);
    f.ok(&sys2, "boot");
    f.ok(&sys3, "boot");
    let before = f.snapshot();
    for (number, why) in [
        ("1", "generation 1 is booted or running"),
        ("3", "generation 3 is the current one"),
        ("7", "there is no generation 7"),
        ("x", "'x' is not a generation number"),
    ] {
        // Checked before anything is deleted, even with a valid one first.
        let out = f.switch(&sys3, &format!("delete-generations 2 {number}"), &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{number}: {stderr}");
        assert!(stderr.contains(why), "{number}: {stderr}");
        assert_eq!(f.snapshot(), before, "{number}");
    }
    let out = f.ok(&sys3, "delete-generations 2");
    assert!(out.contains("deleted generation 2"), "{out}");
    assert!(!f.root().join("profiles/system-2-link").exists());
    assert_eq!(f.entries(), ["imago-web-1.conf", "imago-web-3+3.conf"]);
    let mut want = vec![
        format!("{}-linux-bzImage", hash(1)),
        format!("{}-linux-bzImage", hash(3)),
        format!("{}-initrd", hash(10)),
        format!("{}-initrd", hash(30)),
    ];
    want.sort();
    assert_eq!(f.esp_files(), want);
}

#[test]
fn entries_of_generations_deleted_elsewhere_are_pruned_unless_booted() {
    let f = Fixture::new();
    let sys2 = f.system("sys2", 2, 20);
    f.ok(&sys2, "boot");
    // The host-side tools deleted the links of generations 1 and 2.
    fs::remove_file(f.root().join("profiles/system-1-link")).unwrap();
    fs::remove_file(f.root().join("profiles/system-2-link")).unwrap();
    let sys3 = f.system("sys3", 3, 30);
    let out = f.ok(&sys3, "boot");
    assert!(
        out.contains("removed the boot entry of deleted generation 2"),
        "{out}"
    );
    // Generation 1 is booted: its entry and files stay.
    assert_eq!(f.entries(), ["imago-web-1.conf", "imago-web-3+3.conf"]);
    assert!(!f.esp_files().contains(&format!("{}-initrd", hash(20))));
}

/// A script built without the test hook (every production system) ignores
/// IMAGO_SWITCH_PAUSE_AFTER and completes the switch.
#[test]
fn without_the_hook_the_pause_variable_is_ignored() {
    let f = Fixture::new();
    let sys2 = f.system("sys2", 2, 20);
    let script = sys2.join("bin/switch-to-configuration");
    let text = fs::read_to_string(&script).unwrap();
    assert!(
        text.contains("\npause_hook=1\n"),
        "the fixture has the hook"
    );
    fs::write(
        &script,
        text.replace("\npause_hook=1\n", "\npause_hook=0\n"),
    )
    .unwrap();
    let out = f.switch(&sys2, "boot", &[("IMAGO_SWITCH_PAUSE_AFTER", "entry")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("paused after"), "{stderr}");
    assert_eq!(f.link("system"), PathBuf::from("system-2-link"));
}

#[test]
fn the_pause_hook_stops_after_the_named_step() {
    let f = Fixture::new();
    let sys2 = f.system("sys2", 2, 20);
    let mut child = f.paused_after(&sys2, "boot", "entry");
    // The entry is written, the default not yet changed.
    assert_eq!(f.entries(), ["imago-web-1.conf", "imago-web-2+3.conf"]);
    assert_eq!(f.link("system"), PathBuf::from("system-1-link"));
    child.kill().unwrap();
    assert_eq!(child.wait().unwrap().signal(), Some(9));
}
