//! The core builders, run directly on temporary directories.

// Test helpers outside #[test] functions panic on failure too.
#![allow(clippy::unwrap_used)]

use imago::builders::path::source_digest;
use imago::builders::{BuildContext, BuildError, ResolvedStep};
use imago::graph::registry;
use serde_json::json;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

struct Env {
    _dir: tempfile::TempDir,
    store: PathBuf,
    scratch: PathBuf,
    ctx: BuildContext,
}

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let scratch = dir.path().join("scratch");
    fs::create_dir_all(&store).unwrap();
    fs::create_dir_all(&scratch).unwrap();
    let ctx = BuildContext {
        store_dir: store.clone(),
        deb_cache: dir.path().join("debs"),
        offline: true,
    };
    Env {
        _dir: dir,
        store,
        scratch,
        ctx,
    }
}

impl Env {
    /// Makes a fake store object directory and returns its logical path.
    fn object(&self, name: &str, files: &[(&str, &str)]) -> String {
        let base = format!("{}-{name}", "0".repeat(32));
        let root = self.store.join(&base);
        fs::create_dir_all(&root).unwrap();
        for (path, text) in files {
            let p = root.join(path);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, text).unwrap();
        }
        format!("/imago/store/{base}")
    }

    fn physical(&self, logical: &str) -> PathBuf {
        self.ctx.physical(logical).unwrap()
    }

    fn run(
        &self,
        builder: &str,
        params: serde_json::Value,
        inputs: &[&str],
    ) -> Result<(PathBuf, String), BuildError> {
        let out = self.scratch.join(format!("out-{}", rand_suffix()));
        let step = ResolvedStep {
            builder: builder.into(),
            name: "test".into(),
            params,
            inputs: inputs.iter().map(|s| (*s).to_owned()).collect(),
            // The fake objects refer to nothing: the closure is the inputs.
            closure: inputs.iter().map(|s| (*s).to_owned()).collect(),
        };
        let mut log = Vec::new();
        registry::builder(builder)
            .unwrap()
            .build(&self.ctx, &step, &out, &mut log)?;
        Ok((out, String::from_utf8(log).unwrap()))
    }
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    N.fetch_add(1, Ordering::SeqCst).to_string()
}

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

fn err_text(r: Result<(PathBuf, String), BuildError>) -> String {
    let e = r.unwrap_err();
    let mut text = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        text.push_str(&format!(": {s}"));
        src = s.source();
    }
    text
}

// ---- text ----

#[test]
fn text_writes_a_file_with_its_mode() {
    let e = env();
    let (out, _) = e.run("text", json!({ "text": "hello\n" }), &[]).unwrap();
    assert_eq!(fs::read_to_string(&out).unwrap(), "hello\n");
    // Created read-only, as the store keeps it.
    assert_eq!(mode(&out), 0o444);
    let (out, _) = e
        .run(
            "text",
            json!({ "text": "#!/bin/sh\n", "executable": true }),
            &[],
        )
        .unwrap();
    assert_eq!(mode(&out), 0o555);
}

#[test]
fn text_rejects_unknown_and_missing_fields() {
    let e = env();
    let msg = err_text(e.run("text", json!({ "text": "x", "exec": true }), &[]));
    assert!(
        msg.contains("builder `text`") && msg.contains("exec"),
        "{msg}"
    );
    let msg = err_text(e.run("text", json!({}), &[]));
    assert!(msg.contains("text"), "{msg}");
}

// ---- path ----

#[test]
fn path_copies_trees_keeping_symlinks_as_links() {
    let e = env();
    let src = e.scratch.join("src");
    fs::create_dir_all(src.join("sub")).unwrap();
    fs::write(src.join("sub/file"), "data").unwrap();
    fs::write(src.join("run"), "#!").unwrap();
    fs::set_permissions(src.join("run"), fs::Permissions::from_mode(0o700)).unwrap();
    let outside = e.scratch.join("outside-secret");
    fs::write(&outside, "secret").unwrap();
    symlink(&outside, src.join("abs-link")).unwrap();
    symlink("../../outside-secret", src.join("sub/rel-link")).unwrap();
    symlink("/etc", src.join("etc-link")).unwrap();
    let (out, _) = e
        .run("path", json!({ "path": src.to_str().unwrap() }), &[])
        .unwrap();
    assert_eq!(fs::read_to_string(out.join("sub/file")).unwrap(), "data");
    assert_eq!(mode(&out.join("sub/file")), 0o644);
    assert_eq!(mode(&out.join("run")), 0o755);
    for (link, target) in [
        ("abs-link", outside.to_str().unwrap()),
        ("sub/rel-link", "../../outside-secret"),
        ("etc-link", "/etc"),
    ] {
        let p = out.join(link);
        assert!(fs::symlink_metadata(&p).unwrap().file_type().is_symlink());
        assert_eq!(fs::read_link(&p).unwrap(), Path::new(target));
    }
    assert_eq!(fs::read_dir(&out).unwrap().count(), 4);
}

