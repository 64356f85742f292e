//! `imago build` end to end: a small file of text and tree steps built into
//! a temporary store, twice, with an out-link.

// Test helpers outside #[test] functions panic on failure too.
#![allow(clippy::unwrap_used)]

use crate::support::cli::{stderr, stdout};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const FILE: &str = r##"
let
  greeting = builtins.step { builder = "text"; name = "greeting"; text = "hello\n"; };
  script = builtins.step {
    builder = "text"; name = "hello.sh"; executable = true;
    text = "#!/bin/sh\ncat ${greeting}\n";
  };
  broken = builtins.step { builder = "tree"; name = "broken"; entries = { "../x" = { text = "no"; }; }; };
in {
  inherit greeting;
  tree = builtins.step {
    builder = "tree"; name = "hello-tree";
    entries = {
      "bin/hello" = { source = "${script}"; };
      "share/greeting" = { source = "${greeting}"; };
      "etc/motd" = { text = "welcome"; };
      "etc/link" = { symlink = "motd"; };
    };
  };
  needsBroken = builtins.step { builder = "text"; name = "needs-broken"; text = "${broken}"; };
  notAStep = "just text";
}
"##;

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("hello.imago"), FILE).unwrap();
        Env { dir }
    }

    fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    fn imago(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_imago"))
            .arg("--store")
            .arg(self.store())
            .arg("build")
            .arg(self.dir.path().join("hello.imago"))
            .args(args)
            .current_dir(self.dir.path())
            .env("XDG_CACHE_HOME", self.dir.path().join("cache"))
            .output()
            .unwrap()
    }
}

#[test]
fn builds_a_tree_twice_the_second_time_from_the_cache() {
    let env = Env::new();
    let first = env.imago(&["-A", "tree", "-o", "result"]);
    assert!(first.status.success(), "{}", stderr(&first));
    let lines: Vec<String> = stdout(&first).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].starts_with("/imago/store/") && lines[0].ends_with("-hello-tree"));
    let physical = PathBuf::from(&lines[1]);
    assert!(physical.starts_with(env.store().canonicalize().unwrap()));
    // The out-link points at the object.
    let result = env.dir.path().join("result");
    assert_eq!(std::fs::read_link(&result).unwrap(), physical);
    let script = std::fs::read_to_string(result.join("bin/hello")).unwrap();
    let greeting = script.lines().nth(1).unwrap().strip_prefix("cat ").unwrap();
    assert!(greeting.starts_with("/imago/store/") && greeting.ends_with("-greeting"));
    assert_eq!(
        std::fs::read_to_string(result.join("share/greeting")).unwrap(),
        "hello\n"
    );
    assert_eq!(
        std::fs::read_to_string(result.join("etc/motd")).unwrap(),
        "welcome"
    );
    assert_eq!(
        std::fs::read_link(result.join("etc/link")).unwrap(),
        Path::new("motd")
    );

    let second = env.imago(&["-A", "tree", "--json"]);
    assert!(second.status.success(), "{}", stderr(&second));
    let summary: serde_json::Value = serde_json::from_slice(&second.stdout).unwrap();
    assert_eq!(summary["built"], 0);
    assert_eq!(summary["cached"], 3);
    assert_eq!(summary["outputs"][0]["path"], lines[0].as_str());
}

#[test]
fn a_failed_step_reports_its_error_and_chain() {
    let env = Env::new();
    let out = env.imago(&["-A", "needsBroken"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("step `broken` (builder `tree`) failed"),
        "{err}"
    );
    assert!(err.contains("`../x`"), "{err}");
    assert!(err.contains("needs-broken <- broken"), "{err}");
}

#[test]
fn missing_attributes_and_non_objects_are_clear_errors() {
    let env = Env::new();
    let out = env.imago(&["-A", "nosuch"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("nosuch"), "{err}");
    let out = env.imago(&["-A", "notAStep"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("not a store object"), "{err}");
}

#[test]
fn syntax_errors_are_rendered_with_a_location() {
    let env = Env::new();
    std::fs::write(env.dir.path().join("hello.imago"), "{ a = ; }").unwrap();
    let out = env.imago(&["-A", "a"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("hello.imago:1:"), "{err}");
}

#[test]
fn the_default_attribute_builds_a_systems_toplevel() {
    let env = Env::new();
    let lib = env.dir.path().join("modules");
    std::fs::create_dir(&lib).unwrap();
    std::fs::write(lib.join("module-list.imago"), "[ ./top.imago ]").unwrap();
    std::fs::write(
        lib.join("top.imago"),
        r#"{ lib, config, ... }: {
  options.system.name = lib.mkOption { type = lib.types.str; default = "box"; };
  options.system.build.toplevel = lib.mkOption { type = lib.types.str; };
  config.system.build.toplevel =
    "${builtins.step { builder = "text"; name = "top"; text = config.system.name; }}";
}"#,
    )
    .unwrap();
    std::fs::write(
        env.dir.path().join("hello.imago"),
        r#"{ ... }: { system.name = "mine"; }"#,
    )
    .unwrap();
    let out = env.imago(&["--modules", lib.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<String> = stdout(&out).lines().map(str::to_owned).collect();
    assert!(lines[0].ends_with("-top"), "{lines:?}");
    assert_eq!(std::fs::read_to_string(&lines[1]).unwrap(), "mine");
    // A missing option is an evaluation error naming it.
    let out = env.imago(&[
        "--modules",
        lib.to_str().unwrap(),
        "-A",
        "config.system.nosuch",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("system.nosuch"), "{}", stderr(&out));
}

#[test]
fn repair_rebuilds_a_corrupted_output_and_what_hard_links_it() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    let first = env.imago(&["-A", "greeting"]);
    assert!(first.status.success(), "{}", stderr(&first));
    let greeting = PathBuf::from(stdout(&first).lines().nth(1).unwrap());
    assert!(env.imago(&["-A", "tree"]).status.success());
    // The tree hard-links the greeting: corrupting one corrupts both.
    std::fs::set_permissions(&greeting, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(&greeting, "tampered\n").unwrap();
    let verify = |env: &Env| {
        Command::new(env!("CARGO_BIN_EXE_imago"))
            .arg("--store")
            .arg(env.store())
            .args(["store", "verify"])
            .output()
            .unwrap()
    };
    let broken = verify(&env);
    assert_eq!(broken.status.code(), Some(1), "{}", stdout(&broken));

    let repaired = env.imago(&["-A", "tree", "--repair"]);
    assert!(repaired.status.success(), "{}", stderr(&repaired));
    let err = stderr(&repaired);
    assert!(err.contains("repaired /imago/store/"), "{err}");
    assert!(err.contains("2 object(s) repaired"), "{err}");
    assert_eq!(std::fs::read_to_string(&greeting).unwrap(), "hello\n");
    let clean = verify(&env);
    assert!(clean.status.success(), "{}", stdout(&clean));
}
