//! What the module library makes of setuid wrappers, sudo, normal users and
//! secrets, without a VM.
//!
//! * Evaluation only (`imago config` on small systems): the warnings about
//!   secrets that would land in the world-readable store, and the silence
//!   about what is no secret; `isNormalUser`; the merged authorized keys;
//!   the sudoers text; the checks on wrappers and sudo rules.
//! * One real build (examples/bookworm/server.imago with sudo and a few wrappers,
//!   into a temporary store): the profile's list of Debian's setuid files,
//!   no setuid bit anywhere in the store, the sudoers file accepted by the
//!   package's own `visudo -c`, and the system's `update-wrappers` run under
//!   the host's busybox on a scratch root (`IMAGO_ROOT`): the wrappers'
//!   owners and modes, a second activation replacing the directory, and a
//!   failing one leaving the previous wrappers in place. The last part
//!   gives files to other owners, so it needs root (it says so and skips
//!   otherwise).

#![allow(clippy::unwrap_used)]

use crate::support::cli::imago;
use crate::support::system::{Built, on_host_busybox, repo};
use std::fs;
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// A system file in a temporary directory (with `files` beside it).
fn system(text: &str, files: &[(&str, &str)]) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    for (name, contents) in files {
        fs::write(dir.path().join(name), contents).unwrap();
    }
    let file = dir.path().join("system.imago");
    fs::write(&file, text).unwrap();
    let file = file.to_str().unwrap().to_owned();
    (dir, file)
}

/// `imago config FILE --json -A ATTR`: the value, or stderr.
fn config(file: &str, attr: &str) -> Result<serde_json::Value, String> {
    let out = imago(&["config", file, "--json", "-A", attr]);
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(serde_json::from_slice(&out.stdout).unwrap())
}

fn warnings(file: &str) -> Vec<String> {
    serde_json::from_value(config(file, "warnings").unwrap()).unwrap()
}

/// Forces the toplevel: its assertions and warnings. Returns (success,
/// stderr).
fn toplevel(file: &str) -> (bool, String) {
    let out = imago(&["config", file, "-A", "system.build.toplevel"]);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn secrets_headed_for_the_store_are_warned_about() {
    let (_dir, file) = system(
        r#"{ ... }: {
  boot.init = "busybox";
  users.users.hashed.hashedPassword = "$6$salt$hash";
  users.users.fromfile.hashedPasswordFile = "/var/lib/secrets/fromfile";
  users.users.locked.hashedPassword = "!";
  users.users.nopass.hashedPassword = "*";
  environment.etc."app/token" = { text = "s3cret"; mode = "0600"; user = "app"; };
  environment.etc."app/group-only" = { text = "s3cret"; mode = "0640"; };
  environment.etc."app/key" = { source = ./key; mode = "0400"; };
  environment.etc."app/public" = { text = "hello"; mode = "0644"; };
  environment.etc."app/linked" = { text = "hello"; };
  environment.etc."app/outside" = { symlink = "/var/lib/secrets/app"; mode = "0600"; };
  environment.etc."app/policy" = { text = "not secret"; mode = "0440"; secret = false; };
  environment.etc."app/off" = { text = "s3cret"; mode = "0600"; enable = false; };
}
"#,
        &[("key", "PRIVATE KEY\n")],
    );
    let mut got = warnings(&file);
    got.sort();
    assert_eq!(got.len(), 4, "{got:#?}");
    // Each names what is exposed and the option that keeps it out.
    assert!(got[0].starts_with("environment.etc.\"app/group-only\": the file is installed with mode 0640, but its text is copied into the store (/imago/store), which every local user can read."), "{}", got[0]);
    assert!(
        got[0].contains("set environment.etc.\"app/group-only\".symlink to its path"),
        "{}",
        got[0]
    );
    assert!(
        got[1].starts_with(
            "environment.etc.\"app/key\": the file is installed with mode 0400, but its source "
        ),
        "{}",
        got[1]
    );
    assert!(
        got[1].contains("/key is copied into the store"),
        "{}",
        got[1]
    );
    assert!(
        got[2].starts_with("environment.etc.\"app/token\": the file is installed with mode 0600"),
        "{}",
        got[2]
    );
    assert_eq!(
        got[3],
        "users.users.hashed.hashedPassword: the password hash is copied into the store \
         (/imago/store), which every local user can read. Keep it out of the store: put the \
         hash in a file on the machine (mode 0600) and set \
         users.users.hashed.hashedPasswordFile to its path instead."
    );

    // Building prints them (with the toplevel's evaluation).
    let (ok, stderr) = toplevel(&file);
    assert!(ok, "{stderr}");
    assert_eq!(stderr.matches("trace: warning: ").count(), 4, "{stderr}");
    assert!(
        stderr.contains("trace: warning: users.users.hashed.hashedPassword: "),
        "{stderr}"
    );

    // The examples have no secret in the store, and sudo's 0440 sudoers is
    // none either.
    for example in ["minimal", "server"] {
        let file = repo().join(format!("examples/{example}.imago"));
        assert_eq!(warnings(file.to_str().unwrap()), Vec::<String>::new());
    }
    let (_dir, file) = system("{ ... }: { security.sudo.enable = true; }\n", &[]);
    assert_eq!(warnings(&file), Vec::<String>::new());
    let secret: bool =
        serde_json::from_value(config(&file, "environment.etc.sudoers.secret").unwrap()).unwrap();
    assert!(!secret);
}

