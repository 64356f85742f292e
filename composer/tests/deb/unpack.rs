//! Unpacking fixture .debs: every compression, merged /usr, metadata, and
//! each hostile-archive case of the reliability catalogue (items 1–13).

// Test helpers outside #[test] functions panic on failure too.
#![allow(clippy::unwrap_used)]

use crate::support::deb as support;

use imago::debian::unpack::{Limits, Rule, Summary, UnpackError, unpack_deb};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use support::{Comp, Entry, deb, deb_raw, hello_entries, tar, tar_without_end};

const PKG: &str = "hello";

struct Run {
    tmp: tempfile::TempDir,
    out: PathBuf,
    result: Result<Summary, UnpackError>,
}

fn run_with(bytes: &[u8], limits: Limits) -> Run {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let result = unpack_deb(bytes, PKG, &out, &limits);
    Run { tmp, out, result }
}

fn run(bytes: &[u8]) -> Run {
    run_with(bytes, Limits::default())
}

/// Asserts a rejection naming the package, the entry and the rule, and that
/// nothing but `out` exists beside it.
fn rejected(r: &Run, entry: &str, rule: impl Fn(&Rule) -> bool) -> String {
    let err = match &r.result {
        Ok(_) => panic!("expected a rejection of `{entry}`, got success"),
        Err(e) => e,
    };
    let msg = err.to_string();
    assert!(msg.contains(&format!("package `{PKG}`")), "{msg}");
    assert!(msg.contains(entry), "entry `{entry}` not named in: {msg}");
    let r2 = err
        .rule()
        .unwrap_or_else(|| panic!("not a rule violation: {msg}"));
    assert!(rule(r2), "wrong rule: {msg}");
    assert_only_out(r.tmp.path());
    msg
}

fn assert_only_out(dir: &Path) {
    let names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != "out" && n != "outside")
        .collect();
    assert!(names.is_empty(), "files outside out: {names:?}");
}

