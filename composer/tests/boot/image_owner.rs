//! Who owns what in an image, and on a machine after `imago deploy`
//! (reliability catalogue case 28: an image or a deployment made by an
//! ordinary user — every inode is root's unless a module declares another
//! owner, and the bytes equal those of a root-built image).
//!
//! - `an_ordinary_users_image_is_all_root_and_equals_roots`: the `imago`
//!   binary builds examples/minimal as root and — under `setpriv` — as
//!   uid [`USER`] (above 65535, so the high 16 bits of ext4's owner fields
//!   matter too) with umask 077, each with its own store; every inode of the
//!   user's root file system is read back with debugfs and must be 0:0, and
//!   the two images must be byte-identical.
//! - `a_deploy_stream_records_no_owner`: the tar stream `imago deploy` sends
//!   from a store owned by another uid has uid/gid 0 and no user or group
//!   names, and the objects it puts on the target are root's.
//! - `a_deploy_ignores_the_owners_a_stream_claims`: a stream that claims
//!   another owner still leaves root-owned objects on the target.
//!
//! The exports of `imago store export` are covered in store_archive.rs.
//! Needs e2fsprogs' debugfs, util-linux's setpriv and tar; the comparisons
//! with another uid need root (without it, only what the current user can
//! check is checked).

#![allow(clippy::unwrap_used)]

use imago::remote::{Input, Remote, RemoteOutput};
use imago::store::{Store, StorePath};
use std::collections::VecDeque;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt, lchown, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The ordinary user builds run as.
const USER: u32 = 100_001;

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

/// Gives every file below `root` (links not followed) to `uid`:`uid`.
fn chown_tree(root: &Path, uid: u32) {
    for e in walkdir::WalkDir::new(root) {
        lchown(e.unwrap().path(), Some(uid), Some(uid)).unwrap();
    }
}

fn root_offset(image: &Path) -> u64 {
    let disk = gpt::GptConfig::new().open(image).unwrap();
    disk.partitions()[&2].first_lba * 512
}