#[test]
fn normal_users_get_a_home_the_users_group_and_the_default_shell() {
    for (init, shell) in [("systemd", "/bin/bash"), ("busybox", "/bin/sh")] {
        let (_dir, file) = system(
            &format!(
                "{{ ... }}: {{ boot.init = \"{init}\"; users.users.ann.isNormalUser = true; users.users.old = {{ }}; }}\n"
            ),
            &[],
        );
        let ann = config(&file, "users.users.ann").unwrap();
        assert_eq!(ann["home"], "/home/ann");
        assert_eq!(ann["createHome"], true);
        assert_eq!(ann["group"], "users");
        assert_eq!(ann["isSystemUser"], false);
        assert_eq!(ann["shell"], shell, "{init}");
        assert_eq!(config(&file, "users.defaultUserShell").unwrap(), shell);
        // A user with neither flag keeps Imago's older defaults.
        let old = config(&file, "users.users.old").unwrap();
        assert_eq!(old["createHome"], false);
        assert_eq!(old["shell"], "/bin/sh");
        assert_eq!(old["home"], "/home/old");
        // The group exists with Debian's gid.
        assert_eq!(config(&file, "users.groups.users.gid").unwrap(), 100);
    }
    // An explicit shell wins over the default one.
    let (_dir, file) = system(
        "{ ... }: { users.users.ann = { isNormalUser = true; shell = \"/bin/dash\"; }; }\n",
        &[],
    );
    assert_eq!(config(&file, "users.users.ann.shell").unwrap(), "/bin/dash");

    for (user, want) in [
        (
            "{ isNormalUser = true; isSystemUser = true; }",
            "users.users.both: isNormalUser and isSystemUser are both set",
        ),
        (
            "{ isNormalUser = true; uid = 999; }",
            "users.users.both: isNormalUser with uid 999; a normal user's uid is 1000 or more",
        ),
    ] {
        let (_dir, file) = system(
            &format!("{{ ... }}: {{ users.users.both = {user}; }}\n"),
            &[],
        );
        let (ok, stderr) = toplevel(&file);
        assert!(!ok, "{user}: accepted");
        assert!(stderr.contains(want), "{user}: {stderr}");
    }
}