#[test]
fn path_copies_a_single_file_and_a_top_level_symlink() {
    let e = env();
    let f = e.scratch.join("one");
    fs::write(&f, "1").unwrap();
    let (out, _) = e
        .run("path", json!({ "path": f.to_str().unwrap() }), &[])
        .unwrap();
    assert_eq!(fs::read_to_string(&out).unwrap(), "1");
    let l = e.scratch.join("link");
    symlink("/nonexistent", &l).unwrap();
    let (out, _) = e
        .run("path", json!({ "path": l.to_str().unwrap() }), &[])
        .unwrap();
    assert_eq!(fs::read_link(&out).unwrap(), Path::new("/nonexistent"));
}

#[test]
fn path_rejects_special_files_relative_paths_and_missing_sources() {
    let e = env();
    let src = e.scratch.join("with-socket");
    fs::create_dir_all(&src).unwrap();
    let _sock = std::os::unix::net::UnixListener::bind(src.join("sock")).unwrap();
    let msg = err_text(e.run("path", json!({ "path": src.to_str().unwrap() }), &[]));
    assert!(
        msg.contains("sock") && msg.contains("special file"),
        "{msg}"
    );
    let msg = err_text(e.run("path", json!({ "path": "relative/x" }), &[]));
    assert!(msg.contains("not an absolute path"), "{msg}");
    let msg = err_text(e.run("path", json!({ "path": "/a/../b" }), &[]));
    assert!(msg.contains("`..`"), "{msg}");
    let missing = e.scratch.join("missing");
    let msg = err_text(e.run("path", json!({ "path": missing.to_str().unwrap() }), &[]));
    assert!(msg.contains("missing"), "{msg}");
}

#[test]
fn path_digest_follows_content_not_time() {
    let e = env();
    let src = e.scratch.join("d");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a"), "1").unwrap();
    let d1 = source_digest(&src).unwrap();
    fs::write(src.join("a"), "1").unwrap();
    assert_eq!(d1, source_digest(&src).unwrap());
    fs::write(src.join("a"), "2").unwrap();
    let d2 = source_digest(&src).unwrap();
    assert_ne!(d1, d2);
    fs::set_permissions(src.join("a"), fs::Permissions::from_mode(0o755)).unwrap();
    assert_ne!(d2, source_digest(&src).unwrap());
    // The builder exposes it as its key salt.
    let step = ResolvedStep {
        builder: "path".into(),
        name: "d".into(),
        params: json!({ "path": src.to_str().unwrap() }),
        inputs: vec![],
        closure: vec![],
    };
    let salt = registry::builder("path")
        .unwrap()
        .key_salt(&e.ctx, &step)
        .unwrap();
    assert_eq!(salt, Some(source_digest(&src).unwrap()));
}

// ---- profile ----

#[test]
fn profile_merges_with_hard_links_and_excludes_metadata() {
    let e = env();
    let a = e.object(
        "a",
        &[
            ("bin/a", "A"),
            ("share/doc/x", "same"),
            (".imago/meta", "m"),
        ],
    );
    let b = e.object("b", &[("bin/b", "B"), ("share/doc/x", "same")]);
    symlink("a", e.physical(&b).join("bin/b-link")).unwrap();
    let (out, _) = e
        .run("profile", json!({ "packages": [a, b] }), &[&a, &b])
        .unwrap();
    assert_eq!(fs::read_to_string(out.join("bin/a")).unwrap(), "A");
    assert_eq!(fs::read_to_string(out.join("bin/b")).unwrap(), "B");
    assert_eq!(
        fs::read_link(out.join("bin/b-link")).unwrap(),
        Path::new("a")
    );
    assert!(!out.join(".imago").exists());
    let ino = |p: &Path| fs::metadata(p).unwrap().ino();
    assert_eq!(ino(&out.join("bin/a")), ino(&e.physical(&a).join("bin/a")));
    assert_eq!(
        ino(&out.join("share/doc/x")),
        ino(&e.physical(&a).join("share/doc/x"))
    );
}

