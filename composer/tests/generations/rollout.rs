//! `imago deploy` to a fleet of stand-in machines: each `root@hostN`,
//! reached through a stand-in for ssh, has a store (`remote-hostN`), a
//! profile with numbered generations and a running system of its own
//! (`host-hostN/`, kept by the test system's switch-to-configuration; see
//! `deploy::setup`). The JSON report, a targets file, an interruption, and
//! the progress of the waves.

#![allow(clippy::unwrap_used)]

use super::deploy::{Setup, setup};
use serde_json::Value;
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const HOSTS: [&str; 3] = ["host1", "host2", "host3"];

/// Gives each machine an empty store and generation 1 of an old system,
/// running; writes the stand-in for ssh.
fn fleet(s: &Setup) {
    for host in HOSTS {
        let store = s.path(&format!("remote-{host}"));
        let _ = fs::remove_dir_all(&store);
        fs::create_dir_all(&store).unwrap();
        let dir = s.path(&format!("host-{host}"));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("profiles")).unwrap();
        fs::create_dir_all(dir.join("run")).unwrap();
        let old = store.join("00000000000000000000000000000000-old-system");
        fs::create_dir_all(&old).unwrap();
        symlink(&old, dir.join("profiles/system-1-link")).unwrap();
        symlink("system-1-link", dir.join("profiles/system")).unwrap();
        symlink(&old, dir.join("run/current-system")).unwrap();
        fs::write(dir.join("boot_id"), "boot-1\n").unwrap();
        // A reboot: a new boot id, and the profile's system running
        // (unless the machine stays down, or its boot loader falls back).
        fs::create_dir_all(dir.join("bin")).unwrap();
        let reboot = dir.join("bin/reboot");
        fs::write(
            &reboot,
            r#"#!/bin/sh
[ -e "$FAKE_HOST/stays-down" ] && { echo rebooting > "$FAKE_HOST/boot_id"; exit 0; }
echo "boot-$(date +%s%N)" > "$FAKE_HOST/boot_id"
[ -e "$FAKE_HOST/falls-back" ] || ln -sfn "$(readlink -f "$FAKE_HOST/profiles/system")" "$FAKE_HOST/run/current-system"
"#,
        )
        .unwrap();
        fs::set_permissions(&reboot, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let remote = s.path("remote");
    let ssh = s.path("fake-ssh-fleet");
    fs::write(
        &ssh,
        format!(
            r##"#!/bin/sh
while [ "$1" != -- ]; do shift; done
shift
host=${{1#*@}}
echo "$1" >> {log}
shift
FAKE_HOST={dir}/host-$host
export FAKE_HOST
script=$(printf '%s' "$*" | sed -e "s#{remote}#{remote}-$host#g" -e "s#/run/current-system#$FAKE_HOST/run/current-system#g" -e "s#/imago/var/profiles#$FAKE_HOST/profiles#g" -e "s#/proc/sys/kernel/random/boot_id#$FAKE_HOST/boot_id#g" -e "s#; reboot)#; $FAKE_HOST/bin/reboot)#g")
case "$script" in *"; reboot)"*|reboot*) echo "the stand-in refuses a real reboot" >&2; exit 99 ;; esac
case "$script" in *boot_id*) [ -e "$FAKE_HOST/stays-down" ] && [ "$(cat "$FAKE_HOST/boot_id")" = rebooting ] && {{ echo "stand-in: connection refused" >&2; exit 255; }} ;; esac
exec sh -c "$script"
"##,
            log = s.path("fleet.log").display(),
            dir = s.dir.path().display(),
            remote = remote.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&ssh, fs::Permissions::from_mode(0o755)).unwrap();
}

/// `imago deploy` of the test system to the fleet, with `args`.
fn deploy(s: &Setup, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_imago"));
    cmd.arg("--store")
        .arg(s.path("store"))
        .args(["deploy", "--toplevel", &s.top.to_absolute()])
        .arg("--ssh")
        .arg(s.path("fake-ssh-fleet"))
        .arg("--remote-store")
        .arg(s.path("remote"))
        .args(args);
    cmd
}

const ALL: [&str; 6] = [
    "--target",
    "ssh://root@host1",
    "--target",
    "ssh://root@host2",
    "--target",
    "ssh://root@host3",
];

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", text(&out.stdout), text(&out.stderr)))
}

/// The generation a machine's profile is on, and whether it runs the
/// test system.
fn host_state(s: &Setup, host: &str) -> (String, bool) {
    let dir = s.path(&format!("host-{host}"));
    let link = fs::read_link(dir.join("profiles/system")).unwrap();
    let running = fs::read_link(dir.join("run/current-system")).unwrap();
    (
        link.display().to_string(),
        running.ends_with(s.top.to_string()),
    )
}

/// The JSON report: per machine its generation and system before and after,
/// time, result; a rolled-back canary names its failed check.
#[test]
fn the_json_report_has_each_machines_generations_and_failed_checks() {
    let s = setup();
    fleet(&s);
    let mut args = ALL.to_vec();
    args.extend(["--canary", "1", "--parallel", "2", "--json"]);
    let out = deploy(&s, &args).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc = json(&out);
    assert_eq!(doc["version"], 1);
    assert_eq!(doc["action"], "switch");
    assert_eq!(doc["result"], "ok");
    assert_eq!(doc["stopped"], Value::Null);
    let system = format!("{}/{}", s.path("remote").display(), s.top);
    let hosts = doc["hosts"].as_array().unwrap();
    assert_eq!(hosts.len(), 3);
    for (host, (name, wave)) in hosts.iter().zip([("host1", 1), ("host2", 2), ("host3", 2)]) {
        assert_eq!(host["target"], format!("root@{name}"), "{host}");
        assert_eq!(host["wave"], wave, "{host}");
        assert_eq!(host["system"], system, "{host}");
        assert_eq!(host["result"], "done", "{host}");
        assert_eq!(host["copied"], 2, "{host}");
        assert!(host["seconds"].as_f64().unwrap() >= 0.0, "{host}");
        assert_eq!(host["before"]["generation"], 1, "{host}");
        assert!(
            host["before"]["running"]
                .as_str()
                .unwrap()
                .ends_with("-old-system"),
            "{host}"
        );
        assert_eq!(host["after"]["generation"], 2, "{host}");
        for field in ["running", "profile"] {
            assert!(
                host["after"][field]
                    .as_str()
                    .unwrap()
                    .ends_with(&s.top.to_string()),
                "{host}"
            );
        }
        assert_eq!(host["failed_checks"], Value::Array(vec![]), "{host}");
        assert!(
            host["output"].as_str().unwrap().contains("ok web"),
            "{host}"
        );
        assert_eq!(host_state(&s, name), ("system-2-link".to_owned(), true));
    }
    // Quiet but for errors: no progress with --json.
    assert!(
        !text(&out.stderr).contains("wave 1/2"),
        "{}",
        text(&out.stderr)
    );

    // A system whose check fails: the canary is rolled back to generation
    // 1, the others are not started.
    fleet(&s);
    fs::write(s.path("unhealthy"), "").unwrap();
    let out = deploy(&s, &args).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("error[E1104]"),
        "{}",
        text(&out.stderr)
    );
    let doc = json(&out);
    assert_eq!(doc["result"], "failed");
    assert_eq!(doc["stopped"], "failures");
    let canary = &doc["hosts"][0];
    assert_eq!(canary["result"], "rolled-back");
    assert_eq!(canary["before"]["generation"], 1);
    assert_eq!(canary["after"]["generation"], 1);
    assert!(
        canary["after"]["running"]
            .as_str()
            .unwrap()
            .ends_with("-old-system")
    );
    let checks = canary["failed_checks"].as_array().unwrap();
    assert_eq!(checks.len(), 1, "{canary}");
    assert_eq!(checks[0]["name"], "web");
    assert_eq!(
        checks[0]["output"],
        "FAILED web (exit status 1, limit 5 s): check-web\n  connection refused\n"
    );
    for other in &doc["hosts"].as_array().unwrap()[1..] {
        assert_eq!(other["result"], "not-started", "{other}");
        assert_eq!(other["before"], Value::Null, "{other}");
    }
    assert_eq!(host_state(&s, "host1"), ("system-1-link".to_owned(), false));
    assert_eq!(host_state(&s, "host2"), ("system-1-link".to_owned(), false));
}

