//! Fixture .deb files built in memory: raw tar headers (so hostile names,
//! PAX records and GNU long names can be written exactly), wrapped in an ar
//! container with each supported compression.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::Write;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comp {
    None,
    Gz,
    Xz,
    Zst,
}

impl Comp {
    pub const ALL: [Comp; 4] = [Comp::None, Comp::Gz, Comp::Xz, Comp::Zst];

    pub fn suffix(self) -> &'static str {
        match self {
            Comp::None => "",
            Comp::Gz => ".gz",
            Comp::Xz => ".xz",
            Comp::Zst => ".zst",
        }
    }

    pub fn compress(self, data: &[u8]) -> Vec<u8> {
        match self {
            Comp::None => data.to_vec(),
            Comp::Gz => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            Comp::Xz => {
                let mut e = liblzma::write::XzEncoder::new(Vec::new(), 0);
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            Comp::Zst => zstd::encode_all(data, 1).unwrap(),
        }
    }
}

/// One raw tar entry.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: Vec<u8>,
    pub kind: u8,
    pub mode: u32,
    pub data: Vec<u8>,
    pub link: Vec<u8>,
    /// Extra PAX records written before the entry.
    pub pax: Vec<(String, Vec<u8>)>,
    /// Overrides the ustar size field (to disagree with PAX).
    pub ustar_size: Option<u64>,
    pub uname: String,
    pub gname: String,
}

impl Entry {
    fn new(name: impl AsRef<[u8]>, kind: u8, mode: u32) -> Entry {
        Entry {
            name: name.as_ref().to_vec(),
            kind,
            mode,
            data: Vec::new(),
            link: Vec::new(),
            pax: Vec::new(),
            ustar_size: None,
            uname: "root".into(),
            gname: "root".into(),
        }
    }

    pub fn dir(name: impl AsRef<[u8]>) -> Entry {
        Entry::new(name, b'5', 0o755)
    }

    pub fn file(name: impl AsRef<[u8]>, data: impl AsRef<[u8]>) -> Entry {
        let mut e = Entry::new(name, b'0', 0o644);
        e.data = data.as_ref().to_vec();
        e
    }

    pub fn symlink(name: impl AsRef<[u8]>, target: impl AsRef<[u8]>) -> Entry {
        let mut e = Entry::new(name, b'2', 0o777);
        e.link = target.as_ref().to_vec();
        e
    }

    pub fn hardlink(name: impl AsRef<[u8]>, target: impl AsRef<[u8]>) -> Entry {
        let mut e = Entry::new(name, b'1', 0o644);
        e.link = target.as_ref().to_vec();
        e
    }

    pub fn special(name: impl AsRef<[u8]>, kind: u8) -> Entry {
        Entry::new(name, kind, 0o644)
    }

    pub fn mode(mut self, mode: u32) -> Entry {
        self.mode = mode;
        self
    }
}

fn header(
    name: &[u8],
    kind: u8,
    mode: u32,
    size: u64,
    link: &[u8],
    uname: &str,
    gname: &str,
) -> [u8; 512] {
    let mut h = tar::Header::new_gnu();
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h.set_entry_type(tar::EntryType::new(kind));
    h.set_username(uname).unwrap();
    h.set_groupname(gname).unwrap();
    {
        let bytes = h.as_mut_bytes();
        let n = name.len().min(100);
        bytes[..n].copy_from_slice(&name[..n]);
        let l = link.len().min(100);
        bytes[157..157 + l].copy_from_slice(&link[..l]);
    }
    h.set_cksum();
    *h.as_bytes()
}

fn pad(out: &mut Vec<u8>) {
    let rem = out.len() % 512;
    if rem != 0 {
        out.resize(out.len() + 512 - rem, 0);
    }
}

fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let body_len = key.len() + value.len() + 3; // space, '=', '\n'
    let mut len = body_len + 1;
    while len.to_string().len() + body_len != len {
        len = len.to_string().len() + body_len;
    }
    let mut r = format!("{len} {key}=").into_bytes();
    r.extend_from_slice(value);
    r.push(b'\n');
    r
}

/// A tar stream with end-of-archive marker (two zero blocks).
pub fn tar(entries: &[Entry]) -> Vec<u8> {
    let mut out = tar_without_end(entries);
    out.extend_from_slice(&[0u8; 1024]);
    out
}

