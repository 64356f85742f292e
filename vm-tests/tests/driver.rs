//! Tests of the VM test driver against a self-made busybox guest (see
//! `guest/mod.rs`). Each test boots its machines once and checks many
//! behaviours on them, to keep the file fast under TCG.
//!
//! `IMAGO_VM_TESTS=quick` runs `commands_and_waits` and `failure_report`.

mod guest;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use imago_vm_tests::{
    Boot, DiskFormat, DiskImage, Driver, Error, Failure, MachineConfig, MachineName,
    StoreTransport, vm_test,
};

const SEC: Duration = Duration::from_secs(1);

/// The timeout of waits that are meant to time out.
const SHORT: Duration = Duration::from_millis(500);

/// Boot timeout (scaled by the accelerator factor like every timeout).
const BOOT: Duration = Duration::from_secs(20);

fn config(name: &str) -> MachineConfig {
    let guest = guest::guest();
    let mut config = MachineConfig::direct(name, &guest.kernel, &guest.initrd, guest::CMDLINE)
        .expect("valid machine name");
    config.memory_mib = 256;
    config.poweroff_command = "poweroff -f".to_owned();
    config.reboot_command = "reboot -f".to_owned();
    config
}

/// Asserts that `result` failed and returns the failure's full text.
fn failure_text<T: std::fmt::Debug>(result: Result<T, Failure>) -> (String, Failure) {
    let failure = result.expect_err("the step should have failed");
    (failure.to_string(), failure)
}

#[test]
fn machines_and_drivers_can_be_shared_between_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<imago_vm_tests::Machine>();
    send_sync::<Driver>();
    send_sync::<imago_vm_tests::Network>();
}

fn qemu_processes_mentioning(path: &Path) -> usize {
    let needle = path.to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|cmdline| String::from_utf8_lossy(&cmdline).replace('\0', " "))
        .filter(|cmdline| cmdline.contains("qemu-system") && cmdline.contains(&needle))
        .count()
}

