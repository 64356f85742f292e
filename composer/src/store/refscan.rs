//! Finding candidate references in an object's bytes.
//!
//! A reference is the hash part of a store path: [`HASH_LEN`] characters of
//! Nix's base-32 alphabet. Rather than match each candidate (an automaton
//! over all of them slows as they grow in number: a profile has one per
//! package), the scan looks for windows of [`HASH_LEN`] alphabet characters
//! and asks a set whether each is a candidate. In binary data almost every
//! window holds a byte outside the alphabet; checking a window from its end
//! finds the last such byte and skips past it, so most bytes are never
//! looked at. Nix scans for references the same way.
//!
//! Bytes arrive in chunks (files are read 1 MiB at a time); the last
//! `HASH_LEN - 1` bytes of a chunk are kept so that a hash split across two
//! chunks is found. A hash never spans two files or symlink targets:
//! [`Scanner::reset`] starts a new one.

use super::path::{HASH_LEN, NIX_BASE32_ALPHABET, StorePath};
use std::collections::{BTreeSet, HashMap};

type Hash = [u8; HASH_LEN];

/// Which bytes are in the alphabet.
const IN_ALPHABET: [bool; 256] = {
    let mut table = [false; 256];
    let alphabet = NIX_BASE32_ALPHABET.as_bytes();
    let mut i = 0;
    while i < alphabet.len() {
        table[alphabet[i] as usize] = true;
        i += 1;
    }
    table
};

/// Finds the hash parts of candidate references in byte chunks.
pub(crate) struct Scanner {
    /// Each candidate's hash part and its index in `candidates`.
    hashes: HashMap<Hash, usize>,
    candidates: Vec<StorePath>,
    found: Vec<bool>,
    tail: Vec<u8>,
    joint: Vec<u8>,
}

impl Scanner {
    pub(crate) fn new(candidates: &[StorePath]) -> Self {
        let mut candidates: Vec<StorePath> = candidates.to_vec();
        candidates.sort();
        candidates.dedup();
        let hashes = candidates
            .iter()
            .enumerate()
            .filter_map(|(i, c)| Some((Hash::try_from(c.hash_part().as_bytes()).ok()?, i)))
            .collect();
        let found = vec![false; candidates.len()];
        Scanner {
            hashes,
            candidates,
            found,
            tail: Vec::with_capacity(HASH_LEN),
            joint: Vec::with_capacity(2 * HASH_LEN),
        }
    }

    /// Starts a new file or symlink target: a hash cannot span two.
    pub(crate) fn reset(&mut self) {
        self.tail.clear();
    }

    pub(crate) fn feed(&mut self, chunk: &[u8]) {
        if self.hashes.is_empty() {
            return;
        }
        let keep = HASH_LEN - 1;
        if !self.tail.is_empty() {
            // Occurrences that straddle the previous chunk and this one.
            self.joint.clear();
            self.joint.extend_from_slice(&self.tail);
            self.joint
                .extend_from_slice(&chunk[..chunk.len().min(keep)]);
            search(&self.joint, &self.hashes, &mut self.found);
        }
        search(chunk, &self.hashes, &mut self.found);
        // Keep the last HASH_LEN-1 bytes seen for the next chunk.
        if chunk.len() >= keep {
            self.tail.clear();
            self.tail.extend_from_slice(&chunk[chunk.len() - keep..]);
        } else {
            self.tail.extend_from_slice(chunk);
            let excess = self.tail.len().saturating_sub(keep);
            self.tail.drain(..excess);
        }
    }

    pub(crate) fn into_found(self) -> BTreeSet<StorePath> {
        self.candidates
            .into_iter()
            .zip(self.found)
            .filter_map(|(c, f)| f.then_some(c))
            .collect()
    }
}

