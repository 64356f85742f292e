//! The CPU architectures Imago builds systems for, and everything that
//! differs between them when a system boots: the name of the kernel image,
//! how to recognize one, the serial console, systemd-boot's file names on
//! the EFI system partition, the GPT type of the root partition, and the
//! QEMU binary, machine, CPU and UEFI firmware that run it
//! (docs/releases.md, "What differs for arm64").
//!
//! This is the one place that knows these facts. The kernel and initrd
//! builders, `imago run`, the image builder and the VM test driver ask an
//! [`Architecture`]; the module library keeps the three names it needs to
//! build a toplevel in `system.platform` (modules/system/debian.imago), and
//! a test checks that table against this one.

use std::fmt;

/// A Debian CPU architecture Imago can lock, build and boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Architecture {
    Amd64,
    Arm64,
}

/// A UEFI firmware for QEMU: read-only code and a variable store template
/// (each machine boots with a copy), from one Debian package.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UefiFirmware {
    pub code: &'static str,
    pub vars: &'static str,
    /// The Debian package that installs both.
    pub package: &'static str,
}

/// How one kind of kernel image is recognized: `magic` at `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageMagic {
    pub offset: usize,
    pub magic: &'static [u8],
    /// The format's name, for messages.
    pub format: &'static str,
}

impl ImageMagic {
    /// Whether `image` starts like this format.
    pub fn matches(&self, image: &[u8]) -> bool {
        image.get(self.offset..self.offset + self.magic.len()) == Some(self.magic)
    }
}

impl Architecture {
    pub const ALL: [Architecture; 2] = [Architecture::Amd64, Architecture::Arm64];