vm_test!(
    quick,
    fn commands_and_waits() {
        let started = Instant::now();
        let driver = Driver::new("commands_and_waits")?;
        let m = driver.machine(config("m1"))?;
        m.start()?;
        m.wait_for_console_text(guest::READY_MARKER, BOOT)?;

        // Output and exit codes, shell and argv forms.
        assert_eq!(m.succeed("echo hello", 5 * SEC)?, "hello\n");
        assert_eq!(
            m.succeed(["printf", "%s|", "a b", "$HOME'"], 5 * SEC)?,
            "a b|$HOME'|"
        );
        let output = m.execute("echo out; echo err >&2; exit 3", 5 * SEC)?;
        assert_eq!(
            (output.status, output.stdout_text(), output.stderr_text()),
            (3, "out\n".into(), "err\n".into())
        );
        assert_eq!(m.fail("exit 4", 5 * SEC)?.status, 4);
        let (text, failure) = failure_text(m.fail("true", 5 * SEC));
        assert!(
            matches!(failure.error(), Error::CommandSucceeded { .. }),
            "{text}"
        );

        // A failing command's error names the command, its exit code and output.
        let (text, failure) =
            failure_text(m.succeed("echo to-stdout; echo to-stderr >&2; exit 7", 5 * SEC));
        assert!(
            matches!(failure.error(), Error::CommandFailed { status: 7, .. }),
            "{text}"
        );
        let error = failure.error().to_string();
        for needle in [
            "`echo to-stdout; echo to-stderr >&2; exit 7`",
            "exit code 7",
            "stdout:\n    to-stdout",
            "stderr:\n    to-stderr",
        ] {
            assert!(error.contains(needle), "missing {needle:?} in:\n{error}");
        }

        // A background process of an earlier command cannot pollute later output.
        m.succeed("(sleep 1; echo late-output) &", 5 * SEC)?;
        assert_eq!(m.succeed("sleep 2; echo next", 10 * SEC)?, "next\n");

        // Binary and large output.
        let binary = m.succeed_bytes(r"printf '\000\001\377abc\n\r'", 5 * SEC)?;
        assert_eq!(binary, b"\x00\x01\xffabc\n\r");
        let big = m.succeed_bytes("seq 1 160000", 30 * SEC)?;
        let expected: String = (1..=160_000).map(|i| format!("{i}\n")).collect();
        assert!(big.len() > 1_000_000);
        assert!(
            big == expected.as_bytes(),
            "1 MB output differs ({} bytes)",
            big.len()
        );

        // Waiting for a file that appears later, and for it to go away.
        m.succeed(
            "(sleep 2; touch /tmp/later; sleep 2; rm /tmp/later) >/dev/null 2>&1 &",
            5 * SEC,
        )?;
        let waited = Instant::now();
        assert_eq!(
            m.wait_until_succeeds("test -e /tmp/later && echo there", 20 * SEC)?,
            "there\n"
        );
        assert!(
            waited.elapsed() > Duration::from_millis(1500),
            "did not wait: {:?}",
            waited.elapsed()
        );
        m.wait_for_file("/tmp/later", 5 * SEC)?;
        m.wait_until_fails("test -e /tmp/later", 20 * SEC)?;

        // Timeouts fire quickly and say what they waited for.
        let factor = driver.accel().factor;
        let limit = |base: Duration| base.mul_f64(factor) + 6 * SEC;
        let t = Instant::now();
        let (text, failure) = failure_text(m.succeed("sleep 600", SHORT));
        assert!(
            matches!(failure.error(), Error::CommandTimedOut { .. }),
            "{text}"
        );
        assert!(
            failure
                .error()
                .to_string()
                .contains("`sleep 600` timed out"),
            "{text}"
        );
        assert!(t.elapsed() < limit(SHORT), "took {:?}", t.elapsed());
        assert_eq!(m.succeed("echo still alive", 5 * SEC)?, "still alive\n");

        let t = Instant::now();
        let (text, _) = failure_text(m.wait_until_succeeds("echo not yet; exit 1", SHORT));
        assert!(
            text.contains("waiting for `echo not yet; exit 1` to succeed"),
            "{text}"
        );
        assert!(
            text.contains("exit code 1") && text.contains("not yet"),
            "{text}"
        );
        assert!(t.elapsed() < limit(SHORT), "took {:?}", t.elapsed());

        let (text, _) = failure_text(m.wait_for_console_text("never printed", SHORT));
        assert!(
            text.contains("waiting for console text /never printed/"),
            "{text}"
        );
        let (text, _) = failure_text(m.wait_for_unit("sshd.service", SHORT));
        assert!(
            text.contains("unit sshd.service to be active")
                && text.contains("systemctl: not found"),
            "{text}"
        );

        // Copies both ways keep bytes and mode.
        let host = tempfile::tempdir().expect("tempdir");
        let source = host.path().join("payload");
        let payload: Vec<u8> = (0..200_000_u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&source, &payload).expect("write payload");
        std::fs::set_permissions(&source, std::os::unix::fs::PermissionsExt::from_mode(0o750))
            .expect("chmod");
        m.copy_from_host(&source, "/tmp/new dir/payload", 20 * SEC)?;
        assert_eq!(
            m.succeed(["stat", "-c", "%a %s", "/tmp/new dir/payload"], 5 * SEC)?,
            "750 200000\n"
        );
        let back = host.path().join("back");
        m.copy_to_host("/tmp/new dir/payload", &back, 20 * SEC)?;
        assert!(
            std::fs::read(&back).expect("read back") == payload,
            "copied bytes differ"
        );
        let (text, _) =
            failure_text(m.copy_to_host("/nonexistent", &host.path().join("x"), 5 * SEC));
        assert!(text.contains("No such file"), "{text}");
        assert!(!host.path().join("x").exists());

        // Keys typed on the serial console reach the guest.
        m.send_keys("hello console\n")?;
        m.wait_for_console_text("^imago-guest: got hello console$", 10 * SEC)?;

        // Keys through the QEMU monitor; QEMU's own error for an unknown key.
        m.send_monitor_keys("shift-a")?;
        let (text, _) = failure_text(m.send_monitor_keys("no-such-key"));
        assert!(
            text.contains("QEMU monitor command send-key failed"),
            "{text}"
        );

        // A listening port.
        m.succeed("httpd -p 8080 -h /tmp", 5 * SEC)?;
        m.wait_for_open_port(8080, 10 * SEC)?;

        eprintln!("commands_and_waits: {:?}", started.elapsed());
        Ok(())
    }
);

