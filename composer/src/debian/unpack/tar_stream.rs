//! The framing of a tar stream, bounded before anything is buffered.
//!
//! Why not the `tar` crate's iterator: it reads a GNU long name or long
//! link (`L`/`K` entries) and a PAX extended header (`x`) into memory
//! whatever size their header claims (`EntryFields::read_all`), so a
//! 100 MB long name or a 1 GB PAX record, compressed into a few hundred KB,
//! is spent before any of our checks runs. Its raw mode would hand those
//! entries over unread, but it then places the next header by the ustar
//! size field and ignores a PAX `size`, which real archives use. So this
//! reader frames the stream itself — 512-byte header blocks, extension
//! records, entry data, zero padding, the end-of-archive marker — and uses
//! the crate only to decode one header block at a time ([`tar::Header`]:
//! names, modes, sizes, checksum).
//!
//! Bounds: an extension record is refused from its header's size field,
//! before a byte of it is read, when it claims more than
//! [`MAX_EXTENSION_BYTES`]; each logical entry has at most one of each kind
//! (`L`, `K`, `x`), so at most three records are held at a time; entry data
//! is never buffered here (the caller reads it through
//! [`TarStream::read_data`] after checking the size against its caps); and
//! at most [`MAX_TRAILING_BYTES`] (all zeros) may follow the end-of-archive
//! marker. The caller counts [`EntryHead::extension_bytes`] and every
//! entry's data size against its byte caps, and entries against its entry
//! cap, so the whole decompressed stream is bounded by
//! [`tar_stream_cap`].

use super::{Fail, Rule};
use std::io::{self, Read};

const BLOCK: u64 = 512;

/// The most bytes one GNU long name/link or PAX extended header may hold.
/// A path is at most 4096 bytes; PAX headers may also carry a few
/// attributes, hence the margin.
pub const MAX_EXTENSION_BYTES: u64 = 64 << 10;

/// The most bytes (all zeros) allowed after the end-of-archive marker: tar
/// pads its output to a whole record (10 KiB by default; 1 MiB covers any
/// blocking factor tar accepts).
pub const MAX_TRAILING_BYTES: u64 = 1 << 20;

/// The most stream bytes one entry can take besides what the caller
/// counts (data and extension records): up to four header blocks (`L`,
/// `K`, `x` and the entry's own), each followed by less than a block of
/// padding.
const ENTRY_OVERHEAD: u64 = 8 * BLOCK;

/// The longest tar stream that `entries` entries holding `content` bytes
/// of data and extension records can make, end-of-archive marker and
/// trailing zeros included. Also the largest member, compressed or not,
/// worth reading for such caps.
pub fn tar_stream_cap(content: u64, entries: u64) -> u64 {
    content
        .saturating_add(entries.saturating_mul(ENTRY_OVERHEAD))
        .saturating_add(BLOCK + MAX_TRAILING_BYTES)
}

/// One logical entry: its header block, with the name, link target and
/// size that its extension records give it.
pub(super) struct EntryHead {
    pub header: tar::Header,
    /// The entry's name: a GNU long name, else a PAX `path`, else the
    /// header's (ustar prefix joined).
    pub path: Vec<u8>,
    /// A GNU long link, else a PAX `linkpath`, else the header's.
    pub link: Option<Vec<u8>>,
    /// The data size: a PAX `size`, else the header's.
    pub size: u64,
    /// Bytes of extension records read for this entry.
    pub extension_bytes: u64,
}

/// A name for error messages: lossy UTF-8, cut after 256 bytes.
pub(super) fn shown(name: &[u8]) -> String {
    const MAX: usize = 256;
    if name.len() <= MAX {
        return String::from_utf8_lossy(name).into_owned();
    }
    format!(
        "{}… ({} bytes)",
        String::from_utf8_lossy(&name[..MAX]),
        name.len()
    )
}

