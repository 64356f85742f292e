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

use support::outside::{
    GUEST_IP, TEST_KEY_PUB, USER_NET_MAC, free_port, ssh, user_net_args, write_key,
};

use std::path::PathBuf;
use std::time::Duration;

use imago::remote::Action;
use imago_vm_tests::{Driver, Failure, Machine, vm_test};

const SEC: Duration = Duration::from_secs(1);

/// A command through the backdoor (scaled by the accelerator factor).
const CMD: Duration = Duration::from_secs(5);

/// Firmware, boot loader, kernel and systemd to multi-user.target (scaled).
const BOOT: Duration = Duration::from_secs(90);

/// Copying a closure and switching (scaled).
const SWITCH: Duration = Duration::from_secs(60);

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
        let key = driver.setup("write the test key", || write_key(driver.dir(), None))?;
        let port = driver.setup("pick a port for the forward", free_port)?;

        let mut config = gen1.uefi_disk(&driver, "server")?;
        config.memory_mib = 1024;
        config.smp = 2;
        // QEMU's user network, isolated (`restrict=on`: the guest reaches
        // nothing), with only the host's 127.0.0.1:PORT forwarded to sshd.
        config.extra_args = user_net_args(&[(port, 22)]);
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
