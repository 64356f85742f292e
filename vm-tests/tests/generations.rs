//! VM tests of generations on a disk image booted through OVMF and
//! systemd-boot: switching a running system, rebooting into the new
//! generation, rolling back, choosing a generation from the boot menu,
//! falling back from a generation that cannot boot, power cuts at each step
//! of a switch, and deleting a generation.
//!
//! The systems are vm-tests/systems/minimal.imago (generation 1, the image),
//! minimal-gen2.imago (other motd, changed service, a new user, another
//! initrd) and minimal-broken.imago (its init exits). Closures travel into
//! the guest and are switched with the code of `imago deploy`
//! (`support::switch_to`), and rollback / delete run through the code of
//! `imago rollback|generations --target`, the backdoor standing in for ssh.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use imago::remote::{self, Action};
use imago::store::{Store, StorePath};
use imago_vm_tests::{Driver, Failure, Machine, vm_test};
use support::{GuestRemote, System};

const SEC: Duration = Duration::from_secs(1);

/// A command through the backdoor (scaled by the accelerator factor).
const CMD: Duration = Duration::from_secs(5);

/// Copying a closure and switching (scaled).
const SWITCH: Duration = Duration::from_secs(60);

/// Firmware, boot loader and kernel to the service's console line (scaled).
const BOOT: Duration = Duration::from_secs(60);

/// What the `hello` service of generation 1 and 2 prints.
const HELLO_1: &str = "IMAGO-HELLO-OK";
const HELLO_2: &str = "IMAGO-HELLO-GEN2";

/// Boots generation 1's disk image and waits for its service.
fn boot_image(driver: &Driver, gen1: &System) -> Result<Machine, Failure> {
    let mut config = gen1.uefi_disk(driver, "machine")?;
    config.memory_mib = 512;
    let m = driver.machine(config)?;
    m.start()?;
    m.wait_for_console_text(HELLO_1, BOOT)?;
    Ok(m)
}

fn readlink(m: &Machine, link: &str) -> Result<String, Failure> {
    Ok(m.succeed(["readlink", link], CMD)?.trim_end().to_owned())
}

/// The names in /boot/loader/entries, sorted.
fn entries(m: &Machine) -> Result<Vec<String>, Failure> {
    let out = m.succeed("ls /boot/loader/entries | sort", CMD)?;
    Ok(out.lines().map(str::to_owned).collect())
}

