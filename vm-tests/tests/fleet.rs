//! A rollout over real ssh to three busybox machines (Debian trixie, OVMF,
//! each on its own overlay of one disk image, sshd reached through a QEMU
//! user-network port forward), as a user runs it: `imago deploy
//! --toplevel … --target ssh://root@127.0.0.1:PORT ×3 --canary 1
//! --parallel 2`.
//!
//! * vm-tests/systems/trixie/fleet-gen2.imago (a file in /etc and a health
//!   check that passes), with `--target-substituter`: the machines fetch
//!   the objects they lack from a binary cache (`imago copy --to` a
//!   directory, served over HTTP through a QEMU guest forward at
//!   `http://10.0.2.100:8080` by a script QEMU runs per connection) whose
//!   archive of the toplevel is corrupted: the machines refuse that one
//!   (its SHA-256 is not the deployer's) and get it over ssh. Every
//!   machine ends on it, as generation 2, running and current; the report
//!   says what came from the cache and what over ssh; the progress on
//!   stderr shows the canary's wave, the canary done, then the second wave
//!   with the other two.
//! * fleet-broken.imago (a health check that always fails), `--json`: the
//!   canary switches to it, fails the check and is rolled back to
//!   generation 2; the others are not started and do not even get its
//!   closure; exit status 1; the JSON report names the check and its
//!   output.
//! * `--reboot` of the first system to the second machine: it becomes
//!   generation 3, the machine reboots and comes back over ssh running it
//!   (the kernel command line says generation 3).
//! * `--reboot` of fleet-unbootable.imago (its init fails) to the third
//!   machine, the canary, and the first: the canary boots it three times,
//!   then systemd-boot's counting brings generation 2 back; the deploy
//!   reports the failure with what the machine runs, and the first machine
//!   is not started.
//! * SIGINT to a rollout of the first system to the first machine and the
//!   third once the canary has started: the third is not started; the same
//!   deploy again finishes the rollout.
//!
//! Every deploy shares one ssh connection per machine between its scripts
//! (a control master with its socket under the deploy's `TMPDIR`); after
//! each, nothing of it is left: no socket directory, no ssh process.
//!
//! The backdoor is used only to wait for the boots. Not in the quick
//! subset.

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use imago_vm_tests::{Driver, Failure, Machine, vm_test};
use serde_json::Value;
use support::System;
use support::outside::{
    booted_generation, free_port, guest_http_dir, ssh, ssh_wrapper, user_net_args, write_key,
};

const SEC: Duration = Duration::from_secs(1);

/// OVMF, systemd-boot, the kernel and busybox init to sshd (scaled).
const BOOT: Duration = Duration::from_secs(120);

/// A machine of the fleet and its forwarded ssh port.
struct Member {
    machine: Machine,
    port: u16,
}

/// Where the machines reach the binary cache the test serves.
const CACHE_IN_GUEST: &str = "10.0.2.100:8080";

/// Boots the three machines; each reaches the host's directory `cache`
/// over HTTP at [`CACHE_IN_GUEST`].
fn boot_fleet(driver: &Driver, gen1: &System, cache: &Path) -> Result<Vec<Member>, Failure> {
    let mut fleet = Vec::new();
    for n in 1..=3 {
        let port = driver.setup("pick a port", free_port)?;
        let mut config = gen1.uefi_disk(driver, &format!("fleet{n}"))?;
        config.extra_args = user_net_args(&[(port, 22)]);
        driver.setup("serve the binary cache to the machine", || {
            guest_http_dir(&mut config.extra_args, CACHE_IN_GUEST, cache)
        })?;
        let machine = driver.machine(config)?;
        machine.start()?;
        fleet.push(Member { machine, port });
    }
    Ok(fleet)
}

