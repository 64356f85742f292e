//! VM tests of setuid wrappers, sudo and normal users, one boot per init
//! system (direct kernel boot, the store over virtiofs):
//!
//! * `vm-tests/systems/security.imago` (systemd): /run/wrappers is a tmpfs of
//!   its own (without `nosuid`) whose `bin` is a link to a complete
//!   directory; `sudo` is a root-owned setuid copy (4511) and Debian's setuid
//!   files (su, passwd, mount, chage for group shadow, …) have wrappers with
//!   Debian's modes; no file of the system's closure in the store is setuid
//!   or setgid; `admin` (isNormalUser, in wheel) runs `sudo -n id -u` and
//!   gets 0 — from a login shell through `su -l` and from an ssh session
//!   with the key of `openssh.authorizedKeys.keyFiles` (the ssh client in
//!   the guest, to 127.0.0.1) — while `guest` (not in wheel) is refused;
//!   services get the wrappers first on PATH; activating again replaces the
//!   wrapper directory.
//! * `vm-tests/systems/minimal-security.imago` (busybox init): Debian's
//!   passwd package gets its wrappers undeclared (chfn, chsh, gpasswd
//!   4755; chage 2755 for group `shadow`, which every system has); the
//!   declared `passwd` wrapper
//!   (4510 root:users) replaces Debian's, and through it `guest` reads its
//!   own /etc/shadow entry, which the store's copy of passwd cannot.
//!
//! Neither runs in the quick subset (`IMAGO_VM_TESTS=quick`).

mod support;

// The private half of vm-tests/systems/security-test-key.pub.
use support::outside::TEST_KEY;

use std::time::Duration;

use imago_vm_tests::{Driver, Failure, Machine, vm_test};

const SEC: Duration = Duration::from_secs(1);

/// A command through the backdoor (scaled by the accelerator factor).
const CMD: Duration = Duration::from_secs(5);

/// `%a %U %G` of a file.
fn owner_mode(m: &Machine, path: &str) -> Result<String, Failure> {
    Ok(m.succeed(["stat", "-L", "-c", "%a %U %G", path], CMD)?
        .trim_end()
        .to_owned())
}

/// The setuid/setgid files among the running system's closure in the
/// store (there must be none).
fn setuid_files_in_store(m: &Machine) -> Result<String, Failure> {
    m.succeed(
        "find $(readlink /run/current-system) $(cat /run/current-system/closure) -perm /6000 -print",
        60 * SEC,
    )
}

/// /run/wrappers is a tmpfs that allows setuid, and `bin` links to one of
/// its `wrappers.*` directories, the only one; returns that link.
fn wrapper_dir(m: &Machine) -> Result<String, Failure> {
    let mount = m.succeed("grep ' /run/wrappers ' /proc/mounts", CMD)?;
    let fields: Vec<&str> = mount.split_whitespace().collect();
    assert_eq!(fields.get(2), Some(&"tmpfs"), "{mount}");
    let options = fields.get(3).copied().unwrap_or_default();
    assert!(
        !options.split(',').any(|o| o == "nosuid"),
        "/run/wrappers is mounted nosuid: {mount}"
    );
    assert_eq!(owner_mode(m, "/run/wrappers")?, "755 root root");
    let link = m
        .succeed(["readlink", "/run/wrappers/bin"], CMD)?
        .trim_end()
        .to_owned();
    assert!(link.starts_with("wrappers."), "{link}");
    assert_eq!(
        m.succeed("ls -d /run/wrappers/wrappers.*", CMD)?.trim_end(),
        format!("/run/wrappers/{link}")
    );
    assert_eq!(owner_mode(m, "/run/wrappers/bin")?, "755 root root");
    Ok(link)
}

