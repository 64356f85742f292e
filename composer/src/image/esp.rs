//! The EFI system partition: FAT32 written with the `fatfs` crate into a
//! scratch file, then copied into the image at its offset.
//!
//! Contents:
//! ```text
//! EFI/BOOT/BOOTX64.EFI              systemd-boot (the removable-media path firmware finds;
//!                                   BOOTAA64.EFI on arm64)
//! EFI/systemd/systemd-bootx64.efi   systemd-boot (systemd-bootaa64.efi on arm64)
//! EFI/imago/<hash>-<name>-bzImage   kernels, one per content (`-Image` on arm64)
//! EFI/imago/<hash>-<name>           initrds, one per content
//! loader/loader.conf
//! loader/entries/imago-<system>-<generation>.conf
//! ```
//! Every timestamp is the FAT epoch (1980-01-01), so the partition is
//! reproducible. The file names of the boot loader are the system's
//! architecture's ([`crate::arch::Architecture`], from `boot.json`).
//! systemd-boot starts the kernel as an EFI program, so the kernel must have
//! the EFI stub: its image starts with the PE/COFF `MZ` signature (Debian's
//! amd64 bzImage and its uncompressed arm64 Image both do); any other
//! kernel is refused here rather than failing at boot.

use super::bls::{BootEntry, ESP_DIR, LoaderConfig, esp_name};
use super::ids::ImageIds;
use super::{ImageError, Result};
use crate::boot::bootspec::BootSpec;
use crate::store::{Store, StorePath};
use fatfs::{
    Date, DateTime, FatType, FileSystem, FormatVolumeOptions, FsOptions, Time, TimeProvider,
};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

/// The boot loader inside a system toplevel (see docs/system-layout.md).
pub const TOPLEVEL_BOOTLOADER: &str = "systemd-boot.efi";

#[derive(Debug)]
struct FixedTime;

/// 1980-01-01, the FAT epoch.
const EPOCH: Date = Date {
    year: 1980,
    month: 1,
    day: 1,
};

impl TimeProvider for FixedTime {
    fn get_current_date(&self) -> Date {
        EPOCH
    }
    fn get_current_date_time(&self) -> DateTime {
        DateTime {
            date: EPOCH,
            time: Time {
                hour: 0,
                min: 0,
                sec: 0,
                millis: 0,
            },
        }
    }
}

static FIXED_TIME: FixedTime = FixedTime;

/// What goes on the ESP.
pub struct EspContents<'a> {
    pub store: &'a Store,
    /// The toplevel's physical directory.
    pub toplevel_dir: &'a Path,
    pub spec: &'a BootSpec,
    pub entry: &'a BootEntry,
}