#[test]
fn authorized_keys_merge_keys_key_files_and_the_older_name() {
    let (_dir, file) = system(
        r#"{ ... }: {
  services.openssh.enable = true;
  users.users.ann = {
    isNormalUser = true;
    authorizedKeys = [ "ssh-ed25519 AAAAold ann@old" ];
    openssh.authorizedKeys.keys = [ "ssh-ed25519 AAAAnew ann@new" ];
    openssh.authorizedKeys.keyFiles = [ ./ann.pub ];
  };
  users.users.bob.isNormalUser = true;
}
"#,
        &[(
            "ann.pub",
            "# ann's laptop and phone\nssh-ed25519 AAAAfile1 ann@laptop\n\nssh-rsa AAAAfile2 ann@phone\n",
        )],
    );
    let mut keys: Vec<String> = serde_json::from_value(
        config(&file, "users.users.ann.openssh.authorizedKeys.keys").unwrap(),
    )
    .unwrap();
    keys.sort();
    assert_eq!(
        keys,
        [
            "ssh-ed25519 AAAAfile1 ann@laptop",
            "ssh-ed25519 AAAAnew ann@new",
            "ssh-ed25519 AAAAold ann@old",
            "ssh-rsa AAAAfile2 ann@phone",
        ]
    );
    // sshd's file holds all four; bob has none, so no file.
    let etc = config(&file, "environment.etc").unwrap();
    let text = etc["ssh/authorized_keys.d/ann"]["text"].as_str().unwrap();
    for key in &keys {
        assert!(text.lines().any(|l| l == key), "{key} not in\n{text}");
    }
    assert_eq!(etc["ssh/authorized_keys.d/ann"]["mode"], "0444");
    assert!(etc.get("ssh/authorized_keys.d/bob").is_none());
    // Commands without a login shell get the system's PATH, wrappers first.
    let sshd = etc["ssh/sshd_config"]["text"].as_str().unwrap();
    assert!(
        sshd.lines()
            .any(|l| l == "SetEnv PATH=/run/wrappers/bin:/usr/local/bin:/usr/bin:/usr/sbin"),
        "{sshd}"
    );
}

#[test]
fn sudoers_comes_from_the_rules() {
    let (_dir, file) = system(
        r#"{ ... }: {
  users.users.ann = { isNormalUser = true; extraGroups = [ "wheel" ]; };
  security.sudo.enable = true;
  security.sudo.extraRules = [
    { users = [ "backup" 1234 ]; groups = [ 7 ]; runAs = "root"; commands = [
      "/usr/bin/ls"
      { command = "/usr/bin/rsync --server"; options = [ "NOPASSWD" "SETENV" ]; }
    ]; }
  ];
  security.sudo.extraConfig = "Defaults lecture=never";
}
"#,
        &[],
    );
    let etc = config(&file, "environment.etc").unwrap();
    assert_eq!(
        etc["sudoers"]["text"],
        "# Generated by Imago from security.sudo; change the options, not this file.\n\
         Defaults secure_path=\"/run/wrappers/bin:/usr/local/bin:/usr/bin:/usr/sbin\"\n\
         # Keep SSH_AUTH_SOCK for agent forwarding.\n\
         Defaults env_keep+=SSH_AUTH_SOCK\n\
         \n\
         # root may do anything.\n\
         root ALL=(ALL:ALL) SETENV: ALL\n\
         \n\
         %wheel ALL=(ALL:ALL) SETENV: ALL\n\
         backup ALL=(root) /usr/bin/ls, NOPASSWD:SETENV: /usr/bin/rsync --server\n\
         #1234 ALL=(root) /usr/bin/ls, NOPASSWD:SETENV: /usr/bin/rsync --server\n\
         %#7 ALL=(root) /usr/bin/ls, NOPASSWD:SETENV: /usr/bin/rsync --server\n\
         \n\
         Defaults lecture=never\n"
    );
    assert_eq!(etc["sudoers"]["mode"], "0440");
    assert_eq!(etc["sudoers"]["user"], "root");
    assert!(
        etc["pam.d/sudo"]["source"]
            .as_str()
            .unwrap()
            .ends_with("-sudo/etc/pam.d/sudo")
    );
    // The setuid wrappers, as NixOS declares them.
    let sudo = config(&file, "security.wrappers.sudo").unwrap();
    assert_eq!(sudo["source"], "/usr/bin/sudo");
    assert_eq!(sudo["owner"], "root");
    assert_eq!(sudo["setuid"], true);
    assert_eq!(sudo["permissions"], "u+rx,g+x,o+x");
    // PAM comes with it, on busybox systems too.
    let (_dir, file) = system(
        "{ ... }: { boot.init = \"busybox\"; security.sudo.enable = true; security.sudo.wheelNeedsPassword = false; }\n",
        &[],
    );
    assert_eq!(config(&file, "security.pam.enable").unwrap(), true);
    let text = config(&file, "environment.etc.sudoers.text").unwrap();
    assert!(
        text.as_str()
            .unwrap()
            .contains("\n%wheel ALL=(ALL:ALL) NOPASSWD:SETENV: ALL\n"),
        "{text}"
    );
}

