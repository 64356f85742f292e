//! The .deb container: an `ar` archive holding `debian-binary` ("2.0\n"),
//! `control.tar[.gz|.xz|.zst]` and `data.tar[.gz|.xz|.zst]`, in that order
//! (deb(5)). This file walks the members and hands each tar stream,
//! decompressed, to a callback; the safe extraction lives in `unpack.rs`.
//!
//! The `ar` framing is read here rather than with the `ar` crate, because
//! that crate allocates whatever a member header claims before reading it
//! (the GNU name table `//` and BSD `#1/N` names: `vec![0; size]`, so a
//! 60-byte header claiming 8 GiB is an 8 GiB allocation) and indexes its
//! name table with unchecked offsets. A .deb needs none of that: dpkg
//! writes plain names of at most 16 bytes. Here a member header is 60 bytes
//! on the stack, nothing is ever allocated from a claimed size, and every
//! claimed size is checked before a byte of the member is read: against
//! what is left of the file when its length is known ([`WalkOptions`]),
//! and against what the unpacker's caps could ever accept (`debian-binary`
//! at most 64 bytes, the control member at most the control cap plus tar
//! overhead, the data member and `_` members at most the contents cap plus
//! tar overhead). Members are then read as streams, never buffered whole.
//!
//! Every member is read through [`ExactReader`], so a member cut short by a
//! truncated file is an error rather than a silently shorter stream, and each
//! compressed stream must end exactly at the end of its member (trailing
//! garbage inside a member is an error). Members whose names start with `_`
//! are skipped, as dpkg does; anything else unexpected is an error.

use std::io::{self, BufRead, BufReader, Read};

/// The global header of an `ar` archive.
const AR_MAGIC: &[u8; 8] = b"!<arch>\n";

/// The size of an `ar` member header.
const AR_HEADER_LEN: u64 = 60;

/// The most a `debian-binary` member may hold ("2.0\n" in practice).
const MAX_DEBIAN_BINARY: u64 = 64;

/// What [`walk`] needs to bound the container before reading it.
#[derive(Debug, Clone, Copy)]
pub struct WalkOptions {
    /// Whether to verify the integrity check (CRC64) inside xz members. A
    /// caller that verifies the whole file's digest itself (the `deb`
    /// builder checks SHA-256 against the lock) passes `false` and saves the
    /// CRC pass over every decompressed byte; the multi-threaded decoder
    /// used for large members always verifies it.
    pub xz_check: bool,
    /// The length of the whole .deb, when the caller knows it: a member
    /// claiming more than what is left of the file is refused at its header.
    pub file_len: Option<u64>,
    /// The largest control member (compressed or not) to accept.
    pub max_control_member: u64,
    /// The largest data member (and `_` member) to accept.
    pub max_data_member: u64,
}

/// How a tar member is compressed, from its name's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Xz,
    Zstd,
}

impl Compression {
    fn from_member(name: &str, stem: &str) -> Option<Compression> {
        match name.strip_prefix(stem)? {
            "" => Some(Compression::None),
            ".gz" => Some(Compression::Gzip),
            ".xz" => Some(Compression::Xz),
            ".zst" => Some(Compression::Zstd),
            _ => None,
        }
    }
}

/// Which tar member a callback is looking at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Member {
    Control,
    Data,
}

/// What went wrong with the container itself (the tar contents have their
/// own errors in `unpack.rs`).
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error("not a Debian package: {0}")]
    Format(String),
    /// A member header claims more bytes than the caps or the file allow;
    /// refused before a byte of the member is read.
    #[error("ar member `{member}` claims {size} bytes, more than {what} ({limit} bytes)")]
    MemberSize {
        member: String,
        size: u64,
        limit: u64,
        what: &'static str,
    },
    #[error("reading {what}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
}

impl ContainerError {
    /// The stable code of this error (docs/errors.md, E06xx).
    pub fn code(&self) -> crate::codes::Code {
        use crate::codes::*;
        match self {
            ContainerError::Format(_) | ContainerError::MemberSize { .. } => DEB_FORMAT,
            ContainerError::Io { .. } => DEB_IO,
        }
    }
}

/// A reader that yields exactly `len` bytes of `inner` and reports an early
/// end as `UnexpectedEof`.
pub struct ExactReader<R> {
    inner: R,
    remaining: u64,
}

impl<R: Read> ExactReader<R> {
    pub fn new(inner: R, len: u64) -> Self {
        ExactReader {
            inner,
            remaining: len,
        }
    }
}

impl<R: Read> Read for ExactReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let max = usize::try_from(self.remaining)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = self.inner.read(&mut buf[..max])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("archive member truncated: {} bytes missing", self.remaining),
            ));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// One `ar` member header: the name without trailing spaces and `/`, and
/// the claimed size.
struct ArHeader {
    name: String,
    size: u64,
}

