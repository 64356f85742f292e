//! `imago deploy` against a "remote" store in a temporary directory, with a
//! stand-in for ssh that runs the remote script locally: only the missing
//! objects travel, they arrive complete, the new system's
//! switch-to-configuration runs with the chosen action, and failures are
//! reported.

#![allow(clippy::unwrap_used)]

use imago::store::{Store, StorePath};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub(crate) struct Setup {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) dep: StorePath,
    pub(crate) top: StorePath,
}

/// A store with a system whose switch-to-configuration writes its action
/// to `marker`, takes a while when the file `slow` is there, and, reached
/// through the fleet's stand-in for ssh (which sets `FAKE_HOST` to the
/// machine's directory), keeps the machine's profile (`profiles/`, with
/// generation numbers) and running system (`run/current-system`).
pub(crate) fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let src = dir.path().join("dep-src");
    fs::write(&src, "dependency\n").unwrap();
    let dep = store.add_path(&src, "dep").unwrap();
    let marker = dir.path().join("marker");
    let tmp = store.temp_output().unwrap();
    let out = tmp.out();
    fs::create_dir_all(out.join("bin")).unwrap();
    let script = out.join("bin/switch-to-configuration");
    fs::write(
        &script,
        format!(
            r#"#!/bin/sh
# uses {dep}
[ "$1" = fail ] && exit 3
if [ -e {slow} ]; then touch "$FAKE_HOST/switching"; sleep 3; fi
echo "$1" > {marker}
if [ -n "${{FAKE_HOST:-}}" ]; then
    self=$(cd "$(dirname "$0")/.." && pwd)
    p=$FAKE_HOST/profiles
    n=$(readlink "$p/system" | sed 's/system-\(.*\)-link/\1/')
    case "$1" in
        switch|boot) n=$((n + 1)); ln -sfn "$self" "$p/system-$n-link"; ln -sfn "system-$n-link" "$p/system" ;;
        rollback) n=$((n - 1)); ln -sfn "system-$n-link" "$p/system" ;;
    esac
    case "$1" in
        switch|test) ln -sfn "$self" "$FAKE_HOST/run/current-system" ;;
        rollback) ln -sfn "$(readlink -f "$p/system")" "$FAKE_HOST/run/current-system" ;;
    esac
fi
"#,
            dep = dep.to_absolute(),
            slow = dir.path().join("slow").display(),
            marker = marker.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    // The system's health checks: healthy unless the file `unhealthy` is
    // there.
    let health = out.join("bin/check-health");
    fs::write(
        &health,
        format!(
            "#!/bin/sh
if [ -e {} ]; then echo 'FAILED web (exit status 1, limit 5 s): check-web'; echo '  connection refused'; exit 1; fi
echo 'ok web'
",
            dir.path().join("unhealthy").display()
        ),
    )
    .unwrap();
    fs::set_permissions(&health, fs::Permissions::from_mode(0o755)).unwrap();
    let top = store
        .add(tmp, "imago-system-t", std::slice::from_ref(&dep), None)
        .unwrap();
    fs::create_dir_all(dir.path().join("remote")).unwrap();
    let ssh = dir.path().join("fake-ssh");
    fs::write(
        &ssh,
        format!(
            "#!/bin/sh\nwhile [ \"$1\" != -- ]; do shift; done\nshift\necho \"$1\" >> {}\nshift\nexec sh -c \"$*\"\n",
            dir.path().join("ssh.log").display()
        ),
    )
    .unwrap();
    fs::set_permissions(&ssh, fs::Permissions::from_mode(0o755)).unwrap();
    Setup { dir, dep, top }
}

impl Setup {
    pub(crate) fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// `imago deploy` of the system to the stand-in machine, `extra`
    /// added.
    pub(crate) fn deploy_command(&self, extra: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_imago"));
        cmd.arg("--store")
            .arg(self.path("store"))
            .args(["deploy", "--toplevel", &self.top.to_absolute()])
            .args(["--target", "ssh://root@test-machine"])
            .arg("--ssh")
            .arg(self.path("fake-ssh"))
            .arg("--remote-store")
            .arg(self.path("remote"))
            .args(extra);
        cmd
    }

    fn deploy(&self, extra: &[&str]) -> Output {
        self.deploy_command(extra).output().unwrap()
    }

