//! VM tests of the example systems (`examples/*.imago`), built for real with
//! the VM test backdoor (`vm-tests/systems/`) and booted under QEMU: the
//! busybox system and the systemd server by direct kernel boot with the
//! store over virtiofs, and the busybox system's disk image through OVMF and
//! systemd-boot; the arm64 busybox system likewise under
//! `qemu-system-aarch64` (emulated), directly and from its disk image
//! through AAVMF and systemd-boot, and the arm64 systemd server directly.
//!
//! `IMAGO_VM_TESTS=quick` runs `minimal_boots_and_is_configured`,
//! `trixie_minimal_boots` and `arm64_minimal_boots` only.

mod support;

use std::time::Duration;

use imago::arch::Architecture;
use imago_vm_tests::{Driver, Error, Failure, Machine, vm_test};
use support::outside::{free_port, http_get, ssh, user_net_args, write_key};

const SEC: Duration = Duration::from_secs(1);

/// A command through the backdoor (scaled by the accelerator factor).
const CMD: Duration = Duration::from_secs(5);

const GIB: u64 = 1 << 30;

/// What examples/minimal.imago's `hello` service prints on the console.
const HELLO: &str = "hello from minimal: IMAGO-HELLO-OK";

/// The test systems use the examples' packages, so they share their locks:
/// vm-tests/systems/imago.lock is a symlink to the bookworm examples' lock
/// and vm-tests/systems/trixie/imago.lock one to the trixie examples' lock
/// (`imago lock` writes through a link), so relocking the examples relocks
/// the tests.
#[test]
fn test_systems_share_the_examples_locks() {
    for (ours, theirs) in [
        ("imago.lock", "../../examples/bookworm/imago.lock"),
        ("trixie/imago.lock", "../../../examples/imago.lock"),
        ("arm64/imago.lock", "../../../examples/arm64/imago.lock"),
    ] {
        let ours = support::systems_dir().join(ours);
        let link = std::fs::read_link(&ours)
            .unwrap_or_else(|e| panic!("{} is not a symlink: {e}", ours.display()));
        assert_eq!(link, std::path::Path::new(theirs), "{}", ours.display());
        assert!(ours.is_file(), "{theirs} is there to link to");
    }
}

#[test]
fn a_broken_system_fails_the_setup_step_naming_the_file() {
    let driver = Driver::new("a_broken_system_fails_the_setup_step").expect("driver");
    let missing = driver.dir().join("missing.imago");
    let failure = support::system_file(&driver, &missing).expect_err("no such file");
    assert!(matches!(failure.error(), Error::Setup(_)), "{failure}");
    assert!(
        failure.error().to_string().contains("missing.imago"),
        "{failure}"
    );

    let broken = driver.dir().join("broken.imago");
    std::fs::write(&broken, "{ imports = [ ; }\n").expect("write broken.imago");
    let failure = support::system_file(&driver, &broken).expect_err("syntax error");
    let text = failure.to_string();
    assert!(matches!(failure.error(), Error::Setup(_)), "{text}");
    assert!(
        text.contains("step failed: build system") && text.contains("broken.imago"),
        "{text}"
    );
    // The step log shows the failed step.
    assert!(failure.report().contains("FAILED"), "{text}");
}

/// Builds the busybox test system `name` (under vm-tests/systems/), boots
/// it by direct kernel boot as machine `machine` and waits for its hello
/// service's marker.
fn boot_to_hello(
    driver: &Driver,
    name: &str,
    machine: &str,
) -> Result<(support::System, Machine), Failure> {
    let system = support::system(driver, name)?;
    let mut config = system.direct(driver, machine)?;
    config.memory_mib = 512;
    let m = driver.machine(config)?;
    m.start()?;
    m.wait_for_console_text(HELLO, 30 * SEC)?;
    Ok((system, m))
}

/// Checks that `m` runs `system` (the toplevel that was built) and shows
/// `motd`.
fn runs_the_system(m: &Machine, system: &support::System, motd: &str) -> Result<(), Failure> {
    assert_eq!(m.succeed("cat /etc/motd", CMD)?, motd);
    assert_eq!(
        m.succeed("readlink /run/current-system", CMD)?.trim_end(),
        system.toplevel.to_absolute()
    );
    Ok(())
}

/// What examples/arm64/minimal.imago's motd says.
const ARM64_MOTD: &str = "Welcome to the minimal Imago system, on Debian trixie for arm64.\n";