#[test]
fn bad_sudo_rules_and_wrappers_are_refused_by_name() {
    // Checked by the option types: nothing can break a sudoers line.
    for (definition, option) in [
        (
            r#"security.sudo.enable = true; security.sudo.extraRules = [ { users = [ "ann\nALL ALL=(ALL) ALL" ]; commands = [ "ALL" ]; } ];"#,
            "users",
        ),
        (
            r#"security.sudo.enable = true; security.sudo.extraRules = [ { users = [ "ann" ]; commands = [ "/bin/ls\nann ALL=(ALL) ALL" ]; } ];"#,
            "commands",
        ),
        (
            r#"security.sudo.enable = true; security.sudo.extraRules = [ { users = [ "ann" ]; commands = [ { command = "ALL"; options = [ "NOPASS" ]; } ]; } ];"#,
            "options",
        ),
        (
            r#"security.wrappers."../x" = { source = "/usr/bin/id"; owner = "root"; group = "root"; };"#,
            "program",
        ),
        (
            r#"security.wrappers.x = { source = "/usr/bin/id"; owner = "root"; group = "root"; permissions = "0755; rm -rf /"; };"#,
            "permissions",
        ),
        (
            r#"security.wrappers.x = { source = "usr/bin/id"; owner = "root"; group = "root"; };"#,
            "source",
        ),
    ] {
        let (_dir, file) = system(&format!("{{ ... }}: {{ {definition} }}\n"), &[]);
        let (ok, stderr) = toplevel(&file);
        assert!(!ok, "{definition}: accepted");
        assert!(stderr.contains("E0302"), "{definition}: {stderr}");
        assert!(stderr.contains(option), "{definition}: {stderr}");
    }
    // Checked by assertions.
    for (definition, want) in [
        (
            r#"security.sudo.enable = true; security.sudo.extraRules = [ { commands = [ "ALL" ]; } ];"#,
            "security.sudo.extraRules: a rule for commands ALL names no user and no group",
        ),
        (
            r#"security.sudo.enable = true; security.pam.enable = false;"#,
            "security.sudo.enable needs security.pam.enable",
        ),
        (
            r#"security.wrappers.ping = { source = "/usr/bin/ping"; owner = "root"; group = "root"; capabilities = "cap_net_raw+ep"; };"#,
            "security.wrappers.ping.capabilities: file capabilities are not supported",
        ),
        (
            r#"security.wrappers.a = { source = "/usr/bin/a"; owner = "root"; group = "root"; program = "x"; };
               security.wrappers.b = { source = "/usr/bin/b"; owner = "root"; group = "root"; program = "x"; };"#,
            "security.wrappers: several wrappers are called `x`",
        ),
    ] {
        let (_dir, file) = system(&format!("{{ ... }}: {{ {definition} }}\n"), &[]);
        let (ok, stderr) = toplevel(&file);
        assert!(!ok, "{definition}: accepted");
        assert!(stderr.contains(want), "{definition}: {stderr}");
    }
}