    fn remote_names(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(self.path("remote"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

pub(crate) fn same_tree(a: &Path, b: &Path) {
    for e in walkdir::WalkDir::new(a) {
        let e = e.unwrap();
        let rel = e.path().strip_prefix(a).unwrap();
        let other = if rel.as_os_str().is_empty() {
            b.to_owned()
        } else {
            b.join(rel)
        };
        let (ma, mb) = (
            e.path().symlink_metadata().unwrap(),
            other.symlink_metadata().unwrap(),
        );
        assert_eq!(ma.file_type(), mb.file_type(), "{}", rel.display());
        assert_eq!(
            ma.permissions().mode() & 0o111,
            mb.permissions().mode() & 0o111,
            "{}",
            rel.display()
        );
        if ma.is_file() {
            assert_eq!(
                fs::read(e.path()).unwrap(),
                fs::read(&other).unwrap(),
                "{}",
                rel.display()
            );
        }
    }
}

#[test]
fn deploy_copies_the_closure_and_switches() {
    let s = setup();
    let out = s.deploy(&[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("copied 2 objects to root@test-machine"),
        "{stdout}"
    );
    let mut want = vec![s.dep.to_string(), s.top.to_string()];
    want.sort();
    assert_eq!(s.remote_names(), want, "no temporary directory is left");
    same_tree(
        &s.path("store").join(s.top.to_string()),
        &s.path("remote").join(s.top.to_string()),
    );
    same_tree(
        &s.path("store").join(s.dep.to_string()),
        &s.path("remote").join(s.dep.to_string()),
    );
    assert_eq!(fs::read_to_string(s.path("marker")).unwrap(), "switch\n");
    let log = fs::read_to_string(s.path("ssh.log")).unwrap();
    assert!(log.lines().all(|l| l == "root@test-machine"), "{log}");
}

#[test]
fn only_missing_objects_travel_and_the_action_is_passed() {
    let s = setup();
    fs::copy(
        s.path("store").join(s.dep.to_string()),
        s.path("remote").join(s.dep.to_string()),
    )
    .unwrap();
    let out = s.deploy(&["--boot"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("copied 1 objects"), "{stdout}");
    assert_eq!(fs::read_to_string(s.path("marker")).unwrap(), "boot\n");

    let out = s.deploy(&["--test"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("has the whole closure"), "{stdout}");
    assert_eq!(fs::read_to_string(s.path("marker")).unwrap(), "test\n");
}

/// After `switch` (and `test`) the target runs the system's health checks;
/// a failure rolls it back, names the check and fails the deploy. `boot`
/// runs nothing now, and `--no-health-checks` skips them.
#[test]
fn a_failed_health_check_rolls_the_target_back() {
    let s = setup();
    let out = s.deploy(&[]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok web\n"));

    fs::write(s.path("unhealthy"), "").unwrap();
    let out = s.deploy(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for part in [
        "FAILED web (exit status 1, limit 5 s): check-web\n  connection refused\n",
        "root@test-machine: ",
        "failed its health checks (above); the machine is back on its previous system",
    ] {
        assert!(stderr.contains(part), "{part:?} missing from:\n{stderr}");
    }
    // The new system's script ran `rollback switch` after `switch`.
    assert_eq!(fs::read_to_string(s.path("marker")).unwrap(), "rollback\n");

    let out = s.deploy(&["--boot"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(fs::read_to_string(s.path("marker")).unwrap(), "boot\n");
    let out = s.deploy(&["--no-health-checks"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(fs::read_to_string(s.path("marker")).unwrap(), "switch\n");
}

/// Three machines, told apart by the stand-in for ssh: each `root@hostN`
/// gets a store of its own (`remote-hostN`). `--canary 1 --parallel 2`:
/// host1 alone first, then host2 and host3; a failed health check on the
/// canary stops the rollout before the others.
#[test]
fn a_rollout_goes_in_waves_and_stops_at_a_failed_canary() {
    let s = setup();
    let fleet = s.path("fake-ssh-fleet");
    let remote = s.path("remote");
    fs::write(
        &fleet,
        format!(
            "#!/bin/sh\nwhile [ \"$1\" != -- ]; do shift; done\nshift\nhost=${{1#*@}}\necho \"$1\" >> {log}\nshift\nexec sh -c \"$(printf '%s' \"$*\" | sed \"s#{remote}#{remote}-$host#g\")\"\n",
            log = s.path("fleet.log").display(),
            remote = remote.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&fleet, fs::Permissions::from_mode(0o755)).unwrap();
    for n in 1..=3 {
        fs::create_dir_all(s.path(&format!("remote-host{n}"))).unwrap();
    }
    let rollout = || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_imago"));
        cmd.arg("--store")
            .arg(s.path("store"))
            .args(["deploy", "--toplevel", &s.top.to_absolute()])
            .args([
                "--target",
                "ssh://root@host1",
                "--target",
                "ssh://root@host2",
            ])
            .args([
                "--target",
                "ssh://root@host3",
                "--canary",
                "1",
                "--parallel",
                "2",
            ])
            .arg("--ssh")
            .arg(&fleet)
            .arg("--remote-store")
            .arg(&remote);
        cmd.output().unwrap()
    };
    let out = rollout();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (wave, host) in [(1, "host1"), (2, "host2"), (2, "host3")] {
        assert!(
            stdout.contains(&format!("wave {wave} root@{host}: done")),
            "{stdout}"
        );
        assert!(
            stdout.contains(&format!("copied 2 objects to root@{host}")),
            "{stdout}"
        );
        assert!(
            s.path(&format!("remote-{host}"))
                .join(s.top.to_string())
                .is_dir(),
            "{host}"
        );
    }
    // The canary was done before the second wave began.
    let log = fs::read_to_string(s.path("fleet.log")).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    let last_canary = lines.iter().rposition(|l| *l == "root@host1").unwrap();
    let first_other = lines.iter().position(|l| *l != "root@host1").unwrap();
    assert!(last_canary < first_other, "{log}");

    // A new system whose check fails on the canary: it is rolled back, and
    // the others are not touched.
    fs::write(s.path("unhealthy"), "").unwrap();
    for n in 1..=3 {
        let dir = s.path(&format!("remote-host{n}"));
        fs::remove_dir_all(&dir).unwrap();
        fs::create_dir_all(&dir).unwrap();
    }
    fs::write(s.path("fleet.log"), "").unwrap();
    let out = rollout();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stdout.contains("wave 1 root@host1: rolled back"),
        "{stdout}"
    );
    assert!(
        stdout.contains("wave 2 root@host2: not started"),
        "{stdout}"
    );
    assert!(
        stdout.contains("wave 2 root@host3: not started"),
        "{stdout}"
    );
    assert!(stderr.contains("root@host1: FAILED web"), "{stderr}");
    assert!(
        stderr.contains("1 of 3 machines failed") && stderr.contains("the rollout stopped"),
        "{stderr}"
    );
    let log = fs::read_to_string(s.path("fleet.log")).unwrap();
    assert!(log.lines().all(|l| l == "root@host1"), "{log}");
    assert_eq!(fs::read_to_string(s.path("marker")).unwrap(), "rollback\n");
}

#[test]
fn failures_are_reported() {
    let s = setup();
    fs::remove_dir(s.path("remote")).unwrap();
    let out = s.deploy(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("failed"), "{stderr}");
    assert!(stderr.contains("on root@test-machine"), "{stderr}");

    let out = Command::new(env!("CARGO_BIN_EXE_imago"))
        .args([
            "deploy",
            "--toplevel",
            "x",
            "--target",
            "ssh://-oProxyCommand=evil",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a host name"));
}

#[test]
fn copy_only_runs_nothing_on_the_target() {
    let s = setup();
    let out = s.deploy(&["--copy-only"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(s.remote_names().len(), 2);
    assert!(!s.path("marker").exists());
}

/// `imago rollback|generations --target` run the target's current
/// generation's script (here a stand-in that logs its arguments, reached
/// through a fake ssh that maps /imago/var/profiles to a directory).
#[test]
fn rollback_and_generations_run_the_targets_generation_tool() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("profiles/system/bin");
    fs::create_dir_all(&bin).unwrap();
    let log = dir.path().join("tool.log");
    fs::write(
        bin.join("switch-to-configuration"),
        format!(
            "#!/bin/sh\necho \"$*\" >> {}\n[ \"$1\" = delete-generations ] && [ \"$2\" = 1 ] && {{ echo 'generation 1 is booted' >&2; exit 1; }}\necho \"did $*\"\n",
            log.display()
        ),
    )
    .unwrap();
    fs::set_permissions(
        bin.join("switch-to-configuration"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let ssh = dir.path().join("fake-ssh");
    fs::write(
        &ssh,
        format!(
            "#!/bin/sh\nwhile [ \"$1\" != -- ]; do shift; done\nshift 2\nexec sh -c \"$(echo \"$*\" | sed 's|/imago/var/profiles|{}|')\"\n",
            dir.path().join("profiles").display()
        ),
    )
    .unwrap();
    fs::set_permissions(&ssh, fs::Permissions::from_mode(0o755)).unwrap();
    let imago = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_imago"))
            .args(args)
            .args(["--target", "ssh://root@m", "--ssh"])
            .arg(&ssh)
            .output()
            .unwrap()
    };
    let out = imago(&["rollback"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "did rollback switch\n"
    );
    assert!(imago(&["rollback", "--boot"]).status.success());
    assert!(imago(&["generations"]).status.success());
    assert!(imago(&["generations", "delete", "2", "3"]).status.success());
    let out = imago(&["generations", "delete", "1"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "switch-to-configuration delete-generations 1 failed on root@m (exit status 1)"
        ),
        "{stderr}"
    );
    let out = imago(&["generations", "delete", "--older-than", "30d"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--older-than works on a local"));
    assert_eq!(
        fs::read_to_string(&log).unwrap(),
        "rollback switch\nrollback boot\nlist-generations\ndelete-generations 2 3\ndelete-generations 1\n"
    );
}
