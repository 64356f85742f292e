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

/// An ar container with the given members (name, bytes).
pub fn ar(members: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut b = ar::Builder::new(Vec::new());
    for (name, data) in members {
        let mut h = ar::Header::new(name.as_bytes().to_vec(), data.len() as u64);
        h.set_mode(0o100644);
        b.append(&h, data.as_slice()).unwrap();
    }
    b.into_inner().unwrap()
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
