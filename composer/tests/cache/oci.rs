//! A cache in an OCI registry (tests/cache/registry.rs runs one): a
//! closure travels through it, a second push copies nothing, every way
//! its content can lie is refused without registering anything, and its
//! credentials come from a docker configuration.
#![allow(clippy::unwrap_used)]

use crate::fixture::{Fixture, refused_at, refused_trusting_at};
use crate::registry::{Gate, INDEX, Registry, USER_PASSWORD, object_tag, proxy};
use crate::support::cli::{stderr, stdout};
use crate::support::store::add_file;
use imago::cache::SecretKey;
use imago::store::Store;
use std::path::Path;

/// Pushes the fixture's closure to the registry, signed with `ci-1` if
/// `sign`; returns the copy's summary.
fn push(f: &Fixture, r: &Registry, sign: bool, extra: &[&str]) -> serde_json::Value {
    let key = f.key("ci-1.secret");
    let mut args = extra.to_vec();
    if sign {
        args.extend(["--sign", key.as_str()]);
    }
    let out = f.copy_at(&f.dir.path().join("src"), "--to", &r.url(), &args);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_str(&stdout(&out)).unwrap()
}

/// How many objects the store in `dir` holds, all verified.
fn checked(dir: &Path) -> usize {
    let report = Store::open(dir).unwrap().verify(false).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    report.checked
}

fn trust(f: &Fixture) -> [String; 2] {
    ["--trusted-public-key".into(), f.key("ci-1.public")]
}