pub fn tar_without_end(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        if !e.pax.is_empty() {
            let body: Vec<u8> = e.pax.iter().flat_map(|(k, v)| pax_record(k, v)).collect();
            out.extend_from_slice(&header(
                b"././@PaxHeader",
                b'x',
                0o644,
                body.len() as u64,
                b"",
                "root",
                "root",
            ));
            out.extend_from_slice(&body);
            pad(&mut out);
        }
        if e.name.len() > 100 {
            let mut body = e.name.clone();
            body.push(0);
            out.extend_from_slice(&header(
                b"././@LongLink",
                b'L',
                0o644,
                body.len() as u64,
                b"",
                "root",
                "root",
            ));
            out.extend_from_slice(&body);
            pad(&mut out);
        }
        if e.link.len() > 100 {
            let mut body = e.link.clone();
            body.push(0);
            out.extend_from_slice(&header(
                b"././@LongLink",
                b'K',
                0o644,
                body.len() as u64,
                b"",
                "root",
                "root",
            ));
            out.extend_from_slice(&body);
            pad(&mut out);
        }
        let size = e.ustar_size.unwrap_or(e.data.len() as u64);
        out.extend_from_slice(&header(
            &e.name, e.kind, e.mode, size, &e.link, &e.uname, &e.gname,
        ));
        out.extend_from_slice(&e.data);
        pad(&mut out);
    }
    out
}

pub fn control_text(package: &str) -> String {
    format!(
        "Package: {package}\nVersion: 1.0-1\nArchitecture: amd64\nMaintainer: t <t@example.org>\nDescription: test\n"
    )
}

/// The default control archive: control, md5sums and a postinst.
pub fn control_tar(package: &str) -> Vec<u8> {
    tar(&[
        Entry::dir("./"),
        Entry::file("./control", control_text(package)),
        Entry::file(
            "./md5sums",
            "d41d8cd98f00b204e9800998ecf8427e  usr/bin/hello\n",
        ),
        Entry::file("./postinst", "#!/bin/sh\nexit 0\n").mode(0o755),
    ])
}

/// The global header of an ar archive.
pub const AR_MAGIC: &[u8] = b"!<arch>\n";

/// A 60-byte ar member header (GNU style, `name/`) claiming `size` bytes,
/// whatever follows it.
pub fn ar_header(name: &str, size: u64) -> Vec<u8> {
    ar_header_raw(&format!("{name}/"), size)
}

/// A 60-byte ar member header with exactly `field` as its name field.
pub fn ar_header_raw(field: &str, size: u64) -> Vec<u8> {
    let h = format!(
        "{field:<16}{:<12}{:<6}{:<6}{:<8}{size:<10}`\n",
        0, 0, 0, 100644
    );
    assert_eq!(
        h.len(),
        60,
        "name or size too long for an ar header: {field} {size}"
    );
    h.into_bytes()
}

/// An ar container with the given members (name, bytes), as dpkg-deb
/// writes it: each member padded to an even length with `\n`.
pub fn ar(members: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut out = AR_MAGIC.to_vec();
    for (name, data) in members {
        out.extend_from_slice(&ar_header(name, data.len() as u64));
        out.extend_from_slice(data);
        if data.len() % 2 == 1 {
            out.push(b'\n');
        }
    }
    out
}

/// A raw 512-byte tar header (GNU format) claiming `size` bytes of data.
pub fn tar_header(name: &[u8], kind: u8, size: u64) -> [u8; 512] {
    header(name, kind, 0o644, size, b"", "root", "root")
}

/// One zstd frame written block by block: raw blocks for literal bytes
/// and RLE blocks for runs of one byte, so a stream decompressing to any
/// size is built instantly and costs 4 bytes per 128 KiB of run (no
/// content size, no checksum: a decoder only learns the size by decoding).
pub struct ZstdFrame {
    out: Vec<u8>,
}

impl Default for ZstdFrame {
    fn default() -> Self {
        Self::new()
    }
}

impl ZstdFrame {
    const BLOCK_MAX: usize = 128 << 10;

    pub fn new() -> ZstdFrame {
        // Magic, frame header descriptor 0 (no content size, not a single
        // segment, no checksum, no dictionary), window 2^17 = 128 KiB.
        ZstdFrame {
            out: vec![0x28, 0xb5, 0x2f, 0xfd, 0x00, 7 << 3],
        }
    }

    fn block(&mut self, last: bool, kind: u32, size: usize) {
        let v = u32::from(last) | (kind << 1) | ((size as u32) << 3);
        self.out.extend_from_slice(&v.to_le_bytes()[..3]);
    }

    /// Literal bytes.
    pub fn raw(&mut self, data: &[u8]) -> &mut Self {
        for chunk in data.chunks(Self::BLOCK_MAX) {
            self.block(false, 0, chunk.len());
            self.out.extend_from_slice(chunk);
        }
        self
    }

    /// `count` copies of `byte`.
    pub fn run(&mut self, byte: u8, mut count: u64) -> &mut Self {
        while count > 0 {
            let n = count.min(Self::BLOCK_MAX as u64) as usize;
            self.block(false, 1, n);
            self.out.push(byte);
            count -= n as u64;
        }
        self
    }

