//! A small, strict tar (POSIX ustar + PAX) reader and writer for closure
//! archives.
//!
//! Written here rather than using a general tar library so every rule that
//! matters for hostile input is checked in one place: header checksums,
//! ustar magic, octal fields, zero padding after each entry's data, the
//! two-block end marker, nothing but zeros after it, and PAX `size` records
//! overriding the ustar size (so quotas count the real size). Only regular
//! files, directories and symlinks are accepted; hard links, devices, FIFOs,
//! global PAX headers and GNU long-name records are refused by name.
//!
//! The writer emits ustar headers (mode 0444/0555 files, 0555 directories,
//! 0777 symlinks, owner 0, mtime 0) and a PAX header when a path or link
//! target does not fit in 100 bytes.

use super::ArchiveError;
use std::io::{self, Read, Write};

const BLOCK: usize = 512;
/// Largest PAX extended header accepted.
const MAX_PAX: u64 = 1 << 20;
/// Largest run of zero bytes accepted after the end marker (tar writers pad
/// to 10 KiB records; some to more).
const MAX_TRAILING_ZEROS: u64 = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File { executable: bool },
    Dir,
    Symlink,
}

/// One entry's header (its data follows in the stream).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Raw path bytes (PAX `path` if present).
    pub path: Vec<u8>,
    pub kind: Kind,
    /// Data size (PAX `size` if present); 0 for directories and symlinks.
    pub size: u64,
    /// Symlink target (PAX `linkpath` if present).
    pub link: Vec<u8>,
}

/// Reads entries one by one from an uncompressed tar stream.
pub struct Reader<R: Read> {
    inner: R,
    /// Bytes consumed so far (for error positions).
    offset: u64,
    /// Data bytes of the current entry not yet read.
    pending: u64,
    finished: bool,
}

fn octal(field: &[u8], what: &'static str, offset: u64) -> Result<u64, ArchiveError> {
    let bad = || ArchiveError::Malformed {
        offset,
        reason: format!("the {what} field is not an octal number"),
    };
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        return Err(ArchiveError::Malformed {
            offset,
            reason: format!("the {what} field uses base-256 encoding, which is not supported"),
        });
    }
    let text: Vec<u8> = field
        .iter()
        .copied()
        .take_while(|b| *b != 0)
        .filter(|b| *b != b' ')
        .collect();
    if text.is_empty() {
        return Ok(0);
    }
    let text = std::str::from_utf8(&text).map_err(|_| bad())?;
    u64::from_str_radix(text, 8).map_err(|_| bad())
}

fn cstr(field: &[u8]) -> &[u8] {
    let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
    &field[..end]
}

impl<R: Read> Reader<R> {
    pub fn new(inner: R) -> Self {
        Reader {
            inner,
            offset: 0,
            pending: 0,
            finished: false,
        }
    }

    pub fn offset(&self) -> u64 {
        self.offset
    }

