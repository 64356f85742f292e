//! The partition table: a protective MBR and a GPT with an EFI system
//! partition and a root partition of the system's architecture (its
//! Discoverable Partitions Specification type,
//! [`Architecture::gpt_root_type`]: x86-64 or arm64 root), with GUIDs from
//! [`ImageIds`].

use super::ids::ImageIds;
use super::{ImageError, Result};
use crate::arch::Architecture;
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

/// The GPT type of `arch`'s root partition.
fn root_type(arch: Architecture) -> Result<partition_types::Type> {
    let guid = arch.gpt_root_type();
    let guid = guid
        .parse()
        .map_err(|e| ImageError::Gpt(format!("the root partition type {guid} of {arch}: {e}")))?;
    Ok(partition_types::Type {
        guid,
        os: partition_types::OperatingSystem::Linux,
    })
}

pub fn write(image: &Path, layout: &Layout, ids: &ImageIds, arch: Architecture) -> Result<()> {
    let gpt_err = |e: gpt::GptError| ImageError::Gpt(e.to_string());
    let root_type = root_type(arch)?;
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
            part_type_guid: root_type,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_types_are_the_specifications() {
        assert_eq!(
            root_type(Architecture::Amd64).unwrap(),
            partition_types::LINUX_ROOT_X64
        );
        assert_eq!(
            root_type(Architecture::Arm64).unwrap(),
            partition_types::LINUX_ROOT_ARM_64
        );
    }
}
