//! What the module library makes of users, run without a VM: the example
//! server (examples/bookworm/server.imago, with a few more users and a sysusers.d
//! file of its own) is built for real into a temporary store, and its
//! `update-users` activation step runs under the host's busybox (standing
//! in for the system's tools) on a scratch root (`IMAGO_ROOT`), with the
//! system's own users table and sysusers.d files.
//!
//! * /etc/shadow: a user with no password (alice, who logs in with a key;
//!   root) gets `*` — no password matches, but sshd (`UsePAM no`) does not
//!   take the account for locked, as it does a `!` one; a hash, a hash read
//!   from `hashedPasswordFile` and an explicit `!` are kept; the file is
//!   0600.
//! * The accounts the packages' sysusers.d files ask for (Debian's
//!   basic.conf, systemd's) and the system's own /etc/sysusers.d file are
//!   written too: `systemd-sysusers --dry-run` on the result would create
//!   nothing, so no boot prints "Creating user …", and a second activation
//!   changes nothing (ids are stable).
//! * imago-bless-boot.service is ordered after the ESP's mount unit.

#![allow(clippy::unwrap_used)]

use crate::support::system::{Built, on_host_busybox};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The test system: the example server plus users with each kind of
/// password, and a sysusers.d file of its own in /etc.
const SYSTEM: &str = r#"{ ... }:
{
  imports = [ @server@ ];
  users.users.carol.hashedPassword = "$6$salt$hashofcarol";
  users.users.dave.hashedPasswordFile = "/etc/dave.hash";
  users.users.locked.hashedPassword = "!";
  environment.etc."sysusers.d/imago-test.conf".text = ''
    # A user of the system's own, with a quoted description.
    u imago-test - "Imago test user" /var/lib/imago-test
    m imago-test adm
    # systemd 256's fully locked account (trixie's systemd-network is one).
    u! imago-locked - "Locked account"
  '';
}
"#;

/// Builds the test system once for all tests of this file.
fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    Built::once(&BUILT, SYSTEM)
}

/// The machine the activation step runs on: a scratch root, and the
/// system's `update-users` with the host's busybox as its tools.
struct Machine {
    dir: tempfile::TempDir,
    script: PathBuf,
}

impl Machine {
    fn new(built: &Built) -> Machine {
        let dir = tempfile::tempdir().unwrap();
        // The activation script calls `<update-users> "$system/users.tsv" …`.
        let text = fs::read_to_string(built.activation_input("update-users")).unwrap();
        // It must write below IMAGO_ROOT: never run one that would write
        // the host's /etc.
        assert!(
            text.contains("IMAGO_ROOT"),
            "update-users cannot run on a scratch root"
        );
        let script = on_host_busybox(dir.path(), "update-users", &text);
        fs::create_dir_all(dir.path().join("root/etc")).unwrap();
        Machine { dir, script }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// Runs the activation's `update-users` as activation does; returns its
    /// stderr.
    fn activate(&self, built: &Built) -> String {
        self.activate_with(built, &[])
    }

    /// `activate` with more sysusers.d directories after the system's.
    fn activate_with(&self, built: &Built, more: &[&Path]) -> String {
        let out = Command::new(&self.script)
            .env("IMAGO_ROOT", self.root())
            .arg(built.entry("users.tsv"))
            .arg(built.entry("etc").join("sysusers.d"))
            .arg(built.entry("sw").join("usr/lib/sysusers.d"))
            .args(more)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "update-users failed:\n{stderr}");
        stderr
    }

    fn read(&self, file: &str) -> String {
        fs::read_to_string(self.root().join("etc").join(file)).unwrap()
    }

    fn mode(&self, file: &str) -> u32 {
        fs::metadata(self.root().join("etc").join(file))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    }

    /// The `name:password` start of each /etc/shadow line.
    fn password(&self, user: &str) -> String {
        self.read("shadow")
            .lines()
            .find(|l| l.starts_with(&format!("{user}:")))
            .map(|l| l.split(':').nth(1).unwrap().to_owned())
            .unwrap_or_else(|| panic!("{user} is not in /etc/shadow"))
    }
}