/// The text report and the live progress: a line per wave and per machine
/// as it starts and ends, in the waves' order, on stderr.
#[test]
fn the_progress_shows_the_waves_in_order() {
    let s = setup();
    fleet(&s);
    let mut args = ALL.to_vec();
    args.extend(["--canary", "1", "--parallel", "2"]);
    let out = deploy(&s, &args).output().unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    let line = |want: &str| {
        stderr
            .lines()
            .position(|l| l.starts_with(want))
            .unwrap_or_else(|| panic!("{want:?} missing from:\n{stderr}"))
    };
    let wave1 = line("wave 1/2: root@host1");
    let canary_done = line("root@host1: done in ");
    let wave2 = line("wave 2/2: root@host2, root@host3");
    assert!(wave1 < line("root@host1: started"));
    assert!(line("root@host1: started") < canary_done);
    assert!(canary_done < wave2, "{stderr}");
    for host in ["host2", "host3"] {
        assert!(wave2 < line(&format!("root@{host}: started")), "{stderr}");
        assert!(
            stderr.contains(&format!("root@{host}: done in "))
                && stderr.contains("generation 1 -> 2"),
            "{stderr}"
        );
    }
    assert!(stdout.contains("wave 1 root@host1: done ("), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "-old-system (generation 1) -> {} (generation 2)",
            s.top
        )),
        "{stdout}"
    );
}

