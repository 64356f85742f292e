//! A closure copied to a directory cache and back into an empty store;
//! copies of what is already there send nothing.

use crate::fixture::Fixture;
use crate::support::cli::{stderr, stdout};
use imago::store::Store;
use std::fs;

#[test]
fn a_closure_goes_to_a_cache_and_back_into_an_empty_store() {
    let f = Fixture::new();
    let sign = f.key("ci-1.secret");
    let summary = f.push(&["--sign", &sign]);
    assert_eq!(summary["objects_copied"], 3, "{summary}");
    assert_eq!(summary["objects_already_there"], 0);
    let pushed = summary["bytes_copied"].as_u64().unwrap();
    assert!(pushed > 0);
    // The cache holds one metadata file and one archive per object.
    let count = |sub: &str| fs::read_dir(f.cache_dir().join(sub)).unwrap().count();
    assert_eq!((count("objects"), count("archives")), (3, 3));

    // Copying again sends nothing.
    let again = f.push(&["--sign", &sign]);
    assert_eq!(again["objects_copied"], 0, "{again}");
    assert_eq!(again["bytes_copied"], 0);
    assert_eq!(again["objects_already_there"], 3);
    assert_eq!(again["signatures_added"], 0);

    let dst = tempfile::tempdir().unwrap();
    let trust = f.key("ci-1.public");
    let out = f.pull(dst.path(), &["--trusted-public-key", &trust]);
    assert!(out.status.success(), "{}", stderr(&out));
    let summary: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(summary["objects_copied"], 3, "{summary}");
    assert_eq!(summary["bytes_copied"], pushed);

    // Every object arrived with the same digest, size and references, and
    // verifies.
    let store = Store::open(dst.path()).unwrap();
    for p in [&f.lib, &f.bin, &f.top] {
        let want = f.store.info(p).unwrap().unwrap();
        let got = store.info(p).unwrap().expect("copied");
        assert_eq!(
            (got.digest, got.size, &got.references),
            (want.digest, want.size, &want.references)
        );
    }
    let report = store.verify(false).unwrap();
    assert_eq!(report.checked, 3);
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(
        fs::read(store.physical(&f.lib)).unwrap(),
        b"library contents"
    );
    drop(store);

    // Pulling again sends nothing.
    let out = f.pull(dst.path(), &["--trusted-public-key", &trust]);
    assert!(out.status.success(), "{}", stderr(&out));
    let summary: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(summary["objects_copied"], 0, "{summary}");
    assert_eq!(
        summary["objects_already_there"], 1,
        "only the top is asked for"
    );
}

#[test]
fn trusted_keys_come_from_the_environment_too() {
    let f = Fixture::new();
    f.push(&["--sign", &f.key("ci-1.secret")]);
    let keys = f.keys();
    let out = f.imago(&["key", "generate", "other", "--dir", keys.to_str().unwrap()]);
    assert!(out.status.success());
    let dst = tempfile::tempdir().unwrap();
    // Two key files, separated by a space; the second is the signer's.
    let keys = format!("{} {}", f.key("other.public"), f.key("ci-1.public"));
    let out = f.pull_env(dst.path(), &[("IMAGO_TRUSTED_PUBLIC_KEYS", &keys)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().count(), 3, "{}", stdout(&out));
    assert!(
        stderr(&out).contains("copied 3 objects"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn signing_later_adds_a_signature_and_keeps_the_others() {
    let f = Fixture::new();
    f.push(&[]);
    assert!(f.info(&f.top).signatures.is_empty());
    let out = f.imago(&[
        "key",
        "generate",
        "ci-2",
        "--dir",
        f.keys().to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let summary = f.push(&["--sign", &f.key("ci-1.secret")]);
    assert_eq!(summary["objects_copied"], 0);
    assert_eq!(summary["signatures_added"], 3, "{summary}");
    let summary = f.push(&["--sign", &f.key("ci-2.secret")]);
    assert_eq!(summary["signatures_added"], 3, "{summary}");
    let sigs = f.info(&f.bin).signatures;
    assert_eq!(sigs.len(), 2, "{sigs:?}");
    assert!(sigs[0].starts_with("ci-1:") && sigs[1].starts_with("ci-2:"));
    // Either key alone is enough.
    let dst = tempfile::tempdir().unwrap();
    let out = f.pull(dst.path(), &["--trusted-public-key", &f.key("ci-2.public")]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn trusted_keys_come_from_the_configuration_file() {
    let f = Fixture::new();
    f.push(&["--sign", &f.key("ci-1.secret")]);
    let config = tempfile::tempdir().unwrap();
    fs::create_dir(config.path().join("imago")).unwrap();
    let key = fs::read_to_string(f.key("ci-1.public")).unwrap();
    fs::write(
        config.path().join("imago/config.toml"),
        format!("trusted-public-keys = [\"{}\"]\n", key.trim()),
    )
    .unwrap();
    let dst = tempfile::tempdir().unwrap();
    let home = config.path().to_str().unwrap();
    let out = f.pull_env(dst.path(), &[("XDG_CONFIG_HOME", home)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("copied 3 objects"),
        "{}",
        stderr(&out)
    );
    // A key that is not one is an error naming the configuration.
    fs::write(
        config.path().join("imago/config.toml"),
        "trusted-public-keys = [\"ci-1:short\"]\n",
    )
    .unwrap();
    let out = f.pull_env(dst.path(), &[("XDG_CONFIG_HOME", home)]);
    assert!(!out.status.success());
    let text = stderr(&out);
    assert!(
        text.contains("error[E1002]") && text.contains("trusted-public-keys"),
        "{text}"
    );
}
