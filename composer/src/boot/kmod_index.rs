//! kmod's binary index format (`modules.*.bin`): writing and reading it.
//!
//! Debian's kmod (`modprobe`, `modinfo`, systemd's libkmod) looks modules up
//! only in these files, never in the text `modules.dep`/`modules.alias`. An
//! index maps ASCII keys to lists of `(priority, value)` pairs. It is a
//! compressed trie stored bottom-up (children before their parent):
//!
//! ```text
//! u32 magic 0xB007F457, u32 version 0x00020001, u32 root   (all big-endian)
//! node at (offset & 0x0FFFFFFF), fields present per the offset's flags:
//!   0x80000000 prefix    the node's label after its arc byte, NUL-terminated
//!   0x20000000 children  u8 first, u8 last, u32 child[last - first + 1] (0 = none)
//!   0x40000000 values    u32 count, then count × (u32 priority, NUL-terminated value)
//! ```
//!
//! A key is found by walking from the root: match the node's prefix, stop at
//! the key's end (the node's values are the answer) or follow the child of
//! the next byte. Values of one key are in ascending priority (kmod takes the
//! first as the answer of an exact lookup). Only bytes 1..=127 are allowed:
//! kmod's reader keeps the first/last child bytes in a `char`.
//!
//! [`IndexBuilder::to_bytes`] is deterministic: keys in byte order, children
//! written in ascending byte order before their parent, values sorted by
//! priority (insertion order among equal priorities). [`read_index`] decodes
//! a file back into its entries; tests use it to compare with `depmod`.

use std::collections::BTreeMap;

/// The first word of every index file ("BOOTFAST", almost).
pub const MAGIC: u32 = 0xB007_F457;
/// Format version 2.1 (major in the high half; kmod checks only the major).
pub const VERSION: u32 = 0x0002_0001;

const FLAG_PREFIX: u32 = 0x8000_0000;
const FLAG_VALUES: u32 = 0x4000_0000;
const FLAG_CHILDREN: u32 = 0x2000_0000;
const OFFSET_MASK: u32 = 0x0FFF_FFFF;
const HEADER_LEN: usize = 12;

/// What can go wrong writing or reading an index.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndexError {
    #[error("module index: `{text}` has a byte kmod cannot index (only 7-bit ASCII without NUL)")]
    BadByte { text: String },
    #[error("module index: {size} bytes exceed the format's limit of {OFFSET_MASK} bytes")]
    TooLarge { size: usize },
    #[error("module index: not a kmod index (magic {magic:#010x}, version {version:#010x})")]
    BadHeader { magic: u32, version: u32 },
    #[error("module index: truncated or malformed at offset {offset}")]
    Malformed { offset: usize },
}

impl IndexError {
    /// The stable code of this error (docs/errors.md, E08xx).
    pub fn code(&self) -> crate::codes::Code {
        crate::codes::KERNEL_MODULES
    }
}

/// Values of one key: `(priority, value)`, in insertion order until written.
type Values = Vec<(u32, Vec<u8>)>;

/// Collects `key -> (priority, value)` entries and writes them as an index.
#[derive(Debug, Clone, Default)]
pub struct IndexBuilder {
    entries: BTreeMap<Vec<u8>, Values>,
}

impl IndexBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `value` to `key` with `priority` (lower comes first). The same
    /// value twice under one key is kept once, with the lower priority.
    pub fn insert(&mut self, key: &str, value: &str, priority: u32) -> Result<(), IndexError> {
        check(key)?;
        check(value)?;
        let values = self.entries.entry(key.as_bytes().to_vec()).or_default();
        match values.iter_mut().find(|(_, v)| v == value.as_bytes()) {
            Some(existing) => existing.0 = existing.0.min(priority),
            None => values.push((priority, value.as_bytes().to_vec())),
        }
        Ok(())
    }

    /// The number of distinct keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The index file's bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, IndexError> {
        let mut out = Vec::new();
        out.extend_from_slice(&MAGIC.to_be_bytes());
        out.extend_from_slice(&VERSION.to_be_bytes());
        out.extend_from_slice(&0u32.to_be_bytes());
        let entries: Vec<(&[u8], &Values)> = self
            .entries
            .iter()
            .map(|(k, v)| (k.as_slice(), v))
            .collect();
        let root = write_node(&mut out, &entries, 0, true)?;
        out[8..HEADER_LEN].copy_from_slice(&root.to_be_bytes());
        if out.len() > OFFSET_MASK as usize {
            return Err(IndexError::TooLarge { size: out.len() });
        }
        Ok(out)
    }
}

fn check(text: &str) -> Result<(), IndexError> {
    if text.bytes().all(|b| (1..=127).contains(&b)) {
        Ok(())
    } else {
        Err(IndexError::BadByte {
            text: text.escape_debug().to_string(),
        })
    }
}

