//! examples/web.imago, the server a NixOS user writes, from its disk image
//! through OVMF and systemd-boot, used from the host the way its users use
//! it — over the real sshd with a key and over HTTP through QEMU
//! user-network port forwards:
//!
//! * the admin logs in with the key and `sudo -n id -u` says 0 (a
//!   setuid wrapper, passwordless for wheel);
//! * nginx serves the page and the `/health` location on the forwarded
//!   port, and a port not in `networking.firewall.allowedTCPPorts` (a
//!   socket-activated banner on 8081, which answers inside the machine)
//!   stays silent from the host;
//! * the `startAt` job ran, the sysctl has its value, the firewall's
//!   `nf_tables` module is loaded and `modprobe` finds it, the time zone is
//!   the configured one;
//! * an ordinary user of the host (`nobody`, under `setpriv`) builds
//!   generation 2 in a store of its own and deploys it with `imago deploy
//!   --boot` as root@machine: every object in the machine's store is owned
//!   by root afterwards (the stream carries no owners, the target restores
//!   none);
//! * a reboot asked for over ssh boots generation 2 with a counted entry,
//!   the entry is blessed (no `+N-M` left), and the admin logs in again;
//! * the key-only accounts have `*` in /etc/shadow (0600), and neither boot
//!   creates accounts behind the modules' back (no `systemd-sysusers`
//!   "Creating user/group" line on the console or in the journal, none
//!   pending in `systemd-sysusers --dry-run`).
//!
//! QEMU runs with `-no-reboot`: the guest's reboot ends QEMU and the test
//! starts it again on the same disk (under TCG, OVMF's warm reset of this
//! guest takes 45–175 s, a cold start a few). The backdoor is used to wait
//! for boots and to tell what went wrong, never for what is checked.
//!
//! The system files are written into a directory `nobody` can read:
//! web-test.imago is examples/web.imago plus the test key for the admin
//! and root, a banner on port 8081 and the backdoor; web-test-gen2.imago
//! adds one file to /etc. Not in the quick subset.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use imago_vm_tests::{Driver, Failure, Machine, vm_test};
use support::outside::{
    NOBODY, TEST_KEY_PUB, UserDir, booted_generation, free_port, http_get, ssh, ssh_options,
    ssh_wrapper, user_net_args, write_key,
};

const SEC: Duration = Duration::from_secs(1);

/// A command through the backdoor (scaled by the accelerator factor).
const CMD: Duration = Duration::from_secs(5);

/// Firmware, boot loader, kernel and systemd to multi-user.target (scaled).
const BOOT: Duration = Duration::from_secs(90);

/// How long a closed port is watched for an answer that must not come
/// (not scaled: an open port answers at once).
const SILENCE: Duration = Duration::from_secs(5);

/// The banner of the socket on port 8081, which the firewall closes.
const BANNER: &str = "IMAGO-CLOSED-PORT";

/// Writes the example, its lock and the test's two generations into
/// `dir/systems`; returns (generation 1, generation 2).
fn write_systems(dir: &Path) -> Result<(PathBuf, PathBuf), String> {
    let systems = dir.join("systems");
    let io = |what: &Path, e: std::io::Error| format!("{}: {e}", what.display());
    std::fs::create_dir_all(&systems).map_err(|e| io(&systems, e))?;
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    for name in ["web.imago", "imago.lock"] {
        let to = systems.join(name);
        std::fs::copy(examples.join(name), &to).map_err(|e| io(&to, e))?;
    }
    let gen1 = systems.join("web-test.imago");
    std::fs::write(
        &gen1,
        format!(
            "# examples/web.imago for the VM test: the test key for the admin and root,\n\
             # a banner on port 8081 (not opened by the firewall) and the backdoor.\n\
             {{ ... }}:\n\
             {{\n\
             \x20 imports = [ ./web.imago ];\n\
             \x20 testing.backdoor.enable = true;\n\
             \x20 users.users.admin.openssh.authorizedKeys.keys = [ \"{TEST_KEY_PUB}\" ];\n\
             \x20 users.users.root.openssh.authorizedKeys.keys = [ \"{TEST_KEY_PUB}\" ];\n\
             \x20 systemd.sockets.banner = {{\n\
             \x20   wantedBy = [ \"sockets.target\" ];\n\
             \x20   listenStreams = [ \"8081\" ];\n\
             \x20   socketConfig.Accept = true;\n\
             \x20 }};\n\
             \x20 systemd.services.\"banner@\" = {{\n\
             \x20   script = \"echo {BANNER}\";\n\
             \x20   serviceConfig.StandardOutput = \"socket\";\n\
             \x20 }};\n\
             }}\n"
        ),
    )
    .map_err(|e| io(&gen1, e))?;
    let gen2 = systems.join("web-test-gen2.imago");
    std::fs::write(
        &gen2,
        "# Generation 2: one more file in /etc.\n\
         { ... }:\n\
         {\n\
         \x20 imports = [ ./web-test.imago ];\n\
         \x20 environment.etc.\"imago-test-generation\".text = \"2\\n\";\n\
         }\n",
    )
    .map_err(|e| io(&gen2, e))?;
    Ok((gen1, gen2))
}