/// A tar stream read entry by entry. The data of the current entry is read
/// with [`TarStream::read_data`]; whatever the caller leaves is skipped by
/// the next [`TarStream::next_entry`] (the caller has already counted it).
pub(super) struct TarStream<'a> {
    inner: &'a mut dyn Read,
    /// "control archive" or "data archive", for errors about the stream.
    what: &'static str,
    /// Data bytes of the current entry not read yet.
    data_left: u64,
    /// Padding bytes (which must be zero) after the current entry's data.
    pad_left: u64,
    /// The current entry's name, for errors about its data and padding.
    current: String,
    ended: bool,
}

#[derive(Default)]
struct Pax {
    path: Option<Vec<u8>>,
    linkpath: Option<Vec<u8>>,
    size: Option<u64>,
}

impl<'a> TarStream<'a> {
    pub fn new(inner: &'a mut dyn Read, what: &'static str) -> Self {
        TarStream {
            inner,
            what,
            data_left: 0,
            pad_left: 0,
            current: String::new(),
            ended: false,
        }
    }

    /// The next entry, or `None` at the end-of-archive marker (a zero
    /// block). The end of the input before that marker is a truncation.
    pub fn next_entry(&mut self) -> Result<Option<EntryHead>, Fail> {
        if self.ended {
            return Ok(None);
        }
        self.skip_rest()?;
        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        let mut pax: Option<Pax> = None;
        let mut extension_bytes = 0u64;
        loop {
            let mut block = [0u8; BLOCK as usize];
            if !self.read_block(&mut block)? {
                return Err(Fail::Rule(self.what.into(), Rule::Truncated));
            }
            if block.iter().all(|&b| b == 0) {
                if long_name.is_some() || long_link.is_some() || pax.is_some() {
                    return Err(Fail::Rule(
                        self.what.into(),
                        Rule::BadExtension("an extension header with no entry after it"),
                    ));
                }
                self.ended = true;
                return Ok(None);
            }
            let header = tar::Header::from_byte_slice(&block).clone();
            let name = shown(&header.path_bytes());
            let sum = block[..148]
                .iter()
                .chain(&block[156..])
                .fold(8 * 32, |a, &b| a + u32::from(b));
            if header.cksum().ok() != Some(sum) {
                return Err(Fail::Rule(name, Rule::BadHeader("checksum mismatch")));
            }
            let size = header
                .entry_size()
                .map_err(|_| Fail::Rule(name.clone(), Rule::BadHeader("bad size field")))?;
            let kind = header.entry_type().as_byte();
            let extension = match kind {
                b'L' => "GNU long name",
                b'K' => "GNU long link",
                b'x' => "PAX extended header",
                _ => {
                    let size = pax.as_ref().and_then(|p| p.size).unwrap_or(size);
                    let (pax_path, pax_link) = pax.map_or((None, None), |p| (p.path, p.linkpath));
                    let path = long_name
                        .or(pax_path)
                        .unwrap_or_else(|| header.path_bytes().into_owned());
                    let link = long_link
                        .or(pax_link)
                        .or_else(|| header.link_name_bytes().map(|l| l.into_owned()));
                    self.current = shown(&path);
                    self.data_left = size;
                    self.pad_left = padding(size);
                    return Ok(Some(EntryHead {
                        header,
                        path,
                        link,
                        size,
                        extension_bytes,
                    }));
                }
            };
            // Checked from the header, before a byte of the record is read.
            if size > MAX_EXTENSION_BYTES {
                return Err(Fail::Rule(
                    name,
                    Rule::ExtensionTooLarge {
                        kind: extension,
                        size,
                        max: MAX_EXTENSION_BYTES,
                    },
                ));
            }
            let data = self.read_record(size, &name)?;
            extension_bytes += size;
            let twice = Rule::BadExtension("two extension headers of one kind for one entry");
            match kind {
                b'L' => {
                    if long_name.replace(strip_nul(data)).is_some() {
                        return Err(Fail::Rule(name, twice));
                    }
                }
                b'K' => {
                    if long_link.replace(strip_nul(data)).is_some() {
                        return Err(Fail::Rule(name, twice));
                    }
                }
                _ => {
                    let parsed = parse_pax(&data)
                        .map_err(|why| Fail::Rule(name.clone(), Rule::BadExtension(why)))?;
                    if pax.replace(parsed).is_some() {
                        return Err(Fail::Rule(name, twice));
                    }
                }
            }
        }
    }

