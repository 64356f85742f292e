//! The systemd server from its disk image, booted through OVMF and
//! systemd-boot, used as a person would use it:
//!
//! * users whose only credential is an ssh key (`alice`, and `root`) log in
//!   from the host with `ssh -i KEY` through a QEMU user-network port
//!   forward to the guest's real sshd (which runs with `UsePAM no`, so an
//!   account whose /etc/shadow password field starts with `!` is "locked"
//!   and refused, keys or not);
//! * a generation added with `switch-to-configuration boot` boots (after a
//!   clean power cycle) with a counted entry (`+3`) and, having booted, is
//!   blessed: no `+N-M` is left in /boot/loader/entries (the ESP is mounted
//!   by then), and key logins still work;
//! * no boot creates users or groups behind the modules' back: neither the
//!   first boot of the image nor the next one on the same (persistent) root
//!   prints a `systemd-sysusers` "Creating user/group" line (on the console,
//!   where activation writes, or in the journal), and `systemd-sysusers
//!   --dry-run` would create none.
//!
//! The systems are written into the test's directory: generation 1 is
//! vm-tests/systems/server.imago plus the test key for alice and root,
//! generation 2 the same with one more file in /etc; a copy of
//! vm-tests/systems/imago.lock sits beside them. The key pair below is for
//! this test only.
//!
//! Not in the quick subset (`IMAGO_VM_TESTS=quick` skips it).

mod support;

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use imago::remote::Action;
use imago_vm_tests::{Driver, Error, Failure, Machine, Poll, retry, vm_test};

const SEC: Duration = Duration::from_secs(1);

/// A command through the backdoor (scaled by the accelerator factor).
const CMD: Duration = Duration::from_secs(5);

/// Firmware, boot loader, kernel and systemd to multi-user.target (scaled).
const BOOT: Duration = Duration::from_secs(90);

/// Copying a closure and switching (scaled).
const SWITCH: Duration = Duration::from_secs(60);

/// The test's key pair (ed25519, no passphrase). Test only: never trust it.
const TEST_KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
QyNTUxOQAAACCS/JV++O5Yh3zCIWN7E6DyaoUpNGd3J/MTqCJDibABZwAAALBVe6ktVXup
LQAAAAtzc2gtZWQyNTUxOQAAACCS/JV++O5Yh3zCIWN7E6DyaoUpNGd3J/MTqCJDibABZw
AAAEDHcWkaR+tzW7CyKK1Q7KEWvjYErtmKNu0hsovrs2ru1JL8lX747liHfMIhY3sToPJq
hSk0Z3cn8xOoIkOJsAFnAAAAJmltYWdvLXZtLXRlc3QgKHRlc3Qgb25seSwgbmV2ZXIgdH
J1c3QpAQIDBAUGBw==
-----END OPENSSH PRIVATE KEY-----
";
const TEST_KEY_PUB: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJL8lX747liHfMIhY3sToPJqhSk0Z3cn8xOoIkOJsAFn imago-vm-test (test only, never trust)";

/// The guest's address on QEMU's user network, and its NIC's MAC.
const GUEST_IP: &str = "10.0.2.15";
const USER_NET_MAC: &str = "52:54:00:12:34:56";

/// Writes generation 1 and 2 of the test server (and the lock they need)
/// into the test's directory; returns their paths.
fn write_systems(driver: &Driver) -> Result<(PathBuf, PathBuf), Failure> {
    driver.setup("write the test server's system files", || {
        let server = support::systems_dir().join("server.imago");
        let server = server.to_str().ok_or("the repository path is not UTF-8")?;
        // It becomes a path literal.
        if !server
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._+-".contains(c))
        {
            return Err(format!("{server}: cannot be written as a path literal"));
        }
        let dir = driver.dir().join("systems");
        let write = |name: &str, text: String| -> Result<PathBuf, String> {
            let path = dir.join(name);
            std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
            Ok(path)
        };
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        std::fs::copy(
            support::systems_dir().join("imago.lock"),
            dir.join("imago.lock"),
        )
        .map_err(|e| format!("copying imago.lock: {e}"))?;
        let gen1 = write(
            "server-keys.imago",
            format!(
                "# vm-tests/systems/server.imago; alice (no password) and root log in with the test key.\n\
                 {{ ... }}:\n\
                 {{\n\
                 \x20 imports = [ {server} ];\n\
                 \x20 users.users.alice.authorizedKeys = [ \"{TEST_KEY_PUB}\" ];\n\
                 \x20 users.users.root.authorizedKeys = [ \"{TEST_KEY_PUB}\" ];\n\
                 }}\n"
            ),
        )?;
        let gen2 = write(
            "server-keys-gen2.imago",
            "# Generation 2: one more file in /etc.\n\
             { ... }:\n\
             {\n\
             \x20 imports = [ ./server-keys.imago ];\n\
             \x20 environment.etc.\"imago-test-generation\".text = \"2\\n\";\n\
             }\n"
                .to_owned(),
        )?;
        Ok::<_, String>((gen1, gen2))
    })
}