/// Reads the next member header, or `None` at a clean end of the archive.
/// Nothing is allocated from the header's fields.
fn read_ar_header(reader: &mut impl Read, offset: u64) -> Result<Option<ArHeader>, ContainerError> {
    let mut raw = [0u8; AR_HEADER_LEN as usize];
    let got = read_full(reader, &mut raw).map_err(|e| ContainerError::Io {
        what: "the ar container".into(),
        source: e,
    })?;
    if got == 0 {
        return Ok(None);
    }
    if got < raw.len() {
        return Err(ContainerError::Format(format!(
            "truncated ar member header at byte {offset} ({got} of 60 bytes)"
        )));
    }
    if &raw[58..60] != b"`\n" {
        return Err(ContainerError::Format(format!(
            "bad ar member header at byte {offset} (no end-of-header marker)"
        )));
    }
    let name = &raw[..16];
    if !name.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        return Err(ContainerError::Format(format!(
            "bad ar member name at byte {offset}"
        )));
    }
    let name = String::from_utf8_lossy(name);
    let name = name.trim_end_matches(' ');
    // GNU ar ends names with `/`; dpkg accepts both spellings.
    let name = name.strip_suffix('/').unwrap_or(name).to_string();
    let size_field = std::str::from_utf8(&raw[48..58]).unwrap_or("?");
    let digits = size_field.trim_end_matches(' ');
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ContainerError::Format(format!(
            "bad size field {size_field:?} in the header of ar member `{name}`"
        )));
    }
    // At most 10 digits, so this cannot overflow.
    let size = digits
        .bytes()
        .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
    Ok(Some(ArHeader { name, size }))
}

/// Reads until `buf` is full or the input ends; returns how much was read.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match reader.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Refuses a member whose header claims more than `limit`.
fn check_size(header: &ArHeader, limit: u64, what: &'static str) -> Result<(), ContainerError> {
    if header.size > limit {
        return Err(ContainerError::MemberSize {
            member: header.name.clone(),
            size: header.size,
            limit,
            what,
        });
    }
    Ok(())
}

/// Walks a .deb read from `reader`, calling `on_tar(member, tar_stream)` for
/// the control and the data archive. The callback must read its stream to
/// the end (tar end marker and padding included); whatever it leaves is
/// checked here: leftover bytes after the compressed stream are an error.
/// Every member's claimed size is checked against `opts` before the member
/// is read (see the module documentation).
pub fn walk<R, F, E>(mut reader: R, opts: &WalkOptions, mut on_tar: F) -> Result<(), E>
where
    R: Read,
    F: FnMut(Member, &mut dyn Read) -> Result<(), E>,
    E: From<ContainerError>,
{
    let mut magic = [0u8; AR_MAGIC.len()];
    let got = read_full(&mut reader, &mut magic).map_err(|e| ContainerError::Io {
        what: "the ar container".into(),
        source: e,
    })?;
    if got == 0 {
        return Err(ContainerError::Format("empty archive".into()).into());
    }
    if got < magic.len() || &magic != AR_MAGIC {
        return Err(ContainerError::Format("not an ar archive (bad magic)".into()).into());
    }
    let mut offset = AR_MAGIC.len() as u64;
    let mut seen_binary = false;
    let mut seen_control = false;
    let mut seen_data = false;
    while let Some(header) = read_ar_header(&mut reader, offset)? {
        offset += AR_HEADER_LEN;
        if let Some(len) = opts.file_len {
            check_size(
                &header,
                len.saturating_sub(offset),
                "what is left of the file",
            )?;
        }
        // No member may be larger than the largest one the caps allow,
        // whatever its name (the name-specific caps follow).
        check_size(
            &header,
            opts.max_data_member.max(opts.max_control_member),
            "the limits allow",
        )?;
        let name = header.name.as_str();
        let size = header.size;
        let kind = if !seen_binary {
            if name != "debian-binary" {
                return Err(ContainerError::Format(format!(
                    "first member is `{name}`, expected `debian-binary`"
                ))
                .into());
            }
            check_size(&header, MAX_DEBIAN_BINARY, "a format version needs")?;
            None
        } else if name.starts_with('_') {
            check_size(&header, opts.max_data_member, "the limits allow")?;
            None
        } else if let Some(c) = Compression::from_member(name, "control.tar") {
            if seen_control {
                return Err(ContainerError::Format("two control members".into()).into());
            }
            check_size(&header, opts.max_control_member, "the limits allow")?;
            seen_control = true;
            Some((Member::Control, c))
        } else if let Some(c) = Compression::from_member(name, "data.tar") {
            if !seen_control {
                return Err(
                    ContainerError::Format("data member before control member".into()).into(),
                );
            }
            if seen_data {
                return Err(ContainerError::Format("two data members".into()).into());
            }
            check_size(&header, opts.max_data_member, "the limits allow")?;
            seen_data = true;
            Some((Member::Data, c))
        } else {
            return Err(ContainerError::Format(format!("unexpected member `{name}`")).into());
        };
        let mut member = ExactReader::new(&mut reader, size);
        match kind {
            None if !seen_binary => {
                let mut text = String::new();
                member
                    .read_to_string(&mut text)
                    .map_err(|e| ContainerError::Io {
                        what: "debian-binary".into(),
                        source: e,
                    })?;
                if !text.starts_with("2.") || !text.ends_with('\n') {
                    return Err(ContainerError::Format(format!(
                        "unsupported format version {text:?} in debian-binary"
                    ))
                    .into());
                }
                seen_binary = true;
            }
            None => {
                io::copy(&mut member, &mut io::sink()).map_err(|e| ContainerError::Io {
                    what: format!("member `{name}`"),
                    source: e,
                })?;
            }
            Some((kind, compression)) => {
                read_tar_member(
                    &mut member,
                    name,
                    size,
                    kind,
                    compression,
                    opts,
                    &mut on_tar,
                )?;
            }
        }
        offset += size;
        if size % 2 == 1 {
            // Members start at even offsets; the padding byte is `\n` (and
            // may be missing after the last member, as the `ar` tools allow).
            let mut pad = [0u8; 1];
            let got = read_full(&mut reader, &mut pad).map_err(|e| ContainerError::Io {
                what: "the ar container".into(),
                source: e,
            })?;
            if got == 1 && pad[0] != b'\n' {
                return Err(ContainerError::Format(format!(
                    "bad padding byte after member `{}`",
                    header.name
                ))
                .into());
            }
            offset += got as u64;
        }
    }
    if !seen_data {
        return Err(ContainerError::Format(
            (if seen_binary {
                "no data.tar member"
            } else {
                "empty archive"
            })
            .into(),
        )
        .into());
    }
    Ok(())
}