    /// Ends the frame with an empty last block.
    pub fn finish(&mut self) -> Vec<u8> {
        self.block(true, 0, 0);
        std::mem::take(&mut self.out)
    }
}

/// A .deb with the default control archive (zstd) and `data` as its
/// `data.tar.zst` member, already compressed.
pub fn deb_zst_data(package: &str, data: Vec<u8>) -> Vec<u8> {
    ar(&[
        ("debian-binary", b"2.0\n".to_vec()),
        ("control.tar.zst", Comp::Zst.compress(&control_tar(package))),
        ("data.tar.zst", data),
    ])
}

/// Small valid .debs to seed the `deb_unpack` fuzz target
/// (composer/fuzz/seeds/deb/): each compression, uncompressed members (so
/// the fuzzer reaches the tar framing directly), GNU long names and links,
/// PAX records, hard links and setuid files.
pub fn fuzz_seeds() -> Vec<(String, Vec<u8>)> {
    let mut seeds = Vec::new();
    for comp in Comp::ALL {
        let name = match comp {
            Comp::None => "hello-plain.deb",
            Comp::Gz => "hello-gz.deb",
            Comp::Xz => "hello-xz.deb",
            Comp::Zst => "hello-zst.deb",
        };
        seeds.push((name.to_string(), deb("hello", comp, &hello_entries())));
    }
    let long = format!("./usr/share/{}/file", "long-directory-name".repeat(8));
    let mut pax = Entry::file("./pax", "contents of a file named by PAX");
    pax.pax
        .push(("path".into(), b"./usr/share/pax-named".to_vec()));
    pax.pax.push(("mtime".into(), b"1700000000.5".to_vec()));
    let mut sized = Entry::file("./sized", vec![b's'; 700]);
    sized.ustar_size = Some(1);
    sized.pax.push(("size".into(), b"700".to_vec()));
    let entries = vec![
        Entry::dir("./"),
        Entry::dir("./usr/"),
        Entry::file(&long, "x"),
        Entry::symlink("./usr/long-link", format!("../{}", "t".repeat(150))),
        pax,
        sized,
        Entry::file("./bin/su", "su").mode(0o4755),
        Entry::hardlink("./usr/bin/su2", "./bin/su"),
    ];
    seeds.push((
        "extensions-plain.deb".to_string(),
        deb("ext", Comp::None, &entries),
    ));
    seeds
}

/// A .deb with the default control archive and `data` as data.tar.
pub fn deb(package: &str, comp: Comp, data: &[Entry]) -> Vec<u8> {
    deb_raw(package, comp, tar(data))
}

/// A .deb whose data.tar is the given raw (uncompressed) tar bytes.
pub fn deb_raw(package: &str, comp: Comp, data_tar: Vec<u8>) -> Vec<u8> {
    ar(&[
        ("debian-binary", b"2.0\n".to_vec()),
        (
            &format!("control.tar{}", comp.suffix()),
            comp.compress(&control_tar(package)),
        ),
        (
            &format!("data.tar{}", comp.suffix()),
            comp.compress(&data_tar),
        ),
    ])
}

/// A typical small package: directories, a file under /bin, a symlink.
pub fn hello_entries() -> Vec<Entry> {
    vec![
        Entry::dir("./"),
        Entry::dir("./bin/"),
        Entry::file("./bin/hello", "#!/bin/sh\necho hello\n").mode(0o755),
        Entry::dir("./usr/"),
        Entry::dir("./usr/share/"),
        Entry::dir("./usr/share/doc/"),
        Entry::dir("./usr/share/doc/hello/"),
        Entry::file("./usr/share/doc/hello/copyright", "MIT\n"),
        Entry::symlink("./usr/share/doc/hello/README", "copyright"),
        Entry::hardlink(
            "./usr/share/doc/hello/COPYING",
            "./usr/share/doc/hello/copyright",
        ),
    ]
}

/// A lock entry for the .deb `bytes` of the package `name` (version
/// `1.0-1`, amd64, in Debian's main archive, no snapshot time).
pub fn lock_entry(name: &str, bytes: &[u8]) -> imago::debian::lock::LockEntry {
    use sha2::Digest;
    imago::debian::lock::LockEntry {
        name: name.into(),
        version: "1.0-1".into(),
        architecture: "amd64".into(),
        size: bytes.len() as u64,
        sha256: hex::encode(sha2::Sha256::digest(bytes)),
        filename: format!("pool/main/{0}/{name}/{name}_1.0-1_amd64.deb", &name[..1]),
        archive: Some("debian".into()),
        snapshot: None,
        depends: vec![],
    }
}
