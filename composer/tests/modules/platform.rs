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