// ---- a real build ----

/// The example server with sudo, a declared wrapper, two broken ones and
/// one of Debian's turned off.
/// Builds the test system once for all tests of this file.
fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    Built::once(&BUILT, SYSTEM)
}

const SYSTEM: &str = r#"{ ... }:
{
  imports = [ @server@ ];
  security.sudo = { enable = true; wheelNeedsPassword = false; };
  security.wrappers.id-users = { source = "/usr/bin/id"; owner = "root"; group = "users"; setgid = true; permissions = "0750"; };
  security.wrappers.missing = { source = "/usr/bin/no-such-program"; owner = "root"; group = "root"; setuid = true; };
  security.wrappers.nobody-owns = { source = "/usr/bin/id"; owner = "no-such-user"; group = "root"; setuid = true; };
  security.wrappers.chfn.enable = false;
}
"#;

#[test]
fn the_profile_lists_debians_setuid_files_and_the_store_has_none() {
    let built = built();
    let list = fs::read_to_string(built.entry("sw").join(".imago/setuid")).unwrap();
    assert_eq!(
        list,
        "2755 root:shadow usr/bin/chage\n\
         4755 root:root usr/bin/chfn\n\
         4755 root:root usr/bin/chsh\n\
         2755 root:shadow usr/bin/expiry\n\
         4755 root:root usr/bin/gpasswd\n\
         4755 root:root usr/bin/mount\n\
         4755 root:root usr/bin/newgrp\n\
         4755 root:root usr/bin/passwd\n\
         4755 root:root usr/bin/su\n\
         4755 root:root usr/bin/sudo\n\
         4755 root:root usr/bin/umount\n\
         4755 root:root usr/lib/openssh/ssh-keysign\n\
         2755 root:shadow usr/sbin/unix_chkpwd\n"
    );
    // No file of any object is setuid or setgid.
    let mut stack = vec![built.store.clone()];
    let mut files = 0;
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let meta = entry.path().symlink_metadata().unwrap();
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() {
                files += 1;
                assert_eq!(meta.mode() & 0o6000, 0, "{}", entry.path().display());
            }
        }
    }
    assert!(files > 1000, "{files} files");
}

#[test]
fn sudoers_passes_the_packages_visudo() {
    let built = built();
    let sudoers = built.entry("etc").join("sudoers");
    let sudo = fs::read_dir(&built.store)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_str().unwrap().ends_with("-sudo"))
        .expect("the sudo package in the store");
    let run = |file: &Path| {
        Command::new(sudo.join("usr/sbin/visudo"))
            .env("LD_LIBRARY_PATH", sudo.join("usr/libexec/sudo"))
            .arg("-c")
            .arg("-f")
            .arg(file)
            .output()
    };
    let out = match run(&sudoers) {
        Ok(out) => out,
        Err(e) => {
            println!("skipped: cannot run the package's visudo here: {e}");
            return;
        }
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if text.contains("error while loading shared libraries") {
        println!("skipped: the package's visudo does not run on this host: {text}");
        return;
    }
    assert!(out.status.success(), "{text}");
    assert!(text.contains("parsed OK"), "{text}");
    // And it does reject a broken file (so the pass means something).
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("sudoers");
    let mut text = fs::read_to_string(&sudoers).unwrap();
    text.push_str("%wheel ALL=(ALL:ALL\n");
    fs::write(&broken, text).unwrap();
    assert!(!run(&broken).unwrap().status.success());
}

/// The system's `update-wrappers` with the host's busybox as its tools,
/// on a scratch root.
struct Machine {
    dir: tempfile::TempDir,
    script: PathBuf,
    /// A stand-in for the toplevel: `sw` links to the built profile.
    system: PathBuf,
    declared: PathBuf,
}

