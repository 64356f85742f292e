//! What a test machine is made of.
//!
//! A [`MachineConfig`] is plain data: how the machine boots ([`Boot`]), an
//! optional disk image used read-only as the backing file of a per-test
//! overlay, the host store shared read-only over 9p or virtiofs, the networks it is
//! attached to, and extra QEMU arguments. Everything is argv, never a shell
//! string. `qemu.rs` turns it into a QEMU command line.

use std::fmt;
use std::path::PathBuf;

use crate::error::Error;
use crate::network::Network;

/// A CPU architecture of Imago's (`amd64`, `arm64`): which QEMU, machine,
/// console and firmware a machine gets.
pub use imago::arch::Architecture;

/// A machine name: 1–32 characters of `[A-Za-z0-9_-]`, starting with a
/// letter. It names the machine in logs and its directory under the test's
/// temporary directory (so it must be short and path-safe).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MachineName(String);

impl MachineName {
    /// Validates a name.
    pub fn new(name: &str) -> Result<Self, Error> {
        let valid_chars = name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        let starts_with_letter = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
        if name.is_empty() || name.len() > 32 || !valid_chars || !starts_with_letter {
            return Err(Error::Config(format!(
                "machine name {name:?} must be 1-32 characters of A-Z, a-z, 0-9, '-' or '_', starting with a letter"
            )));
        }
        Ok(Self(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MachineName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How the machine boots.
#[derive(Debug, Clone)]
pub enum Boot {
    /// QEMU loads the kernel and initrd itself (fastest).
    Direct {
        /// The kernel image (bzImage).
        kernel: PathBuf,
        /// The initrd.
        initrd: PathBuf,
        /// The kernel command line, e.g. `console=ttyS0 ...`.
        cmdline: String,
    },
    /// UEFI firmware boots from the disk (q35 machine; `virt` for arm64).
    Uefi {
        /// The firmware code, e.g. `/usr/share/OVMF/OVMF_CODE.fd` (read-only;
        /// [`Architecture::uefi_firmware`] names each architecture's).
        code: PathBuf,
        /// The variable store template; each machine boots with a copy.
        vars: PathBuf,
    },
}

impl Boot {
    /// Whether the machine boots through UEFI firmware.
    pub fn is_uefi(&self) -> bool {
        matches!(self, Boot::Uefi { .. })
    }
}

/// The on-disk format of a disk image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskFormat {
    /// A raw image.
    Raw,
    /// A qcow2 image.
    Qcow2,
}

impl DiskFormat {
    /// QEMU's name for the format.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Raw => "raw",
            Self::Qcow2 => "qcow2",
        }
    }
}

/// A disk image the machine boots with. It is never written: each machine
/// gets a qcow2 copy-on-write overlay in its temporary directory.
#[derive(Debug, Clone)]
pub struct DiskImage {
    /// The image file.
    pub path: PathBuf,
    /// Its format.
    pub format: DiskFormat,
    /// The disk's size as the guest sees it, in bytes, when larger than the
    /// image (the overlay is made that large: a bigger disk, as when an
    /// image is written to a larger drive). `None`: the image's size.
    pub size: Option<u64>,
}

/// How the store is shared with the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StoreTransport {
    /// 9p (`virtio-9p-pci`), read-only enforced by QEMU. Needs the guest's
    /// `9p` and `9pnet_virtio` modules (not in Debian's cloud kernel).
    #[default]
    NineP,
    /// virtiofs (`vhost-user-fs-pci` and a virtiofsd per machine, guest memory
    /// in a shared memfd). Read-only only through the guest's `ro` mount.
    /// Needs the guest's `virtiofs` module and a virtiofsd on the host.
    VirtioFs,
}

/// A machine of a test.
#[derive(Debug, Clone)]
pub struct MachineConfig {
    /// The machine name.
    pub name: MachineName,
    /// The guest's architecture: amd64 runs on `qemu-system-x86_64`
    /// (`pc`, or `q35` for UEFI), arm64 on `qemu-system-aarch64` (`virt`),
    /// always emulated on an amd64 host.
    pub arch: Architecture,
    /// How it boots.
    pub boot: Boot,
    /// An optional disk (virtio-blk; `/dev/vda` in the guest).
    pub disk: Option<DiskImage>,
    /// Memory in MiB.
    pub memory_mib: u32,
    /// Number of CPUs.
    pub smp: u32,
    /// A host directory shared read-only with tag `imago-store`.
    pub store: Option<PathBuf>,
    /// How `store` is shared.
    pub store_transport: StoreTransport,
    /// Networks the machine is attached to (one virtio-net NIC each, in order).
    pub networks: Vec<Network>,
    /// The shell command that powers the guest off (run through the
    /// backdoor by `shutdown()`).
    pub poweroff_command: String,
    /// The shell command that reboots the guest (run by `reboot()`).
    pub reboot_command: String,
    /// Extra QEMU arguments, appended last.
    pub extra_args: Vec<String>,
}

