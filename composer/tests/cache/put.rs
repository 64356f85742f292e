//! Writing a cache over HTTP with PUT: a closure copied to a web server
//! that stores what it is sent comes back into an empty store, written in
//! an order that never shows a reader metadata before its archive; a
//! server that refuses PUT is a clear error naming the URL and status.
#![allow(clippy::unwrap_used)]

use crate::fixture::Fixture;
use crate::support::cli::{stderr, stdout};
use crate::support::http::Server;
use imago::store::Store;

#[test]
fn a_closure_travels_through_a_web_server_that_takes_puts() {
    let f = Fixture::new();
    let server = Server::start();
    server.accept_puts(None);
    let url = format!("{}/c", server.url());
    let out = f.copy_at(
        &f.dir.path().join("src"),
        "--to",
        &url,
        &["--sign", &f.key("ci-1.secret")],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let pushed: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(pushed["objects_copied"], 3, "{pushed}");

    // The cache's information first; each archive before the metadata
    // that names it; each object's references before it.
    let log = server.put_log();
    assert_eq!(log[0], "/c/imago-cache.json", "{log:?}");
    let at = |p: &str| {
        log.iter()
            .position(|l| l == p)
            .unwrap_or_else(|| panic!("{p} not in {log:?}"))
    };
    for path in [&f.lib, &f.bin, &f.top] {
        let info = f.info_at(&server, path);
        let meta = at(&format!("/c/objects/{}.json", path.hash_part()));
        assert!(at(&format!("/c/{}", info.archive)) < meta, "{log:?}");
    }
    let meta = |p: &imago::store::StorePath| at(&format!("/c/objects/{}.json", p.hash_part()));
    assert!(
        meta(&f.lib) < meta(&f.bin) && meta(&f.bin) < meta(&f.top),
        "{log:?}"
    );

    // A second copy sends no archive or metadata again.
    let again = f.copy_at(&f.dir.path().join("src"), "--to", &url, &[]);
    assert!(again.status.success(), "{}", stderr(&again));
    let again: serde_json::Value = serde_json::from_str(&stdout(&again)).unwrap();
    assert_eq!(again["objects_copied"], 0, "{again}");
    assert_eq!(server.put_log().len(), log.len(), "{:?}", server.put_log());

    // What the server holds substitutes into an empty store.
    let (dst, pulled) = f.pull_new(&url);
    assert_eq!(pulled["objects_copied"], 3, "{pulled}");
    let report = Store::open(dst.path()).unwrap().verify(false).unwrap();
    assert_eq!(report.checked, 3);
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

#[test]
fn a_server_that_refuses_puts_is_named_with_its_answer() {
    let f = Fixture::new();
    for refusal in [None, Some(403)] {
        let server = Server::start();
        if let Some(status) = refusal {
            server.accept_puts(Some(status));
        }
        let url = format!("{}/c", server.url());
        let out = f.copy_at(&f.dir.path().join("src"), "--to", &url, &[]);
        assert!(!out.status.success(), "{}", stdout(&out));
        let text = stderr(&out);
        let status = refusal.unwrap_or(405).to_string();
        for want in [
            "error[E1009]",
            &format!("{url}/imago-cache.json"),
            status.as_str(),
        ] {
            assert!(text.contains(want), "`{text}` lacks `{want}`");
        }
    }
}