/// Runs `command` over ssh once (no retry) and ignores how it ends: for a
/// reboot, whose connection may close before ssh hears the status.
fn ssh_once(key: &Path, port: u16, user: &str, command: &str) {
    let _ = Command::new("timeout")
        .arg("30")
        .arg("ssh")
        .args(ssh_options(key))
        .args(["-p", &port.to_string()])
        .arg(format!("{user}@127.0.0.1"))
        .arg(command)
        .output();
}

/// Sorted names in /boot/loader/entries, read over ssh as root.
fn entries(driver: &Driver, key: &Path, port: u16) -> Result<String, Failure> {
    ssh(
        driver,
        key,
        port,
        "root",
        "ls /boot/loader/entries | sort | tr '\\n' ' '",
        30 * SEC,
    )
}

/// What this boot's console and journal show of `systemd-sysusers`
/// creating accounts, and what it would still create now (empty when
/// nothing): the modules declare every account the packages ask for.
fn accounts_created_this_boot(m: &Machine) -> Result<String, Failure> {
    // The activation at stage 2 writes to the console, before journald
    // runs. A console wait that times out at once means "not seen": its
    // step shows as failed in the log, which is expected here.
    let console = match m.wait_for_console_text("Creating (user|group) ", Duration::ZERO) {
        Ok(line) => format!("console: {line}\n"),
        Err(_) => String::new(),
    };
    let journal = m.succeed(
        "journalctl -b --no-pager -o cat | grep -E 'Creating (user|group) ' | sed 's/^/journal: /' || true",
        CMD,
    )?;
    let pending = m.succeed(
        "systemd-sysusers --dry-run 2>&1 | grep -E 'Creating (user|group) ' | sed 's/^/would: /' || true",
        CMD,
    )?;
    Ok(console + &journal + &pending)
}

/// What the machine says about a failed expectation: the journal's end.
fn journal(m: &Machine, unit: &str) -> String {
    m.succeed(
        format!("journalctl -b --no-pager -o cat -u {unit} | tail -n 8"),
        CMD,
    )
    .unwrap_or_else(|e| format!("(no journal: {})", e.error()))
}