    fn read_exact_counted(&mut self, buf: &mut [u8], what: &str) -> Result<(), ArchiveError> {
        let at = self.offset;
        self.inner.read_exact(buf).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                ArchiveError::Truncated {
                    offset: at,
                    what: what.to_owned(),
                }
            } else {
                ArchiveError::Read { source: e }
            }
        })?;
        self.offset += buf.len() as u64;
        Ok(())
    }

    fn read_block(&mut self, what: &str) -> Result<[u8; BLOCK], ArchiveError> {
        let mut block = [0u8; BLOCK];
        self.read_exact_counted(&mut block, what)?;
        Ok(block)
    }

    /// The next entry's header, or `None` at the end marker (after checking
    /// that only zeros follow). The previous entry's data must have been
    /// read with [`Reader::copy_data`].
    pub fn next_entry(&mut self) -> Result<Option<Header>, ArchiveError> {
        if self.finished {
            return Ok(None);
        }
        if self.pending != 0 {
            return Err(ArchiveError::Malformed {
                offset: self.offset,
                reason: "internal: entry data not consumed".to_owned(),
            });
        }
        let mut pax_path = None;
        let mut pax_link = None;
        let mut pax_size = None;
        loop {
            let at = self.offset;
            let block = self.read_block("a header")?;
            if block.iter().all(|b| *b == 0) {
                if pax_path.is_some() || pax_size.is_some() || pax_link.is_some() {
                    return Err(ArchiveError::Malformed {
                        offset: at,
                        reason: "a PAX header is not followed by an entry".to_owned(),
                    });
                }
                let second = self.read_block("the end-of-archive marker")?;
                if second.iter().any(|b| *b != 0) {
                    return Err(ArchiveError::Malformed {
                        offset: at + BLOCK as u64,
                        reason: "a single zero block followed by data".to_owned(),
                    });
                }
                self.check_trailing()?;
                self.finished = true;
                return Ok(None);
            }
            self.check_header(&block, at)?;
            let typeflag = block[156];
            let ustar_size = octal(&block[124..136], "size", at)?;
            let size = pax_size.take().unwrap_or(ustar_size);
            match typeflag {
                b'x' => {
                    if size > MAX_PAX {
                        return Err(ArchiveError::Malformed {
                            offset: at,
                            reason: format!("a PAX header of {size} bytes (at most {MAX_PAX})"),
                        });
                    }
                    let mut data = vec![0u8; size as usize];
                    self.pending = size;
                    self.read_data_into(&mut data)?;
                    for (key, value) in parse_pax(&data, at)? {
                        match key.as_slice() {
                            b"path" => pax_path = Some(value),
                            b"linkpath" => pax_link = Some(value),
                            b"size" => {
                                let text = std::str::from_utf8(&value).ok();
                                let n =
                                    text.and_then(|t| t.parse::<u64>().ok()).ok_or_else(|| {
                                        ArchiveError::Malformed {
                                            offset: at,
                                            reason: "a PAX size record is not a number".to_owned(),
                                        }
                                    })?;
                                pax_size = Some(n);
                            }
                            _ => {}
                        }
                    }
                    continue;
                }
                b'0' | 0 | b'5' | b'2' => {}
                other => {
                    return Err(ArchiveError::UnsupportedEntry {
                        offset: at,
                        path: String::from_utf8_lossy(&self.ustar_path(&block)).into_owned(),
                        kind: describe_type(other),
                    });
                }
            }
            let path = pax_path.take().unwrap_or_else(|| self.ustar_path(&block));
            let mode = octal(&block[100..108], "mode", at)?;
            let kind = match typeflag {
                b'5' => Kind::Dir,
                b'2' => Kind::Symlink,
                _ => Kind::File {
                    executable: mode & 0o111 != 0,
                },
            };
            let link = if kind == Kind::Symlink {
                pax_link
                    .take()
                    .unwrap_or_else(|| cstr(&block[157..257]).to_vec())
            } else {
                Vec::new()
            };
            let size = if matches!(kind, Kind::File { .. }) {
                size
            } else if size != 0 {
                return Err(ArchiveError::Malformed {
                    offset: at,
                    reason: "a directory or symlink entry with data".to_owned(),
                });
            } else {
                0
            };
            self.pending = size;
            return Ok(Some(Header {
                path,
                kind,
                size,
                link,
            }));
        }
    }

    fn ustar_path(&self, block: &[u8; BLOCK]) -> Vec<u8> {
        let name = cstr(&block[0..100]);
        // POSIX ustar (not GNU) has a prefix field.
        if &block[257..263] == b"ustar\0" {
            let prefix = cstr(&block[345..500]);
            if !prefix.is_empty() {
                let mut p = prefix.to_vec();
                p.push(b'/');
                p.extend_from_slice(name);
                return p;
            }
        }
        name.to_vec()
    }

    fn check_header(&self, block: &[u8; BLOCK], at: u64) -> Result<(), ArchiveError> {
        let magic = &block[257..265];
        if magic != b"ustar\x0000" && magic != b"ustar  \0" {
            return Err(ArchiveError::Malformed {
                offset: at,
                reason: "not a ustar header (bad magic)".to_owned(),
            });
        }
        let stored = octal(&block[148..156], "checksum", at)?;
        let sum: u64 = block
            .iter()
            .enumerate()
            .map(|(i, b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    u64::from(*b)
                }
            })
            .sum();
        if stored != sum {
            return Err(ArchiveError::Malformed {
                offset: at,
                reason: format!("header checksum {stored} does not match {sum}"),
            });
        }
        Ok(())
    }

    /// Reads the current entry's data into `sink`, then checks its padding.
    pub fn copy_data(&mut self, sink: &mut dyn Write) -> Result<u64, ArchiveError> {
        let total = self.pending;
        let mut buf = vec![0u8; (total.min(1 << 20)) as usize];
        let mut left = total;
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            self.read_exact_counted(&mut buf[..n], "entry data")?;
            sink.write_all(&buf[..n])
                .map_err(|e| ArchiveError::Write { source: e })?;
            left -= n as u64;
        }
        self.pending = 0;
        self.skip_padding(total)?;
        Ok(total)
    }

    /// Reads the current entry's data into `buf` (replacing what it held),
    /// then checks its padding.
    pub fn read_data(&mut self, buf: &mut Vec<u8>) -> Result<u64, ArchiveError> {
        let total = self.pending;
        let len = usize::try_from(total).map_err(|_| ArchiveError::Malformed {
            offset: self.offset,
            reason: format!("an entry of {total} bytes"),
        })?;
        buf.clear();
        buf.resize(len, 0);
        self.read_data_into(buf)?;
        Ok(total)
    }

    fn read_data_into(&mut self, buf: &mut [u8]) -> Result<(), ArchiveError> {
        self.read_exact_counted(buf, "entry data")?;
        let total = self.pending;
        self.pending = 0;
        self.skip_padding(total)
    }

    fn skip_padding(&mut self, size: u64) -> Result<(), ArchiveError> {
        let pad = (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64;
        if pad > 0 {
            let at = self.offset;
            let mut buf = [0u8; BLOCK];
            self.read_exact_counted(&mut buf[..pad as usize], "entry padding")?;
            if buf[..pad as usize].iter().any(|b| *b != 0) {
                return Err(ArchiveError::Malformed {
                    offset: at,
                    reason: "non-zero padding after entry data".to_owned(),
                });
            }
        }
        Ok(())
    }

    fn check_trailing(&mut self) -> Result<(), ArchiveError> {
        let mut buf = [0u8; 8192];
        let mut zeros = 0u64;
        loop {
            let n = match self.inner.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ArchiveError::Read { source: e }),
            };
            if let Some(i) = buf[..n].iter().position(|b| *b != 0) {
                return Err(ArchiveError::TrailingGarbage {
                    offset: self.offset + i as u64,
                });
            }
            self.offset += n as u64;
            zeros += n as u64;
            if zeros > MAX_TRAILING_ZEROS {
                return Err(ArchiveError::TrailingGarbage {
                    offset: self.offset,
                });
            }
        }
    }
}