fn read(out: &Path, rel: &str) -> String {
    std::fs::read_to_string(out.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn check_hello(out: &Path) {
    assert_eq!(read(out, "usr/bin/hello"), "#!/bin/sh\necho hello\n");
    assert!(
        !out.join("bin").exists(),
        "bin/ must be merged into usr/bin"
    );
    let mode = std::fs::metadata(out.join("usr/bin/hello"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);
    assert_eq!(
        std::fs::read_link(out.join("usr/share/doc/hello/README")).unwrap(),
        PathBuf::from("copyright")
    );
    let a = std::fs::metadata(out.join("usr/share/doc/hello/copyright")).unwrap();
    let b = std::fs::metadata(out.join("usr/share/doc/hello/COPYING")).unwrap();
    assert_eq!(a.ino(), b.ino(), "hard link must share the inode");
    assert!(read(out, ".imago/deb/control").contains("Package: hello"));
    assert!(read(out, ".imago/deb/md5sums").contains("usr/bin/hello"));
    assert_eq!(read(out, ".imago/deb/postinst"), "#!/bin/sh\nexit 0\n");
    let postinst = std::fs::metadata(out.join(".imago/deb/postinst")).unwrap();
    assert_eq!(
        postinst.permissions().mode() & 0o111,
        0,
        "scripts are data, not executables"
    );
}

#[test]
fn unpacks_uncompressed() {
    let r = run(&deb(PKG, Comp::None, &hello_entries()));
    let s = r.result.as_ref().unwrap();
    assert!(s.control.as_deref().unwrap().contains("Version: 1.0-1"));
    check_hello(&r.out);
}

#[test]
fn unpacks_gzip() {
    let r = run(&deb(PKG, Comp::Gz, &hello_entries()));
    r.result.as_ref().unwrap();
    check_hello(&r.out);
}

#[test]
fn unpacks_xz() {
    let r = run(&deb(PKG, Comp::Xz, &hello_entries()));
    r.result.as_ref().unwrap();
    check_hello(&r.out);
}

#[test]
fn unpacks_zstd() {
    let r = run(&deb(PKG, Comp::Zst, &hello_entries()));
    r.result.as_ref().unwrap();
    check_hello(&r.out);
}

#[test]
fn merged_usr_maps_every_top_level_library_dir() {
    let mut entries = vec![Entry::dir("./")];
    for d in ["bin", "sbin", "lib", "lib32", "lib64", "libx32"] {
        entries.push(Entry::dir(format!("./{d}/")));
        entries.push(Entry::file(format!("./{d}/f-{d}"), d));
    }
    entries.push(Entry::dir("./usr/"));
    entries.push(Entry::dir("./usr/bin/"));
    entries.push(Entry::file("./usr/bin/other", "x"));
    entries.push(Entry::file("./libfoo", "not a merged dir"));
    let r = run(&deb(PKG, Comp::Gz, &entries));
    r.result.as_ref().unwrap();
    for d in ["bin", "sbin", "lib", "lib32", "lib64", "libx32"] {
        assert_eq!(read(&r.out, &format!("usr/{d}/f-{d}")), d);
        assert!(!r.out.join(d).exists());
    }
    assert_eq!(read(&r.out, "usr/bin/other"), "x");
    assert_eq!(read(&r.out, "libfoo"), "not a merged dir");
}

#[test]
fn merged_usr_collision_names_both_entries() {
    let entries = [
        Entry::file("./bin/ls", "a"),
        Entry::file("./usr/bin/ls", "b"),
    ];
    let r = run(&deb(PKG, Comp::None, &entries));
    let msg = rejected(
        &r,
        "./usr/bin/ls",
        |r| matches!(r, Rule::UsrMergeCollision(o) if o == "./bin/ls"),
    );
    assert!(msg.contains("./bin/ls"), "{msg}");
}

/// trixie's base-files ships the merge as links (`bin -> usr/bin`): they
/// are what the unpacked tree already is, so they are dropped, before or
/// after the directory they stand for; a link anywhere else is not.
#[test]
fn links_that_are_the_merge_itself_are_dropped() {
    let entries = [
        Entry::dir("./"),
        Entry::symlink("./bin", "usr/bin"),
        Entry::symlink("./lib64", "/usr/lib64"),
        Entry::dir("./usr/"),
        Entry::dir("./usr/bin/"),
        Entry::file("./usr/bin/sh", "x"),
        Entry::symlink("./sbin", "usr/sbin"),
        Entry::file("./sbin/init", "y"),
    ];
    let r = run(&deb(PKG, Comp::None, &entries));
    r.result.as_ref().unwrap();
    assert_eq!(read(&r.out, "usr/bin/sh"), "x");
    assert_eq!(read(&r.out, "usr/sbin/init"), "y");
    for top in ["bin", "sbin", "lib64"] {
        assert!(r.out.join(top).symlink_metadata().is_err(), "{top}");
    }
}

#[test]
fn a_merged_directory_that_links_elsewhere_still_collides() {
    let entries = [
        Entry::dir("./usr/"),
        Entry::dir("./usr/bin/"),
        Entry::symlink("./bin", "usr/sbin"),
    ];
    let r = run(&deb(PKG, Comp::None, &entries));
    rejected(
        &r,
        "./bin",
        |r| matches!(r, Rule::UsrMergeCollision(o) if o == "./usr/bin/"),
    );
}

#[test]
fn relative_symlinks_are_rewritten_for_the_merge() {
    let entries = [
        Entry::file("./usr/bin/real", "x"),
        Entry::symlink("./bin/alias", "../usr/bin/real"),
        Entry::symlink("./sbin/abs", "/usr/bin/real"),
    ];
    let r = run(&deb(PKG, Comp::None, &entries));
    r.result.as_ref().unwrap();
    assert_eq!(
        std::fs::read_link(r.out.join("usr/bin/alias")).unwrap(),
        PathBuf::from("real")
    );
    assert_eq!(read(&r.out, "usr/bin/alias"), "x");
    assert_eq!(
        std::fs::read_link(r.out.join("usr/sbin/abs")).unwrap(),
        PathBuf::from("/usr/bin/real")
    );
}

// 1. `..` components.
#[test]
fn rejects_parent_component() {
    let r = run(&deb(PKG, Comp::None, &[Entry::file("../x", "evil")]));
    rejected(&r, "../x", |r| *r == Rule::ParentComponent);
    let r = run(&deb(
        PKG,
        Comp::None,
        &[Entry::dir("./a/"), Entry::file("a/../../x", "evil")],
    ));
    rejected(&r, "a/../../x", |r| *r == Rule::ParentComponent);
}

// 2. Absolute names.
#[test]
fn rejects_absolute_path() {
    let r = run(&deb(
        PKG,
        Comp::None,
        &[Entry::file("/etc/passwd", "root::0:0")],
    ));
    rejected(&r, "/etc/passwd", |r| *r == Rule::AbsolutePath);
}

// 3. A symlink, then a file beneath it.
#[test]
fn rejects_file_under_symlink_to_parent() {
    let r = run(&deb(
        PKG,
        Comp::None,
        &[Entry::symlink("./l", ".."), Entry::file("./l/x", "evil")],
    ));
    rejected(
        &r,
        "./l/x",
        |r| matches!(r, Rule::UnderSymlink(l) if l == "l"),
    );
}

#[test]
fn rejects_file_under_symlink_to_absolute_dir() {
    let tmp_target = tempfile::tempdir().unwrap();
    let target = tmp_target.path().to_str().unwrap().to_string();
    let r = run(&deb(
        PKG,
        Comp::None,
        &[
            Entry::symlink("./l", &target),
            Entry::file("./l/sub/x", "evil"),
        ],
    ));
    rejected(&r, "./l/sub/x", |r| matches!(r, Rule::UnderSymlink(_)));
    assert_eq!(
        std::fs::read_dir(tmp_target.path()).unwrap().count(),
        0,
        "nothing created through the link"
    );
}

// 4. A symlink to a directory outside, then a directory entry of that name.
#[test]
fn rejects_directory_over_symlink() {
    let r0 = tempfile::tempdir().unwrap();
    let outside = r0.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o700)).unwrap();
    let target = outside.to_str().unwrap().to_string();
    let mut d = Entry::dir("./d/");
    d.mode = 0o777;
    let r = run(&deb(PKG, Comp::None, &[Entry::symlink("./d", &target), d]));
    rejected(&r, "./d/", |r| *r == Rule::Duplicate);
    let mode = std::fs::metadata(&outside).unwrap().permissions().mode();
    assert_eq!(
        mode & 0o777,
        0o700,
        "the outside directory's mode must not change"
    );
}

// 5. Duplicates: a link then a file of the same name, two files.
#[test]
fn rejects_file_after_symlink_of_same_name() {
    let r = run(&deb(
        PKG,
        Comp::None,
        &[
            Entry::symlink("./etc/x", "/etc/shadow"),
            Entry::file("./etc/x", "evil"),
        ],
    ));
    rejected(&r, "./etc/x", |r| *r == Rule::Duplicate);
    assert_eq!(
        std::fs::read_link(r.out.join("etc/x")).unwrap(),
        PathBuf::from("/etc/shadow")
    );
}

#[test]
fn rejects_duplicate_file() {
    let r = run(&deb(
        PKG,
        Comp::None,
        &[Entry::file("./a", "1"), Entry::file("./a", "2")],
    ));
    rejected(&r, "./a", |r| *r == Rule::Duplicate);
    assert_eq!(read(&r.out, "a"), "1", "never overwritten");
}

// 6. Hard links outside the archive's own regular files.
#[test]
fn rejects_hard_link_to_absolute_path() {
    let r = run(&deb(
        PKG,
        Comp::None,
        &[Entry::hardlink("./shadow", "/etc/shadow")],
    ));
    rejected(
        &r,
        "./shadow",
        |r| matches!(r, Rule::HardLinkTarget(t) if t == "/etc/shadow"),
    );
}

#[test]
fn rejects_hard_link_escaping_or_missing_or_not_a_file() {
    let r = run(&deb(
        PKG,
        Comp::None,
        &[Entry::hardlink("./x", "../../etc/shadow")],
    ));
    rejected(&r, "./x", |r| matches!(r, Rule::HardLinkTarget(_)));
    let r = run(&deb(
        PKG,
        Comp::None,
        &[
            Entry::hardlink("./x", "./later"),
            Entry::file("./later", "1"),
        ],
    ));
    rejected(&r, "./x", |r| matches!(r, Rule::HardLinkTarget(_)));
    let r = run(&deb(
        PKG,
        Comp::None,
        &[
            Entry::symlink("./s", "/etc/shadow"),
            Entry::hardlink("./x", "./s"),
        ],
    ));
    rejected(&r, "./x", |r| matches!(r, Rule::HardLinkTarget(_)));
    let r = run(&deb(
        PKG,
        Comp::None,
        &[Entry::dir("./d/"), Entry::hardlink("./x", "./d")],
    ));
    rejected(&r, "./x", |r| matches!(r, Rule::HardLinkTarget(_)));
}

// 7. Case and Unicode normalization.
#[test]
fn rejects_names_differing_only_in_case() {
    let r = run(&deb(
        PKG,
        Comp::None,
        &[
            Entry::file("./usr/README", "1"),
            Entry::file("./usr/readme", "2"),
        ],
    ));
    rejected(
        &r,
        "./usr/readme",
        |r| matches!(r, Rule::NameCollision(o) if o == "usr/README"),
    );
}

#[test]
fn rejects_names_differing_only_in_normalization() {
    let nfc = "./caf\u{e9}";
    let nfd = "./cafe\u{301}";
    let r = run(&deb(
        PKG,
        Comp::None,
        &[Entry::file(nfc, "1"), Entry::file(nfd, "2")],
    ));
    rejected(&r, nfd, |r| matches!(r, Rule::NameCollision(_)));
}

#[test]
fn case_only_pairs_can_be_allowed_but_normalization_pairs_never() {
    let limits = Limits {
        allow_case_only_collisions: true,
        ..Limits::default()
    };
    let r = run_with(
        &deb(
            PKG,
            Comp::None,
            &[
                Entry::file("./xt_DSCP.ko", "1"),
                Entry::file("./xt_dscp.ko", "2"),
            ],
        ),
        limits,
    );
    r.result.as_ref().unwrap();
    assert_eq!(read(&r.out, "xt_DSCP.ko"), "1");
    assert_eq!(read(&r.out, "xt_dscp.ko"), "2");
    let r = run_with(
        &deb(
            PKG,
            Comp::None,
            &[
                Entry::file("./caf\u{e9}", "1"),
                Entry::file("./cafe\u{301}", "2"),
            ],
        ),
        limits,
    );
    rejected(&r, "./cafe", |r| matches!(r, Rule::NameCollision(_)));
}

// 8. Empty names, `.`, NUL, empty components.
#[test]
fn rejects_bad_names() {
    let r = run(&deb(PKG, Comp::None, &[Entry::file("./a//b", "x")]));
    rejected(&r, "./a//b", |r| matches!(r, Rule::BadName(_)));
    let r = run(&deb(PKG, Comp::None, &[Entry::file("./a/./b", "x")]));
    rejected(&r, "./a/./b", |r| matches!(r, Rule::BadName(_)));
    let r = run(&deb(PKG, Comp::None, &[Entry::file(".", "x")]));
    rejected(&r, "`.`", |r| matches!(r, Rule::BadName(_)));
    // A NUL can only be smuggled in through a PAX path record.
    let mut e = Entry::file("./ok", "x");
    e.pax.push(("path".into(), b"./a\0b".to_vec()));
    let r = run(&deb(PKG, Comp::None, &[e]));
    rejected(
        &r,
        "./a",
        |r| matches!(r, Rule::BadName(m) if m.contains("NUL")),
    );
}

#[test]
fn rejects_empty_name() {
    let r = run(&deb(
        PKG,
        Comp::None,
        &[Entry::dir("./"), Entry::file("", "x")],
    ));
    // An all-zero name makes a block the tar reader cannot tell from data;
    // either way it must be refused.
    assert!(r.result.is_err());
    assert_only_out(r.tmp.path());
}

// 9. Deep nesting: a bounded error, no stack overflow.
#[test]
fn rejects_100000_deep_single_entry() {
    // 200 KB: refused at its GNU long-name header, before it is read.
    let name = format!("./{}x", "d/".repeat(100_000));
    let r = run(&deb(PKG, Comp::Zst, &[Entry::file(&name, "x")]));
    rejected(&r, "././@LongLink", |r| {
        matches!(r, Rule::ExtensionTooLarge { size: 200_004, .. })
    });
    // 4 KB, within the name limits: refused for its depth.
    let name = format!("./{}x", "d/".repeat(2_000));
    let r = run(&deb(PKG, Comp::Zst, &[Entry::file(&name, "x")]));
    rejected(&r, "./d/d/d", |r| *r == Rule::TooDeep(256));
}

#[test]
fn rejects_deep_chain_of_directories() {
    let mut entries = Vec::new();
    let mut path = String::from(".");
    for _ in 0..100_000 {
        path.push_str("/d");
        entries.push(Entry::dir(format!("{path}/")));
        if entries.len() > 300 {
            break;
        }
    }
    let r = run(&deb(PKG, Comp::Zst, &entries));
    rejected(&r, "/d/d/", |r| *r == Rule::TooDeep(256));
}

// 10. Truncation, padding, trailing garbage.
#[test]
fn rejects_truncated_deb() {
    for comp in Comp::ALL {
        let bytes = deb(PKG, comp, &hello_entries());
        let cut = &bytes[..bytes.len() - 700.min(bytes.len() / 3)];
        let r = run(cut);
        let err = r
            .result
            .as_ref()
            .err()
            .unwrap_or_else(|| panic!("{comp:?}: truncated deb accepted"));
        assert!(err.to_string().contains("package `hello`"), "{err}");
        assert_only_out(r.tmp.path());
    }
}

#[test]
fn rejects_tar_without_end_marker() {
    let r = run(&deb_raw(PKG, Comp::Gz, tar_without_end(&hello_entries())));
    rejected(&r, "data archive", |r| *r == Rule::Truncated);
}

#[test]
fn rejects_file_cut_short_inside_tar() {
    let mut data = tar_without_end(&[Entry::file("./big", vec![7u8; 4096])]);
    data.truncate(512 + 1000);
    let r = run(&deb_raw(PKG, Comp::None, data));
    assert!(r.result.is_err());
    let msg = r.result.as_ref().err().unwrap().to_string();
    assert!(msg.contains("truncated") || msg.contains("./big"), "{msg}");
    assert_only_out(r.tmp.path());
}

#[test]
fn rejects_non_zero_padding() {
    let mut data = tar_without_end(&[Entry::file("./f", "0123456789"), Entry::file("./g", "x")]);
    data[512 + 10] = b'X';
    data.extend_from_slice(&[0u8; 1024]);
    let r = run(&deb_raw(PKG, Comp::Gz, data));
    rejected(&r, "./f", |r| *r == Rule::NonZeroPadding);
}

#[test]
fn rejects_garbage_after_end_marker() {
    let mut data = tar(&hello_entries());
    data.extend_from_slice(b"GARBAGE!");
    let r = run(&deb_raw(PKG, Comp::Xz, data));
    rejected(&r, "data archive", |r| *r == Rule::TrailingGarbage);
}

#[test]
fn rejects_garbage_after_compressed_stream() {
    for comp in [Comp::Gz, Comp::Xz, Comp::Zst] {
        let mut data = comp.compress(&tar(&hello_entries()));
        data.extend_from_slice(b"trailing");
        let bytes = support::ar(&[
            ("debian-binary", b"2.0\n".to_vec()),
            (
                &format!("control.tar{}", comp.suffix()),
                comp.compress(&support::control_tar(PKG)),
            ),
            (&format!("data.tar{}", comp.suffix()), data),
        ]);
        let r = run(&bytes);
        let msg = r
            .result
            .as_ref()
            .err()
            .unwrap_or_else(|| panic!("{comp:?} accepted"))
            .to_string();
        assert!(
            msg.contains("package `hello`") && msg.contains("data.tar"),
            "{msg}"
        );
        assert_only_out(r.tmp.path());
    }
}

/// A .deb whose xz data member has a wrong integrity check (the CRC64 of
/// its single block, just before the stream's index).
fn deb_with_bad_xz_check() -> Vec<u8> {
    let mut data = Comp::Xz.compress(&tar(&hello_entries()));
    let len = data.len();
    let backward = u32::from_le_bytes(data[len - 8..len - 4].try_into().unwrap());
    let index_size = (backward as usize + 1) * 4;
    let check_at = len - 12 - index_size - 8;
    data[check_at] ^= 0xff;
    support::ar(&[
        ("debian-binary", b"2.0\n".to_vec()),
        (
            "control.tar.xz",
            Comp::Xz.compress(&support::control_tar(PKG)),
        ),
        ("data.tar.xz", data),
    ])
}

#[test]
fn xz_integrity_check_is_verified_unless_the_caller_opts_out() {
    let bytes = deb_with_bad_xz_check();
    let r = run(&bytes);
    let msg = r
        .result
        .as_ref()
        .expect_err("a wrong xz check was accepted")
        .to_string();
    assert!(
        msg.contains("package `hello`") && msg.contains("data"),
        "{msg}"
    );
    assert_only_out(r.tmp.path());
    // The `deb` builder opts out: it checks the whole file's SHA-256.
    let r = run_with(
        &bytes,
        Limits {
            xz_check: false,
            ..Limits::default()
        },
    );
    r.result.as_ref().unwrap();
    check_hello(&r.out);
}

#[test]
fn rejects_garbage_after_ar_members() {
    let mut bytes = deb(PKG, Comp::Gz, &hello_entries());
    bytes.extend_from_slice(b"this is not an ar header at all, really not\n");
    let r = run(&bytes);
    assert!(r.result.is_err(), "trailing garbage accepted");
    assert_only_out(r.tmp.path());
}

#[test]
fn rejects_malformed_containers() {
    let not_ar = run(b"just some text");
    assert!(
        not_ar
            .result
            .unwrap_err()
            .to_string()
            .contains("package `hello`")
    );
    let no_data = support::ar(&[
        ("debian-binary", b"2.0\n".to_vec()),
        ("control.tar", support::control_tar(PKG)),
    ]);
    assert!(
        run(&no_data)
            .result
            .unwrap_err()
            .to_string()
            .contains("no data.tar")
    );
    let wrong_first = support::ar(&[("control.tar", support::control_tar(PKG))]);
    assert!(
        run(&wrong_first)
            .result
            .unwrap_err()
            .to_string()
            .contains("debian-binary")
    );
    let bad_version = support::ar(&[("debian-binary", b"3.0\n".to_vec())]);
    assert!(
        run(&bad_version)
            .result
            .unwrap_err()
            .to_string()
            .contains("format version")
    );
}

// 11. PAX size counts, including against quotas.
#[test]
fn pax_size_overrides_ustar_size_and_counts_against_the_quota() {
    let mut e = Entry::file("./f", vec![b'a'; 600]);
    e.ustar_size = Some(1);
    e.pax.push(("size".into(), b"600".to_vec()));
    let r = run(&deb(
        PKG,
        Comp::None,
        &[e.clone(), Entry::file("./g", "after")],
    ));
    r.result.as_ref().unwrap();
    assert_eq!(std::fs::metadata(r.out.join("f")).unwrap().len(), 600);
    assert_eq!(read(&r.out, "g"), "after");
    let limits = Limits {
        max_bytes: 500,
        ..Limits::default()
    };
    let r = run_with(&deb(PKG, Comp::None, &[e]), limits);
    rejected(&r, "./f", |r| *r == Rule::TotalBytes(500));
    // A huge PAX size is refused before any byte is read.
    let mut huge = Entry::file("./huge", "x");
    huge.pax.push(("size".into(), b"9000000000".to_vec()));
    let r = run(&deb(PKG, Comp::None, &[huge]));
    rejected(&r, "./huge", |r| matches!(r, Rule::TotalBytes(_)));
}

// 12. Decompression bombs: bytes and entry-count caps.
#[test]
fn stops_compression_bombs_by_total_bytes() {
    let limits = Limits {
        max_bytes: 1 << 20,
        ..Limits::default()
    };
    for comp in Comp::ALL {
        let entries = [Entry::file("./zeros", vec![0u8; 4 << 20])];
        let r = run_with(&deb(PKG, comp, &entries), limits);
        rejected(&r, "./zeros", |r| *r == Rule::TotalBytes(1 << 20));
    }
}

#[test]
fn stops_archives_with_too_many_entries() {
    let limits = Limits {
        max_entries: 1000,
        ..Limits::default()
    };
    let entries: Vec<Entry> = (0..1500)
        .map(|i| Entry::file(format!("./f{i}"), ""))
        .collect();
    let r = run_with(&deb(PKG, Comp::Zst, &entries), limits);
    rejected(&r, "./f", |r| *r == Rule::EntryCount(1000));
}

// 13. Onto an existing path or through a symlinked destination.
#[test]
fn refuses_existing_or_symlinked_destination() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let err = unpack_deb(
        &deb(PKG, Comp::None, &hello_entries())[..],
        PKG,
        &out,
        &Limits::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("creating"), "{err}");
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0);
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
    assert!(
        unpack_deb(
            &deb(PKG, Comp::None, &hello_entries())[..],
            PKG,
            &link,
            &Limits::default()
        )
        .is_err()
    );
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
}

