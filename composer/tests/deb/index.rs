//! Checking requested package names against Debian's index before apt
//! resolves them: a hermetic fixture index (a few paragraphs in the format of
//! apt's `*_Packages` lists) and a configuration evaluated in memory. The
//! rendered error is a golden snapshot. `deb_real.rs` runs the same check
//! through `imago lock` against the real index.

// Test helpers outside #[test] functions panic on failure too.
#![allow(clippy::unwrap_used)]

use imago::debian::index::{KnownPackages, Lookup, Sites, check_names};
use imago::debian::platform::Platform;
use imago_lang::diag::render;
use imago_lang::eval::Evaluator;
use imago_lang::hook::NoStore;
use imago_lang::io::MemoryIo;
use std::path::Path;
use std::rc::Rc;

const INDEX: &str = "\
Package: nginx
Version: 1.22.1-9
Architecture: amd64
Provides: httpd, httpd-cgi
Depends: nginx-common (= 1.22.1-9), libc6 (>= 2.34)
Description: small, powerful, scalable web/proxy server
 Nginx (\"engine X\") is a high-performance web and reverse proxy server.

Package: nginx-common
Architecture: all

Package: htop
Architecture: amd64

Package: atop
Architecture: amd64

Package: exim4-daemon-light
Architecture: amd64
Provides: mail-transport-agent

Package: postfix
Architecture: amd64
Provides: default-mta, mail-transport-agent

Package: curl
Architecture: amd64
";

const CONFIG: &str = r#"{ pkgs, ... }:
{
  environment.systemPackages = [
    pkgs.ngnix
    pkgs.curl
    pkgs.mail-transport-agent
  ];
  services.web.script = "${pkgs.htopp}/usr/bin/htop";
  other = with pkgs; [ nginx curl zzzqqqxx ];
}
"#;

fn known() -> KnownPackages {
    let mut k = KnownPackages::default();
    k.add_list(INDEX);
    k
}

/// Evaluates CONFIG as `imago lock` would see it: the names it asks for and
/// where.
fn requested() -> (Vec<String>, Sites) {
    let mut io = MemoryIo::new();
    io.add("/cfg/system.imago", CONFIG);
    let mut ev = Evaluator::new(Rc::new(io), Rc::new(NoStore));
    let pkgs = ev.packages_value();
    ev.with_global("pkgs", pkgs.clone());
    let f = ev.eval_file(Path::new("/cfg/system.imago")).unwrap();
    let v = ev
        .call(&f, imago_lang::eval::Value::attrs_from([("pkgs", pkgs)]))
        .unwrap();
    ev.force_deep(&v).unwrap();
    let names = ev.package_sites().keys().cloned().collect();
    (names, Sites::collect(&ev.package_sites(), ev.sources()))
}

#[test]
fn unknown_and_virtual_names_are_one_error_at_their_sites() {
    let (names, sites) = requested();
    assert_eq!(
        names,
        [
            "curl",
            "htopp",
            "mail-transport-agent",
            "nginx",
            "ngnix",
            "zzzqqqxx"
        ]
    );
    let (diag, sources) = check_names(
        &known(),
        names.iter().map(String::as_str),
        &sites,
        Platform::DEFAULT,
    )
    .unwrap();
    insta::assert_snapshot!(render(&[diag], &sources, false));
}

#[test]
fn names_from_the_command_line_are_notes() {
    let (diag, sources) = check_names(
        &known(),
        ["curl", "ngnix", "default-mta"],
        &Sites::default(),
        Platform::DEFAULT,
    )
    .unwrap();
    insta::assert_snapshot!(render(&[diag], &sources, false));
}

#[test]
fn the_hint_names_the_release_and_architecture() {
    let trixie = Platform::parse("trixie", "arm64").unwrap();
    let (diag, sources) = check_names(&known(), ["ngnix"], &Sites::default(), trixie).unwrap();
    let text = render(&[diag], &sources, false);
    assert!(
        text.contains("the Debian trixie (arm64) binary package"),
        "{text}"
    );
}

#[test]
fn known_names_pass() {
    let (_, sites) = requested();
    assert!(
        check_names(
            &known(),
            ["curl", "nginx", "htop"],
            &sites,
            Platform::DEFAULT
        )
        .is_none()
    );
    assert_eq!(
        known().lookup("httpd-cgi"),
        Lookup::Virtual(vec!["nginx".into()])
    );
}

#[test]
fn lists_are_read_from_a_directory_plain_or_compressed() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path()
            .join("deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages"),
        INDEX,
    )
    .unwrap();
    let gz = std::fs::File::create(dir.path().join(
        "deb.debian.org_debian-security_dists_bookworm-security_main_binary-amd64_Packages.gz",
    ))
    .unwrap();
    let mut enc = flate2::write::GzEncoder::new(gz, flate2::Compression::default());
    enc.write_all(b"Package: openssl\nProvides: libssl-dev-virtual\n")
        .unwrap();
    enc.finish().unwrap();
    // Other files in the lists directory are not lists.
    std::fs::write(dir.path().join("lock"), "").unwrap();
    std::fs::create_dir(dir.path().join("partial")).unwrap();
    let k = KnownPackages::from_lists(dir.path()).unwrap();
    assert_eq!(k.len(), 8);
    assert_eq!(k.lookup("openssl"), Lookup::Real);
    assert_eq!(
        k.lookup("libssl-dev-virtual"),
        Lookup::Virtual(vec!["openssl".into()])
    );

    let empty = tempfile::tempdir().unwrap();
    let err = KnownPackages::from_lists(empty.path()).unwrap_err();
    assert!(err.contains("no package lists in"), "{err}");
}