    /// Debian's name, as in `Architecture:` fields, the lock and
    /// `system.architecture`.
    pub fn name(self) -> &'static str {
        match self {
            Architecture::Amd64 => "amd64",
            Architecture::Arm64 => "arm64",
        }
    }

    pub fn parse(name: &str) -> Option<Architecture> {
        Architecture::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The architecture of the machine this program runs on, when it is
    /// one Imago knows.
    pub fn host() -> Option<Architecture> {
        Self::from_rust(std::env::consts::ARCH)
    }

    /// From Rust's name (`std::env::consts::ARCH`).
    pub fn from_rust(arch: &str) -> Option<Architecture> {
        match arch {
            "x86_64" => Some(Architecture::Amd64),
            "aarch64" => Some(Architecture::Arm64),
            _ => None,
        }
    }

    /// Debian's multiarch triplet: the directory of the architecture's
    /// libraries and dynamic loader (`usr/lib/x86_64-linux-gnu`).
    pub fn multiarch(self) -> &'static str {
        match self {
            Architecture::Amd64 => "x86_64-linux-gnu",
            Architecture::Arm64 => "aarch64-linux-gnu",
        }
    }

    /// The architecture whose multiarch triplet is `triplet`.
    pub fn from_multiarch(triplet: &str) -> Option<Architecture> {
        Architecture::ALL
            .into_iter()
            .find(|a| a.multiarch() == triplet)
    }

    /// The kernel image's file name in the kernel object: the name of the
    /// format the kernel's build makes (`arch/x86/boot/bzImage`,
    /// `arch/arm64/boot/Image`). Debian installs either as
    /// `boot/vmlinuz-<version>`.
    pub fn kernel_image(self) -> &'static str {
        match self {
            Architecture::Amd64 => "bzImage",
            Architecture::Arm64 => "Image",
        }
    }

    /// How a bootable kernel image of this architecture starts. amd64: the
    /// boot protocol's `HdrS` header signature at 0x202. arm64: the
    /// `ARM\x64` magic of the arm64 boot protocol's image header at 0x38
    /// (Documentation/arch/arm64/booting.rst); with the EFI stub
    /// (`CONFIG_EFI_STUB`, Debian's kernels have it) the same file starts
    /// with `MZ` and is a PE/COFF program that UEFI, and so systemd-boot,
    /// starts directly.
    pub fn kernel_magic(self) -> ImageMagic {
        match self {
            Architecture::Amd64 => ImageMagic {
                offset: 0x202,
                magic: b"HdrS",
                format: "an x86 bzImage",
            },
            Architecture::Arm64 => ImageMagic {
                offset: 0x38,
                magic: b"ARM\x64",
                format: "an arm64 Image",
            },
        }
    }

    /// The serial console of QEMU's machine for this architecture: the
    /// 16550 UART of the PC, the PL011 of `virt`.
    pub fn serial_console(self) -> &'static str {
        match self {
            Architecture::Amd64 => "ttyS0",
            Architecture::Arm64 => "ttyAMA0",
        }
    }

    /// Kernel parameters every VM of this architecture gets. amd64:
    /// `no_timer_check`, because under TCG on a busy host the IO-APIC timer
    /// check can fail and panic ("IO-APIC + timer doesn't work!"); the
    /// check only matters on broken physical hardware and does not exist on
    /// arm64.
    pub fn vm_kernel_params(self) -> &'static [&'static str] {
        match self {
            Architecture::Amd64 => &["no_timer_check"],
            Architecture::Arm64 => &[],
        }
    }

    /// UEFI's name of the architecture in file names (`x64`, `aa64`).
    fn efi_suffix(self) -> &'static str {
        match self {
            Architecture::Amd64 => "x64",
            Architecture::Arm64 => "aa64",
        }
    }

    /// systemd-boot's file in the `systemd-boot-efi` package's
    /// `usr/lib/systemd/boot/efi/` (`systemd-bootx64.efi`).
    pub fn systemd_boot_file(self) -> String {
        format!("systemd-boot{}.efi", self.efi_suffix())
    }

    /// The removable-media boot path UEFI firmware finds by itself
    /// (`EFI/BOOT/BOOTX64.EFI`, `EFI/BOOT/BOOTAA64.EFI`).
    pub fn efi_removable_path(self) -> String {
        format!(
            "EFI/BOOT/BOOT{}.EFI",
            self.efi_suffix().to_ascii_uppercase()
        )
    }

    /// The GPT partition type of this architecture's root file system, from
    /// the Discoverable Partitions Specification.
    pub fn gpt_root_type(self) -> &'static str {
        match self {
            Architecture::Amd64 => "4f68bce3-e8cd-4db1-96e7-fbcaf984b709",
            Architecture::Arm64 => "b921b045-1df0-41c3-af44-4c6f280d3fae",
        }
    }

    /// The QEMU system emulator for this architecture.
    pub fn qemu_binary(self) -> &'static str {
        match self {
            Architecture::Amd64 => "qemu-system-x86_64",
            Architecture::Arm64 => "qemu-system-aarch64",
        }
    }

    /// The Debian package that installs [`Architecture::qemu_binary`].
    pub fn qemu_package(self) -> &'static str {
        match self {
            Architecture::Amd64 => "qemu-system-x86",
            Architecture::Arm64 => "qemu-system-arm",
        }
    }

    /// The CPU model for TCG (emulation), or `None` for QEMU's default.
    /// arm64: a Cortex-A72, the fastest model measured. Under QEMU 7.2's
    /// TCG on this project's CI machine (2 cores, load 5-6), the arm64
    /// busybox example reached its marker (one vCPU) in 8.8-11.5 s with
    /// `cortex-a72`, 10.4-10.9 s with `cortex-a57`, 10.8-13.6 s with
    /// `max,pauth-impdef=on` and 31 s with `max` (whose architected pointer
    /// authentication and SVE state cost emulation time on every function
    /// return and context switch); two vCPUs were slower on two busy host
    /// cores (15.9 s).
    pub fn tcg_cpu(self) -> Option<&'static str> {
        match self {
            Architecture::Amd64 => None,
            Architecture::Arm64 => Some("cortex-a72"),
        }
    }

    /// The UEFI firmware that boots this architecture's disk images.
    pub fn uefi_firmware(self) -> UefiFirmware {
        match self {
            Architecture::Amd64 => UefiFirmware {
                code: "/usr/share/OVMF/OVMF_CODE.fd",
                vars: "/usr/share/OVMF/OVMF_VARS.fd",
                package: "ovmf",
            },
            Architecture::Arm64 => UefiFirmware {
                code: "/usr/share/AAVMF/AAVMF_CODE.fd",
                vars: "/usr/share/AAVMF/AAVMF_VARS.fd",
                package: "qemu-efi-aarch64",
            },
        }
    }
}

impl serde::Serialize for Architecture {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for Architecture {
    /// Debian's name; anything else is an error naming the value.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Architecture::parse(&name).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "`{name}` is not an architecture Imago supports (amd64, arm64)"
            ))
        })
    }
}

impl fmt::Display for Architecture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_efi_paths() {
        for a in Architecture::ALL {
            assert_eq!(Architecture::parse(a.name()), Some(a));
        }
        assert_eq!(Architecture::parse("i386"), None);
        assert_eq!(
            Architecture::Arm64.efi_removable_path(),
            "EFI/BOOT/BOOTAA64.EFI"
        );
        assert_eq!(
            Architecture::Amd64.efi_removable_path(),
            "EFI/BOOT/BOOTX64.EFI"
        );
        assert_eq!(
            Architecture::Arm64.systemd_boot_file(),
            "systemd-bootaa64.efi"
        );
        assert_eq!(
            Architecture::from_rust("aarch64"),
            Some(Architecture::Arm64)
        );
        assert_eq!(Architecture::from_rust("riscv64"), None);
    }

    #[test]
    fn kernel_magic_is_checked_at_its_offset() {
        let mut image = vec![0_u8; 0x300];
        image[0x38..0x3c].copy_from_slice(b"ARM\x64");
        assert!(Architecture::Arm64.kernel_magic().matches(&image));
        assert!(!Architecture::Amd64.kernel_magic().matches(&image));
        assert!(!Architecture::Arm64.kernel_magic().matches(&image[..0x3a]));
    }
}