/// Runs debugfs read-only with one command per line of `script`.
fn debugfs(image: &Path, offset: u64, script: &str) -> String {
    let cmds = tempfile::NamedTempFile::new().unwrap();
    fs::write(cmds.path(), script).unwrap();
    let out = Command::new("debugfs")
        .arg("-f")
        .arg(cmds.path())
        .arg(format!("{}?offset={offset}", image.display()))
        .output()
        .expect("debugfs (e2fsprogs) runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn quote(path: &str) -> String {
    format!("\"{}\"", path.replace('"', "\"\""))
}

/// (uid, gid) of `path` as `debugfs stat` reports it.
fn owner(image: &Path, offset: u64, path: &str) -> (u32, u32) {
    let text = debugfs(image, offset, &format!("stat {}\n", quote(path)));
    let field = |name: &str| -> u32 {
        let rest = text
            .split(name)
            .nth(1)
            .unwrap_or_else(|| panic!("no {name} for {path}:\n{text}"));
        rest.split_whitespace().next().unwrap().parse().unwrap()
    };
    (field("User:"), field("Group:"))
}

/// Every inode reachable from `/`: (path, uid, gid), read with `ls -p`,
/// one debugfs run per directory level.
fn all_owners(image: &Path, offset: u64) -> Vec<(String, u32, u32)> {
    let mut found = vec![("/".to_owned(), u32::MAX, u32::MAX)];
    let mut level = vec!["/".to_owned()];
    while !level.is_empty() {
        let script: String = level
            .iter()
            .map(|d| format!("ls -p {}\n", quote(d)))
            .collect();
        let out = debugfs(image, offset, &script);
        let mut dirs: VecDeque<&String> = level.iter().collect();
        let mut current: Option<&String> = None;
        let mut next = Vec::new();
        for line in out.lines() {
            if line.starts_with("debugfs: ") {
                current = dirs.pop_front();
                continue;
            }
            // /inode/mode/uid/gid/name/size/
            let fields: Vec<&str> = line.split('/').collect();
            if fields.len() != 8 {
                continue;
            }
            let (mode, uid, gid, name) = (fields[2], fields[3], fields[4], fields[5]);
            let dir = current.unwrap();
            let (uid, gid) = (uid.parse().unwrap(), gid.parse().unwrap());
            if name == "." {
                if dir == "/" {
                    found[0] = ("/".to_owned(), uid, gid);
                }
                continue;
            }
            if name == ".." {
                continue;
            }
            let path = format!("{}/{name}", dir.trim_end_matches('/'));
            if mode.starts_with("04") {
                next.push(path.clone());
            }
            found.push((path, uid, gid));
        }
        level = next;
    }
    found
}

/// Asserts that every inode of the image's root file system is root's and
/// that the named paths exist; returns how many inodes were checked.
fn assert_all_root(image: &Path) -> usize {
    let offset = root_offset(image);
    let owners = all_owners(image, offset);
    let foreign: Vec<_> = owners
        .iter()
        .filter(|(_, uid, gid)| (*uid, *gid) != (0, 0))
        .take(20)
        .collect();
    assert!(
        foreign.is_empty(),
        "inodes not owned by 0:0 in {}: {foreign:?}",
        image.display()
    );
    let store_file = owners
        .iter()
        .find(|(p, _, _)| p.ends_with("-imago-system-minimal/boot.json"))
        .unwrap_or_else(|| panic!("no toplevel in {}", image.display()));
    for path in ["/", "/etc", "/root", "/imago/store", store_file.0.as_str()] {
        assert_eq!(owner(image, offset, path), (0, 0), "{path}");
    }
    owners.len()
}

/// Copies the .debs root's build used into `dir`, given to [`USER`].
fn copy_debs(dir: &Path) {
    fs::create_dir_all(dir).unwrap();
    for e in fs::read_dir(imago::debian::apt::default_deb_cache()).unwrap() {
        let e = e.unwrap();
        if e.file_name().to_string_lossy().ends_with(".deb") {
            let dst = dir.join(e.file_name());
            fs::copy(e.path(), &dst).unwrap();
            lchown(&dst, Some(USER), Some(USER)).unwrap();
        }
    }
}

fn run(mut cmd: Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_ordinary_users_image_is_all_root_and_equals_roots() {
    let dir = tempfile::tempdir().unwrap();
    let imago = env!("CARGO_BIN_EXE_imago");
    let minimal = examples().join("minimal.imago");
    if !is_root() {
        // The current user is the ordinary user; there is no root build to
        // compare with.
        let image = dir.path().join("user.raw");
        let mut cmd = Command::new(imago);
        cmd.arg("--store")
            .arg(dir.path().join("store"))
            .arg("image")
            .arg(&minimal)
            .arg("-o")
            .arg(&image);
        run(cmd, "imago image as the current user");
        assert_all_root(&image);
        eprintln!("not root: the comparison with a root-built image was skipped");
        return;
    }

    let root_image = dir.path().join("root.raw");
    let mut cmd = Command::new(imago);
    cmd.arg("--store")
        .arg(dir.path().join("root-store"))
        .arg("image")
        .arg(&minimal)
        .arg("-o")
        .arg(&root_image);
    run(cmd, "imago image as root");

    // The user's own home, caches and store; the packages root's build used.
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let home = dir.path().join("user");
    for sub in ["home", "cache", "data", "tmp"] {
        fs::create_dir_all(home.join(sub)).unwrap();
    }
    copy_debs(&home.join("cache/imago/debs"));
    chown_tree(&home, USER);
    let user_image = home.join("user.raw");
    let mut cmd = Command::new("setpriv");
    cmd.arg(format!("--reuid={USER}"))
        .arg(format!("--regid={USER}"))
        .arg("--clear-groups")
        .args(["sh", "-c", "umask 077 && exec \"$0\" \"$@\""])
        .arg(imago)
        .arg("--store")
        .arg(home.join("store"))
        .arg("image")
        .arg(&minimal)
        .arg("-o")
        .arg(&user_image)
        .arg("--offline")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home.join("home"))
        .env("XDG_CACHE_HOME", home.join("cache"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env("TMPDIR", home.join("tmp"))
        .current_dir(&home);
    run(cmd, "imago image as an ordinary user (setpriv, util-linux)");
    // The user's store really is the user's.
    let store_meta = fs::metadata(home.join("store")).unwrap();
    assert_eq!(store_meta.uid(), USER);

    let checked = assert_all_root(&user_image);
    assert!(checked > 1000, "only {checked} inodes found");
    let (a, b) = (
        fs::read(&root_image).unwrap(),
        fs::read(&user_image).unwrap(),
    );
    assert_eq!(a.len(), b.len());
    let first = a.iter().zip(&b).position(|(x, y)| x != y);
    assert!(
        first.is_none(),
        "the user's image differs from root's from byte {first:?}"
    );
}

/// A "machine" that runs scripts here with `sh -c`: it keeps the stream it
/// was sent and, when `claim` is set, rewrites every entry to claim that
/// owner (uid, gid and names) before unpacking it.
struct LocalMachine {
    sent: std::cell::RefCell<Vec<u8>>,
    claim: Option<u32>,
}

impl Remote for LocalMachine {
    fn name(&self) -> String {
        "local".to_owned()
    }

    fn run(&self, script: &str, input: Option<Input<'_>>) -> anyhow::Result<RemoteOutput> {
        let mut bytes = Vec::new();
        if let Some(write) = input {
            write(&mut bytes)?;
            *self.sent.borrow_mut() = bytes.clone();
            if let Some(uid) = self.claim {
                bytes = claim_owner(&bytes, uid);
            }
        }
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let mut stdin = child.stdin.take().unwrap();
        let feeder = std::thread::spawn(move || stdin.write_all(&bytes));
        let out = child.wait_with_output()?;
        // The script may stop reading early; its status tells.
        let _ = feeder.join();
        Ok(RemoteOutput {
            status: out.status.code(),
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }
}

/// The tar stream `bytes` with every entry owned by `uid` ("mallory").
fn claim_owner(bytes: &[u8], uid: u32) -> Vec<u8> {
    let mut archive = tar::Archive::new(bytes);
    let mut out = tar::Builder::new(Vec::new());
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let mut h = e.header().clone();
        h.set_uid(uid.into());
        h.set_gid(uid.into());
        h.set_username("mallory").unwrap();
        h.set_groupname("mallory").unwrap();
        let path = e.path().unwrap().into_owned();
        if h.entry_type().is_symlink() {
            let target = e.link_name().unwrap().unwrap().into_owned();
            out.append_link(&mut h, path, target).unwrap();
        } else {
            out.append_data(&mut h, path, &mut e).unwrap();
        }
    }
    out.into_inner().unwrap()
}

/// A store with a small closure (a file; a tree with an executable, a
/// symlink and a name longer than a ustar header holds) owned by [`USER`]
/// when the test runs as root.
fn user_store(dir: &Path) -> (Store, StorePath) {
    let store = Store::open(dir.join("store")).unwrap();
    let src = dir.join("lib");
    fs::write(&src, b"library\n").unwrap();
    let lib = store.add_path(&src, "lib").unwrap();
    let tmp = store.temp_output().unwrap();
    let out = tmp.out();
    fs::create_dir_all(out.join("bin")).unwrap();
    fs::write(out.join("bin/tool"), format!("#!{}\n", lib.to_absolute())).unwrap();
    fs::set_permissions(out.join("bin/tool"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(out.join("long-".repeat(30)), b"long").unwrap();
    symlink(lib.to_absolute(), out.join("lib")).unwrap();
    let top = store
        .add(tmp, "top", std::slice::from_ref(&lib), None)
        .unwrap();
    if is_root() {
        chown_tree(&dir.join("store"), USER);
    }
    (store, top)
}

/// One tar entry's owner fields: path, uid, gid, user name, group name.
type Owner = (String, u64, u64, Vec<u8>, Vec<u8>);

/// Every entry's owner fields in a tar stream.
fn stream_owners(bytes: &[u8]) -> Vec<Owner> {
    let mut archive = tar::Archive::new(bytes);
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let h = e.header();
            (
                e.path().unwrap().display().to_string(),
                h.uid().unwrap(),
                h.gid().unwrap(),
                h.username_bytes().unwrap_or_default().to_vec(),
                h.groupname_bytes().unwrap_or_default().to_vec(),
            )
        })
        .collect()
}

/// Every file below `dir` not owned by 0:0: what a deployment run by root
/// must never leave.
fn not_roots(dir: &Path) -> Vec<(PathBuf, u32, u32)> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .map(|e| {
            let e = e.unwrap();
            let m = e.path().symlink_metadata().unwrap();
            (e.path().to_owned(), m.uid(), m.gid())
        })
        .filter(|(_, uid, gid)| (*uid, *gid) != (0, 0))
        .collect()
}

fn deploy(claim: Option<u32>) -> (tempfile::TempDir, LocalMachine, StorePath) {
    let dir = tempfile::tempdir().unwrap();
    let (store, top) = user_store(dir.path());
    let target = dir.path().join("target-store");
    fs::create_dir(&target).unwrap();
    let machine = LocalMachine {
        sent: Default::default(),
        claim,
    };
    let copied =
        imago::remote::copy_closure(&store, &top, &machine, target.to_str().unwrap()).unwrap();
    assert_eq!(copied, 2);
    assert!(target.join(top.as_str()).join("bin/tool").is_file());
    assert!(target.join(top.as_str()).join("long-".repeat(30)).is_file());
    (dir, machine, top)
}

#[test]
fn a_deploy_stream_records_no_owner() {
    let (dir, machine, top) = deploy(None);
    let owners = stream_owners(&machine.sent.borrow());
    assert!(owners.len() >= 6, "{owners:?}");
    assert!(owners.iter().any(|(p, ..)| p.ends_with("long-long-")));
    for (path, uid, gid, user, group) in &owners {
        assert_eq!((*uid, *gid), (0, 0), "{path}");
        assert!(
            user.is_empty() && group.is_empty(),
            "{path}: {user:?} {group:?}"
        );
    }
    // Modes travel unchanged: the target's store is read-only too.
    let tool = dir
        .path()
        .join("target-store")
        .join(top.as_str())
        .join("bin/tool");
    assert_eq!(tool.metadata().unwrap().mode() & 0o7777, 0o555);
    if is_root() {
        let foreign = not_roots(&dir.path().join("target-store"));
        assert!(foreign.is_empty(), "not root's on the target: {foreign:?}");
    }
}

#[test]
fn a_deploy_ignores_the_owners_a_stream_claims() {
    if !is_root() {
        eprintln!("not root: tar cannot restore another owner anyway; skipped");
        return;
    }
    let (dir, _machine, _top) = deploy(Some(4242));
    let foreign = not_roots(&dir.path().join("target-store"));
    assert!(foreign.is_empty(), "not root's on the target: {foreign:?}");
}