#[test]
fn a_user_without_a_password_is_not_locked() {
    let built = built();
    let m = Machine::new(built);
    fs::write(m.root().join("etc/dave.hash"), "$6$salt$hashofdave\n").unwrap();
    let stderr = m.activate(built);
    assert_eq!(stderr, "");

    // alice has a key and no password; root neither.
    assert_eq!(m.password("alice"), "*");
    assert_eq!(m.password("root"), "*");
    assert_eq!(m.password("sshd"), "*");
    assert_eq!(m.password("carol"), "$6$salt$hashofcarol");
    assert_eq!(m.password("dave"), "$6$salt$hashofdave");
    assert_eq!(m.password("locked"), "!");
    let alice = m
        .read("shadow")
        .lines()
        .find(|l| l.starts_with("alice:"))
        .unwrap()
        .to_owned();
    assert_eq!(alice, "alice:*:1:0:99999:7:::");
    assert_eq!(m.mode("shadow"), 0o600);
    assert_eq!(m.mode("gshadow"), 0o600);
    assert_eq!(m.mode("passwd"), 0o644);
    assert_eq!(m.mode("group"), 0o644);

    // An unreadable hash file: no password matches, the account is still
    // not locked.
    fs::remove_file(m.root().join("etc/dave.hash")).unwrap();
    let stderr = m.activate(built);
    assert!(
        stderr.contains("user dave: cannot read /etc/dave.hash; no password will match"),
        "{stderr}"
    );
    assert_eq!(m.password("dave"), "*");
}

#[test]
fn the_packages_accounts_are_written_so_systemd_sysusers_creates_none() {
    let built = built();
    let m = Machine::new(built);
    fs::write(m.root().join("etc/dave.hash"), "$6$salt$hashofdave\n").unwrap();
    m.activate(built);
    let passwd = m.read("passwd");
    let group = m.read("group");

    // Declared users keep their lines; Debian's basic.conf and systemd's
    // files add theirs, fixed ids as given.
    assert!(
        passwd.starts_with("alice:x:1000:100::/home/alice:/bin/bash\n"),
        "{passwd}"
    );
    for line in [
        "daemon:x:1:1::/usr/sbin:/usr/sbin/nologin",
        "sync:x:4:65534::/bin:/bin/sync",
        "games:x:5:60::/usr/games:/usr/sbin/nologin",
        "_apt:x:42:65534::/nonexistent:/usr/sbin/nologin",
    ] {
        assert!(
            passwd.lines().any(|l| l == line),
            "no `{line}` in\n{passwd}"
        );
    }
    // A user of its own: uid and gid allocated together, the quoted
    // description, home and the default shell; locked as systemd-sysusers
    // would make it.
    let network = passwd
        .lines()
        .find(|l| l.starts_with("systemd-network:"))
        .expect("systemd-network");
    let f: Vec<&str> = network.split(':').collect();
    assert_eq!(f[2], f[3], "{network}");
    assert!(f[2].parse::<u32>().unwrap() < 1000, "{network}");
    assert_eq!(
        &f[4..],
        ["systemd Network Management", "/", "/usr/sbin/nologin"]
    );
    assert_eq!(m.password("systemd-network"), "!*");
    assert_eq!(m.password("daemon"), "!*");
    // The system's own /etc/sysusers.d file, with its membership.
    let test_user = passwd
        .lines()
        .find(|l| l.starts_with("imago-test:"))
        .expect("imago-test from /etc/sysusers.d");
    assert!(
        test_user.ends_with(":Imago test user:/var/lib/imago-test:/usr/sbin/nologin"),
        "{test_user}"
    );
    assert!(group.lines().any(|l| l == "adm:x:4:imago-test"), "{group}");
    // `u!`: locked, and expired on day 1 so that no way in is left.
    let shadow = m.read("shadow");
    assert!(
        shadow
            .lines()
            .any(|l| l == "imago-locked:!*:1:0:99999:7::1:"),
        "{shadow}"
    );
    assert!(
        shadow.lines().any(|l| l == "imago-test:!*:1:0:99999:7:::"),
        "{shadow}"
    );
    assert!(
        group.lines().any(|l| l.starts_with("systemd-journal:x:")),
        "{group}"
    );
    // A declared name wins over a sysusers.d line: www-data (uid 33 in
    // basic.conf) is the example's own system user.
    assert_eq!(
        passwd
            .lines()
            .filter(|l| l.starts_with("www-data:"))
            .count(),
        1,
        "{passwd}"
    );
    assert!(!passwd.contains("www-data:x:33:"), "{passwd}");
    // Every name once.
    for file in [&passwd, &group] {
        let mut names: Vec<&str> = file.lines().map(|l| l.split(':').next().unwrap()).collect();
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n, "a name twice in\n{file}");
    }

    // What systemd-sysusers (at the end of activation, and at boot) would
    // do with the same files: nothing.
    // The host's systemd may predate `u!` (256), which creates the same
    // line: its copies say `u` instead.
    let copies = tempfile::tempdir().unwrap();
    let mut files: Vec<PathBuf> = Vec::new();
    for dir in [
        built.entry("etc").join("sysusers.d"),
        built.entry("sw").join("usr/lib/sysusers.d"),
    ] {
        for e in fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let copy = copies
                .path()
                .join(format!("{}-{}", files.len(), e.file_name().display()));
            let text = fs::read_to_string(e.path()).unwrap();
            let text: Vec<String> = text
                .lines()
                .map(|l| match l.strip_prefix("u! ") {
                    Some(rest) => format!("u {rest}"),
                    None => l.to_owned(),
                })
                .collect();
            fs::write(&copy, text.join("\n")).unwrap();
            files.push(copy);
        }
    }
    assert!(files.len() >= 3, "{files:?}");
    match Command::new("systemd-sysusers")
        .arg(format!("--root={}", m.root().display()))
        .arg("--dry-run")
        .args(&files)
        .output()
    {
        Ok(out) => {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(out.status.success(), "{text}");
            assert!(
                !text.contains("Creating"),
                "systemd-sysusers would still:\n{text}"
            );
        }
        Err(e) => println!("skipped the systemd-sysusers check: {e}"),
    }

    // A second activation (the next boot) changes nothing.
    let snapshot = |m: &Machine| ["passwd", "group", "shadow", "gshadow"].map(|f| m.read(f));
    let before = snapshot(&m);
    let state = fs::read_to_string(m.root().join("var/lib/imago/uids")).unwrap();
    m.activate(built);
    assert_eq!(snapshot(&m), before);
    assert_eq!(
        fs::read_to_string(m.root().join("var/lib/imago/uids")).unwrap(),
        state
    );
    assert!(state.contains("systemd-network:"), "{state}");
}

