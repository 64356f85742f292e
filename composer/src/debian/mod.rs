//! Debian packages: the lock file, resolving with a private apt, verified
//! downloads into a shared cache, and safe unpacking into store objects.
//!
//! - `control.rs`: deb822 paragraphs and relationship fields.
//! - `lock.rs`: `imago.lock` (pinned versions, sizes, SHA-256, dependencies).
//! - `apt.rs`: apt in a private state directory (never the host's).
//! - `index.rs`: the names in the package lists, checked before resolving.
//! - `archive.rs`: Debian's archives, their mirrors, snapshot times.
//! - `platform.rs`: the release and architecture a lock is for.
//! - `fetch/`: the download cache, filled by hash from an ordered list of
//!   sources (package caches, mirrors, snapshot.debian.org) and verified
//!   against the lock while the bytes stream.
//! - `deb.rs` / `unpack.rs`: the .deb container and safe extraction, with
//!   `names.rs` (entry names, merged /usr) and `dirfd.rs` (descriptor-based
//!   file-system access).
//! - `builder.rs`: the `deb` and `deb-file` builders.
//!
//! docs/packages.md describes the formats and rules for users.

pub mod apt;
pub mod archive;
pub mod builder;
pub mod components;
pub mod control;
pub mod deb;
mod dirfd;
pub mod fetch;
pub mod index;
pub mod lock;
pub mod names;
pub mod pins;
pub mod platform;
pub mod rule;
pub mod unpack;