impl Machine {
    fn new(built: &Built) -> Machine {
        let dir = tempfile::tempdir().unwrap();
        let text = fs::read_to_string(built.activation_input("update-wrappers")).unwrap();
        // It must write below IMAGO_ROOT: never run one that would write
        // the host's /run.
        assert!(
            text.contains("IMAGO_ROOT"),
            "update-wrappers cannot run on a scratch root"
        );
        let script = on_host_busybox(dir.path(), "update-wrappers", &text);
        let system = dir.path().join("system");
        fs::create_dir_all(&system).unwrap();
        symlink(built.entry("sw"), system.join("sw")).unwrap();
        let declared = built.activation_input("wrappers");
        fs::create_dir_all(dir.path().join("root/run")).unwrap();
        Machine {
            dir,
            script,
            system,
            declared,
        }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn wrappers(&self) -> PathBuf {
        self.root().join("run/wrappers")
    }

    /// Runs update-wrappers with a manifest of declared wrappers; returns
    /// (success, stderr).
    fn activate_with(&self, declared: &Path) -> (bool, String) {
        let out = Command::new(&self.script)
            .env("IMAGO_ROOT", self.root())
            .arg(&self.system)
            .arg(declared)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn activate(&self) -> String {
        let (ok, stderr) = self.activate_with(&self.declared);
        assert!(ok, "update-wrappers failed:\n{stderr}");
        stderr
    }

    /// `(mode, uid, gid)` of a wrapper.
    fn wrapper(&self, name: &str) -> Option<(u32, u32, u32)> {
        let meta = fs::metadata(self.wrappers().join("bin").join(name)).ok()?;
        Some((meta.mode() & 0o7777, meta.uid(), meta.gid()))
    }

    /// The `wrappers.*` directories.
    fn generations(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.wrappers())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with("wrappers."))
            .collect();
        names.sort();
        names
    }

    fn bin_target(&self) -> String {
        fs::read_link(self.wrappers().join("bin"))
            .unwrap()
            .into_os_string()
            .into_string()
            .unwrap()
    }
}

/// The host's id of a group (the wrapper's owners resolve on the host).
fn gid_of(group: &str) -> Option<u32> {
    fs::read_to_string("/etc/group")
        .unwrap()
        .lines()
        .find(|l| l.starts_with(&format!("{group}:")))
        .and_then(|l| l.split(':').nth(2))
        .and_then(|g| g.parse().ok())
}