/// Writes the node for `entries` (sorted, non-empty except for an empty
/// root; all share their first `start` bytes) after its children, and
/// returns its offset with the flags of the fields present.
///
/// The root has an empty prefix, as depmod writes it; any other node's
/// prefix is the longest common prefix of its keys' remainders, so no node
/// but the root has one child and no values.
fn write_node(
    out: &mut Vec<u8>,
    entries: &[(&[u8], &Values)],
    start: usize,
    root: bool,
) -> Result<u32, IndexError> {
    let prefix_len = match (root, entries.first(), entries.last()) {
        (false, Some(first), Some(last)) => first.0[start..]
            .iter()
            .zip(&last.0[start..])
            .take_while(|(a, b)| a == b)
            .count(),
        _ => 0,
    };
    let at = start + prefix_len;
    // Sorted keys: the one ending here, if any, comes first.
    let (own, rest) = match entries.split_first() {
        Some((first, rest)) if first.0.len() == at => (Some(first.1), rest),
        _ => (None, entries),
    };

    let mut children: Vec<(u8, u32)> = Vec::new();
    let mut group_start = 0;
    while group_start < rest.len() {
        let byte = rest[group_start].0[at];
        let group_end = group_start
            + rest[group_start..]
                .iter()
                .take_while(|(key, _)| key[at] == byte)
                .count();
        let child = write_node(out, &rest[group_start..group_end], at + 1, false)?;
        children.push((byte, child));
        group_start = group_end;
    }

    let offset = out.len();
    if offset > OFFSET_MASK as usize {
        return Err(IndexError::TooLarge { size: offset });
    }
    let mut flags = 0;
    if let Some((first, _)) = entries.first().filter(|_| prefix_len > 0) {
        out.extend_from_slice(&first[start..at]);
        out.push(0);
        flags |= FLAG_PREFIX;
    }
    if let (Some(&(first, _)), Some(&(last, _))) = (children.first(), children.last()) {
        out.push(first);
        out.push(last);
        let mut next = children.iter().peekable();
        for byte in first..=last {
            let child = next.next_if(|(b, _)| *b == byte).map_or(0, |(_, o)| *o);
            out.extend_from_slice(&child.to_be_bytes());
        }
        flags |= FLAG_CHILDREN;
    }
    if let Some(values) = own {
        let mut sorted: Vec<&(u32, Vec<u8>)> = values.iter().collect();
        sorted.sort_by_key(|(priority, _)| *priority);
        out.extend_from_slice(&u32_of(sorted.len())?.to_be_bytes());
        for (priority, value) in sorted {
            out.extend_from_slice(&priority.to_be_bytes());
            out.extend_from_slice(value);
            out.push(0);
        }
        flags |= FLAG_VALUES;
    }
    Ok(u32_of(offset)? | flags)
}

fn u32_of(n: usize) -> Result<u32, IndexError> {
    u32::try_from(n).map_err(|_| IndexError::TooLarge { size: n })
}

/// Every entry of an index file: key to `(priority, value)` in file order.
pub fn read_index(bytes: &[u8]) -> Result<BTreeMap<String, Vec<(u32, String)>>, IndexError> {
    let reader = Reader { bytes };
    let magic = reader.u32_at(0)?;
    let version = reader.u32_at(4)?;
    if magic != MAGIC || version >> 16 != VERSION >> 16 {
        return Err(IndexError::BadHeader { magic, version });
    }
    let root = reader.u32_at(8)?;
    let mut entries = BTreeMap::new();
    reader.visit(root, &mut Vec::new(), &mut entries)?;
    Ok(entries)
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl Reader<'_> {
    fn u32_at(&self, offset: usize) -> Result<u32, IndexError> {
        self.bytes
            .get(offset..offset + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_be_bytes)
            .ok_or(IndexError::Malformed { offset })
    }

    fn byte_at(&self, offset: usize) -> Result<u8, IndexError> {
        self.bytes
            .get(offset)
            .copied()
            .ok_or(IndexError::Malformed { offset })
    }

    /// The NUL-terminated string at `offset`, and the offset after its NUL.
    fn str_at(&self, offset: usize) -> Result<(&[u8], usize), IndexError> {
        let rest = self
            .bytes
            .get(offset..)
            .ok_or(IndexError::Malformed { offset })?;
        let len = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or(IndexError::Malformed { offset })?;
        Ok((&rest[..len], offset + len + 1))
    }

    fn visit(
        &self,
        node: u32,
        key: &mut Vec<u8>,
        entries: &mut BTreeMap<String, Vec<(u32, String)>>,
    ) -> Result<(), IndexError> {
        let mut at = (node & OFFSET_MASK) as usize;
        if at < HEADER_LEN {
            return Err(IndexError::Malformed { offset: at });
        }
        let key_len = key.len();
        if node & FLAG_PREFIX != 0 {
            let (prefix, next) = self.str_at(at)?;
            key.extend_from_slice(prefix);
            at = next;
        }
        let mut children = Vec::new();
        if node & FLAG_CHILDREN != 0 {
            let first = self.byte_at(at)?;
            let last = self.byte_at(at + 1)?;
            if first > last {
                return Err(IndexError::Malformed { offset: at });
            }
            at += 2;
            for byte in first..=last {
                let child = self.u32_at(at)?;
                if child & OFFSET_MASK != 0 {
                    // Children are written before their parent: offsets
                    // strictly decrease going down, so no file can loop.
                    if (child & OFFSET_MASK) as usize >= (node & OFFSET_MASK) as usize {
                        return Err(IndexError::Malformed { offset: at });
                    }
                    children.push((byte, child));
                }
                at += 4;
            }
        }
        if node & FLAG_VALUES != 0 {
            let count = self.u32_at(at)?;
            at += 4;
            let mut values = Vec::new();
            for _ in 0..count {
                let priority = self.u32_at(at)?;
                let (value, next) = self.str_at(at + 4)?;
                values.push((priority, String::from_utf8_lossy(value).into_owned()));
                at = next;
            }
            entries.insert(String::from_utf8_lossy(key).into_owned(), values);
        }
        for (byte, child) in children {
            key.push(byte);
            self.visit(child, key, entries)?;
            key.pop();
        }
        key.truncate(key_len);
        Ok(())
    }
}

#[cfg(test)]
#[path = "kmod_index_tests.rs"]
mod tests;