/// A sysusers.d line the script does not write is named and left to
/// systemd-sysusers, which activation then runs (on a real root only).
#[test]
fn a_line_not_understood_is_left_to_systemd_sysusers() {
    let built = built();
    let m = Machine::new(built);
    let odd = m.dir.path().join("odd");
    fs::create_dir_all(&odd).unwrap();
    fs::write(odd.join("odd.conf"), "u odd /etc/odd.uid\n").unwrap();
    let stderr = m.activate_with(built, &[&odd]);
    assert!(
        stderr
            .contains("odd.conf:1: user id /etc/odd.uid not understood; left to systemd-sysusers"),
        "{stderr}"
    );
    assert!(!m.read("passwd").contains("\nodd:"), "{}", m.read("passwd"));
    // The other accounts are written as ever.
    assert!(
        m.read("passwd").contains("\nimago-test:"),
        "{}",
        m.read("passwd")
    );
}

#[test]
fn blessing_waits_for_the_esp() {
    let built = built();
    let etc = built.entry("etc");
    let fstab = fs::read_to_string(etc.join("fstab")).unwrap();
    assert!(
        fstab
            .lines()
            .any(|l| l.starts_with("LABEL=IMAGO-ESP /boot vfat ")),
        "{fstab}"
    );
    let unit = fs::read_to_string(etc.join("systemd/system/imago-bless-boot.service")).unwrap();
    let after: Vec<&str> = unit
        .lines()
        .filter_map(|l| l.strip_prefix("After="))
        .flat_map(str::split_whitespace)
        .collect();
    assert!(after.contains(&"boot.mount"), "{unit}");
    assert!(after.contains(&"boot-complete.target"), "{unit}");
    // Nothing waits for it: multi-user.target is not ordered after it.
    assert!(
        unit.lines().any(|l| l == "DefaultDependencies=no"),
        "{unit}"
    );
    // A direct boot names no generation: nothing to bless, no process.
    assert!(
        unit.lines()
            .any(|l| l == "ConditionKernelCommandLine=imago.generation"),
        "{unit}"
    );
}

/// /var and /var/lib are searchable by every user whatever made them (a
/// busybox system's were 0700, left by this script's own umask): services
/// running as their own users pass through them (nginx's workers write
/// request bodies below /var/lib/nginx). Imago's own state stays private.
#[test]
fn var_lib_is_searchable_and_imagos_state_private() {
    let built = built();
    let m = Machine::new(built);
    fs::create_dir_all(m.root().join("var/lib")).unwrap();
    for dir in ["var", "var/lib"] {
        fs::set_permissions(m.root().join(dir), fs::Permissions::from_mode(0o700)).unwrap();
    }
    m.activate(built);
    let mode = |dir: &str| {
        fs::metadata(m.root().join(dir))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(mode("var"), 0o755);
    assert_eq!(mode("var/lib"), 0o755);
    assert_eq!(mode("var/lib/imago"), 0o700);
}
