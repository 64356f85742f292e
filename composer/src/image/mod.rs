//! Disk images: a GPT disk with an EFI system partition (FAT32, Debian's
//! systemd-boot, Boot Loader Specification entries) and an ext4 root
//! partition holding `/imago/store` with the system's closure, the system
//! profile as generation 1, and an empty /var.
//!
//! Everything is built without root privileges, loop devices or mounts:
//! the root file system with `mkfs.ext4 -d` (written in place at its
//! partition's offset), the ESP with the `fatfs` crate, the partition table
//! with the `gpt` crate. The result is deterministic: UUIDs, volume ids and
//! the ext4 hash seed derive from the toplevel's store hash, and every
//! timestamp is fixed, so the same configuration and lock give a
//! byte-identical image — whoever builds it: every inode of the root file
//! system is owned by root (uid 0, gid 0) and every directory has a fixed
//! mode, whether root or an ordinary user runs the build (see `rootfs.rs`).
//!
//! ```text
//! LBA 0        protective MBR
//! LBA 1..33    primary GPT
//! 1 MiB        ESP  (FAT32, label IMAGO-ESP)   /EFI/BOOT/BOOTX64.EFI (BOOTAA64.EFI), /loader, /EFI/imago/*
//! 1 MiB + ESP  root (ext4, label imago-root)   /imago/store, /imago/var/profiles, /var, ...
//!              (GPT type: the x86-64 or arm64 root of the Discoverable Partitions Specification)
//! end - 33     backup GPT
//! ```

mod bls;
mod esp;
mod gpt;
mod ids;
mod inodes;
mod rootfs;

pub use bls::{BootEntry, LoaderConfig};
pub use ids::ImageIds;

use crate::boot::bootspec::BootSpec;
use crate::store::{Store, StorePath};
use std::path::{Path, PathBuf};

/// One mebibyte.
pub const MIB: u64 = 1024 * 1024;
/// Partitions start on 1 MiB boundaries.
pub const ALIGN: u64 = MIB;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
    #[error(
        "the closure needs {needed} MiB but the image has room for {available} MiB; give a larger --size"
    )]
    TooSmall { needed: u64, available: u64 },
    #[error("`{command}` failed ({status}): {stderr}")]
    Tool {
        command: String,
        status: String,
        stderr: String,
    },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("partition table: {0}")]
    Gpt(String),
}

impl ImageError {
    /// The stable code of this error (docs/errors.md, E08xx; a store error
    /// keeps its E05xx code).
    pub fn code(&self) -> crate::codes::Code {
        use crate::codes::*;
        match self {
            ImageError::Io { .. } => IMAGE_IO,
            ImageError::Invalid(_) => IMAGE_INVALID,
            ImageError::TooSmall { .. } => IMAGE_TOO_SMALL,
            ImageError::Tool { .. } => IMAGE_TOOL,
            ImageError::Store(e) => e.code(),
            ImageError::Gpt(_) => IMAGE_GPT,
        }
    }
}

impl ImageError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ImageError {
        let context = context.into();
        move |source| ImageError::Io { context, source }
    }
}

pub type Result<T> = std::result::Result<T, ImageError>;

/// What to build.
#[derive(Debug, Clone)]
pub struct ImageOptions {
    /// The whole disk in bytes; `None` sizes it to the closure with room to
    /// spare (the root file system grows to fill a larger disk at boot).
    pub size: Option<u64>,
    /// The ESP in bytes.
    pub esp_size: u64,
    /// Where the raw image is written (a temporary file beside it first).
    pub output: PathBuf,
}

impl ImageOptions {
    pub const DEFAULT_ESP: u64 = 256 * MIB;
}

/// What was built.
#[derive(Debug, Clone)]
pub struct ImageReport {
    pub path: PathBuf,
    pub size: u64,
    pub closure_objects: usize,
    pub closure_bytes: u64,
    pub ids: ImageIds,
}

/// Builds a raw disk image of the system `toplevel` (already built and
/// valid in `store`). The image is written to a temporary file beside
/// `options.output` and renamed into place only when complete.
pub fn build_raw(
    store: &Store,
    toplevel: &StorePath,
    options: &ImageOptions,
) -> Result<ImageReport> {
    let top_dir = store.physical(toplevel);
    let spec = BootSpec::read(&top_dir).map_err(|e| ImageError::Invalid(format!("{e:#}")))?;
    let closure = store.closure(std::slice::from_ref(toplevel))?;
    let closure_bytes = closure_size(store, &closure)?;
    let ids = ImageIds::derive(toplevel);

    let esp_size = options.esp_size.div_ceil(ALIGN) * ALIGN;
    // ext4 metadata, /var and headroom: a quarter more than the closure plus 64 MiB.
    let root_needed = (closure_bytes + closure_bytes / 4 + 64 * MIB).div_ceil(ALIGN) * ALIGN;
    let overhead = 2 * ALIGN; // GPT at both ends
    let disk_size = match options.size {
        Some(s) => s.div_ceil(ALIGN) * ALIGN,
        None => esp_size + root_needed + overhead,
    };
    let root_size = disk_size
        .checked_sub(esp_size + overhead)
        .filter(|&r| r >= root_needed)
        .ok_or(ImageError::TooSmall {
            needed: (esp_size + root_needed + overhead) / MIB,
            available: disk_size / MIB,
        })?;

    let layout = gpt::Layout {
        disk_size,
        esp_offset: ALIGN,
        esp_size,
        root_offset: ALIGN + esp_size,
        root_size,
    };

    let parent = options
        .output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = tempfile::Builder::new()
        .prefix(".imago-image-")
        .tempfile_in(parent)
        .map_err(ImageError::io(format!(
            "creating a temporary file in {}",
            parent.display()
        )))?;
    tmp.as_file()
        .set_len(disk_size)
        .map_err(ImageError::io("sizing the image"))?;

    gpt::write(tmp.path(), &layout, &ids, spec.architecture)?;
    let entry = BootEntry::for_generation(&spec, toplevel, 1, &ids, None);
    esp::write(
        tmp.path(),
        layout.esp_offset,
        layout.esp_size,
        &ids,
        &esp::EspContents {
            store,
            toplevel_dir: &top_dir,
            spec: &spec,
            entry: &entry,
        },
    )?;
    rootfs::write(store, toplevel, &closure, tmp.path(), &layout, &ids)?;

    tmp.as_file()
        .sync_all()
        .map_err(ImageError::io("syncing the image"))?;
    tmp.persist(&options.output).map_err(|e| ImageError::Io {
        context: format!("moving the image to {}", options.output.display()),
        source: e.error,
    })?;
    Ok(ImageReport {
        path: options.output.clone(),
        size: disk_size,
        closure_objects: closure.len(),
        closure_bytes,
        ids,
    })
}

fn closure_size(store: &Store, closure: &std::collections::BTreeSet<StorePath>) -> Result<u64> {
    let mut total = 0;
    for path in closure {
        let info = store.info(path)?.ok_or_else(|| {
            ImageError::Invalid(format!(
                "{} is not a valid store object",
                path.to_absolute()
            ))
        })?;
        total += info.size;
    }
    Ok(total)
}
