//! How `imago` reports what is wrong with a configuration, as a process:
//! every unknown option in one run (with suggestions, submodules included),
//! NixOS names that Imago spells differently or lacks, renamed and removed
//! options, type errors with the option's declaration, library trace frames
//! collapsed unless `--show-trace`, and library files named `<modules>/...`
//! (never by the absolute path of the source tree).
//!
//! Snapshots (insta, tests/snapshots/) use a small library written by the
//! test, so they do not change when the real library does; the cases on the
//! real library (the NixOS names table) check their output by content.

use crate::support::cli::{imago, stderr, stdout};
use std::path::Path;

/// A small library: a few options, a submodule, an option computed by
/// library functions from another (so errors there pass through library
/// frames), a renamed and a removed name.
const BASE: &str = r#"{ config, lib, ... }:
let
  inherit (lib) mkOption types;
  lines = xs: lib.concatMapStringsSep "\n" (x: "${x}") xs;
in
{
  imports = [
    (lib.mkRenamedOptionModule [ "web" "listen" ] [ "web" "port" ])
    (lib.mkRemovedOptionModule [ "web" "ssl" ] "Put a TLS proxy in front of it.")
  ];
  options = {
    system.name = mkOption { type = types.str; default = "box"; description = "The name."; };
    hostName = mkOption {
      type = types.strMatching "[a-z0-9-]+";
      default = config.system.name;
      description = "The host name.";
    };
    web.enable = lib.mkEnableOption "the web server";
    web.port = mkOption { type = types.port; default = 80; description = "The port."; };
    users = mkOption {
      default = { };
      description = "Users.";
      type = types.attrsOf (types.submodule ({ name, ... }: {
        options.home = mkOption { type = types.str; default = "/home/${name}"; description = "Home."; };
        options.shell = mkOption { type = types.str; default = "/bin/sh"; description = "Shell."; };
      }));
    };
    motd = mkOption { type = types.str; description = "The message of the day."; };
  };
  config.motd = lines [ "Welcome to" (lib.toUpper config.hostName) ];
}
"#;

/// Writes the library and the user's file; returns (file, library dir).
fn fixture(dir: &Path, user: &str) -> (String, String) {
    let lib = dir.join("lib");
    std::fs::create_dir_all(&lib).expect("mkdir");
    std::fs::write(lib.join("module-list.imago"), "[ ./base.imago ]").expect("write");
    std::fs::write(lib.join("base.imago"), BASE).expect("write");
    let file = dir.join("sys.imago");
    std::fs::write(&file, user).expect("write");
    (file.display().to_string(), lib.display().to_string())
}

/// Runs `imago config FILE --modules LIB [extra...]` and returns the exit
/// code and stderr with the temporary directory replaced by `[TMP]`.
fn config(dir: &Path, user: &str, extra: &[&str]) -> (Option<i32>, String, String) {
    let (file, lib) = fixture(dir, user);
    let mut args = vec!["config", file.as_str(), "--modules", lib.as_str()];
    args.extend_from_slice(extra);
    let out = imago(&args);
    let err = stderr(&out);
    assert!(
        !err.contains(&lib),
        "the library's absolute path is shown:\n{err}"
    );
    let tmp = dir.display().to_string();
    (out.status.code(), stdout(&out), err.replace(&tmp, "[TMP]"))
}

#[test]
fn every_unknown_option_in_one_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, _, err) = config(
        dir.path(),
        r#"{
  hostname = "box";
  web.enabel = true;
  web.prot = 8080;
  users.alice.hmoe = "/srv/alice";
  users.bob.shel = "/bin/bash";
  name = "box";
}
"#,
        &[],
    );
    assert_eq!(code, Some(1), "{err}");
    insta::assert_snapshot!("unknown_options", err);
}

#[test]
fn renamed_and_removed_options() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A renamed option works, with a warning.
    let (code, out, err) = config(dir.path(), "{ web.listen = 8080; }\n", &["-A", "web.port"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, "8080\n");
    insta::assert_snapshot!("renamed_option", err);
    // A removed one is an error, reported with the warning.
    let (code, _, err) = config(
        dir.path(),
        "{\n  web.listen = 8080;\n  web.ssl = true;\n}\n",
        &[],
    );
    assert_eq!(code, Some(1), "{err}");
    insta::assert_snapshot!("removed_option", err);
}

#[test]
fn type_errors_show_the_definition_and_the_declaration() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, _, err) = config(
        dir.path(),
        "{\n  web.enable = \"yes\";\n  users.alice.shell = 42;\n}\n",
        &[],
    );
    assert_eq!(code, Some(1), "{err}");
    insta::assert_snapshot!("type_errors", err);
}

#[test]
fn library_frames_are_collapsed_unless_show_trace() {
    let dir = tempfile::tempdir().expect("tempdir");
    // `hostName` defaults to `system.name`, which allows `_`; the error
    // surfaces inside the library, computing `motd`.
    let user = "{ system.name = \"my_box\"; }\n";
    let (code, _, err) = config(dir.path(), user, &["-A", "motd"]);
    assert_eq!(code, Some(1), "{err}");
    insta::assert_snapshot!("library_type_error", err);
    let (code, _, all) = config(dir.path(), user, &["-A", "motd", "--show-trace"]);
    assert_eq!(code, Some(1), "{all}");
    insta::assert_snapshot!("library_type_error_show_trace", all);
}

