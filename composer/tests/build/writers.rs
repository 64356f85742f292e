//! `imago build` of the package set's writers (`pkgs.writeText`,
//! `writeShellScript`, `writeTextDir`, `writeShellScriptBin`) in a system
//! configuration that uses them, checking each built file's bytes and mode,
//! and that a script made with `writeShellScriptBin` lands in a profile's
//! usr/bin the way a Debian package's programs do.

// Test helpers outside #[test] functions panic on failure too.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const SYSTEM: &str = r##"
{ pkgs, lib, ... }:
let
  motd = pkgs.writeText "motd" "Welcome to ${config'.name}\n";
  config' = { name = "writers"; };
  greet = pkgs.writeShellScript "greet" ''
    echo "$(cat ${motd})"
  '';
  notes = pkgs.writeTextDir "share/doc/notes.txt" "notes\n";
  hello = pkgs.writeShellScriptBin "hello-imago" "exec ${greet}";
in {
  # The built objects, exposed as options so `imago build -A` can name them.
  options.writers = lib.mkOption { type = lib.types.attrsOf lib.types.package; };
  config = {
    system.name = "writers";
    boot.init = "busybox";
    # NixOS's idiom: a store object as a path option's value.
    environment.etc."motd".source = motd;
    environment.etc."greet".source = "${greet}";
    environment.systemPackages = [ hello ];
    writers = {
      inherit motd greet notes hello;
      profile = builtins.step { builder = "profile"; name = "writers-profile"; packages = [ "${hello}" ]; };
    };
  };
}
"##;

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("system.imago"), SYSTEM).unwrap();
        Env { dir }
    }

    fn build(&self, attr: &str) -> Output {
        Command::new(env!("CARGO_BIN_EXE_imago"))
            .arg("--store")
            .arg(self.dir.path().join("store"))
            .arg("build")
            .arg(self.dir.path().join("system.imago"))
            .args(["-A", attr])
            .current_dir(self.dir.path())
            .env("XDG_CACHE_HOME", self.dir.path().join("cache"))
            .output()
            .unwrap()
    }

    /// Builds `attr` and returns the physical path of the result.
    fn built(&self, attr: &str) -> PathBuf {
        let out = self.build(attr);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "building {attr}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The logical path, then (for a store outside /imago/store) the
        // physical one.
        PathBuf::from(stdout.lines().last().unwrap())
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap()
}

#[test]
fn writers_build_files_with_their_text_and_mode() {
    let env = Env::new();

    let motd = env.built("config.writers.motd");
    assert!(motd.to_string_lossy().ends_with("-motd"), "{motd:?}");
    assert!(motd.is_file());
    assert_eq!(read(&motd), "Welcome to writers\n");
    assert_eq!(mode(&motd), 0o444);

    let greet = env.built("config.writers.greet");
    assert!(greet.to_string_lossy().ends_with("-greet"), "{greet:?}");
    let text = read(&greet);
    assert!(
        text.starts_with("#!/bin/bash\necho \"$(cat /imago/store/"),
        "{text}"
    );
    assert!(text.ends_with("-motd)\"\n\n"), "{text}");
    assert_eq!(mode(&greet), 0o555);

    let notes = env.built("config.writers.notes");
    assert!(notes.to_string_lossy().ends_with("-notes.txt"), "{notes:?}");
    assert!(notes.is_dir());
    let file = notes.join("share/doc/notes.txt");
    assert_eq!(read(&file), "notes\n");
    assert_eq!(mode(&file), 0o444);

    let hello = env.built("config.writers.hello");
    let script = hello.join("usr/bin/hello-imago");
    let text = read(&script);
    assert!(
        text.starts_with("#!/bin/bash\nexec /imago/store/"),
        "{text}"
    );
    assert!(text.ends_with("-greet\n"), "{text}");
    assert_eq!(mode(&script), 0o555);

    // In a profile, as in the system's /usr, the script is in usr/bin.
    let profile = env.built("config.writers.profile");
    assert_eq!(read(&profile.join("usr/bin/hello-imago")), text);
}

#[test]
fn a_bad_name_is_an_error_at_the_call() {
    let env = Env::new();
    let text = SYSTEM.replace(r#"pkgs.writeText "motd""#, r#"pkgs.writeText "etc/motd""#);
    std::fs::write(env.dir.path().join("system.imago"), text).unwrap();
    let out = env.build("config.writers.motd");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "writeText: the name \"etc/motd\" cannot name a store object: it contains '/'"
        ),
        "{err}"
    );
    assert!(err.contains("system.imago:4:10"), "{err}");
}