/// Writes a FAT32 ESP of `size` bytes into `image` at `offset`.
pub fn write(
    image: &Path,
    offset: u64,
    size: u64,
    ids: &ImageIds,
    contents: &EspContents<'_>,
) -> Result<()> {
    let EspContents {
        store,
        toplevel_dir,
        spec,
        entry,
    } = *contents;
    let scratch = tempfile::tempfile_in(image.parent().unwrap_or(Path::new(".")))
        .map_err(ImageError::io("creating the ESP scratch file"))?;
    scratch
        .set_len(size)
        .map_err(ImageError::io("sizing the ESP"))?;
    let io = |what: &str| ImageError::io(format!("writing {what} to the ESP"));
    fatfs::format_volume(
        &scratch,
        FormatVolumeOptions::new()
            .fat_type(FatType::Fat32)
            .volume_id(ids.esp_volume_id)
            .volume_label(volume_label()),
    )
    .map_err(io("the FAT32 file system"))?;
    let fs = FileSystem::new(&scratch, FsOptions::new().time_provider(&FIXED_TIME))
        .map_err(io("the FAT32 file system"))?;
    {
        let root = fs.root_dir();
        for dir in [
            "EFI",
            "EFI/BOOT",
            "EFI/systemd",
            ESP_DIR,
            "loader",
            "loader/entries",
        ] {
            root.create_dir(dir).map_err(io(dir))?;
        }
        let physical = |logical: &str| -> Result<std::path::PathBuf> {
            let (object, sub) = StorePath::from_absolute(logical)
                .map_err(|e| ImageError::Invalid(e.to_string()))?;
            let base = store.physical(&object);
            Ok(match sub.trim_start_matches('/') {
                "" => base,
                sub => base.join(sub),
            })
        };
        // The toplevel's entries are links to logical store paths.
        let link = toplevel_dir.join(TOPLEVEL_BOOTLOADER);
        let bootloader = match std::fs::read_link(&link) {
            Ok(target) => physical(&target.to_string_lossy())?,
            Err(_) => {
                return Err(ImageError::Invalid(format!(
                    "the system has no boot loader: {} is missing (systems built with the current module library have it)",
                    link.display()
                )));
            }
        };
        let copy_in = |src: &Path, dst: &str| -> Result<()> {
            let mut input =
                File::open(src).map_err(ImageError::io(format!("reading {}", src.display())))?;
            let mut out = root.create_file(dst).map_err(io(dst))?;
            out.truncate().map_err(io(dst))?;
            std::io::copy(&mut input, &mut out).map_err(io(dst))?;
            out.flush().map_err(io(dst))
        };
        let arch = spec.architecture;
        let kernel = physical(&spec.kernel)?;
        check_efi_stub(&kernel)?;
        copy_in(&bootloader, &arch.efi_removable_path())?;
        copy_in(
            &bootloader,
            &format!("EFI/systemd/{}", arch.systemd_boot_file()),
        )?;
        copy_in(&kernel, &format!("{ESP_DIR}/{}", esp_name(&spec.kernel)))?;
        copy_in(
            &physical(&spec.initrd)?,
            &format!("{ESP_DIR}/{}", esp_name(&spec.initrd)),
        )?;
        let write_text = |dst: &str, text: &str| -> Result<()> {
            let mut out = root.create_file(dst).map_err(io(dst))?;
            out.truncate().map_err(io(dst))?;
            out.write_all(text.as_bytes()).map_err(io(dst))?;
            out.flush().map_err(io(dst))
        };
        // The same glob `switch-to-configuration` writes: systemd-boot picks
        // the newest entry that still has tries left.
        let loader = LoaderConfig {
            default: format!("imago-{}-*", spec.system_name),
            timeout: 0,
        };
        write_text("loader/loader.conf", &loader.render())?;
        write_text(
            &format!("loader/entries/{}", entry.file_name),
            &entry.render(),
        )?;
    }
    fs.unmount().map_err(io("the FAT32 file system"))?;
    copy_at(&scratch, image, offset, size)
}

/// Fails unless the kernel image at `kernel` is an EFI program (the EFI
/// stub's `MZ`): systemd-boot can start nothing else.
fn check_efi_stub(kernel: &Path) -> Result<()> {
    let mut head = [0_u8; 2];
    File::open(kernel)
        .and_then(|mut f| f.read_exact(&mut head))
        .map_err(ImageError::io(format!("reading {}", kernel.display())))?;
    if &head != b"MZ" {
        return Err(ImageError::Invalid(format!(
            "the kernel {} is not an EFI program (no EFI stub, it does not start with `MZ`): systemd-boot cannot start it",
            kernel.display()
        )));
    }
    Ok(())
}

/// Copies `len` bytes of `src` into `image` at `offset`.
fn copy_at(src: &File, image: &Path, offset: u64, len: u64) -> Result<()> {
    let mut src = src;
    src.seek(SeekFrom::Start(0))
        .map_err(ImageError::io("rewinding the ESP"))?;
    let mut src = Read::take(src, len);
    let mut dst = OpenOptions::new()
        .write(true)
        .open(image)
        .map_err(ImageError::io(format!("opening {}", image.display())))?;
    dst.seek(SeekFrom::Start(offset))
        .map_err(ImageError::io("seeking to the ESP"))?;
    let copied = std::io::copy(&mut src, &mut dst)
        .map_err(ImageError::io("copying the ESP into the image"))?;
    if copied != len {
        return Err(ImageError::Invalid(format!(
            "the ESP is {copied} bytes, expected {len}"
        )));
    }
    Ok(())
}

/// The FAT volume label field: the ESP's label (which a system's
/// /etc/fstab mounts and a direct boot masks), padded with spaces.
fn volume_label() -> [u8; 11] {
    let name = crate::boot::direct::ESP_LABEL.as_bytes();
    let mut label = [b' '; 11];
    label[..name.len()].copy_from_slice(name);
    label
}