/// Every boot entry's kernel and initrd exist, loader.conf has a default,
/// and the profile's `system` link resolves to a toplevel.
fn esp_is_consistent(m: &Machine) -> Result<(), Failure> {
    m.succeed(
        r#"set -e
for e in /boot/loader/entries/*.conf; do
  for f in $(sed -n 's/^\(linux\|initrd\)[[:space:]]\+//p' "$e"); do
    [ -f "/boot$f" ] || { echo "$e names the missing /boot$f" >&2; exit 1; }
  done
done
grep -q '^default ' /boot/loader/loader.conf
test -f /imago/var/profiles/system/boot.json
"#,
        CMD,
    )
    .map(drop)
}

/// The generation the running kernel was booted as.
fn booted_generation(m: &Machine) -> Result<String, Failure> {
    let cmdline = m.succeed("cat /proc/cmdline", CMD)?;
    Ok(cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix("imago.generation="))
        .unwrap_or("")
        .to_owned())
}

/// Runs the target side of `imago rollback|generations --target` in the
/// guest; returns its output.
fn generation_tool(driver: &Driver, m: &Machine, args: &[&str]) -> Result<String, Failure> {
    driver.setup(
        &format!("{}: switch-to-configuration {}", m.name(), args.join(" ")),
        || {
            let guest = GuestRemote {
                machine: m,
                timeout: SWITCH,
            };
            let args: Vec<String> = args.iter().map(|&a| a.to_owned()).collect();
            remote::run_generation_tool(&guest, &args)
                .map(|out| out.stdout_text())
                .map_err(|e| format!("{e:#}"))
        },
    )
}

/// The object names in the guest's /imago/store (not its temporary
/// directories).
fn store_objects(m: &Machine) -> Result<BTreeSet<String>, Failure> {
    let out = m.succeed(["ls", "-A", "/imago/store"], CMD)?;
    Ok(out
        .lines()
        .filter(|l| l.parse::<StorePath>().is_ok())
        .map(str::to_owned)
        .collect())
}

/// From the host's store database: the object names of `gen1`'s closure,
/// and those of `gen2`'s closure that are not in it.
fn closures(
    driver: &Driver,
    gen1: &System,
    gen2: &System,
) -> Result<(BTreeSet<String>, BTreeSet<String>), Failure> {
    driver.setup("the closures of generations 1 and 2", || {
        let store = Store::open(&gen1.store)?;
        let names = |s: &System| {
            store
                .closure(std::slice::from_ref(&s.toplevel))
                .map(|c| c.iter().map(ToString::to_string).collect::<BTreeSet<_>>())
        };
        let one = names(gen1)?;
        let only_two = names(gen2)?.difference(&one).cloned().collect();
        Ok::<_, imago::store::StoreError>((one, only_two))
    })
}

vm_test!(
    full,
    fn switch_in_the_running_system_then_reboot_roll_back_and_delete() {
        let driver = Driver::new("switch_in_the_running_system_then_reboot_roll_back_and_delete")?;
        let gen1 = support::system(&driver, "minimal")?;
        let gen2 = support::system(&driver, "minimal-gen2")?;
        let m = boot_image(&driver, &gen1)?;
        assert_eq!(entries(&m)?, ["imago-minimal-1.conf"]);

        // Switch the running system: applied at once, no reboot.
        let out = support::switch_to(&driver, &m, &gen2, Action::Switch, SWITCH)?;
        assert!(out.contains("generation 2"), "{out}");
        m.wait_for_console_text(HELLO_2, 30 * SEC)?;
        assert_eq!(m.succeed("cat /etc/motd", CMD)?, "This is generation 2.\n");
        m.succeed("grep -q '^bob:x:' /etc/passwd && test -d /home/bob", CMD)?;
        assert_eq!(
            readlink(&m, "/run/current-system")?,
            gen2.toplevel.to_absolute()
        );
        assert_eq!(
            readlink(&m, "/run/booted-system")?,
            gen1.toplevel.to_absolute()
        );
        assert_eq!(
            entries(&m)?,
            ["imago-minimal-1.conf", "imago-minimal-2+3.conf"]
        );
        esp_is_consistent(&m)?;

        // Reboot: generation 2 boots and, having booted, is blessed.
        m.reboot()?;
        m.wait_for_console_text(HELLO_2, BOOT)?;
        assert_eq!(
            readlink(&m, "/run/booted-system")?,
            gen2.toplevel.to_absolute()
        );
        assert_eq!(booted_generation(&m)?, "2");
        m.wait_until_succeeds(
            "test -f /boot/loader/entries/imago-minimal-2.conf",
            20 * SEC,
        )?;

        // Roll back (what `imago rollback --target` runs): generation 1 is
        // active at once and the boot default.
        let out = generation_tool(&driver, &m, &["rollback", "switch"])?;
        assert!(
            out.contains("rolling back from generation 2 to generation 1"),
            "{out}"
        );
        assert_eq!(
            m.succeed("cat /etc/motd", CMD)?,
            "Welcome to the minimal Imago system.\n"
        );
        m.fail("grep -q '^bob:' /etc/passwd", CMD)?;
        assert_eq!(readlink(&m, "/imago/var/profiles/system")?, "system-1-link");
        m.reboot()?;
        m.wait_for_console_text(HELLO_1, BOOT)?;
        assert_eq!(
            readlink(&m, "/run/booted-system")?,
            gen1.toplevel.to_absolute()
        );
        assert_eq!(booted_generation(&m)?, "1");

        // Delete generation 2 (what `imago generations --target … delete 2`
        // runs): its entry and its initrd go, nothing points at a missing
        // file, and so do the store objects only generation 2 used.
        let list = generation_tool(&driver, &m, &["list-generations"])?;
        assert!(list.starts_with("1\tcurrent booted\t"), "{list}");
        let initrd2 = m.succeed(
            "sed -n 's/^initrd //p' /boot/loader/entries/imago-minimal-2.conf",
            CMD,
        )?;
        let (closure1, only2) = closures(&driver, &gen1, &gen2)?;
        let etc2 = readlink(&m, &format!("{}/etc", gen2.toplevel.to_absolute()))?;
        assert!(store_objects(&m)?.is_superset(&only2));
        let out = generation_tool(&driver, &m, &["delete-generations", "2"])?;
        assert_eq!(entries(&m)?, ["imago-minimal-1.conf"]);
        m.fail(["test", "-e", &format!("/boot{}", initrd2.trim())], CMD)?;
        m.fail("test -e /imago/var/profiles/system-2-link", CMD)?;
        esp_is_consistent(&m)?;
        assert!(
            out.contains(&format!("deleted {} store objects, ", only2.len()))
                && out.contains(&format!(" KiB freed; {} kept\n", closure1.len())),
            "{out}"
        );
        // Generation 2's toplevel and its /etc tree are gone, and the store
        // is generation 1's closure, whole, exactly as the image had it.
        for gone in [gen2.toplevel.to_absolute(), etc2] {
            assert!(out.contains(&format!("deleted {gone}\n")), "{gone}: {out}");
            m.fail(["test", "-e", &gone], CMD)?;
        }
        assert_eq!(store_objects(&m)?, closure1);
        // The guest's own list agrees with the host's database.
        let listed = m.succeed("cat /imago/var/profiles/system-1-link/closure", CMD)?;
        let mut want: Vec<String> = closure1
            .iter()
            .filter(|p| **p != gen1.toplevel.to_string())
            .map(|p| format!("/imago/store/{p}\n"))
            .collect();
        want.sort();
        assert_eq!(listed, want.concat());
        m.succeed(
            r#"set -e
for p in $(cat /run/current-system/closure); do
  [ -e "$p" ] || [ -L "$p" ] || { echo "$p is missing" >&2; exit 1; }
done
grep -q '^[^ ]* /imago/store [^ ]* ro[, ]' /proc/mounts
"#,
            CMD,
        )?;
        // The current generation cannot be deleted.
        let refused = generation_tool(&driver, &m, &["delete-generations", "1"]);
        let text = refused
            .expect_err("deleting the current generation")
            .to_string();
        assert!(text.contains("generation 1 is the current one"), "{text}");

        // What is left boots.
        m.reboot()?;
        m.wait_for_console_text(HELLO_1, BOOT)?;
        assert_eq!(booted_generation(&m)?, "1");
        esp_is_consistent(&m)?;
        Ok(())
    }
);

vm_test!(
    full,
    fn a_generation_is_chosen_once_from_the_boot_menu() {
        let driver = Driver::new("a_generation_is_chosen_once_from_the_boot_menu")?;
        let gen1 = support::system(&driver, "minimal")?;
        let gen2 = support::system(&driver, "minimal-gen2")?;
        let m = boot_image(&driver, &gen1)?;
        // Generation 2 exists, but generation 1 stays the default.
        support::switch_to(&driver, &m, &gen2, Action::Boot, SWITCH)?;
        generation_tool(&driver, &m, &["rollback", "boot"])?;
        let loader = m.succeed("head -n 1 /boot/loader/loader.conf", CMD)?;
        assert_eq!(loader, "default imago-minimal-1.conf\n");
        m.reboot()?;

        // Reboot and press keys until systemd-boot shows its menu: with
        // `timeout 0` it flushes the input and then waits 100 ms for a key,
        // so keys go every 30 ms. The menu lists every generation, newest
        // first, with the default selected.
        m.send_keys_until(" ", r"generation 2, ", Duration::from_millis(30), BOOT)?;
        // Up to generation 2 (listed above the selected generation 1), enter.
        m.send_keys("\x1b[A")?;
        m.send_keys("\r")?;
        m.wait_for_console_text(HELLO_2, BOOT)?;
        assert_eq!(booted_generation(&m)?, "2");

        // Once: the next boot is generation 1 again.
        m.reboot()?;
        m.wait_for_console_text(HELLO_1, BOOT)?;
        assert_eq!(booted_generation(&m)?, "1");
        Ok(())
    }
);

vm_test!(
    full,
    fn a_generation_that_cannot_boot_falls_back_by_itself() {
        let driver = Driver::new("a_generation_that_cannot_boot_falls_back_by_itself")?;
        let gen1 = support::system(&driver, "minimal")?;
        let broken = support::system(&driver, "minimal-broken")?;
        let m = boot_image(&driver, &gen1)?;
        support::switch_to(&driver, &m, &broken, Action::Boot, SWITCH)?;
        assert_eq!(
            entries(&m)?,
            ["imago-minimal-1.conf", "imago-minimal-2+3.conf"]
        );
        m.reboot()?;
        // Three tries: each boots generation 2, whose init fails; the kernel
        // panics and reboots (panic=1); systemd-boot counts the try down.
        for _ in 0..3 {
            m.wait_for_console_text("IMAGO-BROKEN-INIT", BOOT)?;
            m.wait_for_console_text("Kernel panic", 20 * SEC)?;
            m.expect_reboot()?;
        }
        // Then generation 1, the last good one, without anyone's help.
        m.wait_for_console_text(HELLO_1, BOOT)?;
        assert_eq!(booted_generation(&m)?, "1");
        assert_eq!(
            readlink(&m, "/run/booted-system")?,
            gen1.toplevel.to_absolute()
        );
        assert_eq!(
            entries(&m)?,
            ["imago-minimal-1.conf", "imago-minimal-2+0-3.conf"]
        );
        Ok(())
    }
);

/// The steps of a switch after which the power is cut, in order, and
/// whether the new generation is the one that boots afterwards: the boot
/// entry, written and synced, is the commit point on the ESP (the image's
/// default is the glob `imago-minimal-*`, so the newest entry boots). Two
/// tests share them, so that their machines run side by side.
const CUTS_TO_THE_ENTRY: &[(&str, bool)] = &[
    ("profile-link", false),
    ("kernel", false),
    ("initrd", false),
    ("entry", true),
];
const CUTS_AFTER_THE_ENTRY: &[(&str, bool)] = &[
    ("loader", true),
    ("profile", true),
    ("prune", true),
    ("activation", true),
];

/// For each step: a fresh copy of the image (generation 1 booted), a switch
/// to generation 2 stopped after the step, a power cut, and a boot that
/// must bring up a complete generation with a consistent ESP.
fn power_cuts(test: &str, cuts: &[(&str, bool)]) -> Result<(), Failure> {
    let driver = Driver::new(test)?;
    let gen1 = support::system(&driver, "minimal")?;
    let gen2 = support::system(&driver, "minimal-gen2")?;
    let store = driver.setup("open the store", || imago::store::Store::open(&gen2.store))?;
    for &(step, new_boots) in cuts {
        driver.step(&format!("power cut after `{step}`"), || {
            let mut config = gen1.uefi_disk(&driver, &format!("cut-{step}"))?;
            config.memory_mib = 512;
            let m = driver.machine(config)?;
            m.start()?;
            m.wait_for_console_text(HELLO_1, BOOT)?;
            let guest = GuestRemote {
                machine: &m,
                timeout: SWITCH,
            };
            driver.setup("copy generation 2's closure", || {
                remote::copy_closure(&store, &gen2.toplevel, &guest, "/imago/store")
                    .map_err(|e| format!("{e:#}"))
            })?;
            m.succeed(
                format!(
                    "IMAGO_SWITCH_PAUSE_AFTER={step} {}/bin/switch-to-configuration switch >/run/switch.log 2>&1 </dev/null &",
                    gen2.toplevel.to_absolute()
                ),
                CMD,
            )?;
            m.wait_until_succeeds(
                format!("grep -q 'paused after {step} ' /run/switch.log"),
                SWITCH,
            )?;
            m.power_loss()?;
            let (want, hello) = if new_boots {
                (&gen2, HELLO_2)
            } else {
                (&gen1, HELLO_1)
            };
            m.wait_for_console_text(hello, BOOT)?;
            assert_eq!(
                readlink(&m, "/run/booted-system")?,
                want.toplevel.to_absolute(),
                "after a power cut after `{step}`"
            );
            esp_is_consistent(&m)?;
            m.kill();
            Ok(())
        })?;
    }
    Ok(())
}

vm_test!(
    full,
    fn a_power_cut_before_the_new_entry_is_complete_boots_a_complete_generation() {
        power_cuts(
            "a_power_cut_before_the_new_entry_is_complete_boots_a_complete_generation",
            CUTS_TO_THE_ENTRY,
        )
    }
);

vm_test!(
    full,
    fn a_power_cut_after_the_new_entry_boots_the_new_generation() {
        power_cuts(
            "a_power_cut_after_the_new_entry_boots_the_new_generation",
            CUTS_AFTER_THE_ENTRY,
        )
    }
);

vm_test!(
    full,
    fn switching_a_systemd_system_restarts_starts_and_stops_services() {
        let driver = Driver::new("switching_a_systemd_system_restarts_starts_and_stops_services")?;
        let gen1 = support::system(&driver, "server")?;
        let gen2 = support::system(&driver, "server-gen2")?;
        let mut config = gen1.direct(&driver, "server")?;
        config.memory_mib = 1024;
        config.smp = 2;
        let m = driver.machine(config)?;
        m.start()?;
        m.wait_for_unit("multi-user.target", 90 * SEC)?;
        m.wait_for_console_text("IMAGO-SERVER-UP", 10 * SEC)?;
        m.wait_for_open_port(80, 10 * SEC)?;
        // sshd listens once its first-boot host keys exist.
        m.wait_for_open_port(22, 60 * SEC)?;
        let pid = |m: &Machine| -> Result<String, Failure> {
            Ok(
                m.succeed("systemctl show -P MainPID lighttpd.service", CMD)?
                    .trim()
                    .to_owned(),
            )
        };
        let before = pid(&m)?;

        // `test`: activate without touching the boot default (direct boot
        // has no ESP). The store is shared with the host, so nothing is
        // copied.
        let out = support::switch_to(&driver, &m, &gen2, Action::Test, SWITCH)?;
        assert!(out.contains("restarting lighttpd.service"), "{out}");
        assert!(out.contains("starting gen2.service"), "{out}");
        assert!(out.contains("stopping sshd.service"), "{out}");
        assert!(!out.contains("hello.service"), "{out}");
        m.wait_for_console_text("IMAGO-SERVER-GEN2", 10 * SEC)?;
        m.wait_for_unit("lighttpd.service", 10 * SEC)?;
        assert_ne!(pid(&m)?, before, "lighttpd was not restarted");
        m.wait_for_open_port(80, 10 * SEC)?;
        let page = m.succeed("busybox wget -qO- http://127.0.0.1/", CMD)?;
        assert!(page.contains("<h1>Generation 2</h1>"), "{page}");
        m.succeed("grep -q '^bob:x:' /etc/passwd && test -d /home/bob", CMD)?;
        m.fail("test -e /etc/systemd/system/hello.service", CMD)?;
        m.fail("systemctl is-active sshd.service", CMD)?;
        m.wait_for_closed_port(22, 10 * SEC)?;
        support::no_failed_units(&m)?;
        assert_eq!(
            readlink(&m, "/run/current-system")?,
            gen2.toplevel.to_absolute()
        );
        Ok(())
    }
);