vm_test!(
    full,
    fn the_web_example_serves_takes_keys_and_sudo_and_boots_a_deployed_generation() {
        let driver = Driver::new("web_image")?;
        let user = driver.setup("make a directory for nobody", || UserDir::new(NOBODY))?;
        let (file1, file2) =
            driver.setup("write the system files", || write_systems(user.path()))?;
        let gen1 = support::system_file(&driver, &file1)?;
        let key = driver.setup("write the test key", || write_key(driver.dir(), None))?;
        let (ssh_port, http_port, closed_port) = driver.setup("pick ports", || {
            Ok::<_, String>((free_port()?, free_port()?, free_port()?))
        })?;

        let mut config = gen1.uefi_disk(&driver, "web")?;
        config.memory_mib = 1024;
        config.smp = 2;
        config.extra_args = user_net_args(&[(ssh_port, 22), (http_port, 80), (closed_port, 8081)]);
        config.extra_args.push("-no-reboot".into());
        let m = driver.machine(config)?;
        let started = Instant::now();
        m.start()?;

        // The page through the forward: the user's first sign of life.
        let page = driver.setup("host: GET / through the forward", || {
            let deadline = started + driver.accel().scale(BOOT);
            loop {
                if let Some(answer) = http_get(http_port, "/", 5 * SEC)
                    && answer.starts_with("HTTP/1.1 200")
                {
                    return Ok(answer);
                }
                if Instant::now() > deadline {
                    return Err(format!(
                        "no page on 127.0.0.1:{http_port} after {:?}",
                        started.elapsed()
                    ));
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        })?;
        eprintln!(
            "web: the page answered {:?} after QEMU started",
            started.elapsed()
        );
        assert!(page.contains("<h1>Served by web</h1>"), "{page}");
        let health = http_get(http_port, "/health", 5 * SEC).unwrap_or_default();
        assert!(
            health.starts_with("HTTP/1.1 200") && health.ends_with("ok\n"),
            "{health}"
        );
        m.wait_for_unit("multi-user.target", BOOT)?;
        let mut problems = Vec::new();
        let created = accounts_created_this_boot(&m)?;
        if !created.is_empty() {
            problems.push(format!("boot 1 created accounts:\n{created}"));
        }

        // The admin: key login, sudo through the setuid wrapper.
        let admin = |command: &str| ssh(&driver, &key, ssh_port, "admin", command, 60 * SEC);
        assert_eq!(admin("id -un")?, "admin\n");
        // Key-only accounts have no password but are not locked (sshd with
        // `UsePAM no` refuses a `!` account, keys or not).
        let shadow = ssh(
            &driver,
            &key,
            ssh_port,
            "root",
            "stat -c '%a %U' /etc/shadow; grep -E '^(admin|root):' /etc/shadow | cut -d: -f1,2 | sort",
            30 * SEC,
        )?;
        assert_eq!(shadow, "600 root\nadmin:*\nroot:*\n");
        match admin("sudo -n id -u") {
            Ok(out) => assert_eq!(out, "0\n", "sudo -n id -u"),
            Err(e) => problems.push(format!("sudo: {}\n{}", e.error(), journal(&m, "sudo"))),
        }

        // The firewall: the banner answers inside, not from the host.
        let inside = m.succeed(
            "bash -c 'exec 3<>/dev/tcp/127.0.0.1/8081; timeout 5 cat <&3'",
            CMD,
        )?;
        assert_eq!(inside.trim_end(), BANNER, "the banner inside the machine");
        if let Some(answer) = http_get(closed_port, "/", SILENCE)
            && answer.contains(BANNER)
        {
            problems.push(format!(
                "port 8081 answered the host through the firewall: {answer}"
            ));
        }

        // The rest of the definition, as the admin sees it.
        for (what, command, want) in [
            ("the sysctl", "cat /proc/sys/net/core/somaxconn", "1024\n"),
            ("the time zone", "date +%Z", "CET\n"),
            (
                "nf_tables loaded",
                "grep -o '^nf_tables ' /proc/modules",
                "nf_tables \n",
            ),
            (
                "modprobe finds nf_tables",
                "sudo -n modprobe -v nf_tables && echo found",
                "found\n",
            ),
        ] {
            match admin(command) {
                Ok(out) if out == want => {}
                Ok(out) => {
                    problems.push(format!("{what}: `{command}` printed {out:?}, not {want:?}"))
                }
                Err(e) => problems.push(format!("{what}: {}", e.error())),
            }
        }
        // `startAt = "minutely"`: within a minute and a half of the boot.
        if let Err(e) = ssh(
            &driver,
            &key,
            ssh_port,
            "admin",
            "test -s /var/lib/heartbeat/last && cat /var/lib/heartbeat/last",
            90 * SEC,
        ) {
            problems.push(format!(
                "the heartbeat job never ran: {}\n{}",
                e.error(),
                journal(&m, "heartbeat.service")
            ));
        }

        // Generation 2, built and deployed by an ordinary user of the host.
        let deployed = driver.setup("host: nobody runs imago deploy --boot", || {
            let key = write_key(user.path(), Some(NOBODY))?;
            let wrapper = ssh_wrapper(user.path(), &key)?;
            let out = user
                .command(Path::new(env!("CARGO_BIN_EXE_imago-cli")))
                .arg("deploy")
                .arg(&file2)
                .arg("--target")
                .arg(format!("ssh://root@127.0.0.1:{ssh_port}"))
                .args(["--boot", "--allow-test-backdoor"])
                .env("IMAGO_SSH", &wrapper)
                .output()
                .map_err(|e| format!("setpriv: {e}"))?;
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            if out.status.success() {
                Ok(text)
            } else {
                Err(format!("imago deploy exited with {}:\n{text}", out.status))
            }
        })?;
        eprintln!("{deployed}");
        let foreign = ssh(
            &driver,
            &key,
            ssh_port,
            "root",
            "find /imago/store -mindepth 1 \\( ! -uid 0 -o ! -gid 0 \\) -printf '%u:%g %p\\n' | head -n 5",
            30 * SEC,
        )?;
        assert_eq!(foreign, "", "objects not owned by root after the deploy");
        assert_eq!(
            entries(&driver, &key, ssh_port)?,
            "imago-web-1.conf imago-web-2+3.conf "
        );

        // A reboot asked for over ssh; generation 2 boots and is blessed.
        ssh_once(&key, ssh_port, "root", "systemctl reboot");
        m.wait_for_shutdown(120 * SEC)?;
        m.start()?;
        m.wait_for_unit("multi-user.target", BOOT)?;
        assert_eq!(
            ssh(
                &driver,
                &key,
                ssh_port,
                "admin",
                "cat /etc/imago-test-generation",
                60 * SEC
            )?,
            "2\n"
        );
        let (cmdline, booted) = booted_generation(&driver, &key, ssh_port, "admin")?;
        assert_eq!(booted, Some(2), "not booted as generation 2: {cmdline}");
        let blessed = ssh(
            &driver,
            &key,
            ssh_port,
            "root",
            "ls /boot/loader/entries | sort | tr '\\n' ' ' | grep -x 'imago-web-1.conf imago-web-2.conf '",
            30 * SEC,
        );
        if blessed.is_err() {
            problems.push(format!(
                "generation 2 was not blessed: {}\n{}",
                entries(&driver, &key, ssh_port)?,
                journal(&m, "imago-bless-boot.service")
            ));
        }
        // The second boot, on the root the first one left: no account is
        // created again either.
        let created = accounts_created_this_boot(&m)?;
        if !created.is_empty() {
            problems.push(format!("boot 2 created accounts:\n{created}"));
        }
        support::no_failed_units(&m)?;
        assert!(problems.is_empty(), "{}", problems.join("\n"));
        m.shutdown(40 * SEC)?;
        Ok(())
    }
);