vm_test!(
    quick,
    fn minimal_boots_and_is_configured() {
        let driver = Driver::new("minimal_boots_and_is_configured")?;
        // The hello service ran, with the configured host name.
        let (system, m) = boot_to_hello(&driver, "minimal", "minimal")?;

        assert_eq!(
            m.succeed("cat /etc/motd", CMD)?,
            "Welcome to the minimal Imago system.\n"
        );
        m.succeed("grep -q '^root:x:0:0:' /etc/passwd", CMD)?;
        assert_eq!(
            m.succeed("stat -c '%F %a %U' /etc/shadow", CMD)?,
            "regular file 600 root\n"
        );
        m.succeed("grep -q '^root:' /etc/shadow", CMD)?;
        assert_eq!(m.succeed("hostname", CMD)?, "minimal\n");
        assert_eq!(m.succeed("cat /etc/hostname", CMD)?, "minimal\n");
        // The system is the one that was built, from the shared store.
        assert_eq!(
            m.succeed("readlink /run/current-system", CMD)?.trim_end(),
            system.toplevel.to_absolute()
        );
        // busybox init powers the machine off.
        m.shutdown(20 * SEC)?;
        Ok(())
    }
);

// examples/minimal.imago: the busybox system made of Debian 13's packages
// (kernel 6.12, busybox 1.37), booted to the same marker.
vm_test!(
    quick,
    fn trixie_minimal_boots() {
        let driver = Driver::new("trixie_minimal_boots")?;
        let (system, m) = boot_to_hello(&driver, "trixie/minimal", "trixie-minimal")?;
        runs_the_system(&m, &system, "Welcome to the minimal Imago system.\n")?;
        assert!(m.succeed("uname -r", CMD)?.starts_with("6.12."));
        // QEMU entered the kernel's uncompressed ELF through its PVH entry
        // point, not the zstd-compressed bzImage: the kernel's PVH entry
        // writes boot protocol 2.12 into its boot_params, where a bzImage
        // load keeps the image's own header (2.15 for Linux 6.12).
        assert_eq!(
            m.succeed(
                "od -An -tx1 -j 518 -N 2 /sys/kernel/boot_params/data | tr -d ' '",
                CMD
            )?,
            "0c02\n"
        );
        a_path_built_after_the_boot_is_seen(&m, &system)?;
        m.shutdown(20 * SEC)?;
        Ok(())
    }
);

/// The guest caches the store for good (virtiofsd's `cache=always`), yet
/// a store path that appears on the host after the guest looked for it in
/// vain (a system built while the machine runs) is found and listed.
fn a_path_built_after_the_boot_is_seen(
    m: &Machine,
    system: &support::System,
) -> Result<(), Failure> {
    /// Removes the path from the shared store however the test ends.
    struct Remove(std::path::PathBuf);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let name = format!("vmtest{:026}-new-path", std::process::id());
    let path = Remove(system.store.join(&name));
    let file = format!("/imago/store/{name}/file");
    m.fail(format!("cat {file}"), CMD)?;
    m.succeed("ls /imago/store >/dev/null", CMD)?;
    std::fs::create_dir(&path.0).expect("a directory in the store");
    std::fs::write(path.0.join("file"), "new\n").expect("a file in it");
    assert_eq!(m.succeed(format!("cat {file}"), CMD)?, "new\n");
    assert_eq!(
        m.succeed(format!("ls /imago/store | grep -x {name}"), CMD)?,
        format!("{name}\n")
    );
    Ok(())
}

// examples/arm64/minimal.imago: the busybox system made of Debian trixie's
// arm64 packages, built on this host without emulation and booted under
// qemu-system-aarch64 (`virt`, always TCG on an amd64 host) to the same
// marker.
vm_test!(
    quick,
    fn arm64_minimal_boots() {
        let driver = Driver::new("arm64_minimal_boots")?;
        let (system, m) = boot_to_hello(&driver, "arm64/minimal", "arm64-minimal")?;
        assert_eq!(m.succeed("uname -m", CMD)?, "aarch64\n");
        assert!(m.succeed("uname -r", CMD)?.ends_with("-cloud-arm64\n"));
        runs_the_system(&m, &system, ARM64_MOTD)?;
        // The console login (getty, then the autologin shell it starts) is
        // on the virt machine's serial port, the PL011.
        m.succeed("ls -l /proc/[0-9]*/fd/0 | grep -q ' /dev/ttyAMA0$'", CMD)?;
        m.shutdown(20 * SEC)?;
        Ok(())
    }
);