    /// Reads the current entry's data; `Ok(0)` at its end. An input that
    /// ends first is an `UnexpectedEof` error.
    pub fn read_data(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.data_left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let max = usize::try_from(self.data_left)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = self.inner.read(&mut buf[..max])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "tar entry data cut short",
            ));
        }
        self.data_left -= n as u64;
        Ok(n)
    }

    /// After the end-of-archive marker: only zeros, at most
    /// [`MAX_TRAILING_BYTES`] of them, may follow.
    pub fn finish(self) -> Result<(), Fail> {
        if !self.ended {
            return Err(Fail::Rule(self.what.into(), Rule::Truncated));
        }
        let mut buf = [0u8; 8192];
        let mut seen = 0u64;
        loop {
            let n = match self.inner.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(stream_error(self.what, e)),
            };
            if buf[..n].iter().any(|&b| b != 0) {
                return Err(Fail::Rule(self.what.into(), Rule::TrailingGarbage));
            }
            seen += n as u64;
            if seen > MAX_TRAILING_BYTES {
                return Err(Fail::Rule(
                    self.what.into(),
                    Rule::TrailingBytes(MAX_TRAILING_BYTES),
                ));
            }
        }
    }

    /// Skips what is left of the current entry's data and checks its
    /// padding.
    fn skip_rest(&mut self) -> Result<(), Fail> {
        let mut buf = [0u8; 8192];
        while self.data_left > 0 {
            let n = self.read_data(&mut buf).map_err(|e| self.entry_error(e))?;
            if n == 0 {
                break;
            }
        }
        self.check_padding(self.pad_left)
    }

    fn check_padding(&mut self, len: u64) -> Result<(), Fail> {
        let mut pad = [0u8; BLOCK as usize];
        let len = usize::try_from(len).unwrap_or(0).min(pad.len());
        if self
            .read_exact(&mut pad[..len])
            .map_err(|e| self.entry_error(e))?
            < len
        {
            return Err(Fail::Rule(self.current.clone(), Rule::Truncated));
        }
        self.pad_left = 0;
        if pad[..len].iter().any(|&b| b != 0) {
            return Err(Fail::Rule(self.current.clone(), Rule::NonZeroPadding));
        }
        Ok(())
    }

    /// Reads an extension record of `size` bytes (already checked against
    /// [`MAX_EXTENSION_BYTES`]) and its padding.
    fn read_record(&mut self, size: u64, name: &str) -> Result<Vec<u8>, Fail> {
        let len = usize::try_from(size).unwrap_or(0);
        let mut data = vec![0u8; len];
        self.current = name.to_string();
        if self
            .read_exact(&mut data)
            .map_err(|e| self.entry_error(e))?
            < len
        {
            return Err(Fail::Rule(name.into(), Rule::Truncated));
        }
        self.check_padding(padding(size))?;
        Ok(data)
    }

    /// Reads a whole block; `false` when the input ends right before it.
    fn read_block(&mut self, block: &mut [u8; BLOCK as usize]) -> Result<bool, Fail> {
        let got = self
            .read_exact(block)
            .map_err(|e| stream_error(self.what, e))?;
        if got == 0 {
            return Ok(false);
        }
        if got < block.len() {
            return Err(Fail::Rule(self.what.into(), Rule::Truncated));
        }
        Ok(true)
    }

    /// Reads until `buf` is full or the input ends; returns how much.
    fn read_exact(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut got = 0;
        while got < buf.len() {
            match self.inner.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(got)
    }

    fn entry_error(&self, e: io::Error) -> Fail {
        stream_error(&self.current, e)
    }
}