#[test]
fn a_closure_travels_through_a_registry() {
    let f = Fixture::new();
    let r = Registry::start();
    let pushed = push(&f, &r, true, &["--tag", "top-gen1"]);
    assert_eq!(pushed["objects_copied"], 3, "{pushed}");
    // The tag names an index of the closure's object manifests, each
    // annotated with its store path and references.
    let index = r.manifest("top-gen1");
    assert_eq!(index["mediaType"], INDEX, "{index}");
    let mut listed: Vec<String> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            m["annotations"]["org.imago.store-path"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    listed.sort();
    let mut want: Vec<String> = [&f.lib, &f.bin, &f.top]
        .iter()
        .map(|p| p.to_absolute())
        .collect();
    want.sort();
    assert_eq!(listed, want, "{index}");

    let dst = tempfile::tempdir().unwrap();
    let trust = trust(&f);
    let out = f.copy_at(dst.path(), "--from", &r.url(), &[&trust[0], &trust[1]]);
    assert!(out.status.success(), "{}", stderr(&out));
    let pulled: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(pulled["objects_copied"], 3, "{pulled}");
    assert_eq!(checked(dst.path()), 3);
    let store = Store::open(dst.path()).unwrap();
    for p in [&f.lib, &f.bin, &f.top] {
        let (got, had) = (
            store.info(p).unwrap().unwrap(),
            f.store.info(p).unwrap().unwrap(),
        );
        assert_eq!(
            (got.digest, got.size, got.references, got.deriver),
            (had.digest, had.size, had.references, had.deriver),
            "{p}"
        );
    }

    // A second push, signed again: nothing travels, nothing changes.
    let before = r.stored_files();
    let again = push(&f, &r, true, &[]);
    assert_eq!(again["objects_copied"], 0, "{again}");
    assert_eq!(again["bytes_copied"], 0, "{again}");
    assert_eq!(again["objects_already_there"], 3, "{again}");
    assert_eq!(again["signatures_added"], 0, "{again}");
    assert_eq!(r.stored_files(), before);
}

#[test]
fn unsigned_and_untrusted_objects_are_refused() {
    let f = Fixture::new();
    let r = Registry::start();
    push(&f, &r, false, &[]);
    refused_trusting_at(
        &f,
        &r.url(),
        "E1006",
        &[f.top.as_str(), &r.url(), "no signature"],
    );

    let f = Fixture::new();
    let r = Registry::start();
    push(&f, &r, true, &[]);
    f.generate_key("other", &f.keys());
    let other = f.key("other.public");
    refused_at(
        &f,
        &r.url(),
        &["--trusted-public-key", &other],
        "E1006",
        &[f.top.as_str(), "not trusted: ci-1"],
    );
}

#[test]
fn a_blob_that_is_not_its_object_is_refused() {
    let f = Fixture::new();
    let r = Registry::start();
    push(&f, &r, true, &[]);
    // Another store's object in the same repository.
    let other_dir = f.dir.path().join("other");
    let other = Store::open(&other_dir).unwrap();
    let evil = add_file(&other, "evil", b"not top", &[]);
    let key = f.key("ci-1.secret");
    let out = f.imago(&[
        "--store",
        other_dir.to_str().unwrap(),
        "copy",
        "--to",
        &r.url(),
        &evil.to_absolute(),
        "--sign",
        &key,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // top's signed metadata with evil's archive: the signature covers the
    // object, not the archive's file, so the contents must be checked.
    let mut info = r.info(&f.top);
    let theirs = r.info(&evil);
    info.archive = theirs.archive.clone();
    info.archive_digest = theirs.archive_digest;
    info.archive_size = theirs.archive_size;
    let layer = r.manifest(&object_tag(&evil))["layers"][0].clone();
    r.write_info(&info, Some(layer));
    refused_trusting_at(
        &f,
        &r.url(),
        "E1007",
        &[f.top.as_str(), "its archive holds", evil.as_str()],
    );
}

#[test]
fn metadata_that_lies_about_references_is_refused() {
    let f = Fixture::new();
    let r = Registry::start();
    push(&f, &r, true, &[]);
    // Signed again by the trusted key, so only the contents can tell.
    let mut info = r.info(&f.bin);
    info.object.references.clear();
    info.signatures.clear();
    info.sign(&SecretKey::read(Path::new(&f.key("ci-1.secret"))).unwrap());
    r.write_info(&info, None);
    let trust = trust(&f);
    let dst = tempfile::tempdir().unwrap();
    let bin = f.bin.to_absolute();
    let out = f.imago(&[
        "--store",
        dst.path().to_str().unwrap(),
        "copy",
        "--from",
        &r.url(),
        &bin,
        &trust[0],
        &trust[1],
    ]);
    let text = stderr(&out);
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(text.contains(f.bin.as_str()), "{text}");
    assert!(
        text.contains("error[E05") || text.contains("error[E1007]"),
        "{text}"
    );
    assert_eq!(checked(dst.path()), 0);
}

#[test]
fn embedded_metadata_that_differs_from_its_digest_is_refused() {
    let f = Fixture::new();
    let r = Registry::start();
    push(&f, &r, true, &[]);
    let tag = object_tag(&f.bin);
    let mut manifest = r.manifest(&tag);
    // The metadata is embedded in the manifest (the image spec's `data`)
    // and read from there, one request instead of two.
    let data = manifest["config"]["data"].as_str().unwrap().to_owned();
    assert_eq!(
        data_encoding::BASE64.decode(data.as_bytes()).unwrap(),
        r.blob(manifest["config"]["digest"].as_str().unwrap())
    );
    // Other bytes than the digest names: refused, whatever the blob says.
    let mut info = r.info(&f.bin);
    info.object.deriver = Some("somewhere else".to_owned());
    let other = serde_json::to_vec(&info).unwrap();
    manifest["config"]["data"] = data_encoding::BASE64.encode(&other).into();
    r.put_manifest(&tag, &manifest);
    refused_trusting_at(&f, &r.url(), "E1007", &[&tag, "embedded bytes hash to"]);
    // Not base64 at all.
    manifest["config"]["data"] = "not base64!".into();
    r.put_manifest(&tag, &manifest);
    refused_trusting_at(&f, &r.url(), "E1007", &[&tag, "not base64"]);
    // Without the embedded copy, the blob is read.
    manifest["config"].as_object_mut().unwrap().remove("data");
    r.put_manifest(&tag, &manifest);
    let (dst, summary) = f.pull_new(&r.url());
    assert_eq!(summary["objects_copied"], 3, "{summary}");
    assert_eq!(checked(dst.path()), 3);
}

#[test]
fn a_truncated_blob_is_refused() {
    let f = Fixture::new();
    let r = Registry::start();
    push(&f, &r, true, &[]);
    let layer = r.manifest(&object_tag(&f.top))["layers"][0].clone();
    let file = r.blob_file(layer["digest"].as_str().unwrap());
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    refused_trusting_at(
        &f,
        &r.url(),
        "E1007",
        &[f.top.as_str(), &r.url(), "hash to"],
    );
}

#[test]
fn a_registry_that_fails_halfway_registers_nothing() {
    let f = Fixture::new();
    let r = Registry::start();
    push(&f, &r, true, &[]);
    // Four requests read the cache's manifest and the three objects' (the
    // metadata is embedded in them); the archives fail.
    let port = proxy(r.port, Gate::FailAfter(4));
    let url = format!("oci://127.0.0.1:{port}/imago/cache");
    refused_trusting_at(&f, &url, "E1004", &[&url, "HTTP 500"]);
}

#[test]
fn a_push_survives_server_errors_and_stops_at_a_failing_registry() {
    let f = Fixture::new();
    let r = Registry::start();
    let src = f.dir.path().join("src");
    let key = f.key("ci-1.secret");
    // Every third request fails: the retries (an upload with a new
    // session each time) carry the push through.
    let port = proxy(r.port, Gate::FailEveryThird);
    let url = format!("oci://127.0.0.1:{port}/imago/cache");
    let out = f.copy_at(&src, "--to", &url, &["--sign", &key]);
    assert!(out.status.success(), "{}", stderr(&out));
    // A registry that stops answering halfway: the push fails, naming
    // the cache; what it wrote is whole, and a push goes on from there.
    let f = Fixture::new();
    let r = Registry::start();
    // 13 requests: the cache's information (4), the three objects'
    // manifests asked for (3), lib's archive and metadata (6).
    let port = proxy(r.port, Gate::FailAfter(13));
    let url = format!("oci://127.0.0.1:{port}/imago/cache");
    let src = f.dir.path().join("src");
    let key = f.key("ci-1.secret");
    let out = f.copy_at(&src, "--to", &url, &["--sign", &key]);
    let text = stderr(&out);
    assert!(
        text.contains("error[E1004]") && text.contains("HTTP 500"),
        "{text}"
    );
    let again = push(&f, &r, true, &[]);
    assert_eq!(again["objects_already_there"], 1, "{again}");
    assert_eq!(again["objects_copied"], 2, "{again}");
    let dst = tempfile::tempdir().unwrap();
    let out = f.copy_at(
        dst.path(),
        "--from",
        &r.url(),
        &["--trusted-public-key", &f.key("ci-1.public")],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(checked(dst.path()), 3);
}

#[test]
fn bad_urls_and_tags_are_refused() {
    let f = Fixture::new();
    let src = f.dir.path().join("src");
    for (url, want) in [
        ("oci://127.0.0.1:1", "REPOSITORY"),
        ("oci://127.0.0.1:1/Upper/Case", "not a repository name"),
        ("oci://user:pw@127.0.0.1:1/r", "credentials"),
    ] {
        let out = f.copy_at(&src, "--to", url, &[]);
        assert!(stderr(&out).contains("error[E1001]"), "{}", stderr(&out));
        assert!(stderr(&out).contains(want), "{}", stderr(&out));
    }
    let out = f.copy_at(&src, "--to", "oci://127.0.0.1:1/r", &["--tag", "o-x"]);
    assert!(stderr(&out).contains("the cache's own"), "{}", stderr(&out));
    let out = f.copy(&src, "--to", &["--tag", "x"]);
    assert!(
        stderr(&out).contains("only a registry cache"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn signing_later_adds_signatures_and_annotations_are_not_trusted() {
    let f = Fixture::new();
    let r = Registry::start();
    push(&f, &r, false, &[]);
    // A manifest claiming a signature by ci-1 that its config lacks: the
    // copy verifies the claim itself, and signs.
    let tag = object_tag(&f.top);
    let mut manifest = r.manifest(&tag);
    manifest["annotations"]["org.imago.signatures"] = "ci-1:AAAA".into();
    r.put_manifest(&tag, &manifest);
    let signed = push(&f, &r, true, &[]);
    assert_eq!(signed["objects_copied"], 0, "{signed}");
    assert_eq!(signed["signatures_added"], 3, "{signed}");
    assert_eq!(r.info(&f.top).signatures.len(), 1);
    let again = push(&f, &r, true, &[]);
    assert_eq!(again["signatures_added"], 0, "{again}");
    let dst = tempfile::tempdir().unwrap();
    let trust = f.key("ci-1.public");
    let out = f.copy_at(
        dst.path(),
        "--from",
        &r.url(),
        &["--trusted-public-key", &trust],
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

/// `imago --store STORE copy DIRECTION URL TOP` with the docker
/// configuration in `docker` and no other credentials.
fn copy_with_config(
    f: &Fixture,
    store: &Path,
    direction: &str,
    url: &str,
    docker: &Path,
) -> std::process::Output {
    let trust = f.key("ci-1.public");
    let key = f.key("ci-1.secret");
    let top = f.top.to_absolute();
    let mut args = vec![
        "--store",
        store.to_str().unwrap(),
        "copy",
        direction,
        url,
        &top,
    ];
    if direction == "--to" {
        args.extend(["--sign", &key]);
    } else {
        args.extend(["--trusted-public-key", &trust]);
    }
    let home = f.dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    f.imago_env(
        &args,
        &[
            ("DOCKER_CONFIG", docker.to_str().unwrap()),
            ("HOME", home.to_str().unwrap()),
            ("XDG_RUNTIME_DIR", home.to_str().unwrap()),
            ("REGISTRY_AUTH_FILE", ""),
        ],
    )
}

#[test]
fn credentials_come_from_the_docker_configuration() {
    let f = Fixture::new();
    let r = Registry::start();
    let src = f.dir.path().join("src");
    let docker = f.dir.path().join("docker");
    std::fs::create_dir_all(&docker).unwrap();
    for gate in [Gate::Basic, Gate::Bearer] {
        let port = proxy(r.port, gate);
        let url = format!("oci://127.0.0.1:{port}/imago/cache");
        // Without credentials: refused, saying where they come from.
        std::fs::write(docker.join("config.json"), r#"{"auths":{}}"#).unwrap();
        let out = copy_with_config(&f, &src, "--to", &url, &docker);
        let text = stderr(&out);
        assert!(text.contains("error[E1008]"), "{gate:?}: {text}");
        assert!(text.contains("docker login"), "{gate:?}: {text}");
        // With them: a push and a pull.
        let config = format!(r#"{{"auths":{{"127.0.0.1:{port}":{{"auth":"{USER_PASSWORD}"}}}}}}"#);
        std::fs::write(docker.join("config.json"), config).unwrap();
        let out = copy_with_config(&f, &src, "--to", &url, &docker);
        assert!(out.status.success(), "{gate:?}: {}", stderr(&out));
        let dst = tempfile::tempdir().unwrap();
        let out = copy_with_config(&f, dst.path(), "--from", &url, &docker);
        assert!(out.status.success(), "{gate:?}: {}", stderr(&out));
        assert_eq!(checked(dst.path()), 3);
    }
}

/// `imago deploy --target-substituter oci://…`: a machine (a stand-in for
/// ssh that runs the remote script locally, with its store in a
/// directory) fetches every object's archive as a blob of the registry,
/// `/v2/REPO/blobs/sha256:HEX`, and nothing goes over ssh.
#[test]
fn a_machine_fetches_a_closure_from_a_registry_at_deploy() {
    use std::os::unix::fs::PermissionsExt;
    let f = Fixture::new();
    let ssh = f.dir.path().join("fake-ssh");
    std::fs::write(
        &ssh,
        "#!/bin/sh\nwhile [ \"$1\" != -- ]; do shift; done\nshift 2\nexec sh -c \"$*\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&ssh, std::fs::Permissions::from_mode(0o755)).unwrap();
    let remote = f.dir.path().join("remote");
    std::fs::create_dir(&remote).unwrap();
    let r = Registry::start();
    push(&f, &r, false, &[]);
    let top = f.top.to_absolute();
    let out = f.imago(&[
        "--store",
        f.dir.path().join("src").to_str().unwrap(),
        "deploy",
        "--toplevel",
        &top,
        "--target",
        "ssh://root@machine",
        "--copy-only",
        "--ssh",
        ssh.to_str().unwrap(),
        "--remote-store",
        remote.to_str().unwrap(),
        "--target-substituter",
        &r.url(),
    ]);
    let text = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        text.contains("copied 3 objects to root@machine\n")
            && text.contains("root@machine: 3 objects (")
            && text.contains(" from the cache, 0 (0 bytes) over ssh\n"),
        "{text}"
    );
    let mut names: Vec<String> = std::fs::read_dir(&remote)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut want = vec![f.lib.to_string(), f.bin.to_string(), f.top.to_string()];
    want.sort();
    assert_eq!(names, want, "no temporary directory is left");
}