#[test]
fn json_diagnostics_carry_warnings_and_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (file, lib) = fixture(dir.path(), "{\n  web.listen = 8080;\n  hots = 1;\n}\n");
    let out = imago(&["--error-format", "json", "config", &file, "--modules", &lib]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_str(&stderr(&out)).expect("JSON");
    assert_eq!(v[0]["code"], "W0301");
    assert_eq!(v[0]["severity"], "warning");
    assert_eq!(v[1]["code"], "E0301");
    assert_eq!(v[1]["severity"], "error");
    assert_eq!(v[1]["labels"][0]["line"], 3);
}

/// A configuration written for NixOS, on the real library.
const NIXOS: &str = r#"{ config, lib, pkgs, ... }:
{
  boot.loader.systemd-boot.enable = true;
  boot.loader.efi.canTouchEfiVariables = true;
  boot.loader.efi.efiSysMountPoint = "/boot";
  boot.kernelParams = [ "quiet" ];
  networking.hostName = "nixos";
  networking.networkmanager.enable = true;
  networking.interfaces.eth0.useDHCP = true;
  i18n.defaultLocale = "en_US.UTF-8";
  services.xserver.enable = true;
  services.openssh.enable = "yes";
  users.users.alice = {
    extraGroups = [ "wheel" ];
    initialPassword = "secret";
    shel = "/bin/bash";
  };
  environment.systemPackages = [ pkgs.vim ];
  nix.settings.experimental-features = [ "nix-command" "flakes" ];
  system.stateVersion = "24.05";
}
"#;

#[test]
fn nixos_names_are_explained_in_one_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("configuration.imago");
    std::fs::write(&file, NIXOS).expect("write");
    let out = imago(&["config", &file.display().to_string()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    let source_tree = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the source tree")
        .display()
        .to_string();
    assert!(
        !err.contains(&source_tree),
        "the source tree's path is shown:\n{err}"
    );
    let expected = [
        // Ignored, with a warning that says why.
        "warning[W0302]: Imago ignores the option `boot.loader.systemd-boot.enable`",
        "warning[W0302]: Imago ignores the option `boot.loader.efi.canTouchEfiVariables`",
        "warning[W0302]: Imago ignores the option `system.stateVersion`",
        // Spelt differently: it works, with a warning.
        "warning[W0301]: Imago spells the option `boot.loader.efi.efiSysMountPoint` as `boot.loader.espMountPoint`",
        "warning[W0301]: Imago spells the option `networking.interfaces.eth0.useDHCP` as `networking.interfaces.eth0.dhcp`",
        // Missing: what to use instead.
        "error[E0312]: Imago has no option `networking.networkmanager`",
        "error[E0312]: Imago has no option `i18n`",
        "error[E0312]: Imago has no option `services.xserver`",
        "error[E0312]: Imago has no option `nix`",
        "error[E0312]: Imago has no option `users.users.alice.initialPassword`",
        "set `hashedPassword`",
        // Unknown and mistyped, in the same run.
        "error[E0301]: the option `users.users.alice.shel` does not exist",
        "did you mean `users.users.alice.shell`?",
        "error[E0302]: the option `services.openssh.enable` is of type `boolean`, but it is defined as \"yes\"",
        "the option is declared here",
    ];
    for e in expected {
        assert!(err.contains(e), "`{e}` missing from:\n{err}");
    }
    // Every place is in the user's file, with line and column.
    assert!(err.contains("configuration.imago:3:28"), "{err}");
    assert!(err.contains("<modules>/services/openssh.imago:"), "{err}");
    let errors = err.lines().filter(|l| l.starts_with("error[")).count();
    let warnings = err.lines().filter(|l| l.starts_with("warning[")).count();
    assert_eq!((errors, warnings), (7, 5), "{err}");
}

#[test]
fn old_imago_names_still_work_without_a_warning() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("sys.imago");
    std::fs::write(
        &file,
        "{ pkgs, ... }: {\n  boot.kernel.params = [ \"quiet\" ];\n  environment.packages = [ pkgs.htop ];\n}\n",
    )
    .expect("write");
    let file = file.display().to_string();
    let out = imago(&["config", &file, "-A", "boot.kernelParams", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stderr(&out), "", "an alias gives no warning");
    let params: Vec<String> = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert!(params.contains(&"quiet".to_string()), "{params:?}");
    // Reading the old name reads the new one.
    let old = imago(&["config", &file, "-A", "boot.kernel.params", "--json"]);
    assert_eq!(stdout(&old), stdout(&out));
    let pkgs = imago(&[
        "config",
        &file,
        "-A",
        "environment.systemPackages",
        "--json",
    ]);
    assert!(stdout(&pkgs).contains("htop"), "{}", stdout(&pkgs));
}