/// Padding after `size` bytes of data, up to the next block.
fn padding(size: u64) -> u64 {
    (BLOCK - size % BLOCK) % BLOCK
}

/// An input error while reading `what`: a cut-short stream is a rule, any
/// other error (a corrupt compressed stream, a read failure) is I/O.
pub(super) fn stream_error(what: &str, e: io::Error) -> Fail {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        Fail::Rule(what.to_string(), Rule::Truncated)
    } else {
        Fail::Io(what.to_string(), e)
    }
}

/// A GNU long name or link ends with one NUL.
fn strip_nul(mut data: Vec<u8>) -> Vec<u8> {
    if data.last() == Some(&0) {
        data.pop();
    }
    data
}

/// Parses PAX records (`LEN KEY=VALUE\n`, LEN counting the whole record),
/// keeping the keys that change where entries lie or what they are called:
/// `path`, `linkpath`, `size`. Others (times, owners, attributes) are
/// ignored. NUL bytes after the last record are tolerated.
fn parse_pax(mut data: &[u8]) -> Result<Pax, &'static str> {
    let mut pax = Pax::default();
    while !data.is_empty() && !data.iter().all(|&b| b == 0) {
        let space = data
            .iter()
            .take(20)
            .position(|&b| b == b' ')
            .ok_or("a PAX record without a length")?;
        let len = decimal(&data[..space]).ok_or("a PAX record with a bad length")?;
        let len = usize::try_from(len).map_err(|_| "a PAX record longer than its header")?;
        if len <= space + 1 || len > data.len() {
            return Err("a PAX record longer than its header");
        }
        let record = data[space + 1..len]
            .strip_suffix(b"\n")
            .ok_or("a PAX record that does not end with a newline")?;
        let eq = record
            .iter()
            .position(|&b| b == b'=')
            .ok_or("a PAX record without `=`")?;
        let (key, value) = (&record[..eq], &record[eq + 1..]);
        match key {
            b"path" => pax.path = Some(value.to_vec()),
            b"linkpath" => pax.linkpath = Some(value.to_vec()),
            b"size" => pax.size = Some(decimal(value).ok_or("a PAX size that is not a number")?),
            _ => {}
        }
        data = &data[len..];
    }
    Ok(pax)
}

/// A non-empty run of ASCII digits as a number, `None` on overflow.
fn decimal(text: &[u8]) -> Option<u64> {
    if text.is_empty() || text.len() > 20 {
        return None;
    }
    text.iter().try_fold(0u64, |n, &b| {
        if b.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_records_are_parsed_strictly() {
        let p = parse_pax(b"16 path=./a/b/c\n12 size=600\n").unwrap();
        assert_eq!(p.path.as_deref(), Some(&b"./a/b/c"[..]));
        assert_eq!(p.size, Some(600));
        // A value may hold a newline: the length decides.
        let p = parse_pax(b"12 path=a\nb\n").unwrap();
        assert_eq!(p.path.as_deref(), Some(&b"a\nb"[..]));
        assert!(parse_pax(b"99 path=a\n").is_err());
        assert!(parse_pax(b"9 path=ab").is_err());
        assert!(parse_pax(b"10 pathab\n").is_err());
        assert!(parse_pax(b"11 size=1x\n").is_err());
        assert!(parse_pax(b"x path=a\n").is_err());
        assert!(parse_pax(b"3 \n").is_err());
        assert!(parse_pax(b"99999999999999999999999 a=b\n").is_err());
        assert!(parse_pax(b"10 size=1\n\0\0\0").is_ok());
    }

    #[test]
    fn stream_caps_saturate() {
        assert_eq!(tar_stream_cap(u64::MAX, u64::MAX), u64::MAX);
        assert_eq!(tar_stream_cap(0, 0), 512 + (1 << 20));
    }
}