#[test]
fn profile_conflicts_name_the_path_and_both_sources() {
    let e = env();
    let a = e.object("a", &[("etc/x", "one")]);
    let b = e.object("b", &[("etc/x", "two")]);
    let msg = err_text(e.run("profile", json!({ "packages": [a, b] }), &[&a, &b]));
    assert!(msg.contains("conflict at `etc/x`"), "{msg}");
    assert!(msg.contains(&a) && msg.contains(&b), "{msg}");
    // A file against a directory.
    let c = e.object("c", &[("etc", "file")]);
    let msg = err_text(e.run("profile", json!({ "packages": [a, c] }), &[&a, &c]));
    assert!(
        msg.contains("conflict at `etc`") && msg.contains("a directory"),
        "{msg}"
    );
}

#[test]
fn profile_lower_priority_number_wins() {
    let e = env();
    let a = e.object("a", &[("etc/x", "one"), ("d/inner", "i")]);
    let b = e.object("b", &[("etc/x", "two"), ("d", "file wins")]);
    let (out, log) = e
        .run(
            "profile",
            json!({ "packages": [a, { "path": b, "priority": 1 }] }),
            &[&a, &b],
        )
        .unwrap();
    assert_eq!(fs::read_to_string(out.join("etc/x")).unwrap(), "two");
    assert_eq!(fs::read_to_string(out.join("d")).unwrap(), "file wins");
    assert!(log.contains("wins over"), "{log}");
    // The loser's directory went with its whole subtree.
    assert!(!out.join("d/inner").exists());
}

#[test]
fn profile_rejects_bad_entries() {
    let e = env();
    let msg = err_text(e.run("profile", json!({ "packages": [42] }), &[]));
    assert!(msg.contains("packages[0]"), "{msg}");
    let msg = err_text(e.run("profile", json!({ "packages": ["/etc"] }), &[]));
    assert!(msg.contains("not inside /imago/store"), "{msg}");
    let a = e.object("a", &[("x", "1")]);
    let msg = err_text(e.run(
        "profile",
        json!({ "packages": [a], "exclude": ["../x"] }),
        &[&a],
    ));
    assert!(msg.contains("exclude `../x`"), "{msg}");
}

