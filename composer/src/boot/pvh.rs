//! Direct boots of an amd64 kernel through its PVH entry point: QEMU loads
//! the kernel's uncompressed ELF (`vmlinux`) and enters it in 32-bit mode
//! (the `XEN_ELFNOTE_PHYS32_ENTRY` note), instead of loading the bzImage
//! and letting it decompress itself. Under TCG that decompression is a
//! measurable part of a boot: Debian trixie's kernel is zstd-compressed and
//! took about 0.5 s of every emulated boot (docs/performance.md).
//!
//! The ELF is the bzImage's payload decompressed (zstd, xz or gzip; other
//! formats, such as bookworm's LZ4, boot as bzImages), kept in the cache
//! root under `pvh/<BLAKE3 of the bzImage>.elf`, written through a
//! temporary file and a rename. A kernel without the PVH note, a payload
//! that is not a 64-bit x86 ELF, or any error on the way, boots the
//! bzImage as before: [`direct_kernel`] never fails.
//!
//! Disk images are untouched: systemd-boot starts the bzImage as an EFI
//! program. The ELF is not in the store, so it is in no closure or image.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// The largest kernel ELF accepted (Debian's are about 60 MB); a payload
/// that inflates beyond it is not booted through PVH.
const MAX_ELF: u64 = 256 << 20;

/// Why a kernel boots as a bzImage.
#[derive(Debug, thiserror::Error)]
pub enum PvhError {
    #[error("not a bzImage (no `HdrS` header of version 2.08 or later)")]
    NotBzImage,
    #[error("the payload lies outside the file")]
    PayloadOutside,
    #[error("the payload is compressed in a format not decompressed here")]
    Format,
    #[error("the payload inflates beyond {MAX_ELF} bytes")]
    TooLarge,
    #[error("the payload is not a 64-bit x86 ELF with a PVH entry note")]
    NoPvhEntry,
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

/// The file to give QEMU's `-kernel` for a direct boot of the amd64 kernel
/// `bzimage`: its PVH ELF in the cache root when it has one, else itself.
pub fn direct_kernel(bzimage: &Path) -> PathBuf {
    elf_in(&crate::dirs::cache_root().join("pvh"), bzimage).unwrap_or_else(|_| bzimage.to_owned())
}

/// The PVH ELF of `bzimage` in `dir`, written there on first use.
pub fn elf_in(dir: &Path, bzimage: &Path) -> Result<PathBuf, PvhError> {
    let io_err = |what, path: &Path| {
        let path = path.to_owned();
        move |source| PvhError::Io { what, path, source }
    };
    let image = std::fs::read(bzimage).map_err(io_err("reading", bzimage))?;
    let out = dir.join(format!("{}.elf", blake3::hash(&image).to_hex()));
    if out.is_file() {
        return Ok(out);
    }
    let elf = pvh_elf(&image)?;
    std::fs::create_dir_all(dir).map_err(io_err("creating", dir))?;
    let mut tmp =
        tempfile::NamedTempFile::new_in(dir).map_err(io_err("creating a file in", dir))?;
    tmp.write_all(&elf).map_err(io_err("writing", tmp.path()))?;
    tmp.persist(&out)
        .map_err(|e| io_err("renaming a temporary file to", &out)(e.error))?;
    Ok(out)
}

/// The uncompressed ELF inside the bzImage `image`, when it is one with a
/// PVH entry point.
pub fn pvh_elf(image: &[u8]) -> Result<Vec<u8>, PvhError> {
    let payload = payload(image)?;
    let elf = inflate(payload)?;
    if has_pvh_note(&elf) {
        Ok(elf)
    } else {
        Err(PvhError::NoPvhEntry)
    }
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// The compressed kernel of a bzImage (Linux's
/// Documentation/arch/x86/boot.rst: `payload_offset` and `payload_length`,
/// from the protected-mode code after the setup sectors).
fn payload(image: &[u8]) -> Result<&[u8], PvhError> {
    if image.get(0x202..0x206) != Some(b"HdrS") || u16_at(image, 0x206) < Some(0x208) {
        return Err(PvhError::NotBzImage);
    }
    let setup_sects = match image[0x1f1] {
        0 => 4,
        n => usize::from(n),
    };
    let start = (setup_sects + 1) * 512;
    let (Some(offset), Some(length)) = (u32_at(image, 0x248), u32_at(image, 0x24c)) else {
        return Err(PvhError::NotBzImage);
    };
    let from = start + offset as usize;
    image
        .get(from..from + length as usize)
        .ok_or(PvhError::PayloadOutside)
}

/// Decompresses a payload by its magic number, up to [`MAX_ELF`] bytes.
fn inflate(payload: &[u8]) -> Result<Vec<u8>, PvhError> {
    let reader: Box<dyn Read + '_> = if payload.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        // One frame, then the 4-byte size the kernel's build appends.
        let mut d = zstd::stream::read::Decoder::with_buffer(payload)
            .map_err(|_| PvhError::Format)?
            .single_frame();
        d.window_log_max(31).map_err(|_| PvhError::Format)?;
        Box::new(d)
    } else if payload.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Box::new(liblzma::read::XzDecoder::new(payload))
    } else if payload.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::GzDecoder::new(payload))
    } else {
        return Err(PvhError::Format);
    };
    let mut elf = Vec::new();
    reader
        .take(MAX_ELF + 1)
        .read_to_end(&mut elf)
        .map_err(|_| PvhError::Format)?;
    if elf.len() as u64 > MAX_ELF {
        return Err(PvhError::TooLarge);
    }
    Ok(elf)
}

/// Whether `elf` is a 64-bit little-endian x86-64 ELF with a `Xen` note of
/// type 18 (`XEN_ELFNOTE_PHYS32_ENTRY`) in one of its `PT_NOTE` segments.
fn has_pvh_note(elf: &[u8]) -> bool {
    const PT_NOTE: u32 = 4;
    const PHYS32_ENTRY: u32 = 18;
    if !elf.starts_with(b"\x7fELF\x02\x01") || u16_at(elf, 0x12) != Some(0x3e) {
        return false;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) =
        (u64_at(elf, 0x20), u16_at(elf, 0x36), u16_at(elf, 0x38))
    else {
        return false;
    };
    (0..usize::from(phnum)).any(|i| {
        let ph = phoff as usize + i * usize::from(phentsize);
        if u32_at(elf, ph) != Some(PT_NOTE) {
            return false;
        }
        let (Some(offset), Some(size)) = (u64_at(elf, ph + 8), u64_at(elf, ph + 32)) else {
            return false;
        };
        let Some(notes) = elf.get(offset as usize..(offset as usize).saturating_add(size as usize))
        else {
            return false;
        };
        notes_have(notes, b"Xen\0", PHYS32_ENTRY)
    })
}

/// Whether the ELF notes in `notes` hold one named `name` of type `kind`.
fn notes_have(mut notes: &[u8], name: &[u8], kind: u32) -> bool {
    let align = |n: u32| (n as usize).div_ceil(4) * 4;
    while let (Some(namesz), Some(descsz), Some(ty)) =
        (u32_at(notes, 0), u32_at(notes, 4), u32_at(notes, 8))
    {
        let name_end = 12 + namesz as usize;
        if ty == kind && notes.get(12..name_end) == Some(name) {
            return true;
        }
        let next = 12 + align(namesz) + align(descsz);
        match notes.get(next..) {
            Some(rest) if next > 12 => notes = rest,
            _ => return false,
        }
    }
    false
}

#[cfg(test)]
#[path = "pvh_tests.rs"]
mod tests;