// The arm64 busybox system's disk image: AAVMF (UEFI for QEMU's `virt`)
// finds systemd-boot at EFI/BOOT/BOOTAA64.EFI, which starts Debian's arm64
// kernel (an EFI program) from the ESP; the root is the arm64 root
// partition.
vm_test!(
    full,
    fn arm64_minimal_disk_image_boots_with_uefi() {
        let driver = Driver::new("arm64_minimal_disk_image_boots_with_uefi")?;
        let system = support::system(&driver, "arm64/minimal")?;
        let mut config = system.uefi_disk(&driver, "arm64-disk")?;
        config.memory_mib = 512;
        let m = driver.machine(config)?;
        m.start()?;
        m.wait_for_console_text(HELLO, 120 * SEC)?;
        assert_eq!(m.succeed("uname -m", CMD)?, "aarch64\n");
        let mounts = m.succeed("cat /proc/mounts", CMD)?;
        assert!(
            mounts.lines().any(|l| l.starts_with("/dev/vda2 / ext4 ")),
            "root is not /dev/vda2 (ext4):\n{mounts}"
        );
        // The root partition's type is the arm64 root of the Discoverable
        // Partitions Specification (b921b045-1df0-41c3-af44-4c6f280d3fae,
        // stored mixed-endian): the second entry of the GPT's partition
        // array at LBA 2, as the guest reads its disk.
        let root_type = m.succeed(
            "dd if=/dev/vda bs=1 skip=1152 count=16 2>/dev/null | od -An -tx1 | tr -d ' \\n'",
            CMD,
        )?;
        assert_eq!(root_type, "45b021b9f01dc341af444c6f280d3fae");
        runs_the_system(&m, &system, ARM64_MOTD)?;
        Ok(())
    }
);

vm_test!(
    full,
    fn server_serves_and_accepts_ssh() {
        let driver = Driver::new("server_serves_and_accepts_ssh")?;
        let m = server_serves(&driver, "server", "server", Vec::new())?;
        // systemd stops everything and powers the machine off.
        m.shutdown(40 * SEC)?;
        Ok(())
    }
);

// examples/server.imago: the same server made of Debian 13's
// packages: systemd 257 (its sysusers.d and tmpfiles.d files applied, /tmp
// a tmpfs), OpenSSH 10.
vm_test!(
    full,
    fn trixie_server_serves_and_accepts_ssh() {
        let driver = Driver::new("trixie_server_serves_and_accepts_ssh")?;
        let (m, alice) = server_from_outside(&driver, "trixie/server", "trixie-server", "id -un")?;
        assert_eq!(alice, "alice\n");
        assert!(m.succeed("uname -r", CMD)?.starts_with("6.12."));
        assert!(
            m.succeed("systemctl --version", CMD)?
                .starts_with("systemd 257 ")
        );
        // /tmp is a tmpfs, as systemd 257 mounts it (tmp.mount).
        assert_eq!(m.succeed("findmnt -no FSTYPE /tmp", CMD)?, "tmpfs\n");
        // systemd-network is a `u!` account of systemd's sysusers.d: made
        // at activation, locked and expired; systemd-sysusers.service is
        // masked (below) and nothing was left for it.
        assert_eq!(
            m.succeed("grep '^systemd-network:' /etc/shadow | cut -d: -f2,8", CMD)?,
            "!*:1\n"
        );
        // The units that rebuild caches after an offline /usr update, and
        // systemd-sysusers with the same condition, are masked, and none
        // ran.
        let units = "ldconfig.service systemd-hwdb-update.service \
                     systemd-journal-catalog-update.service systemd-update-done.service \
                     systemd-sysusers.service";
        assert_eq!(
            m.execute(format!("systemctl is-enabled {units}"), CMD)?
                .stdout,
            b"masked\nmasked\nmasked\nmasked\nmasked\n"
        );
        m.fail("test -e /etc/udev/hwdb.bin", CMD)?;
        let pending = m.succeed("systemd-sysusers --dry-run 2>&1", CMD)?;
        assert!(!pending.contains("Creating"), "{pending}");
        m.shutdown(40 * SEC)?;
        Ok(())
    }
);