#[test]
fn profile_lists_the_setuid_files_it_takes() {
    let e = env();
    // Two packages as the .deb unpacker leaves them: files without setuid
    // bits, and the list of those Debian installs setuid.
    let util = e.object(
        "util-linux",
        &[
            ("usr/bin/su", "su"),
            ("usr/bin/mount", "mount of util-linux"),
            (
                ".imago/deb/setuid",
                "4755 root:root usr/bin/su\n4755 root:root usr/bin/mount\n",
            ),
        ],
    );
    let pam = e.object(
        "libpam-modules-bin",
        &[
            ("usr/sbin/unix_chkpwd", "chkpwd"),
            (
                ".imago/deb/setuid",
                "2755 root:shadow usr/sbin/unix_chkpwd\n",
            ),
        ],
    );
    // Wins /usr/bin/mount with other content: its mount is not setuid.
    let other = e.object("other", &[("usr/bin/mount", "another mount")]);
    // Provides the same su, first: still util-linux's file.
    let same = e.object("same", &[("usr/bin/su", "su")]);
    let (out, log) = e
        .run(
            "profile",
            json!({
                "packages": [same, util, pam, { "path": other, "priority": 1 }],
                "setuid": true,
            }),
            &[&same, &util, &pam, &other],
        )
        .unwrap();
    assert_eq!(
        fs::read_to_string(out.join(".imago/setuid")).unwrap(),
        "4755 root:root usr/bin/su\n2755 root:shadow usr/sbin/unix_chkpwd\n"
    );
    assert!(log.contains("2 setuid/setgid files listed"), "{log}");
    // The packages' own metadata stays out; the files keep no setuid bit.
    assert!(!out.join(".imago/deb").exists());
    let mode = fs::metadata(out.join("usr/bin/su"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o6000, 0, "{mode:o}");

    // Without `setuid`, no list.
    let (out, _) = e
        .run("profile", json!({ "packages": [util] }), &[&util])
        .unwrap();
    assert!(!out.join(".imago").exists());
    // With it and no setuid file: an empty list.
    let plain = e.object("plain", &[("usr/bin/ls", "ls")]);
    let (out, _) = e
        .run(
            "profile",
            json!({ "packages": [plain], "setuid": true }),
            &[&plain],
        )
        .unwrap();
    assert_eq!(fs::read_to_string(out.join(".imago/setuid")).unwrap(), "");
}

#[test]
fn profile_refuses_setuid_lists_that_ask_for_too_much() {
    let cases: &[(&str, &str, &str)] = &[
        // A path Debian never installs setuid.
        (
            "6755 root:root usr/bin/bash",
            "usr/bin/bash",
            "is not a file Debian installs setuid",
        ),
        // Writable by others: anyone could replace the wrapper's contents.
        (
            "4777 root:root usr/bin/su",
            "usr/bin/su",
            "lets group or others write",
        ),
        (
            "4755 root:root ../../usr/bin/su",
            "usr/bin/su",
            "is not a file Debian installs setuid",
        ),
        (
            "0755 root:root usr/bin/su",
            "usr/bin/su",
            "neither setuid nor setgid",
        ),
        ("4755 root usr/bin/su", "usr/bin/su", "is not USER:GROUP"),
        (
            "4755 root:root  usr/bin/su",
            "usr/bin/su",
            "not `MODE USER:GROUP PATH`",
        ),
        (
            "47555 root:root usr/bin/su",
            "usr/bin/su",
            "is not four octal digits",
        ),
        // A tar user name with a line break (the unpacker copies it) must
        // not smuggle in a line of its own.
        (
            "4755 evil\n6755 root:root usr/bin/bash",
            "usr/bin/su",
            "line 1",
        ),
        // It lists a file it does not have.
        (
            "4755 root:root usr/bin/passwd",
            "usr/bin/su",
            "lists a file it does not contain",
        ),
    ];
    for (list, file, why) in cases {
        let e = env();
        let pkg = e.object("pkg", &[(file, "x"), (".imago/deb/setuid", list)]);
        let msg = err_text(e.run(
            "profile",
            json!({ "packages": [pkg], "setuid": true }),
            &[&pkg],
        ));
        assert!(msg.contains(why), "{list:?}: {msg}");
        assert!(msg.contains(&format!("{pkg}/.imago/deb/setuid")), "{msg}");
    }
    // Too long to be a setuid list.
    let e = env();
    let long = "4755 root:root usr/bin/su\n".repeat(4000);
    let pkg = e.object("pkg", &[("usr/bin/su", "x"), (".imago/deb/setuid", &long)]);
    let msg = err_text(e.run(
        "profile",
        json!({ "packages": [pkg], "setuid": true }),
        &[&pkg],
    ));
    assert!(msg.contains("longer than"), "{msg}");
    // A package's own `.imago/setuid`, merged in, would hide the list.
    let e = env();
    let pkg = e.object("pkg", &[(".imago/setuid", "4755 root:root usr/bin/bash\n")]);
    let msg = err_text(e.run(
        "profile",
        json!({ "packages": [pkg], "setuid": true, "exclude": [] }),
        &[&pkg],
    ));
    assert!(msg.contains("exclude `.imago`"), "{msg}");
}

// ---- tree ----

#[test]
fn tree_builds_texts_sources_and_symlinks() {
    let e = env();
    let pkg = e.object("pkg", &[("bin/sh", "sh"), ("lib/l.so", "l")]);
    let (out, _) = e
        .run(
            "tree",
            json!({ "entries": {
                "etc/hostname": { "text": "box\n" },
                "etc/init": { "text": "#!/bin/sh\n", "executable": true },
                "bin/sh": { "source": format!("{pkg}/bin/sh") },
                "sw": { "source": pkg },
                "etc/mtab": { "symlink": "/proc/mounts" },
            }}),
            &[&pkg],
        )
        .unwrap();
    assert_eq!(
        fs::read_to_string(out.join("etc/hostname")).unwrap(),
        "box\n"
    );
    assert_eq!(mode(&out.join("etc/hostname")), 0o444);
    assert_eq!(mode(&out.join("etc/init")), 0o555);
    assert_eq!(mode(&out.join("etc")), 0o755);
    assert_eq!(
        fs::read_link(out.join("etc/mtab")).unwrap(),
        Path::new("/proc/mounts")
    );
    let ino = |p: &Path| fs::metadata(p).unwrap().ino();
    assert_eq!(
        ino(&out.join("bin/sh")),
        ino(&e.physical(&pkg).join("bin/sh"))
    );
    assert_eq!(
        ino(&out.join("sw/lib/l.so")),
        ino(&e.physical(&pkg).join("lib/l.so"))
    );
}

#[test]
fn tree_rejects_bad_paths() {
    let e = env();
    for (path, why) in [
        ("../x", "`..`"),
        ("a/../../x", "`..`"),
        ("/etc/passwd", "absolute"),
        ("a//b", "empty component"),
        ("a/", "empty component"),
        ("./a", "`.`"),
        ("", "empty"),
    ] {
        let msg = err_text(e.run("tree", json!({ "entries": { path: { "text": "x" } } }), &[]));
        assert!(
            msg.contains(why) && msg.contains(&format!("`{path}`")),
            "{path}: {msg}"
        );
    }
    assert!(!e.scratch.join("x").exists());
}

#[test]
fn tree_rejects_duplicates_and_entries_under_entries() {
    let e = env();
    let msg = err_text(e.run(
        "tree",
        json!({ "entries": { "etc/Hosts": { "text": "a" }, "etc/hosts": { "text": "b" } } }),
        &[],
    ));
    assert!(msg.contains("same path up to case"), "{msg}");
    let msg = err_text(e.run(
        "tree",
        json!({ "entries": { "l": { "symlink": "/tmp" }, "l/x": { "text": "b" } } }),
        &[],
    ));
    assert!(
        msg.contains("`l/x` lies under entry `l`") && msg.contains("symlink"),
        "{msg}"
    );
    let msg = err_text(e.run(
        "tree",
        json!({ "entries": { "f": { "text": "a" }, "f/g/h": { "text": "b" } } }),
        &[],
    ));
    assert!(msg.contains("lies under entry `f`"), "{msg}");
}

#[test]
fn tree_rejects_bad_entries_and_foreign_sources() {
    let e = env();
    let pkg = e.object("pkg", &[("x", "1")]);
    for (entry, why) in [
        (json!({}), "needs one of"),
        (json!({ "text": "a", "symlink": "b" }), "more than one"),
        (
            json!({ "symlink": "b", "executable": true }),
            "only goes with `text`",
        ),
        (json!({ "txt": "a" }), "txt"),
    ] {
        let msg = err_text(e.run("tree", json!({ "entries": { "a": entry } }), &[&pkg]));
        assert!(msg.contains(why), "{msg}");
    }
    // A store path that is not an input.
    let other = e.object("other", &[("y", "2")]);
    let msg = err_text(e.run(
        "tree",
        json!({ "entries": { "a": { "source": other } } }),
        &[&pkg],
    ));
    assert!(msg.contains("not inside one of the step's inputs"), "{msg}");
    let msg = err_text(e.run(
        "tree",
        json!({ "entries": { "a": { "source": "/etc/shadow" } } }),
        &[&pkg],
    ));
    assert!(msg.contains("not inside one of the step's inputs"), "{msg}");
}

#[test]
fn the_registry_knows_the_core_builders() {
    for name in registry::names() {
        assert!(registry::builder(name).is_some(), "{name}");
    }
    assert!(registry::builder("nope").is_none());
}

#[test]
fn sources_never_pass_through_symlinks_inside_objects() {
    let e = env();
    let outside = e.scratch.join("host");
    fs::create_dir_all(outside.join("dir")).unwrap();
    fs::write(outside.join("secret"), "s").unwrap();
    let pkg = e.object("pkg", &[("ok", "1")]);
    symlink(&outside, e.physical(&pkg).join("link")).unwrap();
    // A tree entry reading through the link.
    let msg = err_text(e.run(
        "tree",
        json!({ "entries": { "x": { "source": format!("{pkg}/link/secret") } } }),
        &[&pkg],
    ));
    assert!(
        msg.contains("passes through") && msg.contains("a symlink"),
        "{msg}"
    );
    // A tree entry naming the link itself copies the link.
    let (out, _) = e
        .run(
            "tree",
            json!({ "entries": { "x": { "source": format!("{pkg}/link") } } }),
            &[&pkg],
        )
        .unwrap();
    assert_eq!(fs::read_link(out.join("x")).unwrap(), outside);
    // A profile package under or at the link.
    let msg = err_text(e.run(
        "profile",
        json!({ "packages": [format!("{pkg}/link/dir")] }),
        &[&pkg],
    ));
    assert!(msg.contains("passes through"), "{msg}");
    let msg = err_text(e.run(
        "profile",
        json!({ "packages": [format!("{pkg}/link")] }),
        &[&pkg],
    ));
    assert!(msg.contains("is not a directory"), "{msg}");
}