/// Marks in `found` every candidate of `hashes` that occurs in `bytes`.
fn search(bytes: &[u8], hashes: &HashMap<Hash, usize>, found: &mut [bool]) {
    let n = bytes.len();
    let mut start = 0;
    while start + HASH_LEN <= n {
        let window = &bytes[start..start + HASH_LEN];
        // The last byte outside the alphabet: no hash can start at or
        // before it.
        if let Some(bad) = window.iter().rposition(|&b| !IN_ALPHABET[usize::from(b)]) {
            start += bad + 1;
            continue;
        }
        // A run of alphabet bytes: slide along it one byte at a time, each
        // step checking only the byte that enters the window.
        loop {
            if let Some(&i) = hashes.get(&bytes[start..start + HASH_LEN]) {
                found[i] = true;
            }
            let next = start + HASH_LEN;
            if next < n && IN_ALPHABET[usize::from(bytes[next])] {
                start += 1;
            } else {
                start = next + 1;
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn path(hash: &str) -> StorePath {
        format!("{hash}-x").parse().unwrap()
    }

    /// Every candidate whose hash part occurs anywhere in `bytes`, by brute
    /// force.
    fn naive(bytes: &[u8], candidates: &[StorePath]) -> BTreeSet<StorePath> {
        candidates
            .iter()
            .filter(|c| {
                bytes
                    .windows(HASH_LEN)
                    .any(|w| w == c.hash_part().as_bytes())
            })
            .cloned()
            .collect()
    }

    fn scan_in_chunks(
        bytes: &[u8],
        cuts: &[usize],
        candidates: &[StorePath],
    ) -> BTreeSet<StorePath> {
        let mut scanner = Scanner::new(candidates);
        let mut at = 0;
        for &cut in cuts {
            let cut = cut.min(bytes.len()).max(at);
            scanner.feed(&bytes[at..cut]);
            at = cut;
        }
        scanner.feed(&bytes[at..]);
        scanner.into_found()
    }

    #[test]
    fn finds_overlapping_hashes_and_hashes_inside_longer_runs() {
        // b's hash starts inside a's; both sit in a longer alphabet run.
        let a = path("0123456789abcdfghijklmnpqrsvwxyz");
        let b = path("9abcdfghijklmnpqrsvwxyz012345678");
        let c = path("zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz");
        let text = b"xx/0123456789abcdfghijklmnpqrsvwxyz012345678-name";
        assert_eq!(
            scan_in_chunks(text, &[], &[a.clone(), b.clone(), c]),
            BTreeSet::from([a, b])
        );
    }

    #[test]
    fn a_hash_split_by_reset_is_not_found() {
        let a = path("0123456789abcdfghijklmnpqrsvwxyz");
        let mut scanner = Scanner::new(std::slice::from_ref(&a));
        scanner.feed(b"0123456789abcdfg");
        scanner.reset();
        scanner.feed(b"hijklmnpqrsvwxyz");
        assert!(scanner.into_found().is_empty());
    }

    proptest! {
        /// Random bytes drawn mostly from the alphabet (so runs and near
        /// misses are common), candidates planted at random places, fed in
        /// random chunks: the scan finds exactly what brute force finds.
        #[test]
        fn matches_brute_force(
            noise in proptest::collection::vec(
                prop_oneof![
                    3 => proptest::sample::select(NIX_BASE32_ALPHABET.as_bytes().to_vec()),
                    1 => any::<u8>(),
                ],
                0..400,
            ),
            hashes in proptest::collection::vec("[0-9a-dfgh-np-sv-z]{32}", 1..6),
            plants in proptest::collection::vec((0usize..400, 0usize..6), 0..6),
            cuts in proptest::collection::vec(0usize..500, 0..8),
        ) {
            let candidates: Vec<StorePath> = hashes.iter().map(|h| path(h)).collect();
            let mut bytes = noise;
            for (at, which) in plants {
                let hash = hashes[which % hashes.len()].as_bytes();
                let at = at.min(bytes.len());
                bytes.splice(at..at, hash.iter().copied());
            }
            let mut cuts = cuts;
            cuts.sort_unstable();
            prop_assert_eq!(
                scan_in_chunks(&bytes, &cuts, &candidates),
                naive(&bytes, &candidates)
            );
        }
    }
}