// The trixie server's serial console as a user without ssh meets it: no
// automatic login; alice types her name and password, and agetty,
// Debian's `login` and PAM (pam_unix against /etc/shadow) give her a shell
// there, which runs what she types next.
vm_test!(
    full,
    fn trixie_console_login_with_a_password() {
        let driver = Driver::new("trixie_console_login_with_a_password")?;
        let system = support::system(&driver, "trixie/console-login")?;
        let mut config = system.direct(&driver, "console-login")?;
        config.memory_mib = 1024;
        config.smp = 2;
        let m = driver.machine(config)?;
        m.start()?;
        m.wait_for_console_text("^server login: $", 60 * SEC)?;
        m.send_keys("alice\n")?;
        m.wait_for_console_text("^Password: $", 20 * SEC)?;
        m.send_keys("console-test\n")?;
        m.wait_for_console_text("\\$ $", 20 * SEC)?;
        m.send_keys("id -un > ~/typed-on-the-console\n")?;
        m.wait_until_succeeds("test -s /home/alice/typed-on-the-console", 20 * SEC)?;
        assert_eq!(
            m.succeed("cat /home/alice/typed-on-the-console", CMD)?,
            "alice\n"
        );
        // Her login shell is on the serial port.
        m.succeed("ps -t ttyS0 -o user=,comm= | grep -Eq '^alice +bash$'", CMD)?;
        m.shutdown(40 * SEC)?;
        Ok(())
    }
);

// examples/arm64/server.imago: the trixie server built of arm64 packages
// on this host and booted under qemu-system-aarch64 (emulated): systemd,
// sshd with alice's key, the page through a forward.
vm_test!(
    full,
    fn arm64_server_serves_and_accepts_ssh() {
        let driver = Driver::new("arm64_server_serves_and_accepts_ssh")?;
        let (m, arch) = server_from_outside(&driver, "arm64/server", "arm64-server", "uname -m")?;
        assert_eq!(arch, "aarch64\n");
        assert!(
            m.succeed("systemctl --version", CMD)?
                .starts_with("systemd 257 ")
        );
        m.shutdown(60 * SEC)?;
        Ok(())
    }
);

/// [`server_serves`] with ssh and HTTP forwarded from the host, then from
/// the host, as its users meet it: the page through the forward (the
/// network configured by DHCP), and alice's key login running `command`,
/// whose output is returned with the running machine.
fn server_from_outside(
    driver: &Driver,
    name: &str,
    machine: &str,
    command: &str,
) -> Result<(Machine, String), Failure> {
    let key = driver.setup("write the test key", || write_key(driver.dir(), None))?;
    let (ssh_port, http_port) = driver.setup("pick ports", || {
        Ok::<_, String>((free_port()?, free_port()?))
    })?;
    let forwards = user_net_args(&[(ssh_port, 22), (http_port, 80)]);
    let m = server_serves(driver, name, machine, forwards)?;
    // The report of absent interfaces waited for udev to load the NIC's
    // driver: it once ran first and said eth0 was missing. Nothing waits
    // for it, so its end is waited for here.
    m.wait_until_succeeds(
        "test \"$(systemctl show -p ExecMainExitTimestampMonotonic --value imago-check-interfaces)\" != 0",
        60 * SEC,
    )?;
    let report = m.succeed("journalctl -b -u imago-check-interfaces -o cat", CMD)?;
    assert!(!report.contains("has no interface"), "{report}");
    let page = http_get(http_port, "/", 10 * SEC).unwrap_or_default();
    assert!(page.contains("<h1>Served by server</h1>"), "{page}");
    let out = ssh(driver, &key, ssh_port, "alice", command, 60 * SEC)?;
    Ok((m, out))
}

