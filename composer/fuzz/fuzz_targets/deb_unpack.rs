//! Fuzzes the .deb unpacker end to end: the input is a whole .deb (`ar`
//! framing, control and data tar streams, each plain, gzip, xz or zstd),
//! unpacked by `imago::debian::unpack::unpack_deb` with small limits into a
//! fresh directory beside a canary directory. Invariants:
//!
//! - it never panics and never runs away (the limits bound every stream);
//! - nothing is written outside the output directory: the canary stays
//!   empty and nothing else appears beside the output;
//! - a success holds only what the limits allow: directories, regular files
//!   and symlinks (no devices, FIFOs or sockets), no setuid/setgid bit, at
//!   most `max_entries` entries and `max_bytes` bytes of files, and the
//!   control metadata under `.imago/deb`;
//! - an error leaves no output: the partial tree never holds the metadata
//!   that marks a finished unpack (`.imago/deb/`, written last), and the
//!   builders' cleanup (`builder::remove_tree`) removes it entirely.
#![no_main]

use imago::debian::builder::remove_tree;
use imago::debian::unpack::{Limits, unpack_deb_sized};
use libfuzzer_sys::fuzz_target;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

const LIMITS: Limits = Limits {
    max_bytes: 1 << 20,
    max_entries: 256,
    max_depth: 32,
    max_control_bytes: 64 << 10,
    max_name_bytes: 64 << 10,
    allow_case_only_collisions: false,
    xz_check: true,
};

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let canary = dir.path().join("canary");
    std::fs::create_dir(&canary).expect("the canary directory");
    let out = dir.path().join("out");
    // Half the inputs tell the unpacker their length, as the builders can.
    let len = (data.len() % 2 == 0).then_some(data.len() as u64);
    let result = unpack_deb_sized(data, len, "fuzz", &out, &LIMITS);
    assert_eq!(
        std::fs::read_dir(&canary).expect("the canary").count(),
        0,
        "something was written into the canary directory"
    );
    let mut beside: Vec<_> = std::fs::read_dir(dir.path())
        .expect("the test directory")
        .map(|e| e.expect("an entry").file_name())
        .collect();
    beside.sort();
    assert!(
        beside == ["canary"] || beside == ["canary", "out"],
        "written beside the output: {beside:?}"
    );
    match result {
        Ok(summary) => {
            assert!(summary.entries <= LIMITS.max_entries, "{summary:?}");
            assert!(summary.bytes <= LIMITS.max_bytes, "{summary:?}");
            let (entries, bytes) = check_tree(&out);
            // Each entry may imply its parent directories; `.imago/deb`
            // and its `setuid` list come on top.
            let max_depth = LIMITS.max_depth as u64;
            assert!(
                entries <= LIMITS.max_entries * (max_depth + 1) + 3,
                "{entries} entries"
            );
            assert!(
                bytes <= LIMITS.max_bytes + LIMITS.max_control_bytes + (64 << 10),
                "{bytes} bytes"
            );
            assert!(
                out.join(".imago/deb").is_dir(),
                "no metadata after a success"
            );
        }
        Err(e) => {
            let shown = e.to_string();
            assert!(shown.contains("package `fuzz`"), "{shown}");
            assert!(
                !out.join(".imago").exists(),
                "a failed unpack left its metadata: {shown}"
            );
        }
    }
    remove_tree(&out).expect("removing the output");
    assert!(!out.exists());
});

/// Walks the output without following symlinks; returns the number of
/// entries and the bytes of regular files (each inode once: hard links
/// share their data). Every entry must be a directory, a regular file
/// without setuid/setgid bits, or a symlink.
fn check_tree(root: &Path) -> (u64, u64) {
    let (mut entries, mut bytes) = (0u64, 0u64);
    let mut inodes = std::collections::HashSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("a directory of the output") {
            let entry = entry.expect("an entry");
            let meta = std::fs::symlink_metadata(entry.path()).expect("its metadata");
            let kind = meta.file_type();
            entries += 1;
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                assert_eq!(
                    meta.mode() & 0o6000,
                    0,
                    "{:?} keeps a setuid bit",
                    entry.path()
                );
                if inodes.insert((meta.dev(), meta.ino())) {
                    bytes += meta.len();
                }
            } else {
                assert!(
                    kind.is_symlink()
                        && !kind.is_block_device()
                        && !kind.is_char_device()
                        && !kind.is_fifo()
                        && !kind.is_socket(),
                    "{:?} is {kind:?}",
                    entry.path()
                );
            }
        }
    }
    (entries, bytes)
}