fn describe_type(flag: u8) -> String {
    match flag {
        b'1' => "hard link".to_owned(),
        b'3' => "character device".to_owned(),
        b'4' => "block device".to_owned(),
        b'6' => "FIFO".to_owned(),
        b'7' => "contiguous file".to_owned(),
        b'g' => "global PAX header".to_owned(),
        b'L' | b'K' => "GNU long name record".to_owned(),
        other => format!("entry type {:?}", char::from(other)),
    }
}

/// One PAX record: key and value bytes.
type PaxRecord = (Vec<u8>, Vec<u8>);

/// Parses PAX records `"<len> <key>=<value>\n"`.
fn parse_pax(mut data: &[u8], at: u64) -> Result<Vec<PaxRecord>, ArchiveError> {
    let bad = |reason: &str| ArchiveError::Malformed {
        offset: at,
        reason: format!("malformed PAX record: {reason}"),
    };
    let mut out = Vec::new();
    while !data.is_empty() {
        let space = data
            .iter()
            .position(|b| *b == b' ')
            .ok_or_else(|| bad("no length"))?;
        let len: usize = std::str::from_utf8(&data[..space])
            .ok()
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| bad("bad length"))?;
        if len <= space + 1 || len > data.len() || data[len - 1] != b'\n' {
            return Err(bad("length does not match"));
        }
        let record = &data[space + 1..len - 1];
        let eq = record
            .iter()
            .position(|b| *b == b'=')
            .ok_or_else(|| bad("no `=`"))?;
        out.push((record[..eq].to_vec(), record[eq + 1..].to_vec()));
        data = &data[len..];
    }
    Ok(out)
}

/// Writes a tar stream.
pub struct Writer<W: Write> {
    inner: W,
}

fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    // The length counts itself: find the fixed point.
    let body = key.len() + value.len() + 3; // ' ' '=' '\n'
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    let mut rec = format!("{len} {key}=").into_bytes();
    rec.extend_from_slice(value);
    rec.push(b'\n');
    rec
}

impl<W: Write> Writer<W> {
    pub fn new(inner: W) -> Self {
        Writer { inner }
    }

    fn header(
        &mut self,
        path: &[u8],
        typeflag: u8,
        mode: u32,
        size: u64,
        link: &[u8],
    ) -> io::Result<()> {
        let mut pax = Vec::new();
        if path.len() > 100 {
            pax.extend(pax_record("path", path));
        }
        if link.len() > 100 {
            pax.extend(pax_record("linkpath", link));
        }
        if size > 0o7777_7777_7777 {
            pax.extend(pax_record("size", size.to_string().as_bytes()));
        }
        if !pax.is_empty() {
            self.raw_header(b"././@PaxHeader", b'x', 0o644, pax.len() as u64, b"")?;
            self.inner.write_all(&pax)?;
            self.pad(pax.len() as u64)?;
        }
        let short = |b: &[u8]| b[..b.len().min(100)].to_vec();
        self.raw_header(
            &short(path),
            typeflag,
            mode,
            size.min(0o7777_7777_7777),
            &short(link),
        )
    }