vm_test!(
    full,
    fn sudo_and_debians_setuid_programs_work_through_wrappers_on_systemd() {
        let driver = Driver::new("sudo_and_setuid_wrappers_systemd")?;
        let system = support::system(&driver, "security")?;
        let mut config = system.direct(&driver, "security")?;
        config.memory_mib = 1024;
        config.smp = 2;
        let m = driver.machine(config)?;
        m.start()?;
        m.wait_for_unit("multi-user.target", 90 * SEC)?;
        support::no_failed_units(&m)?;

        // The wrappers: sudo as the sudo module declares it, Debian's with
        // Debian's modes and groups.
        let first = wrapper_dir(&m)?;
        for (file, want) in [
            ("sudo", "4511 root root"),
            ("sudoedit", "4511 root root"),
            ("su", "4755 root root"),
            ("passwd", "4755 root root"),
            ("chsh", "4755 root root"),
            ("mount", "4755 root root"),
            ("umount", "4755 root root"),
            ("ssh-keysign", "4755 root root"),
            ("chage", "2755 root shadow"),
            ("unix_chkpwd", "2755 root shadow"),
        ] {
            assert_eq!(
                owner_mode(&m, &format!("/run/wrappers/bin/{file}"))?,
                want,
                "{file}"
            );
        }
        // Copies of the installed programs (cmp from Imago's tools: the
        // system has no diffutils).
        for file in ["sudo", "su"] {
            m.succeed(
                [
                    "/run/current-system/tools/bin/cmp",
                    &format!("/run/wrappers/bin/{file}"),
                    &format!("/usr/bin/{file}"),
                ],
                CMD,
            )?;
        }
        // Nothing in the store is setuid or setgid.
        assert_eq!(setuid_files_in_store(&m)?, "");
        // Only root writes there.
        m.fail("su -s /bin/sh guest -c 'touch /run/wrappers/bin/x'", CMD)?;

        // admin: a normal user, in wheel, with bash.
        m.succeed(
            "grep -qE '^admin:x:1[0-9]{3}:100::/home/admin:/bin/bash$' /etc/passwd",
            CMD,
        )?;
        assert_eq!(owner_mode(&m, "/home/admin")?, "700 admin users");
        assert_eq!(owner_mode(&m, "/etc/sudoers")?, "440 root root");

        // A login shell finds sudo's wrapper first on PATH; wheel needs no
        // password.
        assert_eq!(
            m.succeed("su -l admin -c 'command -v sudo; sudo -n id -u'", CMD)?,
            "/run/wrappers/bin/sudo\n0\n"
        );
        // guest is not in wheel.
        let refused = m.fail("su -l guest -c 'sudo -n id -u'", CMD)?;
        assert!(
            refused.stderr_text().contains("password is required"),
            "{}",
            refused.stderr_text()
        );
        // Imago's services get the wrappers first on PATH.
        let env = m.succeed("systemctl show -p Environment sshd.service", CMD)?;
        assert!(env.contains("PATH=/run/wrappers/bin:"), "{env}");

        // An ssh session with admin's key (keyFiles) runs sudo too: its
        // PATH (no login shell) has the wrappers.
        m.wait_for_open_port(22, 30 * SEC)?;
        m.execute_with_input(
            "umask 077 && cat > /root/test-key",
            TEST_KEY.as_bytes(),
            CMD,
        )?;
        let out = m.succeed(
            [
                "ssh",
                "-F",
                "/dev/null",
                "-i",
                "/root/test-key",
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "LogLevel=ERROR",
                "admin@127.0.0.1",
                "id -un; command -v sudo; sudo -n id -u",
            ],
            30 * SEC,
        )?;
        assert_eq!(out, "admin\n/run/wrappers/bin/sudo\n0\n");

        // Activating again (what a switch does) replaces the directory.
        m.succeed(
            "s=$(readlink /run/current-system) && \"$s/activate\" \"$s\"",
            60 * SEC,
        )?;
        let second = wrapper_dir(&m)?;
        assert_ne!(first, second);
        assert_eq!(owner_mode(&m, "/run/wrappers/bin/sudo")?, "4511 root root");
        assert_eq!(m.succeed("su -l admin -c 'sudo -n id -u'", CMD)?, "0\n");
        m.shutdown(40 * SEC)?;
        Ok(())
    }
);

vm_test!(
    full,
    fn debians_setuid_programs_get_wrappers_on_busybox() {
        let driver = Driver::new("setuid_wrappers_busybox")?;
        let system = support::system(&driver, "minimal-security")?;
        let config = system.direct(&driver, "minimal")?;
        let m = driver.machine(config)?;
        m.start()?;
        m.wait_for_console_text("IMAGO-HELLO-OK", 60 * SEC)?;

        wrapper_dir(&m)?;
        // Debian's, undeclared.
        for file in ["chfn", "chsh", "gpasswd"] {
            assert_eq!(
                owner_mode(&m, &format!("/run/wrappers/bin/{file}"))?,
                "4755 root root",
                "{file}"
            );
        }
        // Setgid shadow: the group is declared on every system.
        assert_eq!(
            owner_mode(&m, "/run/wrappers/bin/chage")?,
            "2755 root shadow"
        );
        // The declared one wins over Debian's.
        assert_eq!(
            owner_mode(&m, "/run/wrappers/bin/passwd")?,
            "4510 root users"
        );
        assert_eq!(setuid_files_in_store(&m)?, "");

        // guest: a normal user with busybox's shell, its home created.
        m.succeed(
            "grep -qE '^guest:x:1[0-9]{3}:100::/home/guest:/bin/sh$' /etc/passwd",
            CMD,
        )?;
        assert_eq!(owner_mode(&m, "/home/guest")?, "700 guest users");
        // A login shell has the wrappers first on PATH (busybox's sh runs
        // its own applets, such as passwd, before looking at PATH; chfn is
        // none).
        let path = m.succeed("su - guest -c 'echo $PATH; command -v chfn'", CMD)?;
        assert!(
            path.starts_with("/run/wrappers/bin:") && path.ends_with("\n/run/wrappers/bin/chfn\n"),
            "{path}"
        );
        // Through the wrapper, guest's passwd reads /etc/shadow (0600):
        // the account has no password (`*`: L). The store's copy cannot.
        let status = m.succeed("su guest -c '/run/wrappers/bin/passwd -S guest'", CMD)?;
        assert!(status.starts_with("guest L "), "{status}");
        let plain = m.execute("su guest -c '/usr/bin/passwd -S guest'", CMD)?;
        assert!(!plain.stdout_text().starts_with("guest L "), "{plain:?}");
        m.shutdown(20 * SEC)?;
        Ok(())
    }
);
