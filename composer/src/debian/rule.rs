//! [`Rule`]: why an entry of a Debian package was refused. Shared by the
//! name checks (`names.rs`) and the unpacker (`unpack.rs`), which re-exports
//! it.

use std::fmt;

/// Why an entry was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    ParentComponent,
    AbsolutePath,
    BadName(&'static str),
    TooDeep(usize),
    UnderSymlink(String),
    UnderNonDirectory(String),
    Duplicate,
    UsrMergeCollision(String),
    NameCollision(String),
    HardLinkTarget(String),
    SpecialFile(&'static str),
    Setuid(u32),
    SetuidOwner(String),
    Reserved,
    UnsupportedType(u8),
    TotalBytes(u64),
    EntryCount(u64),
    Truncated,
    TrailingGarbage,
    NonZeroPadding,
    BadSymlinkTarget,
    BadControlMember,
    /// A GNU long name/link or PAX header claiming more than the cap.
    ExtensionTooLarge {
        kind: &'static str,
        size: u64,
        max: u64,
    },
    BadExtension(&'static str),
    BadHeader(&'static str),
    NameTooLong(usize),
    NameBytes(u64),
    TrailingBytes(u64),
    ControlFiles(usize),
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::ParentComponent => write!(f, "`..` components are not allowed"),
            Rule::AbsolutePath => write!(f, "absolute paths are not allowed"),
            Rule::BadName(why) => write!(f, "invalid name: {why}"),
            Rule::TooDeep(max) => write!(f, "more than {max} path components"),
            Rule::UnderSymlink(link) => {
                write!(
                    f,
                    "entries under a symlink are not allowed (`{link}` is a symlink)"
                )
            }
            Rule::UnderNonDirectory(file) => write!(f, "parent `{file}` is not a directory"),
            Rule::Duplicate => write!(f, "duplicate entry (nothing is ever overwritten)"),
            Rule::UsrMergeCollision(other) => {
                write!(f, "collides with `{other}` after merging /usr")
            }
            Rule::NameCollision(other) => write!(
                f,
                "name differs from `{other}` only in case or Unicode normalization"
            ),
            Rule::HardLinkTarget(target) => write!(
                f,
                "hard link to `{target}`, which is not an earlier regular file of this archive"
            ),
            Rule::SpecialFile(kind) => write!(f, "{kind} entries are not allowed"),
            Rule::Setuid(mode) => write!(
                f,
                "setuid/setgid file (mode {mode:o}) outside the allow-list"
            ),
            Rule::SetuidOwner(name) => write!(
                f,
                "setuid/setgid file owned by `{}`, which is not a user or group name",
                name.escape_debug()
            ),
            Rule::Reserved => write!(f, "`.imago` is reserved for Imago's metadata"),
            Rule::UnsupportedType(t) => write!(f, "unsupported tar entry type {t:?}"),
            Rule::TotalBytes(max) => write!(f, "unpacked size exceeds the limit of {max} bytes"),
            Rule::EntryCount(max) => write!(f, "more than {max} entries"),
            Rule::Truncated => write!(f, "archive is truncated"),
            Rule::TrailingGarbage => write!(f, "non-zero data after the end-of-archive marker"),
            Rule::NonZeroPadding => write!(f, "non-zero padding after the entry's data"),
            Rule::BadSymlinkTarget => write!(f, "symlink target is empty or contains NUL"),
            Rule::BadControlMember => write!(
                f,
                "control archive members must be plain files with simple names"
            ),
            Rule::ExtensionTooLarge { kind, size, max } => write!(
                f,
                "{kind} of {size} bytes exceeds the limit of {max} bytes (refused before reading it)"
            ),
            Rule::BadExtension(why) => write!(f, "malformed extension header: {why}"),
            Rule::BadHeader(why) => write!(f, "malformed tar header: {why}"),
            Rule::NameTooLong(max) => write!(f, "name or link target longer than {max} bytes"),
            Rule::NameBytes(max) => {
                write!(f, "entry names together exceed the limit of {max} bytes")
            }
            Rule::TrailingBytes(max) => write!(
                f,
                "more than {max} bytes of zeros after the end-of-archive marker"
            ),
            Rule::ControlFiles(max) => {
                write!(f, "more than {max} files in the control archive")
            }
        }
    }
}
