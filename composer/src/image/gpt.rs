//! The partition table: a protective MBR and a GPT with an EFI system
//! partition and an x86-64 root partition (Discoverable Partitions
//! Specification type), with GUIDs from [`ImageIds`].

use super::ids::ImageIds;
use super::{ImageError, Result};
use gpt::disk::LogicalBlockSize;
use gpt::mbr::ProtectiveMBR;
use gpt::partition::Partition;
use gpt::partition_types;
use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::path::Path;

const SECTOR: u64 = 512;

/// Byte offsets and sizes of the partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub disk_size: u64,
    pub esp_offset: u64,
    pub esp_size: u64,
    pub root_offset: u64,
    pub root_size: u64,
}

pub fn write(image: &Path, layout: &Layout, ids: &ImageIds) -> Result<()> {
    let gpt_err = |e: gpt::GptError| ImageError::Gpt(e.to_string());
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(image)
        .map_err(ImageError::io(format!("opening {}", image.display())))?;

    let sectors = layout.disk_size / SECTOR;
    let pmbr = ProtectiveMBR::with_lb_size(u32::try_from(sectors - 1).unwrap_or(u32::MAX));
    pmbr.overwrite_lba0(&mut file)
        .map_err(|e| ImageError::Gpt(e.to_string()))?;

    let mut disk = gpt::GptConfig::new()
        .writable(true)
        .logical_block_size(LogicalBlockSize::Lb512)
        .create_from_device(file, Some(ids.disk_guid))
        .map_err(gpt_err)?;
    let mut parts = BTreeMap::new();
    parts.insert(
        1,
        Partition {
            part_type_guid: partition_types::EFI,
            part_guid: ids.esp_part_guid,
            first_lba: layout.esp_offset / SECTOR,
            last_lba: (layout.esp_offset + layout.esp_size) / SECTOR - 1,
            flags: 0,
            name: "esp".to_owned(),
        },
    );
    parts.insert(
        2,
        Partition {
            part_type_guid: partition_types::LINUX_ROOT_X64,
            part_guid: ids.root_part_guid,
            first_lba: layout.root_offset / SECTOR,
            last_lba: (layout.root_offset + layout.root_size) / SECTOR - 1,
            flags: 0,
            name: "imago-root".to_owned(),
        },
    );
    disk.update_partitions(parts).map_err(gpt_err)?;
    disk.write().map_err(gpt_err)?;
    Ok(())
}