#[test]
fn activation_makes_the_wrappers_and_replaces_them_whole() {
    if !is_root() {
        println!("skipped: giving the wrappers to root and other groups needs root");
        return;
    }
    let built = built();
    let m = Machine::new(built);
    let stderr = m.activate();
    let shadow = gid_of("shadow");
    let users = gid_of("users").expect("the host has a group `users`");

    // Declared by the sudo module: 4511; Debian's: Debian's modes.
    assert_eq!(m.wrapper("sudo"), Some((0o4511, 0, 0)));
    assert_eq!(m.wrapper("sudoedit"), Some((0o4511, 0, 0)));
    for name in [
        "su",
        "passwd",
        "chsh",
        "gpasswd",
        "newgrp",
        "mount",
        "umount",
        "ssh-keysign",
    ] {
        assert_eq!(m.wrapper(name), Some((0o4755, 0, 0)), "{name}");
    }
    if let Some(shadow) = shadow {
        for name in ["chage", "expiry", "unix_chkpwd"] {
            assert_eq!(m.wrapper(name), Some((0o2755, 0, shadow)), "{name}");
        }
    }
    // Declared with an octal mode and setgid.
    assert_eq!(m.wrapper("id-users"), Some((0o2750, 0, users)));
    // Turned off; and the broken ones are reported, not made.
    assert_eq!(m.wrapper("chfn"), None);
    assert_eq!(m.wrapper("missing"), None);
    assert_eq!(m.wrapper("nobody-owns"), None);
    assert!(
        stderr.contains("update-wrappers: missing: the source ")
            && stderr.contains("/usr/bin/no-such-program is not a file; no wrapper"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "update-wrappers: nobody-owns: cannot give it to no-such-user:root; no wrapper"
        ),
        "{stderr}"
    );
    // Copies of the installed files, through sudoedit's symlink too.
    let sw = built.entry("sw");
    let bin = m.wrappers().join("bin");
    assert_eq!(
        fs::read(bin.join("su")).unwrap(),
        fs::read(sw.join("usr/bin/su")).unwrap()
    );
    assert_eq!(
        fs::read(bin.join("sudoedit")).unwrap(),
        fs::read(sw.join("usr/bin/sudo")).unwrap()
    );
    assert!(
        !bin.join("sudoedit")
            .symlink_metadata()
            .unwrap()
            .is_symlink()
    );
    // The directory: complete, root's, 0755, the only one.
    let first = m.bin_target();
    assert_eq!(m.generations(), std::slice::from_ref(&first));
    let meta = fs::metadata(m.wrappers().join(&first)).unwrap();
    assert_eq!((meta.mode() & 0o7777, meta.uid()), (0o755, 0));

    // A second activation (the next boot, a switch) replaces it whole.
    m.activate();
    let second = m.bin_target();
    assert_ne!(first, second);
    assert_eq!(m.generations(), std::slice::from_ref(&second));
    assert_eq!(m.wrapper("sudo"), Some((0o4511, 0, 0)));

    // One that fails half-way (chmod refuses the mode) leaves the previous
    // wrappers in place and no half-made directory behind.
    let bad = m.dir.path().join("bad-manifest");
    fs::write(
        &bad,
        "aaa\t1\t/usr/bin/id\troot\troot\t0\t0\tu+rx\nzzz\t1\t/usr/bin/id\troot\troot\t0\t0\tnot-a-mode\n",
    )
    .unwrap();
    let (ok, _) = m.activate_with(&bad);
    assert!(!ok, "a failed chmod was not an error");
    assert_eq!(m.bin_target(), second);
    assert_eq!(m.generations(), [second]);
    assert_eq!(m.wrapper("aaa"), None);
    assert_eq!(m.wrapper("sudo"), Some((0o4511, 0, 0)));
}

#[test]
fn activation_skips_bad_lines_of_a_setuid_list() {
    if !is_root() {
        println!("skipped: giving the wrappers to root needs root");
        return;
    }
    let built = built();
    let m = Machine::new(built);
    // A profile of our own: one good line, and lines the builder would
    // never write.
    let sw = m.dir.path().join("sw");
    fs::create_dir_all(sw.join(".imago")).unwrap();
    fs::create_dir_all(sw.join("usr/bin")).unwrap();
    fs::write(sw.join("usr/bin/su"), "su").unwrap();
    fs::write(
        sw.join(".imago/setuid"),
        "4755 root:root usr/bin/su\n\
         4755 root:root ../../etc/shadow\n\
         4755 root:root /usr/bin/su\n\
         47x5 root:root usr/bin/su\n\
         4755 root usr/bin/su\n",
    )
    .unwrap();
    fs::remove_file(m.system.join("sw")).unwrap();
    symlink(&sw, m.system.join("sw")).unwrap();
    let empty = m.dir.path().join("empty-manifest");
    fs::write(&empty, "").unwrap();
    let (ok, stderr) = m.activate_with(&empty);
    assert!(ok, "{stderr}");
    assert_eq!(m.wrapper("su"), Some((0o4755, 0, 0)));
    assert_eq!(fs::read_dir(m.wrappers().join("bin")).unwrap().count(), 1);
    for bad in [
        "bad path '../../etc/shadow'",
        "bad path '/usr/bin/su'",
        "bad mode '47x5'",
        "bad owner 'root'",
    ] {
        assert!(stderr.contains(bad), "{bad}: {stderr}");
    }
}

/// Whether the test runs as root (the owner of its own /proc entry).
fn is_root() -> bool {
    fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}
