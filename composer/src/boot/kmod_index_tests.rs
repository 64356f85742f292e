use super::*;
use proptest::prelude::*;

fn be(words: &[u32]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_be_bytes()).collect()
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// `ask`, `ate`, `on` and `one`, worked out by hand from the format:
///
/// ```text
/// root ""  ─a─ node "" ─s─ "k" [x]
///          │           └t─ "e" [y]
///          └o─ "n" [z] ─e─ "" [a, b]
/// ```
#[test]
fn golden_small_index() {
    let mut index = IndexBuilder::new();
    index.insert("one", "b", 5).unwrap();
    index.insert("ask", "x", 1).unwrap();
    index.insert("on", "z", 3).unwrap();
    index.insert("ate", "y", 2).unwrap();
    index.insert("one", "a", 4).unwrap();
    let bytes = index.to_bytes().unwrap();

    let mut root_children = vec![0u32; 15]; // 'a'..='o'
    root_children[0] = 0x2000_0024; // node "a" at 36, children
    root_children[14] = 0xE000_003E; // node "o" at 62, prefix + children + values
    let expected = cat(&[
        &be(&[0xB007_F457, 0x0002_0001, 0x2000_0050]), // root at 80, children
        // 12: "ask" leaf: prefix "k", one value.
        b"k\0",
        &be(&[1, 1]),
        b"x\0",
        // 24: "ate" leaf.
        b"e\0",
        &be(&[1, 2]),
        b"y\0",
        // 36: "a": children 's'..='t'.
        b"st",
        &be(&[0xC000_000C, 0xC000_0018]),
        // 46: "one": values only, in priority order.
        &be(&[2, 4]),
        b"a\0",
        &be(&[5]),
        b"b\0",
        // 62: "on": prefix "n", child 'e', one value.
        b"n\0ee",
        &be(&[0x4000_002E, 1, 3]),
        b"z\0",
        // 80: root: children 'a'..='o'.
        b"ao",
        &be(&root_children),
    ]);
    assert_eq!(bytes, expected);
}

#[test]
fn an_empty_index_is_a_header_and_an_empty_root() {
    let bytes = IndexBuilder::new().to_bytes().unwrap();
    assert_eq!(bytes, be(&[MAGIC, VERSION, 12]));
    assert!(read_index(&bytes).unwrap().is_empty());
}

#[test]
fn values_are_sorted_by_priority_then_insertion_and_deduplicated() {
    let mut index = IndexBuilder::new();
    for (value, priority) in [("c", 7), ("a", 9), ("b", 7), ("d", 1), ("a", 3), ("d", 8)] {
        index.insert("pci:v*", value, priority).unwrap();
    }
    let entries = read_index(&index.to_bytes().unwrap()).unwrap();
    assert_eq!(
        entries["pci:v*"],
        [
            (1, "d".to_owned()),
            (3, "a".to_owned()),
            (7, "c".to_owned()),
            (7, "b".to_owned())
        ]
    );
}

#[test]
fn keys_that_are_prefixes_of_others_keep_their_own_values() {
    let mut index = IndexBuilder::new();
    let keys = [
        "virtio",
        "virtio_blk",
        "virtio_pci",
        "virtio_pci_legacy_dev",
        "v",
        "",
    ];
    for (n, key) in keys.iter().enumerate() {
        index
            .insert(key, &format!("value-of-{key}"), n as u32)
            .unwrap();
    }
    let entries = read_index(&index.to_bytes().unwrap()).unwrap();
    assert_eq!(entries.len(), keys.len());
    for (n, key) in keys.iter().enumerate() {
        assert_eq!(entries[*key], [(n as u32, format!("value-of-{key}"))]);
    }
}

#[test]
fn a_shared_prefix_below_the_root_is_stored_once() {
    let mut index = IndexBuilder::new();
    index.insert("symbol:nft_do_chain", "nf_tables", 0).unwrap();
    index
        .insert("symbol:nft_register_expr", "nf_tables", 0)
        .unwrap();
    let bytes = index.to_bytes().unwrap();
    // The root's prefix is empty (as depmod writes it); its one child holds
    // "ymbol:nft_" once, then splits on 'd'/'r'.
    assert_eq!(
        bytes
            .windows(b"ymbol:nft_\0".len())
            .filter(|w| w == b"ymbol:nft_\0")
            .count(),
        1
    );
    let root = u32::from_be_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    assert_eq!(root & 0xF000_0000, FLAG_CHILDREN);
}

#[test]
fn output_does_not_depend_on_insertion_order() {
    let entries = [("b", "1", 2), ("a", "2", 1), ("ab", "3", 0), ("a", "4", 1)];
    let mut forward = IndexBuilder::new();
    let mut backward = IndexBuilder::new();
    for (k, v, p) in entries {
        forward.insert(k, v, p).unwrap();
    }
    // Keys in another order; the two values of "a" (equal priority) in the same order.
    for (k, v, p) in [entries[2], entries[0], entries[1], entries[3]] {
        backward.insert(k, v, p).unwrap();
    }
    assert_eq!(forward.to_bytes().unwrap(), backward.to_bytes().unwrap());
}

#[test]
fn non_ascii_and_nul_are_rejected() {
    let mut index = IndexBuilder::new();
    let err = index.insert("alias:é", "m", 0).unwrap_err();
    assert_eq!(
        err.to_string(),
        "module index: `alias:é` has a byte kmod cannot index (only 7-bit ASCII without NUL)"
    );
    assert!(matches!(
        index.insert("k", "a\0b", 0),
        Err(IndexError::BadByte { .. })
    ));
    assert!(index.is_empty());
}

#[test]
fn reading_rejects_other_files_and_truncation() {
    assert!(matches!(
        read_index(b"# Aliases extracted from modules themselves.\n"),
        Err(IndexError::BadHeader { .. })
    ));
    let mut index = IndexBuilder::new();
    index.insert("fuse", "kernel/fs/fuse/fuse.ko:", 0).unwrap();
    let bytes = index.to_bytes().unwrap();
    for len in [4, 11, bytes.len() - 1] {
        assert!(read_index(&bytes[..len]).is_err(), "length {len}");
    }
    // A child pointing at or after its parent would loop.
    let mut looping = bytes.clone();
    let root_at =
        (u32::from_be_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) & OFFSET_MASK) as usize;
    looping[root_at + 2..root_at + 6].copy_from_slice(&bytes[8..12]);
    assert!(matches!(
        read_index(&looping),
        Err(IndexError::Malformed { .. })
    ));
}

proptest! {
    #[test]
    fn what_is_written_reads_back(
        entries in proptest::collection::vec(
            ("[a-c_*:-]{0,6}", "[ -~]{0,8}", 0u32..4),
            0..40,
        )
    ) {
        let mut index = IndexBuilder::new();
        let mut expected: BTreeMap<String, Vec<(u32, String)>> = BTreeMap::new();
        for (key, value, priority) in &entries {
            index.insert(key, value, *priority).unwrap();
            let values = expected.entry(key.clone()).or_default();
            match values.iter_mut().find(|(_, v)| v == value) {
                Some(v) => v.0 = v.0.min(*priority),
                None => values.push((*priority, value.clone())),
            }
        }
        for values in expected.values_mut() {
            values.sort_by_key(|(p, _)| *p);
        }
        let bytes = index.to_bytes().unwrap();
        prop_assert_eq!(read_index(&bytes).unwrap(), expected);
        prop_assert_eq!(index.to_bytes().unwrap(), bytes);
    }
}