vm_test!(
    quick,
    fn failure_report() {
        let driver = Driver::new("failure_report")?;
        let m1 = driver.machine(config("m1"))?;
        let m2 = driver.machine(config("m2"))?;

        // Commands on a machine that is not running say so.
        let (text, _) = failure_text(m2.succeed("true", SEC));
        assert!(text.contains("machine m2 is not running"), "{text}");

        // QEMU refusing to start is reported with its own message.
        let mut bad = config("bad");
        bad.extra_args = vec!["-no-such-option".to_owned()];
        let bad = driver.machine(bad)?;
        let (text, _) = failure_text(bad.start());
        assert!(
            text.contains("-no-such-option") && text.contains("invalid option"),
            "{text}"
        );

        m1.start()?;
        m1.wait_for_console_text(guest::READY_MARKER, BOOT)?;
        m1.succeed("echo preparing", 5 * SEC)?;
        let (text, failure) =
            failure_text(m1.succeed("echo some-output; echo some-error >&2; false", 5 * SEC));
        assert!(
            failure.step().contains("m1: succeed `echo some-output"),
            "{}",
            failure.step()
        );
        let report = failure.report();
        for needle in [
            "step log",
            "m1: start",
            "m1: wait for console text",
            "ok        m1: succeed `echo preparing`",
            "FAILED    m1: succeed `echo some-output",
            "=== console of m1 (last 50 lines) ===",
            guest::READY_MARKER,
            "=== console of m2 (last 50 lines) ===\n(no output)",
        ] {
            assert!(
                report.contains(needle),
                "missing {needle:?} in report:\n{report}"
            );
        }
        for needle in ["exit code 1", "some-output", "some-error", report] {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }

        // A kernel panic ends a console wait at once, naming the panic.
        m1.succeed(
            "(sleep 0.5; echo c > /proc/sysrq-trigger) >/dev/null 2>&1 &",
            5 * SEC,
        )?;
        let started = Instant::now();
        let (text, failure) = failure_text(m1.wait_for_console_text("never printed", 60 * SEC));
        assert!(
            matches!(failure.error(), Error::KernelPanic { .. }),
            "{text}"
        );
        assert!(
            text.contains("Kernel panic - not syncing: sysrq triggered crash"),
            "{text}"
        );
        assert!(started.elapsed() < 30 * SEC, "took {:?}", started.elapsed());
        // And a command in the panicked guest.
        let started = Instant::now();
        let (text, failure) = failure_text(m1.succeed("true", 60 * SEC));
        assert!(
            matches!(failure.error(), Error::KernelPanic { .. }),
            "{text}"
        );
        assert!(started.elapsed() < 10 * SEC, "took {:?}", started.elapsed());
        Ok(())
    }
);