#[test]
fn rejects_device_nodes_fifos_and_unknown_types() {
    for (kind, what) in [
        (b'3', "character device"),
        (b'4', "block device"),
        (b'6', "fifo"),
    ] {
        let r = run(&deb(PKG, Comp::None, &[Entry::special("./dev/x", kind)]));
        rejected(
            &r,
            "./dev/x",
            |r| matches!(r, Rule::SpecialFile(w) if *w == what),
        );
    }
}

#[test]
fn setuid_outside_the_allow_list_is_rejected() {
    let r = run(&deb(
        PKG,
        Comp::None,
        &[Entry::file("./usr/bin/evil", "x").mode(0o4755)],
    ));
    rejected(&r, "./usr/bin/evil", |r| *r == Rule::Setuid(0o4755));
}

#[test]
fn a_setuid_file_whose_owner_is_not_an_account_name_is_rejected() {
    // The names become a line of .imago/deb/setuid and a wrapper's owner.
    for (uname, gname, bad) in [
        (
            "root\n4755 root:root usr/bin/evil",
            "root",
            "root\n4755 root:root usr/bin/evil",
        ),
        ("root", "shadow group", "shadow group"),
        ("Root", "root", "Root"),
        ("root", "", ""),
    ] {
        let mut su = Entry::file("./bin/su", "x").mode(0o4755);
        su.uname = uname.into();
        su.gname = gname.into();
        let r = run(&deb(PKG, Comp::None, &[su]));
        rejected(&r, "./bin/su", |r| *r == Rule::SetuidOwner(bad.into()));
    }
}