/// Decompresses one tar member for `on_tar` and checks that the compressed
/// stream ends exactly at the end of the member.
fn read_tar_member<R, F, E>(
    member: &mut ExactReader<R>,
    name: &str,
    size: u64,
    kind: Member,
    compression: Compression,
    opts: &WalkOptions,
    on_tar: &mut F,
) -> Result<(), E>
where
    R: Read,
    F: FnMut(Member, &mut dyn Read) -> Result<(), E>,
    E: From<ContainerError>,
{
    let mut buffered = BufReader::with_capacity(256 * 1024, member);
    match compression {
        Compression::None => on_tar(kind, &mut buffered)?,
        Compression::Gzip => {
            let mut d = flate2::bufread::GzDecoder::new(&mut buffered);
            on_tar(kind, &mut d)?;
            drain(&mut d, name)?;
        }
        Compression::Xz => {
            let stream = xz_stream(name, size, opts.xz_check)?;
            let mut d = liblzma::bufread::XzDecoder::new_stream(&mut buffered, stream);
            on_tar(kind, &mut d)?;
            drain(&mut d, name)?;
        }
        Compression::Zstd => {
            let mut d = zstd::stream::read::Decoder::with_buffer(&mut buffered)
                .map_err(|e| ContainerError::Io {
                    what: format!("member `{name}`"),
                    source: e,
                })?
                .single_frame();
            on_tar(kind, &mut d)?;
            drain(&mut d, name)?;
        }
    }
    // Whatever is left of the member after the compressed stream ended is
    // trailing garbage.
    let leftover = buffered.fill_buf().map_err(|e| ContainerError::Io {
        what: format!("member `{name}`"),
        source: e,
    })?;
    if !leftover.is_empty() {
        return Err(ContainerError::Format(format!(
            "trailing garbage after the compressed stream in `{name}`"
        ))
        .into());
    }
    Ok(())
}

/// xz members at least this large (compressed) get the multi-threaded
/// decoder: dpkg compresses big packages (the kernel) as several blocks,
/// which it decodes in parallel. For the single-block streams of ordinary
/// packages it would only add a worker thread and a copy of every byte.
const XZ_MT_MIN_MEMBER: u64 = 8 << 20;

/// The most memory an xz decoder may use, so a hostile header cannot ask
/// for gigabytes of dictionary.
const XZ_MEMLIMIT: u64 = 1 << 30;

/// An xz decoder for a member of `size` bytes (see [`XZ_MT_MIN_MEMBER`]),
/// with a hard memory limit.
fn xz_stream(
    name: &str,
    size: u64,
    check: bool,
) -> Result<liblzma::stream::Stream, ContainerError> {
    let started = if size >= XZ_MT_MIN_MEMBER {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
        liblzma::stream::MtStreamBuilder::new()
            .threads(u32::try_from(threads).unwrap_or(1))
            .memlimit_threading(512 << 20)
            .memlimit_stop(XZ_MEMLIMIT)
            .decoder()
    } else {
        let flags = if check {
            0
        } else {
            liblzma::stream::IGNORE_CHECK
        };
        liblzma::stream::Stream::new_stream_decoder(XZ_MEMLIMIT, flags)
    };
    started.map_err(|e| ContainerError::Io {
        what: format!("member `{name}`: starting the xz decoder"),
        source: e.into(),
    })
}

/// Reads a decompressor to its end so its checksum trailer is verified.
fn drain(reader: &mut dyn Read, name: &str) -> Result<(), ContainerError> {
    let mut buf = [0u8; 8192];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(_) => {
                return Err(ContainerError::Format(format!(
                    "trailing data after the end of the tar archive in `{name}`"
                )));
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(ContainerError::Io {
                    what: format!("member `{name}`"),
                    source: e,
                });
            }
        }
    }
}