    fn raw_header(
        &mut self,
        name: &[u8],
        typeflag: u8,
        mode: u32,
        size: u64,
        link: &[u8],
    ) -> io::Result<()> {
        let mut h = [0u8; BLOCK];
        h[..name.len()].copy_from_slice(name);
        h[100..108].copy_from_slice(format!("{mode:07o}\0").as_bytes());
        h[108..116].copy_from_slice(b"0000000\0");
        h[116..124].copy_from_slice(b"0000000\0");
        h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
        h[136..148].copy_from_slice(b"00000000000\0");
        h[156] = typeflag;
        h[157..157 + link.len()].copy_from_slice(link);
        h[257..265].copy_from_slice(b"ustar\x0000");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        self.inner.write_all(&h)
    }

    fn pad(&mut self, size: u64) -> io::Result<()> {
        let pad = (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64;
        self.inner.write_all(&[0u8; BLOCK][..pad as usize])
    }

    pub fn dir(&mut self, path: &[u8]) -> io::Result<()> {
        let mut p = path.to_vec();
        p.push(b'/');
        self.header(&p, b'5', 0o555, 0, b"")
    }

    pub fn symlink(&mut self, path: &[u8], target: &[u8]) -> io::Result<()> {
        self.header(path, b'2', 0o777, 0, target)
    }

    /// Writes a file entry; `data` must yield exactly `size` bytes.
    pub fn file(
        &mut self,
        path: &[u8],
        executable: bool,
        size: u64,
        data: &mut dyn Read,
    ) -> io::Result<()> {
        let mode = if executable { 0o555 } else { 0o444 };
        self.header(path, b'0', mode, size, b"")?;
        let copied = io::copy(&mut data.take(size), &mut self.inner)?;
        if copied != size {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("file shrank while being archived ({size} → {copied} bytes)"),
            ));
        }
        self.pad(size)
    }

    /// Writes the end marker and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.inner.write_all(&[0u8; 2 * BLOCK])?;
        Ok(self.inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(bytes: &[u8]) -> Result<Vec<(Header, Vec<u8>)>, ArchiveError> {
        let mut r = Reader::new(bytes);
        let mut out = Vec::new();
        while let Some(h) = r.next_entry()? {
            let mut data = Vec::new();
            r.copy_data(&mut data)?;
            out.push((h, data));
        }
        Ok(out)
    }

    #[test]
    fn round_trips_long_names_and_links() {
        let long = vec![b'n'; 250];
        let mut w = Writer::new(Vec::new());
        w.dir(b"d").unwrap();
        w.file(&long, true, 3, &mut &b"abc"[..]).unwrap();
        w.symlink(b"l", &[b't'; 150]).unwrap();
        let bytes = w.finish().unwrap();
        let entries = read_all(&bytes).unwrap();
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].0.path, b"d/");
        assert_eq!(entries[0].0.kind, Kind::Dir);
        assert_eq!(entries[1].0.path, long);
        assert_eq!(entries[1].0.kind, Kind::File { executable: true });
        assert_eq!(entries[1].1, b"abc");
        assert_eq!(entries[2].0.link, vec![b't'; 150]);
    }

    #[test]
    fn truncation_and_garbage_are_errors() {
        let mut w = Writer::new(Vec::new());
        w.file(b"f", false, 600, &mut &[1u8; 600][..]).unwrap();
        let bytes = w.finish().unwrap();
        for cut in [0, 100, 512, 700, 1024, bytes.len() - 1] {
            let err = read_all(&bytes[..cut]).unwrap_err();
            assert!(err.to_string().contains("truncated"), "{cut}: {err}");
        }
        let mut garbage = bytes.clone();
        garbage.extend_from_slice(b"\0\0junk");
        let err = read_all(&garbage).unwrap_err();
        assert!(err.to_string().contains("trailing garbage"), "{err}");
        let mut zeros = bytes.clone();
        zeros.extend_from_slice(&[0u8; 9216]);
        assert!(read_all(&zeros).is_ok());
        let mut padding = bytes.clone();
        padding[512 + 600] = 1;
        let err = read_all(&padding).unwrap_err();
        assert!(err.to_string().contains("non-zero padding"), "{err}");
        let mut sum = bytes;
        sum[10] = b'x';
        let err = read_all(&sum).unwrap_err();
        assert!(err.to_string().contains("checksum"), "{err}");
    }
}
