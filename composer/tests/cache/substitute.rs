//! `imago build --substituter CACHE`: a system built in one store, copied
//! to a cache with its step records, and built again in an empty store
//! from the cache; and every way a cache must not be used, each falling
//! back to building with a warning.
#![allow(clippy::unwrap_used)]

use crate::fixture::Fixture;
use crate::support::cli::{stderr, stdout};
use crate::support::store::temp_leftovers;
use imago::store::{Store, StorePath};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

/// Four steps: greeting ← hello.sh, motd, and the tree of both.
const SYSTEM: &str = r##"
let
  greeting = builtins.step { builder = "text"; name = "greeting"; text = "hello\n"; };
  script = builtins.step {
    builder = "text"; name = "hello.sh"; executable = true;
    text = "#!/bin/sh\ncat ${greeting}\n";
  };
  motd = builtins.step { builder = "text"; name = "motd"; text = "MOTD"; };
in {
  tree = builtins.step {
    builder = "tree"; name = "hello-tree";
    entries = {
      "bin/hello" = { source = "${script}"; };
      "etc/motd" = { source = "${motd}"; };
    };
  };
}
"##;

/// The fixture's keys and cache, the system file, and stores beside them.
struct Subst {
    f: Fixture,
}

impl Subst {
    fn new() -> Subst {
        let s = Subst { f: Fixture::new() };
        s.write_system("welcome");
        for d in ["config", "xdg-cache"] {
            fs::create_dir_all(s.f.dir.path().join(d)).unwrap();
        }
        s
    }

    fn path(&self, name: &str) -> PathBuf {
        self.f.dir.path().join(name)
    }

    /// The system file with `motd` as the motd step's text.
    fn write_system(&self, motd: &str) {
        fs::write(self.path("sys.imago"), SYSTEM.replace("MOTD", motd)).unwrap();
    }

    /// `imago --store STORE build sys.imago -A tree --json EXTRA...`, with
    /// configuration and download caches of the test's own.
    fn build(&self, store: &Path, extra: &[&str]) -> Output {
        self.build_env(store, extra, &[])
    }

    fn build_env(&self, store: &Path, extra: &[&str], envs: &[(&str, &str)]) -> Output {
        let (config, cache) = (self.path("config"), self.path("xdg-cache"));
        let file = self.path("sys.imago");
        let mut args = vec![
            "--store",
            store.to_str().unwrap(),
            "build",
            file.to_str().unwrap(),
            "-A",
            "tree",
            "--json",
        ];
        args.extend_from_slice(extra);
        let mut all = vec![
            ("XDG_CONFIG_HOME", config.to_str().unwrap()),
            ("XDG_CACHE_HOME", cache.to_str().unwrap()),
        ];
        all.extend_from_slice(envs);
        self.f.imago_env(&args, &all)
    }

    /// Builds the system in the store `name` and copies it to the cache,
    /// signed with `key`; returns the copy's summary.
    fn build_and_push(&self, name: &str, key: &str) -> serde_json::Value {
        self.build_and_push_to(name, key, &self.f.cache_url())
    }