/// Machines from a targets file (comments, blank lines); a bad line is an
/// error naming the file and line; attr= needs a configuration to build.
#[test]
fn a_targets_file_lists_the_machines() {
    let s = setup();
    fleet(&s);
    let file = s.path("fleet.txt");
    fs::write(
        &file,
        "# the fleet\nssh://root@host1\n\n  ssh://root@host2   # the second\nssh://root@host3\n",
    )
    .unwrap();
    let out = deploy(&s, &["--targets", file.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc = json(&out);
    let targets: Vec<&str> = doc["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["target"].as_str().unwrap())
        .collect();
    assert_eq!(targets, ["root@host1", "root@host2", "root@host3"]);
    for host in HOSTS {
        assert_eq!(host_state(&s, host), ("system-2-link".to_owned(), true));
    }

    let error = |content: &str, extra: &[&str]| {
        fs::write(&file, content).unwrap();
        let mut args = vec!["--targets", file.to_str().unwrap()];
        args.extend_from_slice(extra);
        let out = deploy(&s, &args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
        text(&out.stderr)
    };
    let place = format!("{}:3", file.display());
    let err = error("ssh://root@host1\n# fine\nhost2\n", &[]);
    assert!(
        err.contains(&format!(
            "error[E1102]: {place}: `host2`: the target must be ssh://"
        )),
        "{err}"
    );
    let err = error("ssh://root@host1\n\nssh://root@host2 attr=web\n", &[]);
    assert!(
        err.contains(&format!("error[E1103]: {place}: attr=web")),
        "{err}"
    );
    let err = error("ssh://root@host1\n", &["--target", "ssh://root@host1"]);
    assert!(
        err.contains(&format!(
            "error[E1102]: ssh://root@host1 is listed twice (--target and {}:1)",
            file.display()
        )),
        "{err}"
    );
    let err = error("", &[]);
    assert!(err.contains("no machine to deploy to"), "{err}");
    fs::remove_file(&file).unwrap();
    let out = deploy(&s, &["--targets", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        text(&out.stderr).contains("error[E1101]: cannot read the targets file"),
        "{}",
        text(&out.stderr)
    );
}

/// SIGINT while the first machine switches (slowly): it finishes its
/// switch and checks, no other machine starts, the exit status says so;
/// the same deploy again continues with the others.
#[test]
fn an_interrupted_rollout_finishes_the_machine_under_way_and_continues_later() {
    let s = setup();
    fleet(&s);
    fs::write(s.path("slow"), "").unwrap();
    let child = deploy(&s, &ALL)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let switching = s.path("host-host1/switching");
    let start = Instant::now();
    while !switching.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "host1 never switched"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("error[E1106]: interrupted: 2 of 3 machines were not started"),
        "{stderr}"
    );
    assert!(stderr.contains("rollout interrupted"), "{stderr}");
    assert!(stdout.contains("wave 1 root@host1: done"), "{stdout}");
    assert!(
        stdout.contains("wave 2 root@host2: not started"),
        "{stdout}"
    );
    assert!(
        stdout.contains("wave 3 root@host3: not started"),
        "{stdout}"
    );
    // host1 switched and was checked; the others were not touched.
    assert!(stdout.contains("root@host1: ok web"), "{stdout}");
    assert_eq!(host_state(&s, "host1"), ("system-2-link".to_owned(), true));
    for host in ["host2", "host3"] {
        assert_eq!(host_state(&s, host), ("system-1-link".to_owned(), false));
    }
    let log = fs::read_to_string(s.path("fleet.log")).unwrap();
    assert!(log.lines().all(|l| l == "root@host1"), "{log}");

    fs::remove_file(s.path("slow")).unwrap();
    let out = deploy(&s, &ALL).output().unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        stdout.contains("wave 1 root@host1: already there"),
        "{stdout}"
    );
    assert!(stdout.contains("wave 2 root@host2: done"), "{stdout}");
    assert!(stdout.contains("wave 3 root@host3: done"), "{stdout}");
    for host in HOSTS {
        assert_eq!(host_state(&s, host), ("system-2-link".to_owned(), true));
    }
}

/// `--reboot`: each machine gets the system as its boot default, reboots
/// and comes back running it (a new boot id), then runs its checks; one
/// whose boot loader fell back to the old system, and one that does not
/// come back within `--reboot-timeout`, are failures.
#[test]
fn a_reboot_must_come_back_on_the_new_system() {
    let s = setup();
    fleet(&s);
    let mut args = ALL.to_vec();
    args.extend(["--parallel", "3", "--reboot", "--json"]);
    let out = deploy(&s, &args).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc = json(&out);
    assert_eq!(doc["action"], "reboot");
    for (host, name) in doc["hosts"].as_array().unwrap().iter().zip(HOSTS) {
        assert_eq!(host["result"], "done", "{host}");
        assert_eq!(host["after"]["generation"], 2, "{host}");
        assert!(
            host["output"].as_str().unwrap().contains("ok web"),
            "{host}"
        );
        assert_eq!(host_state(&s, name), ("system-2-link".to_owned(), true));
        assert_ne!(
            fs::read_to_string(s.path(&format!("host-{name}/boot_id"))).unwrap(),
            "boot-1\n"
        );
    }
    assert_eq!(fs::read_to_string(s.path("marker")).unwrap(), "boot\n");

    fleet(&s);
    fs::write(s.path("host-host2/falls-back"), "").unwrap();
    fs::write(s.path("host-host3/stays-down"), "").unwrap();
    args.extend(["--reboot-timeout", "3", "--max-failures", "2"]);
    let out = deploy(&s, &args).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let doc = json(&out);
    let hosts = doc["hosts"].as_array().unwrap();
    assert_eq!(hosts[0]["result"], "done");
    assert_eq!(hosts[1]["result"], "failed");
    let error = hosts[1]["error"].as_str().unwrap();
    assert!(
        error.contains("root@host2 came back from its reboot running ")
            && error.contains("-old-system (current generation 2), not "),
        "{error}"
    );
    assert_eq!(hosts[2]["result"], "failed");
    let error = hosts[2]["error"].as_str().unwrap();
    assert!(
        error.contains("root@host3 did not come back within 3 s of the reboot"),
        "{error}"
    );
    // Trying a machine that is down is quiet.
    assert!(
        !text(&out.stderr).contains("connection refused"),
        "{}",
        text(&out.stderr)
    );
}
