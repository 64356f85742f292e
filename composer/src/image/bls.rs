//! Boot Loader Specification (type 1) entries and systemd-boot's
//! loader.conf for the ESP.
//!
//! Kernels and initrds are stored on the ESP once per content: their file
//! names are the base names of their store objects, which contain the
//! content hash.

use super::ids::ImageIds;
use crate::boot::bootspec::BootSpec;
use crate::store::StorePath;

/// Directory on the ESP that holds kernels and initrds.
pub const ESP_DIR: &str = "EFI/imago";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootEntry {
    /// File name below `loader/entries/`.
    pub file_name: String,
    pub title: String,
    pub version: String,
    /// ESP path of the kernel (`/EFI/imago/...`).
    pub linux: String,
    /// ESP path of the initrd.
    pub initrd: String,
    pub options: String,
    /// Store path of the kernel image and of the initrd (the sources).
    pub kernel_source: String,
    pub initrd_source: String,
}

/// The ESP file name for a file inside a store object:
/// `/imago/store/<hash>-linux/bzImage` → `<hash>-linux-bzImage`.
pub fn esp_name(store_file: &str) -> String {
    store_file
        .trim_start_matches(crate::store::STORE_PREFIX)
        .trim_start_matches('/')
        .replace('/', "-")
}

impl BootEntry {
    /// The entry of generation `generation` of the system `toplevel`.
    /// `date` (YYYY-MM-DD) is part of the title when given; images leave it
    /// out so that they stay reproducible.
    pub fn for_generation(
        spec: &BootSpec,
        toplevel: &StorePath,
        generation: u32,
        ids: &ImageIds,
        date: Option<&str>,
    ) -> BootEntry {
        let mut extra = vec![format!("imago.generation={generation}")];
        if !spec.kernel_params.iter().any(|p| p.starts_with("root=")) {
            extra.push(format!("root=UUID={}", ids.root_fs_uuid));
            extra.push("rootfstype=ext4".to_owned());
        }
        extra.push("rw".to_owned());
        let title = match date {
            Some(d) => format!("{} (generation {generation}, {d})", spec.system_name),
            None => format!("{} (generation {generation})", spec.system_name),
        };
        BootEntry {
            file_name: format!("imago-{}-{generation}.conf", spec.system_name),
            title,
            version: generation.to_string(),
            linux: format!("/{ESP_DIR}/{}", esp_name(&spec.kernel)),
            initrd: format!("/{ESP_DIR}/{}", esp_name(&spec.initrd)),
            options: spec.cmdline(&toplevel.to_absolute(), &extra),
            kernel_source: spec.kernel.clone(),
            initrd_source: spec.initrd.clone(),
        }
    }

    /// The entry file's text.
    pub fn render(&self) -> String {
        format!(
            "title {}\nversion {}\nlinux {}\ninitrd {}\noptions {}\n",
            self.title, self.version, self.linux, self.initrd, self.options
        )
    }
}

/// systemd-boot's `loader/loader.conf`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoaderConfig {
    /// The default entry (a file name or glob below loader/entries/).
    pub default: String,
    /// Seconds the menu waits; 0 shows it only while a key is held.
    pub timeout: u32,
}

impl LoaderConfig {
    pub fn render(&self) -> String {
        format!(
            "default {}\ntimeout {}\nconsole-mode keep\neditor no\n",
            self.default, self.timeout
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn spec(params: &str) -> BootSpec {
        let text = format!(
            r#"{{ "version": 1, "label": "t", "system_name": "web",
            "kernel": "/imago/store/0000000000000000000000000000000a-linux/bzImage",
            "initrd": "/imago/store/0000000000000000000000000000000b-initrd",
            "kernel_params": [{params}], "init": "init" }}"#
        );
        BootSpec::parse(&text, Path::new("/t/boot.json")).unwrap()
    }

    #[test]
    fn entry_points_at_esp_copies_and_the_root_uuid() {
        let top: StorePath = "0000000000000000000000000000000c-imago-system-web"
            .parse()
            .unwrap();
        let ids = ImageIds::derive(&top);
        let e = BootEntry::for_generation(&spec(r#""console=ttyS0""#), &top, 1, &ids, None);
        assert_eq!(e.file_name, "imago-web-1.conf");
        assert_eq!(
            e.linux,
            "/EFI/imago/0000000000000000000000000000000a-linux-bzImage"
        );
        assert_eq!(
            e.initrd,
            "/EFI/imago/0000000000000000000000000000000b-initrd"
        );
        let text = e.render();
        assert!(text.contains("title web (generation 1)\n"), "{text}");
        assert!(
            text.contains(&format!(
                "options console=ttyS0 imago.system=/imago/store/0000000000000000000000000000000c-imago-system-web imago.generation=1 root=UUID={} rootfstype=ext4 rw\n",
                ids.root_fs_uuid
            )),
            "{text}"
        );
    }

    #[test]
    fn a_configured_root_is_kept() {
        let top: StorePath = "0000000000000000000000000000000c-imago-system-web"
            .parse()
            .unwrap();
        let ids = ImageIds::derive(&top);
        let e = BootEntry::for_generation(
            &spec(r#""root=LABEL=data""#),
            &top,
            2,
            &ids,
            Some("2026-11-25"),
        );
        assert!(!e.options.contains("root=UUID"), "{}", e.options);
        assert_eq!(e.title, "web (generation 2, 2026-11-25)");
    }
}