vm_test!(
    full,
    fn crash_power_loss_reboot_shutdown() {
        let driver = Driver::new("crash_power_loss_reboot_shutdown")?;
        let image = driver.dir().join("disk.raw");
        std::fs::write(&image, vec![0_u8; 8 << 20]).expect("write disk image");
        let mut config = config("m1");
        config.disk = Some(DiskImage {
            path: image.clone(),
            format: DiskFormat::Raw,
            size: None,
        });
        let m = driver.machine(config)?;
        m.start()?;
        m.wait_for_console_text(guest::READY_MARKER, BOOT)?;

        // crash(): RAM is lost, synced disk data survives.
        m.succeed(
            "touch /tmp/in-ram; printf first-data | dd of=/dev/vda conv=notrunc 2>/dev/null; sync",
            5 * SEC,
        )?;
        m.crash()?;
        m.wait_for_console_text(guest::READY_MARKER, BOOT)?;
        m.fail("test -e /tmp/in-ram", 5 * SEC)?;
        assert_eq!(m.succeed("head -c 10 /dev/vda", 5 * SEC)?, "first-data");

        // power_loss(): QEMU is killed and restarted on the same overlay.
        m.succeed(
            "printf second-data | dd of=/dev/vda bs=4096 seek=1 conv=notrunc,fsync 2>/dev/null",
            5 * SEC,
        )?;
        m.power_loss()?;
        assert_eq!(
            m.succeed(
                "dd if=/dev/vda bs=4096 skip=1 count=1 2>/dev/null | head -c 11",
                BOOT
            )?,
            "second-data"
        );

        // reboot(): the next command waits for the rebooted guest.
        m.succeed("touch /tmp/before-reboot", 5 * SEC)?;
        m.reboot()?;
        m.fail("test -e /tmp/before-reboot", BOOT)?;
        m.wait_for_console_text(guest::READY_MARKER, BOOT)?;

        // The image itself was never written.
        assert!(
            std::fs::read(&image)
                .expect("read image")
                .iter()
                .all(|&b| b == 0),
            "backing image modified"
        );

        // shutdown(): clean poweroff, QEMU exits, commands then fail clearly.
        m.shutdown(20 * SEC)?;
        assert!(!m.is_running());
        let (text, _) = failure_text(m.succeed("true", SEC));
        assert!(text.contains("machine m1 is not running"), "{text}");

        // QEMU exiting during a command is reported with its exit status.
        m.start()?;
        let (text, failure) = failure_text(m.succeed("poweroff -f; sleep 10", BOOT));
        assert!(
            matches!(failure.error(), Error::QemuExited { .. }),
            "{text}"
        );
        assert!(
            text.contains(
                "QEMU of machine m1 exited (exit status: 0) while running `poweroff -f; sleep 10`"
            ),
            "{text}"
        );

        // Dropping a running machine kills its QEMU.
        m.start()?;
        let dir = m.dir().to_owned();
        assert_eq!(qemu_processes_mentioning(&dir), 1);
        drop(m);
        assert_eq!(
            qemu_processes_mentioning(&dir),
            0,
            "QEMU survived its machine"
        );
        Ok(())
    }
);

vm_test!(
    full,
    fn private_network() {
        let driver = Driver::new("private_network")?;
        let net = driver.network()?;
        let store = tempfile::tempdir().expect("tempdir");
        let mut a = config("a");
        a.networks = vec![net.clone()];
        a.store = Some(store.path().to_owned());
        std::fs::write(store.path().join("hello"), "from the host store\n")
            .expect("write store file");
        let mut b = config("b");
        b.networks = vec![net.clone()];
        b.store = Some(store.path().to_owned());
        b.store_transport = StoreTransport::VirtioFs;
        let (a, b) = (driver.machine(a)?, driver.machine(b)?);
        a.start()?;
        b.start()?;
        for m in [&a, &b] {
            m.wait_for_console_text(guest::READY_MARKER, BOOT)?;
            let ip = net.ipv4(m.index());
            m.succeed(
                format!("ip addr add {ip}/24 dev eth0 && ip link set eth0 up"),
                5 * SEC,
            )?;
            assert_eq!(
                m.succeed("cat /sys/class/net/eth0/address", 5 * SEC)?
                    .trim(),
                net.mac(m.index())
            );
        }
        a.wait_until_succeeds(format!("ping -c 1 -W 1 {}", net.ipv4(b.index())), 20 * SEC)?;
        b.succeed(format!("ping -c 1 -W 5 {}", net.ipv4(a.index())), 10 * SEC)?;

        // The store is offered over 9p (virtio device id 9); the cloud kernel has
        // no 9p module, so only the device is checked.
        a.succeed("grep -qx 0x0009 /sys/bus/virtio/devices/*/device", 5 * SEC)?;

        // The same store over virtiofs, mounted read-only by the guest.
        b.succeed(
            "mkdir -p /imago/store && mount -t virtiofs -o ro imago-store /imago/store",
            10 * SEC,
        )?;
        assert_eq!(
            b.succeed("cat /imago/store/hello", 5 * SEC)?,
            "from the host store\n"
        );
        b.fail("touch /imago/store/new", 5 * SEC)?;
        assert!(!store.path().join("new").exists());

        // A failure report shows the console of every machine.
        let (_, failure) = failure_text(b.succeed("exit 1", 5 * SEC));
        for name in ["a", "b"] {
            let header = format!("=== console of {name} (last 50 lines) ===\n");
            let section = failure.report().split(&header).nth(1).unwrap_or_default();
            assert!(
                section.contains(guest::READY_MARKER),
                "no console of {name} in:\n{}",
                failure.report()
            );
        }
        Ok(())
    }
);