/// Boots the example server `name` (under vm-tests/systems/), with
/// `extra_args` for QEMU (a NIC with forwards), checks that it serves its
/// page, has its users and listens for ssh; returns it running.
fn server_serves(
    driver: &Driver,
    name: &str,
    machine: &str,
    extra_args: Vec<String>,
) -> Result<Machine, Failure> {
    let system = support::system(driver, name)?;
    let mut config = system.direct(driver, machine)?;
    config.memory_mib = 1024;
    config.smp = 2;
    config.extra_args = extra_args;
    let m = driver.machine(config)?;
    m.start()?;
    // sshd's first-boot host keys come before multi-user.target
    // (sshd-keygen.service, before sshd); an arm64 machine emulated on a loaded host took 158 s of
    // the 180 s that 60 s scaled allows even before that.
    let boot = if system.spec.architecture == Architecture::Arm64 {
        120 * SEC
    } else {
        60 * SEC
    };
    m.wait_for_unit("multi-user.target", boot)?;
    m.wait_for_unit("sshd.service", 10 * SEC)?;
    m.wait_for_unit("lighttpd.service", 10 * SEC)?;
    m.wait_for_console_text("IMAGO-SERVER-UP", 10 * SEC)?;
    // No unit failed on the way.
    support::no_failed_units(&m)?;
    // The console's automatic login gave root a shell on the serial port:
    // agetty runs /bin/login (Debian's `login`), which once was missing,
    // so agetty failed and restarted every 10 s with no shell.
    let tty = system.spec.architecture.serial_console();
    m.wait_until_succeeds(
        format!("ps -t {tty} -o user=,comm= | grep -Eq '^root +(da|ba)?sh$'"),
        60 * SEC,
    )?;
    let getty = m.succeed(format!("journalctl -b -u serial-getty@{tty} -o cat"), CMD)?;
    assert!(!getty.contains("can't exec"), "{getty}");

    assert_eq!(
        m.succeed("stat -c '%F %a %U' /etc/shadow", CMD)?,
        "regular file 600 root\n"
    );
    // alice exists, with her home, her shell and her key.
    m.succeed(
        "grep -q '^alice:x:[0-9]*:[0-9]*:[^:]*:/home/alice:/bin/bash$' /etc/passwd",
        CMD,
    )?;
    assert_eq!(
        m.succeed("stat -c '%F %U' /home/alice", CMD)?,
        "directory alice\n"
    );
    m.succeed("test -x /bin/bash", CMD)?;
    // PAM is set up: root becomes alice with su and runuser.
    assert_eq!(m.succeed("su alice -c 'id -un'", CMD)?, "alice\n");
    assert_eq!(m.succeed("runuser -u alice -- id -un", CMD)?, "alice\n");
    assert_eq!(m.succeed("cat /proc/sys/kernel/hostname", CMD)?, "server\n");
    assert_eq!(m.succeed("hostname", CMD)?, "server\n");

    // The web server serves the page, and sshd listens.
    m.wait_for_open_port(80, 10 * SEC)?;
    let page = m.succeed("busybox wget -qO- http://127.0.0.1/", CMD)?;
    assert!(page.contains("<h1>Served by server</h1>"), "{page}");
    m.wait_for_open_port(22, 10 * SEC)?;
    Ok(m)
}

vm_test!(
    full,
    fn minimal_disk_image_boots_with_uefi() {
        let driver = Driver::new("minimal_disk_image_boots_with_uefi")?;
        let system = support::system(&driver, "minimal")?;
        let mut config = system.uefi_disk(&driver, "disk")?;
        config.memory_mib = 512;
        // A disk larger than the image: the root grows to fill it.
        if let Some(disk) = &mut config.disk {
            disk.size = Some(GIB);
        }
        let m = driver.machine(config)?;
        m.start()?;
        m.wait_for_console_text(HELLO, 60 * SEC)?;
        m.wait_for_console_text(
            "grow-root: /dev/vda has [0-9]+ MiB after /dev/vda2",
            5 * SEC,
        )?;
        // The partition ends at the disk's end (GPT keeps 33 sectors), and
        // ext4 fills it.
        let sectors = |f: &str| -> Result<u64, Failure> {
            Ok(m.succeed(["cat", f], CMD)?.trim().parse().unwrap_or(0))
        };
        let size = sectors("/sys/class/block/vda2/size")?;
        let end = sectors("/sys/class/block/vda2/start")? + size;
        let total = sectors("/sys/class/block/vda/size")?;
        assert_eq!(total, GIB / 512);
        assert!(
            total - end <= 33 + 2048,
            "partition ends at {end} of {total} sectors"
        );
        // ext4's own overhead (inode tables, journal) stays below 10 %.
        let df = m.succeed("df -k / | awk 'NR == 2 { print $2 }'", CMD)?;
        let kib: u64 = df.trim().parse().unwrap_or(0);
        assert!(
            kib * 10 >= size / 2 * 9,
            "root is {kib} KiB in a partition of {} KiB",
            size / 2
        );
        // The root file system is the image's, not a shared store.
        let mounts = m.succeed("cat /proc/mounts", CMD)?;
        assert!(
            mounts.lines().any(|l| l.starts_with("/dev/vda2 / ext4 ")),
            "root is not /dev/vda2 (ext4):\n{mounts}"
        );
        assert!(!mounts.contains("virtiofs"), "{mounts}");
        // Modes survive the image builder too.
        assert_eq!(
            m.succeed("stat -c '%F %a %U' /etc/shadow", CMD)?,
            "regular file 600 root\n"
        );
        assert_eq!(
            m.succeed("readlink /run/current-system", CMD)?.trim_end(),
            system.toplevel.to_absolute()
        );
        Ok(())
    }
);
