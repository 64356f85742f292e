//! The .deb container: an `ar` archive holding `debian-binary` ("2.0\n"),
//! `control.tar[.gz|.xz|.zst]` and `data.tar[.gz|.xz|.zst]`, in that order
//! (deb(5)). This file walks the members and hands each tar stream,
//! decompressed, to a callback; the safe extraction lives in `unpack.rs`.
//!
//! Every member is read through [`ExactReader`], so a member cut short by a
//! truncated file is an error rather than a silently shorter stream, and each
//! compressed stream must end exactly at the end of its member (trailing
//! garbage inside a member is an error). Members whose names start with `_`
//! are skipped, as dpkg does; anything else unexpected is an error.

use std::io::{self, BufRead, BufReader, Read};

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
    #[error("reading {what}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
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

/// Walks a .deb read from `reader`, calling `on_tar(member, tar_stream)` for
/// the control and the data archive. The callback must read its stream to
/// the end (tar end marker and padding included); whatever it leaves is
/// checked here: leftover bytes after the compressed stream are an error.
///
/// `xz_check`: whether to verify the integrity check (CRC64) inside xz
/// members. A caller that verifies the whole file's digest itself (the `deb`
/// builder checks SHA-256 against the lock) passes `false` and saves the
/// CRC pass over every decompressed byte; the multi-threaded decoder used
/// for large members always verifies it.
pub fn walk<R, F, E>(reader: R, xz_check: bool, mut on_tar: F) -> Result<(), E>
where
    R: Read,
    F: FnMut(Member, &mut dyn Read) -> Result<(), E>,
    E: From<ContainerError>,
{
    let mut archive = ar::Archive::new(reader);
    let mut seen_binary = false;
    let mut seen_control = false;
    let mut seen_data = false;
    while let Some(entry) = archive.next_entry() {
        let entry = entry.map_err(|e| ContainerError::Io {
            what: "the ar container".into(),
            source: e,
        })?;
        let name = String::from_utf8_lossy(entry.header().identifier())
            .trim_end_matches('/')
            .to_string();
        let size = entry.header().size();
        let mut member = ExactReader::new(entry, size);
        if !seen_binary {
            if name != "debian-binary" {
                return Err(ContainerError::Format(format!(
                    "first member is `{name}`, expected `debian-binary`"
                ))
                .into());
            }
            let mut text = String::new();
            (&mut member)
                .take(64)
                .read_to_string(&mut text)
                .map_err(|e| ContainerError::Io {
                    what: "debian-binary".into(),
                    source: e,
                })?;
            if !text.starts_with("2.") || !text.ends_with('\n') || size > 64 {
                return Err(ContainerError::Format(format!(
                    "unsupported format version {text:?} in debian-binary"
                ))
                .into());
            }
            seen_binary = true;
            continue;
        }
        if name.starts_with('_') {
            io::copy(&mut member, &mut io::sink()).map_err(|e| ContainerError::Io {
                what: format!("member `{name}`"),
                source: e,
            })?;
            continue;
        }
        let (kind, compression) = if let Some(c) = Compression::from_member(&name, "control.tar") {
            if seen_control {
                return Err(ContainerError::Format("two control members".into()).into());
            }
            seen_control = true;
            (Member::Control, c)
        } else if let Some(c) = Compression::from_member(&name, "data.tar") {
            if !seen_control {
                return Err(
                    ContainerError::Format("data member before control member".into()).into(),
                );
            }
            if seen_data {
                return Err(ContainerError::Format("two data members".into()).into());
            }
            seen_data = true;
            (Member::Data, c)
        } else {
            return Err(ContainerError::Format(format!("unexpected member `{name}`")).into());
        };
        let mut buffered = BufReader::with_capacity(256 * 1024, member);
        match compression {
            Compression::None => on_tar(kind, &mut buffered)?,
            Compression::Gzip => {
                let mut d = flate2::bufread::GzDecoder::new(&mut buffered);
                on_tar(kind, &mut d)?;
                drain(&mut d, &name)?;
            }
            Compression::Xz => {
                let stream = xz_stream(&name, size, xz_check)?;
                let mut d = liblzma::bufread::XzDecoder::new_stream(&mut buffered, stream);
                on_tar(kind, &mut d)?;
                drain(&mut d, &name)?;
            }
            Compression::Zstd => {
                let mut d = zstd::stream::read::Decoder::with_buffer(&mut buffered)
                    .map_err(|e| ContainerError::Io {
                        what: format!("member `{name}`"),
                        source: e,
                    })?
                    .single_frame();
                on_tar(kind, &mut d)?;
                drain(&mut d, &name)?;
            }
        }
        // Whatever is left of the member after the compressed stream ended
        // is trailing garbage.
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
