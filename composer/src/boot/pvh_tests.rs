use super::*;

/// A 64-bit x86-64 ELF header, one `PT_NOTE` program header and the
/// notes: with `pvh`, a `Xen` note of type 18 after an unrelated one.
fn elf(pvh: bool) -> Vec<u8> {
    let mut notes = Vec::new();
    let mut note = |name: &[u8], ty: u32, desc: &[u8]| {
        notes.extend((name.len() as u32).to_le_bytes());
        notes.extend((desc.len() as u32).to_le_bytes());
        notes.extend(ty.to_le_bytes());
        notes.extend(name);
        notes.resize(notes.len().div_ceil(4) * 4, 0);
        notes.extend(desc);
        notes.resize(notes.len().div_ceil(4) * 4, 0);
    };
    note(b"Linux\0", 6, b"6.12\0");
    if pvh {
        note(b"Xen\0", 18, &0x0100_0b20u32.to_le_bytes());
    }
    let mut e = vec![0u8; 64 + 56];
    e[..6].copy_from_slice(b"\x7fELF\x02\x01");
    e[0x12..0x14].copy_from_slice(&0x3eu16.to_le_bytes());
    e[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
    e[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
    e[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
    let ph = 64;
    e[ph..ph + 4].copy_from_slice(&4u32.to_le_bytes());
    e[ph + 8..ph + 16].copy_from_slice(&(120u64).to_le_bytes());
    e[ph + 32..ph + 40].copy_from_slice(&(notes.len() as u64).to_le_bytes());
    e.extend(notes);
    e.extend(std::iter::repeat_n(0x90, 4096));
    e
}

/// A bzImage of one setup sector whose payload is `payload`, followed by
/// the 4-byte size Linux's build appends.
fn bzimage(payload: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 1024];
    b[0x1f1] = 1;
    b[0x202..0x206].copy_from_slice(b"HdrS");
    b[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
    b[0x248..0x24c].copy_from_slice(&0u32.to_le_bytes());
    b[0x24c..0x250].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    b.extend(payload);
    b.extend(0x1234u32.to_le_bytes());
    b
}

fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 3).unwrap()
}

#[test]
fn the_elf_of_a_zstd_xz_or_gzip_bzimage_with_a_pvh_note() {
    let inner = elf(true);
    let gz = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&inner).unwrap();
        e.finish().unwrap()
    };
    let xz = {
        let mut e = liblzma::write::XzEncoder::new(Vec::new(), 1);
        e.write_all(&inner).unwrap();
        e.finish().unwrap()
    };
    for payload in [zstd(&inner), gz, xz] {
        assert_eq!(pvh_elf(&bzimage(&payload)).unwrap(), inner);
    }
}

#[test]
fn kernels_that_cannot_boot_through_pvh_are_named_why() {
    assert!(matches!(
        pvh_elf(&bzimage(&zstd(&elf(false)))),
        Err(PvhError::NoPvhEntry)
    ));
    // LZ4 (bookworm's kernels): not decompressed here.
    assert!(matches!(
        pvh_elf(&bzimage(&[0x02, 0x21, 0x4c, 0x18, 0, 0])),
        Err(PvhError::Format)
    ));
    assert!(matches!(
        pvh_elf(&bzimage(&zstd(b"not an elf"))),
        Err(PvhError::NoPvhEntry)
    ));
    assert!(matches!(pvh_elf(b"MZ"), Err(PvhError::NotBzImage)));
    assert!(matches!(
        pvh_elf(&vec![0u8; 4096]),
        Err(PvhError::NotBzImage)
    ));
    // A payload longer than the file.
    let mut cut = bzimage(&zstd(&elf(true)));
    cut.truncate(1100);
    assert!(matches!(pvh_elf(&cut), Err(PvhError::PayloadOutside)));
    // A truncated compressed stream.
    let mut payload = zstd(&elf(true));
    payload.truncate(payload.len() / 2);
    assert!(matches!(pvh_elf(&bzimage(&payload)), Err(PvhError::Format)));
}

#[test]
fn a_payload_that_inflates_beyond_the_limit_is_refused() {
    let zeros = vec![0u8; (MAX_ELF + 1024) as usize];
    assert!(matches!(
        pvh_elf(&bzimage(&zstd(&zeros))),
        Err(PvhError::TooLarge)
    ));
}

#[test]
fn notes_with_lying_sizes_end_the_search() {
    let mut notes = Vec::new();
    notes.extend(u32::MAX.to_le_bytes());
    notes.extend(u32::MAX.to_le_bytes());
    notes.extend(18u32.to_le_bytes());
    assert!(!notes_have(&notes, b"Xen\0", 18));
    assert!(!notes_have(&[], b"Xen\0", 18));
    // An ELF whose note segment lies outside it.
    let mut e = elf(true);
    e[64 + 8..64 + 16].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(!has_pvh_note(&e));
}

#[test]
fn the_elf_is_written_once_into_the_cache_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let kernel = dir.path().join("bzImage");
    std::fs::write(&kernel, bzimage(&zstd(&elf(true)))).unwrap();
    let cache = dir.path().join("cache/pvh");
    let first = elf_in(&cache, &kernel).unwrap();
    assert_eq!(std::fs::read(&first).unwrap(), elf(true));
    let second = elf_in(&cache, &kernel).unwrap();
    assert_eq!(first, second);
    // Nothing else in the cache: no temporary file left behind.
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 1);
}

#[test]
fn a_kernel_without_pvh_boots_as_itself() {
    let dir = tempfile::tempdir().unwrap();
    let kernel = dir.path().join("bzImage");
    std::fs::write(&kernel, bzimage(&zstd(&elf(false)))).unwrap();
    assert!(elf_in(&dir.path().join("pvh"), &kernel).is_err());
    assert!(!dir.path().join("pvh").exists());
    assert_eq!(direct_kernel(&kernel), kernel);
    assert_eq!(
        direct_kernel(&dir.path().join("missing")),
        dir.path().join("missing")
    );
}
