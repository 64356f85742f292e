//! Identifiers of an image, derived from the system's store hash so that the
//! same system always gives the same image (and two different systems do not
//! share ids by accident).

use crate::store::StorePath;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageIds {
    pub disk_guid: Uuid,
    pub esp_part_guid: Uuid,
    pub root_part_guid: Uuid,
    /// The ext4 file system UUID (`root=UUID=...`).
    pub root_fs_uuid: Uuid,
    /// The ext4 directory hash seed.
    pub root_hash_seed: Uuid,
    /// The FAT volume id of the ESP.
    pub esp_volume_id: u32,
}

impl ImageIds {
    pub fn derive(toplevel: &StorePath) -> ImageIds {
        let id = |purpose: &str| -> Uuid {
            let mut h = blake3::Hasher::new_derive_key("imago image ids v1");
            h.update(purpose.as_bytes());
            h.update(b"\0");
            h.update(toplevel.as_str().as_bytes());
            let mut bytes = [0u8; 16];
            bytes.copy_from_slice(&h.finalize().as_bytes()[..16]);
            uuid::Builder::from_random_bytes(bytes).into_uuid()
        };
        let vol = id("esp-volume-id");
        let b = vol.as_bytes();
        ImageIds {
            disk_guid: id("disk"),
            esp_part_guid: id("esp-partition"),
            root_part_guid: id("root-partition"),
            root_fs_uuid: id("root-fs"),
            root_hash_seed: id("root-hash-seed"),
            esp_volume_id: u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_distinct() {
        let a: StorePath = "0123456789abcdfghijklmnpqrsvwxyz-system".parse().unwrap();
        let b: StorePath = "1123456789abcdfghijklmnpqrsvwxyz-system".parse().unwrap();
        assert_eq!(ImageIds::derive(&a), ImageIds::derive(&a));
        assert_ne!(
            ImageIds::derive(&a).disk_guid,
            ImageIds::derive(&b).disk_guid
        );
        let ids = ImageIds::derive(&a);
        assert_ne!(ids.disk_guid, ids.root_part_guid);
        assert_eq!(ids.root_fs_uuid.get_version_num(), 4);
    }
}