/// A free TCP port on 127.0.0.1 for the forward to the guest's sshd.
fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    Ok(listener
        .local_addr()
        .map_err(|e| format!("local_addr: {e}"))?
        .port())
}

/// Gives the user-network NIC (found by its MAC: udev names it) the
/// address QEMU's forward sends to.
fn configure_user_net(m: &Machine) -> Result<(), Failure> {
    m.succeed(
        format!(
            "f=$(grep -lx {USER_NET_MAC} /sys/class/net/*/address) && d=${{f%/address}} && n=${{d##*/}} \
             && busybox ip link set $n up && {{ busybox ip addr add {GUEST_IP}/24 dev $n 2>/dev/null || true; }} \
             && busybox ip addr show dev $n | grep -q 'inet {GUEST_IP}/'"
        ),
        CMD,
    )
    .map(drop)
}

/// `ssh -i KEY -p PORT USER@127.0.0.1 COMMAND` from the host, retried until
/// it succeeds or `timeout` (scaled) runs out; returns its stdout.
fn ssh(
    driver: &Driver,
    key: &Path,
    port: u16,
    user: &str,
    command: &str,
    timeout: Duration,
) -> Result<String, Failure> {
    let what = format!("ssh {user}@guest {command}");
    driver.setup(&format!("host: {what}"), || {
        retry(&what, driver.accel().scale(timeout), 2 * SEC, |left| {
            // `timeout` bounds one attempt by the time left.
            let out = Command::new("timeout")
                .arg(left.as_secs().max(5).to_string())
                .args(["ssh", "-F", "/dev/null", "-i"])
                .arg(key)
                .args(["-p", &port.to_string()])
                .args([
                    "-o",
                    "BatchMode=yes",
                    "-o",
                    "IdentitiesOnly=yes",
                    "-o",
                    "PasswordAuthentication=no",
                    "-o",
                    "KbdInteractiveAuthentication=no",
                    "-o",
                    "StrictHostKeyChecking=no",
                    "-o",
                    "UserKnownHostsFile=/dev/null",
                    "-o",
                    "LogLevel=ERROR",
                    "-o",
                    "ConnectTimeout=30",
                ])
                .arg(format!("{user}@127.0.0.1"))
                .arg(command)
                .output()
                .map_err(|e| Error::Setup(format!("cannot run ssh: {e}")))?;
            if out.status.success() {
                return Ok(Poll::Ready(
                    String::from_utf8_lossy(&out.stdout).into_owned(),
                ));
            }
            Ok(Poll::Pending(Some(format!(
                "ssh exited with {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ))))
        })
    })
}

/// The names in /boot/loader/entries, sorted.
fn entries(m: &Machine) -> Result<Vec<String>, Failure> {
    let out = m.succeed("ls /boot/loader/entries | sort", CMD)?;
    Ok(out.lines().map(str::to_owned).collect())
}

/// What this boot's console and journal show of `systemd-sysusers`
/// creating accounts, and what it would still create now (empty when
/// nothing).
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

vm_test!(
    full,
    fn a_server_from_its_disk_image_takes_key_logins_and_blesses_a_new_generation() {
        let driver = Driver::new("server_image_keys_and_blessing")?;
        let (file1, file2) = write_systems(&driver)?;
        let gen1 = support::system_file(&driver, &file1)?;
        let gen2 = support::system_file(&driver, &file2)?;
        let key = driver.setup("write the test key", || {
            let key = driver.dir().join("id_test");
            std::fs::write(&key, TEST_KEY)?;
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))?;
            Ok::<_, std::io::Error>(key)
        })?;
        let port = driver.setup("pick a port for the forward", free_port)?;

        let mut config = gen1.uefi_disk(&driver, "server")?;
        config.memory_mib = 1024;
        config.smp = 2;
        // QEMU's user network, isolated (`restrict=on`: the guest reaches
        // nothing), with only the host's 127.0.0.1:PORT forwarded to sshd.
        config.extra_args = vec![
            "-netdev".into(),
            format!("user,id=usernet,restrict=on,hostfwd=tcp:127.0.0.1:{port}-{GUEST_IP}:22"),
            "-device".into(),
            format!("virtio-net-pci,netdev=usernet,mac={USER_NET_MAC}"),
        ];
        let m = driver.machine(config)?;
        m.start()?;
        m.wait_for_unit("multi-user.target", BOOT)?;
        m.wait_for_console_text("IMAGO-SERVER-UP", 10 * SEC)?;
        // Problems are collected, so one run shows every one of them.
        let mut problems = Vec::new();

        // The first boot of the image: the modules declared every account
        // the packages' sysusers.d files ask for.
        let created = accounts_created_this_boot(&m)?;
        if !created.is_empty() {
            problems.push(format!("boot 1 created accounts:\n{created}"));
        }
        assert_eq!(
            m.succeed("stat -c '%F %a %U' /etc/shadow", CMD)?,
            "regular file 600 root\n"
        );
        // No password, but not locked.
        let fields = m.succeed(
            "grep -E '^(alice|root):' /etc/shadow | cut -d: -f1,2 | sort",
            CMD,
        )?;
        if fields != "alice:*\nroot:*\n" {
            problems.push(format!("password fields in /etc/shadow:\n{fields}"));
        }

        // Key logins over the real sshd, from the host.
        m.wait_for_open_port(22, 60 * SEC)?;
        configure_user_net(&m)?;
        for (user, command, want) in [("alice", "id -un", "alice\n"), ("root", "id -u", "0\n")] {
            match ssh(&driver, &key, port, user, command, 30 * SEC) {
                Ok(out) => assert_eq!(out, want, "ssh {user}@guest {command}"),
                Err(e) => {
                    let log = m.succeed(
                        "journalctl -b --no-pager -o cat -u sshd.service | tail -n 5",
                        CMD,
                    )?;
                    problems.push(format!(
                        "{user} cannot log in with the key: {}\nsshd says:\n{log}",
                        e.error()
                    ));
                }
            }
        }

        // Generation 2, the boot default with a counted entry; boot it.
        let out = support::switch_to(&driver, &m, &gen2, Action::Boot, SWITCH)?;
        assert!(out.contains("generation 2"), "{out}");
        assert_eq!(
            entries(&m)?,
            ["imago-server-1.conf", "imago-server-2+3.conf"]
        );
        // A clean power cycle: under TCG, OVMF's warm reset of this 1 GiB
        // guest alone takes 45-175 s (`reboot()`), a cold start a few.
        m.shutdown(40 * SEC)?;
        m.start()?;
        m.wait_for_unit("multi-user.target", BOOT)?;
        assert_eq!(
            m.succeed("readlink /run/booted-system", CMD)?.trim_end(),
            gen2.toplevel.to_absolute()
        );
        assert!(
            m.succeed("cat /proc/cmdline", CMD)?
                .split_whitespace()
                .any(|w| w == "imago.generation=2"),
            "not booted as generation 2"
        );
        // Blessed: the counter is gone from the entry's name.
        let blessed = m.wait_until_succeeds(
            "ls /boot/loader/entries | sort | tr '\\n' ' ' | grep -qx 'imago-server-1.conf imago-server-2.conf '",
            20 * SEC,
        );
        if blessed.is_err() {
            let log = m.succeed(
                "ls /boot/loader/entries; journalctl -b --no-pager -o cat -u imago-bless-boot.service",
                CMD,
            )?;
            problems.push(format!("generation 2 was not blessed:\n{log}"));
        }

        // The second boot, on the root the first one left: no account is
        // created again either.
        let created = accounts_created_this_boot(&m)?;
        if !created.is_empty() {
            problems.push(format!("boot 2 created accounts:\n{created}"));
        }
        m.wait_for_open_port(22, 60 * SEC)?;
        configure_user_net(&m)?;
        // Still in with the key, on generation 2.
        match ssh(
            &driver,
            &key,
            port,
            "alice",
            "cat /etc/imago-test-generation",
            30 * SEC,
        ) {
            Ok(out) => assert_eq!(out, "2\n"),
            Err(e) => problems.push(format!(
                "alice cannot log in after the reboot: {}",
                e.error()
            )),
        }
        support::no_failed_units(&m)?;

        assert!(problems.is_empty(), "{}", problems.join("\n"));
        m.shutdown(40 * SEC)?;
        Ok(())
    }
);