    /// [`Subst::build_and_push`] to the cache at `url`.
    fn build_and_push_to(&self, name: &str, key: &str, url: &str) -> serde_json::Value {
        let store = self.path(name);
        let out = self.build(&store, &[]);
        assert!(out.status.success(), "{}", stderr(&out));
        let summary = json(&out);
        let top = summary["outputs"][0]["path"].as_str().unwrap().to_owned();
        let out = self.f.imago(&[
            "--store",
            store.to_str().unwrap(),
            "copy",
            "--to",
            url,
            &top,
            "--sign",
            &self.f.key(key),
            "--json",
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        json(&out)
    }

    /// Builds into a fresh store from `cache`, trusting `ci-1`; the build
    /// must succeed. Returns the summary, stderr and the store.
    fn substitute(&self, cache: &str) -> (serde_json::Value, String, tempfile::TempDir) {
        let dst = tempfile::tempdir().unwrap();
        let (summary, err, ()) = self.substitute_into(dst.path(), cache);
        (summary, err, dst)
    }

    /// [`Subst::substitute`] into the store `dst`.
    fn substitute_into(&self, dst: &Path, cache: &str) -> (serde_json::Value, String, ()) {
        let trust = self.f.key("ci-1.public");
        let out = self.build(
            dst,
            &["--substituter", cache, "--trusted-public-key", &trust],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        check_store(dst);
        (json(&out), stderr(&out), ())
    }
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_str(&stdout(out)).unwrap()
}

/// The store verifies and holds no leftovers.
fn check_store(dir: &Path) {
    let store = Store::open(dir).unwrap();
    let report = store.verify(false).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(temp_leftovers(dir).is_empty(), "{:?}", temp_leftovers(dir));
}

/// The origin of each step, by name.
fn origins(summary: &serde_json::Value) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = summary["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_owned(),
                s["origin"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    v.sort();
    v
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

#[test]
fn a_fresh_store_builds_nothing_the_cache_holds() {
    let s = Subst::new();
    let pushed = s.build_and_push("src-store", "ci-1.secret");
    assert_eq!(pushed["step_records"], 4, "{pushed}");
    let record = fs::read_dir(s.f.cache_dir().join("steps")).unwrap().count();
    assert_eq!(record, 4);
    let built = json(&s.build(&s.path("src-store"), &[]));

    let url = s.f.cache_url();
    let (summary, err, dst) = s.substitute(&url);
    assert_eq!(summary["built"], 0, "{summary}");
    assert_eq!(summary["cached"], 0, "{summary}");
    assert_eq!(summary["substituted"], 4, "{summary}");
    assert_eq!(summary["outputs"][0]["path"], built["outputs"][0]["path"]);
    for step in summary["steps"].as_array().unwrap() {
        assert_eq!(step["origin"], "substituted", "{step}");
        assert_eq!(step["substituter"], url.as_str(), "{step}");
    }
    assert!(
        summary["warnings"].as_array().unwrap().is_empty(),
        "{summary}"
    );
    assert!(err.contains("substituted hello-tree from file://"), "{err}");
    // The store has the closure of the wanted output, and only that: the
    // intermediate outputs (hello.sh and motd, which the tree copies)
    // were never fetched.
    let top = summary["outputs"][0]["physical"].as_str().unwrap();
    let script = fs::read_to_string(Path::new(top).join("bin/hello")).unwrap();
    assert!(
        script.starts_with("#!/bin/sh\ncat /imago/store/"),
        "{script}"
    );
    let store = Store::open(dst.path()).unwrap();
    assert_eq!(store.verify(false).unwrap().checked, 2);
    for name in ["hello.sh", "motd"] {
        assert!(
            !store.is_valid(&output_of(&summary, name)).unwrap(),
            "{name}"
        );
    }
    drop(store);
    // Again: the tree is in the local build cache; the rest is named by
    // the cache again, still without fetching.
    let (again, _, _) = s.substitute_into(dst.path(), &url);
    assert_eq!(
        origins(&again),
        pairs(&[
            ("greeting", "substituted"),
            ("hello-tree", "local"),
            ("hello.sh", "substituted"),
            ("motd", "substituted"),
        ]),
        "{again}"
    );

    // One changed step: it and the tree are built, the rest substituted.
    s.write_system("changed");
    let (summary, _, _dst) = s.substitute(&url);
    assert_eq!(
        origins(&summary),
        pairs(&[
            ("greeting", "substituted"),
            ("hello-tree", "built"),
            ("hello.sh", "substituted"),
            ("motd", "built"),
        ]),
        "{summary}"
    );
    assert_eq!(
        (summary["built"].clone(), summary["substituted"].clone()),
        (2.into(), 2.into())
    );
}

#[test]
fn a_record_signed_by_an_untrusted_key_is_not_used() {
    let s = Subst::new();
    let out = s.f.imago(&[
        "key",
        "generate",
        "other-1",
        "--dir",
        s.f.keys().to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    s.build_and_push("src-store", "other-1.secret");
    let url = s.f.cache_url();
    let (summary, err, _dst) = s.substitute(&url);
    assert_eq!(
        (summary["built"].clone(), summary["substituted"].clone()),
        (4.into(), 0.into())
    );
    let warnings = summary["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 4, "{summary}");
    for w in warnings {
        let w = w.as_str().unwrap();
        assert!(
            w.contains(&url) && w.contains("E1006") && w.contains("other-1"),
            "{w}"
        );
    }
    assert!(
        err.contains(&format!(
            "imago: warning: substituter {url} not used for step `motd`"
        )),
        "{err}"
    );
}

/// The store name of the output of the step `name` in a build summary.
fn output_of(summary: &serde_json::Value, name: &str) -> StorePath {
    let step = summary["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap();
    StorePath::from_absolute(step["path"].as_str().unwrap())
        .unwrap()
        .0
}

#[test]
fn a_record_whose_output_is_corrupt_is_not_used() {
    let s = Subst::new();
    s.build_and_push("src-store", "ci-1.secret");
    let built = json(&s.build(&s.path("src-store"), &[]));
    // The greeting's archive: its bytes no longer match its metadata.
    let greeting = output_of(&built, "greeting");
    let archive = s.f.cache_dir().join(s.f.info(&greeting).archive);
    let mut bytes = fs::read(&archive).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&archive, bytes).unwrap();

    let url = s.f.cache_url();
    let (summary, _, _dst) = s.substitute(&url);
    // The greeting is built (to the same object); the script that names it
    // and the rest still come from the cache.
    assert_eq!(
        origins(&summary),
        pairs(&[
            ("greeting", "built"),
            ("hello-tree", "substituted"),
            ("hello.sh", "substituted"),
            ("motd", "substituted"),
        ]),
        "{summary}"
    );
    assert_eq!(output_of(&summary, "greeting"), greeting);
    let warnings = summary["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{summary}");
    let w = warnings[0].as_str().unwrap();
    // The tree's closure was fetched first, and refused for the greeting.
    assert!(
        w.contains(&format!("substituter {url} not used for step `hello-tree`"))
            && w.contains("E1007")
            && w.contains(&format!("object {greeting} in cache {url}")),
        "{w}"
    );
}

#[test]
fn failing_caches_are_warnings_and_the_next_one_is_asked() {
    let s = Subst::new();
    s.build_and_push("src-store", "ci-1.secret");
    let built = json(&s.build(&s.path("src-store"), &[]));
    let motd = built["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|st| st["name"] == "motd")
        .unwrap()["key"]
        .as_str()
        .unwrap()
        .strip_prefix("blake3:")
        .unwrap()
        .to_owned();
    // A directory that is not a cache; a server that fails for the motd's
    // record (and lacks the others); then the cache, all from the
    // environment.
    let server = crate::support::http::Server::start();
    server.route(
        &format!("/bad/steps/{motd}.json"),
        crate::support::http::Reply::Status(500),
    );
    let nowhere = s.path("no-such-cache");
    let (nowhere, bad) = (
        format!("file://{}", nowhere.display()),
        format!("{}/bad", server.url()),
    );
    let list = format!("{nowhere} {bad} {}", s.f.cache_url());
    let dst = tempfile::tempdir().unwrap();
    let trust = s.f.key("ci-1.public");
    let out = s.build_env(
        dst.path(),
        &["--trusted-public-key", &trust],
        &[("IMAGO_SUBSTITUTERS", &list)],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let summary = json(&out);
    assert_eq!(summary["substituted"], 4, "{summary}");
    let warnings: Vec<&str> = summary["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    // Each failing cache once: it is not asked again in this build.
    assert_eq!(warnings.len(), 2, "{warnings:#?}");
    let missing = warnings.iter().filter(|w| {
        w.starts_with(&format!("substituter {nowhere} not used"))
            && w.contains("nor for the rest of this build")
            && w.contains("E1004")
            && w.contains("not a binary cache")
    });
    assert_eq!(missing.count(), 1, "{warnings:#?}");
    assert!(
        warnings.iter().any(|w| w.starts_with(&format!(
            "substituter {bad} not used for step `motd` nor for the rest of this build"
        )) && w.contains("HTTP 500")),
        "{warnings:#?}"
    );
    assert_eq!(
        server.hits(&format!("/bad/steps/{motd}.json")),
        3,
        "tried three times"
    );
    check_store(dst.path());
}

#[test]
fn an_http_cache_substitutes_too() {
    let s = Subst::new();
    s.build_and_push("src-store", "ci-1.secret");
    let server = crate::http::serve(&s.f);
    let (summary, _, _dst) = s.substitute(&format!("{}/c", server.url()));
    assert_eq!(
        (summary["built"].clone(), summary["substituted"].clone()),
        (0.into(), 4.into())
    );
}

#[test]
fn a_registry_substitutes_too() {
    let s = Subst::new();
    let registry = crate::registry::Registry::start();
    let url = registry.url();
    let pushed = s.build_and_push_to("src-store", "ci-1.secret", &url);
    assert_eq!(pushed["step_records"], 4, "{pushed}");
    let (summary, err, _dst) = s.substitute(&url);
    assert_eq!(built_substituted(&summary), (0, 4), "{summary}");
    assert!(
        err.contains(&format!("substituted hello-tree from {url}")),
        "{err}"
    );
    // The manifests' annotations that a build reads instead of the
    // records are checked as the records are: ones that name another
    // output, or carry a signature that does not verify, send the build
    // to the records themselves.
    for tag in registry.tags().iter().filter(|t| t.starts_with("s-")) {
        let mut manifest = registry.manifest(tag);
        manifest["annotations"]["org.imago.output"] =
            "00000000000000000000000000000000-other".into();
        registry.put_manifest(tag, &manifest);
    }
    let (summary, _, _dst) = s.substitute(&url);
    assert_eq!(built_substituted(&summary), (0, 4), "{summary}");
    assert!(
        summary["warnings"].as_array().unwrap().is_empty(),
        "{summary}"
    );
}

#[test]
fn a_registry_step_index_spares_lookups_and_is_checked() {
    use crate::registry::{Gate, Registry, proxy_logged};
    let s = Subst::new();
    let registry = Registry::start();
    s.build_and_push_to("src-store", "ci-1.secret", &registry.url());
    // Every step record the copy wrote lists the one index it wrote.
    let steps: Vec<String> = registry
        .tags()
        .into_iter()
        .filter(|t| t.starts_with("s-"))
        .collect();
    assert_eq!(steps.len(), 4, "{steps:?}");
    let mut indexes: Vec<String> = steps
        .iter()
        .map(|tag| {
            let manifest = registry.manifest(tag);
            let layers = manifest["layers"].as_array().unwrap();
            assert_eq!(layers.len(), 1, "{manifest}");
            assert_eq!(
                layers[0]["mediaType"],
                "application/vnd.imago.step-index.v1+json"
            );
            layers[0]["digest"].as_str().unwrap().to_owned()
        })
        .collect();
    indexes.dedup();
    assert_eq!(indexes.len(), 1, "{indexes:?}");
    let (port, requests) = proxy_logged(registry.port, Gate::Open);
    let url = format!("oci://127.0.0.1:{port}/imago/cache");
    let (summary, _, _dst) = s.substitute(&url);
    assert_eq!(built_substituted(&summary), (0, 4), "{summary}");
    let log = requests.lock().unwrap().clone();
    let asked = |what: &str| log.iter().filter(|r| r.contains(what)).count();
    // greeting and motd are looked up at once, each by its manifest; the
    // steps after them are found in the index one of those lists.
    assert!(asked("/manifests/s-") < 4, "{log:#?}");
    assert_eq!(asked(&format!("/blobs/{}", indexes[0])), 1, "{log:#?}");

    let relink_as = |bytes: &[u8], size: u64| {
        let digest = registry.put_blob(bytes);
        for tag in &steps {
            let mut manifest = registry.manifest(tag);
            manifest["layers"][0]["digest"] = digest.clone().into();
            manifest["layers"][0]["size"] = size.into();
            registry.put_manifest(tag, &manifest);
        }
        digest
    };
    let relink = |bytes: &[u8]| relink_as(bytes, bytes.len() as u64);
    // An index that lies (another output, a signature that does not
    // verify) sends the build to the records themselves.
    let lying: Vec<serde_json::Value> = steps
        .iter()
        .map(|tag| {
            serde_json::json!({
                "key": format!("blake3:{}", &tag[2..]),
                "output": "00000000000000000000000000000000-other",
                "signatures": ["ci-1:AAAA"],
            })
        })
        .collect();
    relink(&serde_json::to_vec(&serde_json::json!({ "records": lying })).unwrap());
    let (summary, _, _dst) = s.substitute(&url);
    assert_eq!(built_substituted(&summary), (0, 4), "{summary}");
    assert!(
        summary["warnings"].as_array().unwrap().is_empty(),
        "{summary}"
    );
    // One that is no index fails the lookup that read it, with a warning
    // that names it: that step is built, the others are not.
    let bad = relink(b"not an index");
    let (summary, _, _dst) = s.substitute(&url);
    assert_eq!(built_substituted(&summary), (1, 3), "{summary}");
    let warnings = summary["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{summary}");
    let warning = warnings[0].as_str().unwrap();
    assert!(
        warning.contains(&format!("the step index {bad} of manifest s-"))
            && warning.contains("not a step index"),
        "{warning}"
    );
    // One whose descriptor claims a size past the limit is refused before
    // it is read; one whose stored bytes changed, once read.
    let only_warning = |summary: &serde_json::Value| {
        let warnings = summary["warnings"].as_array().unwrap();
        assert_eq!(warnings.len(), 1, "{summary}");
        warnings[0].as_str().unwrap().to_owned()
    };
    let huge = relink_as(b"{\"records\": []}", 1 << 30);
    let (summary, _, _dst) = s.substitute(&url);
    assert_eq!(built_substituted(&summary), (1, 3), "{summary}");
    let warning = only_warning(&summary);
    assert!(
        warning.contains(&format!("the step index {huge}")) && warning.contains("more than"),
        "{warning}"
    );
    let changed = relink(b"{\"records\": []}");
    std::fs::write(registry.blob_file(&changed), b"{\"records\": [1]}").unwrap();
    let (summary, _, _dst) = s.substitute(&url);
    assert_eq!(built_substituted(&summary), (1, 3), "{summary}");
    let warning = only_warning(&summary);
    assert!(
        warning.contains(&format!("the step index {changed}")) && warning.contains("hash to"),
        "{warning}"
    );
}

/// The steps a build built and substituted.
fn built_substituted(summary: &serde_json::Value) -> (u64, u64) {
    let count = |name: &str| summary[name].as_u64().unwrap();
    (count("built"), count("substituted"))
}

#[test]
fn the_configuration_names_substituters_and_keys() {
    let s = Subst::new();
    s.build_and_push("src-store", "ci-1.secret");
    let key = fs::read_to_string(s.f.key("ci-1.public")).unwrap();
    let dir = s.path("config/imago");
    fs::create_dir_all(&dir).unwrap();
    fs::write(
        dir.join("config.toml"),
        format!(
            "substituters = [\"{}\"]\ntrusted-public-keys = [\"{}\"]\n",
            s.f.cache_url(),
            key.trim()
        ),
    )
    .unwrap();
    let dst = tempfile::tempdir().unwrap();
    let out = s.build(dst.path(), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json(&out)["substituted"], 4);
    check_store(dst.path());

    // A configured substituter that is not a cache URL is an error there.
    fs::write(dir.join("config.toml"), "substituters = [\"ftp://x\"]\n").unwrap();
    let out = s.build(dst.path(), &[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("config.toml: substituters: `ftp://x`"),
        "{err}"
    );
}

#[test]
fn human_output_counts_the_steps_and_bad_urls_are_refused() {
    let s = Subst::new();
    s.build_and_push("src-store", "ci-1.secret");
    let dst = tempfile::tempdir().unwrap();
    let (file, trust) = (s.path("sys.imago"), s.f.key("ci-1.public"));
    let config = s.path("config");
    let run = |cache: &str| {
        s.f.imago_env(
            &[
                "--store",
                dst.path().to_str().unwrap(),
                "build",
                file.to_str().unwrap(),
                "-A",
                "tree",
                "--substituter",
                cache,
                "--trusted-public-key",
                &trust,
            ],
            &[("XDG_CONFIG_HOME", config.to_str().unwrap())],
        )
    };
    let out = run(&s.f.cache_url());
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("imago: 4 step(s): 0 built, 0 found in the store, 4 substituted"),
        "{err}"
    );
    assert!(
        stdout(&out).starts_with("/imago/store/"),
        "{}",
        stdout(&out)
    );

    // Without a trusted key, one warning and no cache asked.
    let fresh = tempfile::tempdir().unwrap();
    let out = s.f.imago_env(
        &[
            "--store",
            fresh.path().to_str().unwrap(),
            "build",
            file.to_str().unwrap(),
            "-A",
            "tree",
            "--substituter",
            &s.f.cache_url(),
        ],
        &[("XDG_CONFIG_HOME", config.to_str().unwrap())],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.matches("warning").count(), 1, "{err}");
    assert!(err.contains("no public key is trusted"), "{err}");
    assert!(
        err.contains("4 built, 0 found in the store, 0 substituted"),
        "{err}"
    );

    let out = run("ftp://cache.example.com");
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("error[E1001]") && err.contains("ftp://cache.example.com"),
        "{err}"
    );
}

#[test]
fn two_builds_substitute_into_one_store_at_once() {
    let s = Subst::new();
    s.build_and_push("src-store", "ci-1.secret");
    let dst = tempfile::tempdir().unwrap();
    let (file, trust, url) = (s.path("sys.imago"), s.f.key("ci-1.public"), s.f.cache_url());
    let args = [
        "--store",
        dst.path().to_str().unwrap(),
        "build",
        file.to_str().unwrap(),
        "-A",
        "tree",
        "--json",
        "--substituter",
        &url,
        "--trusted-public-key",
        &trust,
    ];
    let config = s.path("config");
    let children: Vec<_> = (0..2)
        .map(|_| {
            let mut cmd = crate::support::cli::command(&args);
            cmd.env_remove("IMAGO_SUBSTITUTERS")
                .env("XDG_CONFIG_HOME", &config)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            cmd.spawn().unwrap()
        })
        .collect();
    let mut tops = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let summary = json(&out);
        assert_eq!(summary["built"], 0, "{summary}");
        tops.push(summary["outputs"][0]["path"].clone());
    }
    assert_eq!(tops[0], tops[1]);
    check_store(dst.path());
}