/// Builds an unpartitioned FAT ESP with systemd-boot, the guest's kernel and
/// initrd and one Boot Loader Specification entry.
fn esp_image(dir: &Path) -> PathBuf {
    let guest = guest::guest();
    let image = dir.join("esp.img");
    let run = |command: &mut Command| {
        let output = command
            .env("MTOOLS_SKIP_CHECK", "1")
            .output()
            .expect("run tool");
        assert!(
            output.status.success(),
            "{command:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    run(Command::new("mkfs.vfat").arg("-C").arg(&image).arg("32768"));
    let mmd = |path: &str| run(Command::new("mmd").arg("-i").arg(&image).arg(path));
    for path in ["::/EFI", "::/EFI/BOOT", "::/loader", "::/loader/entries"] {
        mmd(path);
    }
    let files = [
        (
            PathBuf::from("/usr/lib/systemd/boot/efi/systemd-bootx64.efi"),
            "::/EFI/BOOT/BOOTX64.EFI",
        ),
        (guest.kernel.clone(), "::/vmlinuz"),
        (guest.initrd.clone(), "::/initrd"),
    ];
    let loader = dir.join("loader.conf");
    std::fs::write(&loader, "timeout 0\ndefault imago.conf\n").expect("write loader.conf");
    let entry = dir.join("imago.conf");
    let options = guest::CMDLINE;
    std::fs::write(
        &entry,
        format!("title imago\nlinux /vmlinuz\ninitrd /initrd\noptions {options}\n"),
    )
    .expect("write entry");
    for (source, target) in files.iter().map(|(s, t)| (s.as_path(), *t)).chain([
        (loader.as_path(), "::/loader/loader.conf"),
        (entry.as_path(), "::/loader/entries/imago.conf"),
    ]) {
        run(Command::new("mcopy")
            .arg("-i")
            .arg(&image)
            .arg(source)
            .arg(target));
    }
    image
}

vm_test!(
    full,
    fn uefi_boot_from_disk() {
        let driver = Driver::new("uefi_boot_from_disk")?;
        let image = esp_image(driver.dir());
        let vars = PathBuf::from("/usr/share/OVMF/OVMF_VARS_4M.fd");
        let vars_before = std::fs::read(&vars).expect("read OVMF vars");
        let mut config = MachineConfig::new(
            MachineName::new("uefi").expect("name"),
            Boot::Uefi {
                code: "/usr/share/OVMF/OVMF_CODE_4M.fd".into(),
                vars: vars.clone(),
            },
        );
        config.disk = Some(DiskImage {
            path: image.clone(),
            format: DiskFormat::Raw,
            size: None,
        });
        config.memory_mib = 256;
        config.poweroff_command = "poweroff -f".to_owned();
        let image_before = std::fs::read(&image).expect("read image");
        let m = driver.machine(config)?;
        m.start()?;
        m.wait_for_console_text(guest::READY_MARKER, 2 * BOOT)?;
        assert!(
            m.succeed("cat /proc/cmdline", 5 * SEC)?
                .contains("console=ttyS0")
        );
        m.succeed("test -d /sys/firmware/efi", 5 * SEC)?;
        m.shutdown(20 * SEC)?;
        assert!(
            std::fs::read(&vars).expect("read OVMF vars") == vars_before,
            "vars template modified"
        );
        assert!(
            std::fs::read(&image).expect("read image") == image_before,
            "disk image modified"
        );
        Ok(())
    }
);