impl MachineConfig {
    /// A machine booting a kernel and initrd directly, with 512 MiB, one CPU,
    /// no disk and no network.
    pub fn direct(
        name: &str,
        kernel: impl Into<PathBuf>,
        initrd: impl Into<PathBuf>,
        cmdline: impl Into<String>,
    ) -> Result<Self, Error> {
        Ok(Self::new(
            MachineName::new(name)?,
            Boot::Direct {
                kernel: kernel.into(),
                initrd: initrd.into(),
                cmdline: cmdline.into(),
            },
        ))
    }

    /// A machine with the given boot method and the defaults of [`direct`](Self::direct).
    pub fn new(name: MachineName, boot: Boot) -> Self {
        Self {
            name,
            arch: Architecture::Amd64,
            boot,
            disk: None,
            memory_mib: 512,
            smp: 1,
            store: None,
            store_transport: StoreTransport::NineP,
            networks: Vec::new(),
            poweroff_command: "poweroff".to_owned(),
            reboot_command: "reboot".to_owned(),
            extra_args: Vec::new(),
        }
    }

    /// Checks that the files it names exist and the numbers make sense.
    pub fn validate(&self) -> Result<(), Error> {
        let mut files: Vec<(&str, &PathBuf)> = Vec::new();
        match &self.boot {
            Boot::Direct { kernel, initrd, .. } => {
                files.push(("kernel", kernel));
                files.push(("initrd", initrd));
            }
            Boot::Uefi { code, vars } => {
                files.push(("UEFI firmware code", code));
                files.push(("UEFI variable store", vars));
            }
        }
        if let Some(disk) = &self.disk {
            files.push(("disk image", &disk.path));
        }
        for (what, path) in files {
            if !path.is_file() {
                return Err(Error::Config(format!(
                    "machine {}: {what} {} is not a file",
                    self.name,
                    path.display()
                )));
            }
        }
        if let Some(disk) = &self.disk
            && let Some(size) = disk.size
            && disk.format == DiskFormat::Raw
        {
            let image = std::fs::metadata(&disk.path).map(|m| m.len()).unwrap_or(0);
            if size < image {
                return Err(Error::Config(format!(
                    "machine {}: disk size {size} is smaller than the image {} ({image} bytes)",
                    self.name,
                    disk.path.display()
                )));
            }
        }
        if let Some(store) = &self.store
            && !store.is_dir()
        {
            return Err(Error::Config(format!(
                "machine {}: store {} is not a directory",
                self.name,
                store.display()
            )));
        }
        if self.memory_mib < 64 || self.smp == 0 || self.smp > 64 {
            return Err(Error::Config(format!(
                "machine {}: memory {} MiB must be at least 64 and smp {} between 1 and 64",
                self.name, self.memory_mib, self.smp
            )));
        }
        if matches!(self.boot, Boot::Uefi { .. }) && self.disk.is_none() {
            return Err(Error::Config(format!(
                "machine {}: UEFI boot needs a disk image to boot from",
                self.name
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["m", "server1", "a-b_c", &"x".repeat(32)] {
            assert!(MachineName::new(good).is_ok(), "{good}");
        }
        for bad in ["", "1st", "-x", "a b", "a/b", "..", "ä", &"x".repeat(33)] {
            let err = MachineName::new(bad).unwrap_err().to_string();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn validate_names_missing_file() {
        let config =
            MachineConfig::direct("m", "/nonexistent/kernel", "/nonexistent/initrd", "").unwrap();
        let err = config.validate().unwrap_err().to_string();
        assert!(
            err.contains("kernel /nonexistent/kernel is not a file"),
            "{err}"
        );
    }

    #[test]
    fn validate_uefi_needs_disk_and_sane_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        let mut config = MachineConfig::new(
            MachineName::new("m").unwrap(),
            Boot::Uefi {
                code: file.clone(),
                vars: file.clone(),
            },
        );
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("needs a disk")
        );
        config.disk = Some(DiskImage {
            path: file,
            format: DiskFormat::Raw,
            size: None,
        });
        config.validate().unwrap();
        config.smp = 0;
        assert!(config.validate().unwrap_err().to_string().contains("smp 0"));
    }
}