/// `imago deploy --toplevel SYSTEM` to the fleet, canary first, with the
/// test key; `extra` is added.
fn deploy(
    driver: &Driver,
    system: &System,
    fleet: &[&Member],
    extra: &[&str],
) -> Result<Output, Failure> {
    driver.setup(
        &format!("host: imago deploy {} {}", system.toplevel, extra.join(" ")),
        || {
            let mut cmd = deploy_command(driver, system, fleet, extra)?;
            let started = Instant::now();
            let out = cmd.output().map_err(|e| format!("imago-cli: {e}"))?;
            eprintln!(
                "imago deploy took {:?}, {}:\n{}{}",
                started.elapsed(),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            no_connection_left(driver)?;
            Ok::<_, String>(out)
        },
    )
}

/// The `imago deploy` of [`deploy`], not started.
fn deploy_command(
    driver: &Driver,
    system: &System,
    fleet: &[&Member],
    extra: &[&str],
) -> Result<Command, String> {
    let key = write_key(driver.dir(), None)?;
    let wrapper = ssh_wrapper(driver.dir(), &key)?;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_imago-cli"));
    cmd.arg("--store").arg(&system.store).args([
        "deploy",
        "--toplevel",
        &system.toplevel.to_absolute(),
    ]);
    for member in fleet {
        cmd.arg("--target")
            .arg(format!("ssh://root@127.0.0.1:{}", member.port));
    }
    let tmp = deploy_tmp(driver);
    std::fs::create_dir_all(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    cmd.args(["--canary", "1", "--parallel", "2", "--allow-test-backdoor"])
        .args(extra)
        .env("IMAGO_SSH", &wrapper)
        .env("TMPDIR", &tmp);
    Ok(cmd)
}

/// The `TMPDIR` of every deploy: where its ssh control sockets live.
fn deploy_tmp(driver: &Driver) -> std::path::PathBuf {
    driver.dir().join("deploy-tmp")
}

/// Fails unless the deploy that just ended left no shared ssh connection:
/// its socket directories are gone from its `TMPDIR`, and no process runs
/// with one on its command line (a control master exits at the deploy's
/// request, which it may finish a moment after answering).
fn no_connection_left(driver: &Driver) -> Result<(), String> {
    let tmp = deploy_tmp(driver);
    let left: Vec<String> = std::fs::read_dir(&tmp)
        .map_err(|e| format!("{}: {e}", tmp.display()))?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    if !left.is_empty() {
        return Err(format!("the deploy left {left:?} in its TMPDIR"));
    }
    let needle = tmp.to_string_lossy().into_owned();
    let started = Instant::now();
    loop {
        let running: Vec<String> = std::fs::read_dir("/proc")
            .map_err(|e| format!("/proc: {e}"))?
            .filter_map(|e| e.ok())
            .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
            .map(|c| {
                String::from_utf8_lossy(&c)
                    .replace('\0', " ")
                    .trim()
                    .to_owned()
            })
            .filter(|c| c.contains(&needle))
            .collect();
        if running.is_empty() {
            return Ok(());
        }
        if started.elapsed() > 5 * SEC {
            return Err(format!("still running after the deploy: {running:?}"));
        }
        std::thread::sleep(SEC / 10);
    }
}

/// [`deploy`], with SIGINT sent to imago once its progress on stderr has
/// a line starting with `at`; returns its exit code, stdout and stderr.
fn deploy_interrupted(
    driver: &Driver,
    system: &System,
    fleet: &[&Member],
    extra: &[&str],
    at: &str,
) -> Result<(Option<i32>, String, String), Failure> {
    driver.setup(
        &format!("host: imago deploy {}, SIGINT at {at:?}", system.toplevel),
        || {
            let mut child = deploy_command(driver, system, fleet, extra)?
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| format!("imago-cli: {e}"))?;
            let stderr = child.stderr.take().ok_or("no stderr")?;
            let mut seen = String::new();
            let mut sent = false;
            for line in BufReader::new(stderr).lines() {
                let line = line.map_err(|e| e.to_string())?;
                if !sent && line.starts_with(at) {
                    let kill = Command::new("kill")
                        .args(["-INT", &child.id().to_string()])
                        .status()
                        .map_err(|e| format!("kill: {e}"))?;
                    sent = kill.success();
                }
                seen.push_str(&line);
                seen.push('\n');
            }
            let out = child.wait_with_output().map_err(|e| e.to_string())?;
            eprintln!(
                "imago deploy (interrupted: {sent}), {}:\n{}{seen}",
                out.status,
                String::from_utf8_lossy(&out.stdout)
            );
            no_connection_left(driver)?;
            if !sent {
                return Err(format!("no line starting with {at:?} in:\n{seen}"));
            }
            Ok::<_, String>((
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                seen,
            ))
        },
    )
}

/// `imago copy --to` the build closure of `system` into the directory
/// cache `dir`, then corrupts the archive of its toplevel (one byte of
/// its end flipped); returns the toplevel's name.
fn fill_cache(driver: &Driver, system: &System, dir: &Path) -> Result<String, Failure> {
    driver.setup(
        "host: imago copy --to the cache, one archive corrupted",
        || {
            let started = Instant::now();
            let out = Command::new(env!("CARGO_BIN_EXE_imago-cli"))
                .arg("--store")
                .arg(&system.store)
                .args(["copy", "--to", &format!("file://{}", dir.display())])
                .arg(system.toplevel.to_absolute())
                .output()
                .map_err(|e| format!("imago-cli: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "imago copy --to failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            eprintln!("imago copy --to took {:?}", started.elapsed());
            let info = dir.join(format!("objects/{}.json", system.toplevel.hash_part()));
            let info: Value = serde_json::from_slice(
                &std::fs::read(&info).map_err(|e| format!("{}: {e}", info.display()))?,
            )
            .map_err(|e| format!("{}: {e}", info.display()))?;
            let archive = dir.join(info["archive"].as_str().unwrap_or_default());
            let mut bytes =
                std::fs::read(&archive).map_err(|e| format!("{}: {e}", archive.display()))?;
            if let Some(last) = bytes.last_mut() {
                *last ^= 0xff;
            }
            std::fs::write(&archive, bytes).map_err(|e| format!("{}: {e}", archive.display()))?;
            Ok::<_, String>(system.toplevel.to_string())
        },
    )
}

/// What a machine runs and its profile's current generation, over ssh.
/// (The first time, `timeout` covers the boot.)
fn state(
    driver: &Driver,
    key: &Path,
    member: &Member,
    timeout: Duration,
) -> Result<String, Failure> {
    ssh(
        driver,
        key,
        member.port,
        "root",
        "readlink -f /run/current-system; readlink /imago/var/profiles/system; cat /etc/imago-fleet 2>/dev/null || echo none",
        timeout,
    )
}

vm_test!(
    full,
    fn a_rollout_goes_in_waves_over_ssh_and_a_failed_canary_is_rolled_back() {
        let driver = Driver::new("fleet")?;
        let gen1 = support::system(&driver, "trixie/fleet")?;
        let gen2 = support::system(&driver, "trixie/fleet-gen2")?;
        let broken = support::system(&driver, "trixie/fleet-broken")?;
        let key = driver.setup("write the test key", || write_key(driver.dir(), None))?;
        let cache = driver.dir().join("cache");
        let fleet = boot_fleet(&driver, &gen1, &cache)?;
        let started = Instant::now();
        let mut before = Vec::new();
        for member in &fleet {
            before.push(state(&driver, &key, member, BOOT)?);
        }
        eprintln!(
            "fleet: ssh answered on all three {:?} after the start",
            started.elapsed()
        );
        let gen1_path = format!("/imago/store/{}", gen1.toplevel);
        for state in &before {
            assert_eq!(state, &format!("{gen1_path}\nsystem-1-link\nnone\n"));
        }
        let name = |member: &Member| format!("root@127.0.0.1:{}", member.port);

        // Generation 2, canary first, the machines fetching from the cache
        // all but the toplevel, whose archive there is corrupted.
        let corrupted = fill_cache(&driver, &gen2, &cache)?;
        let all: Vec<&Member> = fleet.iter().collect();
        let out = deploy(
            &driver,
            &gen2,
            &all,
            &[
                "--target-substituter",
                &format!("http://{CACHE_IN_GUEST}"),
                "--target-substituter-local",
                &format!("file://{}", cache.display()),
            ],
        )?;
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{stderr}");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        for member in &fleet {
            let host = name(member);
            let counts = stdout
                .lines()
                .filter_map(|l| l.strip_prefix(&format!("{host}: ")))
                .find(|l| l.contains(" from the cache, "))
                .unwrap_or_else(|| panic!("no counts for {host} in:\n{stdout}"));
            assert!(
                !counts.starts_with("0 objects") && counts.contains(" from the cache, 1 ("),
                "{host}: {counts}"
            );
            let fallback = format!(
                "{host}: {corrupted} over ssh: the machine could not fetch it: http://{CACHE_IN_GUEST}/"
            );
            assert!(
                stdout
                    .lines()
                    .any(|l| l.starts_with(&fallback) && l.contains("SHA-256")),
                "{fallback} missing from:\n{stdout}"
            );
        }
        let line = |want: &str| {
            stderr
                .lines()
                .position(|l| l.starts_with(want))
                .unwrap_or_else(|| panic!("{want:?} missing from:\n{stderr}"))
        };
        let canary = name(&fleet[0]);
        let wave1 = line(&format!("wave 1/2: {canary}"));
        let canary_done = line(&format!("{canary}: done in "));
        let wave2 = line(&format!(
            "wave 2/2: {}, {}",
            name(&fleet[1]),
            name(&fleet[2])
        ));
        assert!(wave1 < canary_done && canary_done < wave2, "{stderr}");
        for member in &fleet[1..] {
            assert!(
                wave2 < line(&format!("{}: started", name(member))),
                "{stderr}"
            );
            assert!(
                stderr.contains(&format!("{}: done in ", name(member))),
                "{stderr}"
            );
        }
        assert!(stderr.contains("generation 1 -> 2"), "{stderr}");
        let gen2_path = format!("/imago/store/{}", gen2.toplevel);
        for member in &fleet {
            assert_eq!(
                state(&driver, &key, member, 30 * SEC)?,
                format!("{gen2_path}\nsystem-2-link\n2\n"),
                "{}",
                name(member)
            );
        }

        // A system whose check fails: the canary goes back to generation 2,
        // the others are not touched.
        let out = deploy(&driver, &broken, &all, &["--json"])?;
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        let doc: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
        assert_eq!(doc["result"], "failed", "{doc}");
        assert_eq!(doc["stopped"], "failures", "{doc}");
        let hosts = doc["hosts"].as_array().expect("hosts");
        let first = &hosts[0];
        assert_eq!(first["target"], canary.as_str(), "{doc}");
        assert_eq!(first["result"], "rolled-back", "{doc}");
        assert_eq!(first["before"]["generation"], 2, "{doc}");
        assert_eq!(first["after"]["generation"], 2, "{doc}");
        assert_eq!(first["after"]["running"], gen2_path.as_str(), "{doc}");
        let checks = first["failed_checks"].as_array().expect("failed_checks");
        assert_eq!(checks.len(), 1, "{doc}");
        assert_eq!(checks[0]["name"], "always-fails", "{doc}");
        assert!(
            checks[0]["output"]
                .as_str()
                .is_some_and(|o| o.contains("IMAGO-FLEET-BROKEN")),
            "{doc}"
        );
        for host in &hosts[1..] {
            assert_eq!(host["result"], "not-started", "{doc}");
        }
        assert_eq!(
            state(&driver, &key, &fleet[0], 30 * SEC)?,
            format!("{gen2_path}\nsystem-2-link\n2\n")
        );
        let broken_path = format!("/imago/store/{}", broken.toplevel);
        for member in &fleet[1..] {
            assert_eq!(
                state(&driver, &key, member, 30 * SEC)?,
                format!("{gen2_path}\nsystem-2-link\n2\n")
            );
            assert_eq!(
                ssh(
                    &driver,
                    &key,
                    member.port,
                    "root",
                    &format!("test -e {broken_path} && echo present || echo absent"),
                    30 * SEC
                )?,
                "absent\n",
                "{}",
                name(member)
            );
        }

        // `--reboot` of generation 1's system to the second machine: it
        // becomes generation 3, the machine reboots (QEMU resets it) and
        // comes back running it.
        let out = deploy(&driver, &gen1, &[&fleet[1]], &["--reboot", "--json"])?;
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{stderr}");
        let doc: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
        assert_eq!(doc["action"], "reboot", "{doc}");
        let host = &doc["hosts"][0];
        assert_eq!(host["result"], "done", "{doc}");
        assert_eq!(host["before"]["generation"], 2, "{doc}");
        assert_eq!(host["after"]["generation"], 3, "{doc}");
        assert_eq!(host["after"]["running"], gen1_path.as_str(), "{doc}");
        assert_eq!(
            state(&driver, &key, &fleet[1], 30 * SEC)?,
            format!("{gen1_path}\nsystem-3-link\nnone\n")
        );
        let (cmdline, booted) = booted_generation(&driver, &key, fleet[1].port, "root")?;
        assert_eq!(booted, Some(3), "{cmdline}");

        // `--reboot` of a system that cannot boot, the third machine the
        // canary: it reboots into it three times (its init fails, the
        // kernel panics), then systemd-boot's counting boots generation 2
        // again by itself; the deploy waits for that, reports the failure
        // with the system the machine came back on, and stops: the first
        // machine is not started.
        let unbootable = support::system(&driver, "trixie/fleet-unbootable")?;
        let out = deploy(
            &driver,
            &unbootable,
            &[&fleet[2], &fleet[0]],
            &["--reboot", "--reboot-timeout", "900", "--json"],
        )?;
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        let doc: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
        let hosts = doc["hosts"].as_array().expect("hosts");
        assert_eq!(hosts[0]["target"], name(&fleet[2]).as_str(), "{doc}");
        assert_eq!(hosts[0]["result"], "failed", "{doc}");
        assert_eq!(hosts[0]["after"]["running"], gen2_path.as_str(), "{doc}");
        let error = hosts[0]["error"].as_str().unwrap_or_default();
        assert!(
            error.contains(&format!("came back from its reboot running {gen2_path}")),
            "{doc}"
        );
        assert_eq!(hosts[1]["result"], "not-started", "{doc}");
        let (cmdline, booted) = booted_generation(&driver, &key, fleet[2].port, "root")?;
        assert_eq!(booted, Some(2), "{cmdline}");
        // Its entry is counted out (`+0-3`): it is never tried again.
        let entries = ssh(
            &driver,
            &key,
            fleet[2].port,
            "root",
            "ls /boot/loader/entries",
            30 * SEC,
        )?;
        assert!(entries.contains("-3+0-3.conf"), "{entries}");
        assert_eq!(
            state(&driver, &key, &fleet[0], 30 * SEC)?,
            format!("{gen2_path}\nsystem-2-link\n2\n")
        );

        // Ctrl-C while the canary (the first machine) is under way: it
        // finishes, the third machine is not started; the same deploy
        // again continues with it and leaves the canary alone when it is
        // done already.
        let targets = [&fleet[0], &fleet[2]];
        let (code, stdout, stderr) =
            deploy_interrupted(&driver, &gen1, &targets, &[], &format!("{canary}: started"))?;
        assert_eq!(code, Some(1), "{stderr}");
        assert!(stderr.contains("rollout interrupted"), "{stderr}");
        let third = name(&fleet[2]);
        assert!(
            stdout.contains(&format!("wave 2 {third}: not started")),
            "{stdout}"
        );
        let canary_done = stdout.contains(&format!("wave 1 {canary}: done"));
        // The third machine was not touched: generation 2 running.
        let (cmdline, booted) = booted_generation(&driver, &key, fleet[2].port, "root")?;
        assert_eq!(booted, Some(2), "{cmdline}");
        let running = |member: &Member| {
            ssh(
                &driver,
                &key,
                member.port,
                "root",
                "readlink -f /run/current-system",
                30 * SEC,
            )
        };
        assert_eq!(running(&fleet[2])?, format!("{gen2_path}\n"));
        let out = deploy(&driver, &gen1, &targets, &[])?;
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{stderr}");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let first = if canary_done { "already there" } else { "done" };
        assert!(
            stdout.contains(&format!("wave 1 {canary}: {first}")),
            "{stdout}"
        );
        assert!(
            stdout.contains(&format!("wave 2 {third}: done")),
            "{stdout}"
        );
        for member in targets {
            assert_eq!(
                running(member)?,
                format!("{gen1_path}\n"),
                "{}",
                name(member)
            );
        }

        // The rebooted machines' backdoors are not the driver's any more.
        fleet[1].machine.kill();
        fleet[2].machine.kill();
        fleet[0].machine.shutdown(40 * SEC)?;
        Ok(())
    }
);
