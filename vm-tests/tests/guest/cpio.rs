//! A minimal writer of `newc` cpio archives, the initramfs format.
//!
//! Each entry is a 110-byte ASCII header (magic `070701` and 13 hex fields),
//! the NUL-terminated name padded to 4 bytes, then the data padded to 4
//! bytes; the archive ends with an entry named `TRAILER!!!`. Owners are root,
//! times are zero, so the output is reproducible.

/// A cpio archive being built in memory.
#[derive(Default)]
pub struct Cpio {
    data: Vec<u8>,
    inode: u32,
}

const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFCHR: u32 = 0o020_000;

impl Cpio {
    fn entry(&mut self, name: &str, mode: u32, rdev: (u32, u32), body: &[u8]) {
        assert!(
            !name.starts_with('/') && !name.contains(".."),
            "bad cpio name {name}"
        );
        self.inode += 1;
        let nlink = if mode & S_IFDIR != 0 { 2 } else { 1 };
        let fields = [
            self.inode,
            mode,
            0,
            0,
            nlink,
            0,
            u32::try_from(body.len()).expect("cpio entry over 4 GiB"),
            0,
            0,
            rdev.0,
            rdev.1,
            u32::try_from(name.len() + 1).expect("long name"),
            0,
        ];
        self.data.extend_from_slice(b"070701");
        for field in fields {
            self.data
                .extend_from_slice(format!("{field:08x}").as_bytes());
        }
        self.data.extend_from_slice(name.as_bytes());
        self.data.push(0);
        self.pad();
        self.data.extend_from_slice(body);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.data.len().is_multiple_of(4) {
            self.data.push(0);
        }
    }

    /// A directory.
    pub fn dir(&mut self, name: &str) {
        self.entry(name, S_IFDIR | 0o755, (0, 0), b"");
    }

    /// A regular file.
    pub fn file(&mut self, name: &str, perm: u32, body: &[u8]) {
        self.entry(name, S_IFREG | perm, (0, 0), body);
    }

    /// A character device.
    pub fn char_device(&mut self, name: &str, perm: u32, major: u32, minor: u32) {
        self.entry(name, S_IFCHR | perm, (major, minor), b"");
    }

    /// The finished archive.
    pub fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, (0, 0), b"");
        // Pad to 512 bytes like cpio(1) does.
        while !self.data.len().is_multiple_of(512) {
            self.data.push(0);
        }
        self.data
    }
}
