//! VM tests of the example systems (`examples/*.imago`), built for real with
//! the VM test backdoor (`vm-tests/systems/`) and booted under QEMU: the
//! busybox system and the systemd server by direct kernel boot with the
//! store over virtiofs, and the busybox system's disk image through OVMF and
//! systemd-boot.
//!
//! `IMAGO_VM_TESTS=quick` runs `minimal_boots_and_is_configured` only.

mod support;

use std::time::Duration;

use imago_vm_tests::{Driver, vm_test};

const SEC: Duration = Duration::from_secs(1);

/// A command through the backdoor (scaled by the accelerator factor).
const CMD: Duration = Duration::from_secs(5);

/// What examples/minimal.imago's `hello` service prints on the console.
const HELLO: &str = "hello from minimal: IMAGO-HELLO-OK";

#[test]
fn test_systems_share_the_examples_lock() {
    let ours = std::fs::read(support::systems_dir().join("imago.lock"))
        .expect("vm-tests/systems/imago.lock");
    let examples = std::fs::read(support::systems_dir().join("../../examples/imago.lock"))
        .expect("examples/imago.lock");
    assert!(
        ours == examples,
        "vm-tests/systems/imago.lock differs from examples/imago.lock: copy it again"
    );
}

vm_test!(
    quick,
    fn minimal_boots_and_is_configured() {
        let driver = Driver::new("minimal_boots_and_is_configured")?;
        let system = support::system(&driver, "minimal")?;
        let mut config = system.direct(&driver, "minimal")?;
        config.memory_mib = 512;
        let m = driver.machine(config)?;
        m.start()?;
        // The hello service ran, with the configured host name.
        m.wait_for_console_text(HELLO, 30 * SEC)?;

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
        Ok(())
    }
);
