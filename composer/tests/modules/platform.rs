//! `system.platform`, the names the module library uses per architecture
//! (modules/system/debian.imago), agree with Imago's one table of
//! per-architecture facts (`imago::arch::Architecture`), for every
//! architecture; and the consoles and the serial getty follow them.

use crate::support::system::{config, write_system};
use imago::arch::Architecture;

#[test]
fn the_modules_platform_names_are_imagos_per_architecture_facts() {
    for arch in Architecture::ALL {
        let dir = tempfile::tempdir().unwrap();
        let file = write_system(
            dir.path(),
            &format!("{{ system.architecture = \"{arch}\"; }}\n"),
        );
        let platform = config(&file, "system.platform");
        assert_eq!(
            platform,
            serde_json::json!({
                "kernelImage": arch.kernel_image(),
                "serialConsole": arch.serial_console(),
                "systemdBootEfi": arch.systemd_boot_file(),
            }),
            "{arch}"
        );
        assert_eq!(
            config(&file, "boot.kernel.consoles"),
            serde_json::json!(["tty0", format!("{},115200", arch.serial_console())]),
            "{arch}"
        );
        assert_eq!(
            config(&file, "services.getty.serialConsoles"),
            serde_json::json!([arch.serial_console()]),
            "{arch}"
        );
    }
}

/// agetty hands a console's user to /bin/login, which is in Debian's
/// `login` package with its /etc/pam.d/login: a systemd system with a
/// serial getty gets both (without them agetty failed to exec login and
/// restarted every 10 s); busybox systems log in with busybox.
#[test]
fn a_systemd_consoles_getty_has_login_and_its_pam_file() {
    let dir = tempfile::tempdir().unwrap();
    let packages = |init: &str, consoles: &str| {
        let file = write_system(
            dir.path(),
            &format!("{{ boot.init = \"{init}\"; services.getty.serialConsoles = {consoles}; }}\n"),
        );
        let list = config(&file, "environment.systemPackages");
        let has_login = list
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p.as_str().unwrap().ends_with("-login"));
        (file, has_login)
    };
    let (file, has_login) = packages("systemd", "[ \"ttyS0\" ]");
    assert!(has_login);
    let pam = config(&file, "environment.etc.\"pam.d/login\".source");
    assert!(
        pam.as_str().unwrap().ends_with("-login/etc/pam.d/login"),
        "{pam}"
    );
    assert!(!packages("systemd", "[ ]").1, "no console, no login");
    assert!(
        !packages("busybox", "[ \"ttyS0\" ]").1,
        "busybox's own login"
    );
}