#[test]
fn allowed_setuid_files_are_recorded() {
    let mut su = Entry::file("./bin/su", "x").mode(0o4755);
    su.uname = "root".into();
    let mut chage = Entry::file("./usr/bin/chage", "y").mode(0o2755);
    chage.gname = "shadow".into();
    let r = run(&deb(PKG, Comp::None, &[su, chage]));
    let s = r.result.as_ref().unwrap();
    assert_eq!(s.setuid.len(), 2);
    assert_eq!(
        read(&r.out, ".imago/deb/setuid"),
        "4755 root:root usr/bin/su\n2755 root:shadow usr/bin/chage\n"
    );
    let mode = std::fs::metadata(r.out.join("usr/bin/su"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o7777,
        0o755,
        "the bit itself is not kept in the object"
    );
}

#[test]
fn rejects_reserved_metadata_dir_and_bad_control_members() {
    let r = run(&deb(
        PKG,
        Comp::None,
        &[Entry::file("./.imago/deb/control", "fake")],
    ));
    rejected(&r, "./.imago/deb/control", |r| *r == Rule::Reserved);
    let control = tar(&[
        Entry::file("./control", "Package: x\n"),
        Entry::file("./../../escape", "x"),
    ]);
    let bytes = support::ar(&[
        ("debian-binary", b"2.0\n".to_vec()),
        ("control.tar", control),
        ("data.tar", tar(&hello_entries())),
    ]);
    let r = run(&bytes);
    rejected(&r, "./../../escape", |r| *r == Rule::BadControlMember);
}

#[test]
fn read_only_directories_get_their_mode_at_the_end() {
    let entries = [Entry::dir("./ro/").mode(0o555), Entry::file("./ro/f", "x")];
    let r = run(&deb(PKG, Comp::None, &entries));
    r.result.as_ref().unwrap();
    let mode = std::fs::metadata(r.out.join("ro"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o555);
    assert_eq!(read(&r.out, "ro/f"), "x");
}

// 29. Headers that ask for more than the caps: refused from the header (the
// huge cases, in a memory-limited child, are in deb_hostile.rs).
#[test]
fn rejects_long_symlink_targets_and_too_many_name_bytes() {
    let r = run(&deb(
        PKG,
        Comp::None,
        &[Entry::symlink("./l", "t".repeat(5000))],
    ));
    rejected(&r, "./l", |r| *r == Rule::NameTooLong(4096));
    let r = run(&deb(
        PKG,
        Comp::None,
        &[Entry::file(format!("./{}", "n".repeat(4097)), "x")],
    ));
    rejected(&r, "./nnn", |r| *r == Rule::NameTooLong(4096));
    let limits = Limits {
        max_name_bytes: 100,
        ..Limits::default()
    };
    let entries: Vec<Entry> = (0..20)
        .map(|i| Entry::file(format!("./file-{i:02}"), ""))
        .collect();
    let r = run_with(&deb(PKG, Comp::Gz, &entries), limits);
    rejected(&r, "./file-", |r| *r == Rule::NameBytes(100));
}

#[test]
fn rejects_malformed_extension_headers() {
    // Two long names for one entry.
    let mut data = Vec::new();
    for _ in 0..2 {
        let name = b"./a-long-name\0";
        data.extend_from_slice(&support::tar_header(
            b"././@LongLink",
            b'L',
            name.len() as u64,
        ));
        let mut block = name.to_vec();
        block.resize(512, 0);
        data.extend_from_slice(&block);
    }
    data.extend_from_slice(&tar(&[Entry::file("./f", "x")]));
    let r = run(&deb_raw(PKG, Comp::None, data));
    rejected(&r, "././@LongLink", |r| matches!(r, Rule::BadExtension(_)));
    // A PAX header whose record claims more than it holds.
    let mut e = Entry::file("./f", "x");
    e.pax.push(("path".into(), b"./g".to_vec()));
    let mut data = tar(&[e]);
    data[512] = b'9'; // "12 path=./g\n" becomes "92 path=./g\n"
    let r = run(&deb_raw(PKG, Comp::None, data));
    rejected(&r, "PaxHeader", |r| matches!(r, Rule::BadExtension(_)));
    // An extension header with no entry after it.
    let mut data = support::tar_header(b"././@LongLink", b'L', 4).to_vec();
    let mut block = b"abc\0".to_vec();
    block.resize(512, 0);
    data.extend_from_slice(&block);
    data.extend_from_slice(&[0u8; 1024]);
    let r = run(&deb_raw(PKG, Comp::None, data));
    rejected(&r, "data archive", |r| matches!(r, Rule::BadExtension(_)));
    // A header whose checksum does not match.
    let mut data = tar(&[Entry::file("./f", "x")]);
    data[0] = b'X';
    let r = run(&deb_raw(PKG, Comp::None, data));
    rejected(&r, "X/f", |r| *r == Rule::BadHeader("checksum mismatch"));
}

// 12. Every byte of a decompressed stream counts: data that directories or
// links carry, and zeros after the end-of-archive marker.
#[test]
fn data_of_any_entry_and_trailing_zeros_are_bounded() {
    let limits = Limits {
        max_bytes: 1000,
        ..Limits::default()
    };
    let mut dir = Entry::dir("./d/");
    dir.data = vec![0u8; 4000];
    let r = run_with(&deb(PKG, Comp::Zst, &[dir]), limits);
    rejected(&r, "./d/", |r| *r == Rule::TotalBytes(1000));
    let mut data = tar(&hello_entries());
    data.resize(data.len() + (2 << 20), 0);
    let r = run(&deb_raw(PKG, Comp::Zst, data));
    rejected(&r, "data archive", |r| *r == Rule::TrailingBytes(1 << 20));
    // A tar's usual record padding (to 10 KiB) is fine.
    let mut data = tar(&hello_entries());
    data.resize(data.len().div_ceil(10240) * 10240, 0);
    let r = run(&deb_raw(PKG, Comp::Gz, data));
    r.result.as_ref().unwrap();
    check_hello(&r.out);
}

#[test]
fn a_control_archive_of_too_many_files_is_refused() {
    let mut entries: Vec<Entry> = vec![Entry::file("./control", control_text())];
    entries.extend((0..1000).map(|i| Entry::file(format!("./f{i}"), "")));
    let bytes = support::ar(&[
        ("debian-binary", b"2.0\n".to_vec()),
        ("control.tar.zst", Comp::Zst.compress(&tar(&entries))),
        ("data.tar.zst", Comp::Zst.compress(&tar(&hello_entries()))),
    ]);
    let r = run(&bytes);
    rejected(&r, "./f999", |r| *r == Rule::ControlFiles(1000));
}

fn control_text() -> String {
    support::control_text(PKG)
}
