//! Hostile .debs whose headers ask for huge allocations (reliability
//! catalogue case 29) or decompress to far more than they weigh (case 12):
//! each is refused within a second, in bounded memory, with an error
//! naming the package, the entry or member and the rule, and leaves nothing
//! in the output directory.
//!
//! Each case runs in a child process — this test binary run again with
//! `IMAGO_DEB_HOSTILE_CHILD` set — under an address-space limit
//! ([`CHILD_ADDRESS_SPACE`]), so a regression aborts the child instead of
//! eating the machine. The child reports the time the unpack took and its
//! own peak RSS (`VmHWM`), which the parent checks against [`MAX_TIME`] and
//! [`MAX_PEAK_RSS_KB`].

// Test helpers outside #[test] functions panic on failure too.
#![allow(clippy::unwrap_used)]

use crate::support::deb as support;

use imago::debian::unpack::{Limits, unpack_deb_sized};
use std::io::{BufReader, Read};
use std::path::Path;
use std::time::{Duration, Instant};
use support::{
    AR_MAGIC, Comp, Entry, ZstdFrame, ar_header, ar_header_raw, control_tar, deb_zst_data,
    tar_header,
};

const PKG: &str = "hostile";
const CHILD_ENV: &str = "IMAGO_DEB_HOSTILE_CHILD";
/// The child's address-space limit: any attempt to allocate what a header
/// claims (8 GiB, 1 GB) fails there and aborts the child.
const CHILD_ADDRESS_SPACE: u64 = 1 << 30;
const MAX_PEAK_RSS_KB: u64 = 200 * 1024;
const MAX_TIME: Duration = Duration::from_secs(1);

/// What the child reported.
#[derive(Debug)]
struct Outcome {
    error: String,
    elapsed: Duration,
    peak_rss_kb: u64,
}

/// Runs one hostile .deb in a child process and checks the bounds: an
/// error containing every string of `want`, within [`MAX_TIME`], below
/// [`MAX_PEAK_RSS_KB`], nothing left in the output directory.
fn refused(case: &str, bytes: &[u8], known_len: bool, want: &[&str]) -> Outcome {
    let tmp = tempfile::tempdir().unwrap();
    let deb = tmp.path().join("hostile.deb");
    std::fs::write(&deb, bytes).unwrap();
    let out = tmp.path().join("out");
    let spec = format!(
        "{}\n{}\n{}",
        deb.display(),
        out.display(),
        if known_len { "known" } else { "unknown" }
    );
    let child = crate::support::child_test(concat!(module_path!(), "::hostile_child"))
        .env(CHILD_ENV, spec)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&child.stdout);
    let stderr = String::from_utf8_lossy(&child.stderr);
    assert!(
        child.status.success(),
        "{case}: the child failed ({}):\n{stdout}\n{stderr}",
        child.status
    );
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("HOSTILE ").map(|(_, report)| report))
        .unwrap_or_else(|| panic!("{case}: no report from the child:\n{stdout}\n{stderr}"));
    let mut fields = line.splitn(3, ' ');
    let elapsed = Duration::from_micros(fields.next().unwrap().parse().unwrap());
    let peak_rss_kb: u64 = fields.next().unwrap().parse().unwrap();
    let error = fields.next().unwrap().to_string();
    let outcome = Outcome {
        error,
        elapsed,
        peak_rss_kb,
    };
    eprintln!("{case}: {outcome:?}");
    assert!(
        !outcome.error.starts_with("OK"),
        "{case}: accepted: {outcome:?}"
    );
    assert!(
        outcome.error.contains(&format!("package `{PKG}`")),
        "{case}: {outcome:?}"
    );
    for w in want {
        assert!(
            outcome.error.contains(w),
            "{case}: `{w}` not in {outcome:?}"
        );
    }
    assert!(
        outcome.elapsed < MAX_TIME,
        "{case}: took {:?}",
        outcome.elapsed
    );
    assert!(
        outcome.peak_rss_kb < MAX_PEAK_RSS_KB,
        "{case}: peak RSS {} kB",
        outcome.peak_rss_kb
    );
    let left: Vec<_> = match std::fs::read_dir(&out) {
        Ok(dir) => dir.map(|e| e.unwrap().file_name()).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("{case}: {e}"),
    };
    assert!(left.is_empty(), "{case}: left in the output: {left:?}");
    let beside: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != "out" && n != "hostile.deb")
        .collect();
    assert!(
        beside.is_empty(),
        "{case}: written beside the output: {beside:?}"
    );
    outcome
}

/// The child's side: limit the address space, unpack, report.
#[test]
fn hostile_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut lines = spec.lines();
    let (deb, out, known) = (
        lines.next().unwrap(),
        lines.next().unwrap(),
        lines.next().unwrap() == "known",
    );
    rustix::process::setrlimit(
        rustix::process::Resource::As,
        rustix::process::Rlimit {
            current: Some(CHILD_ADDRESS_SPACE),
            maximum: Some(CHILD_ADDRESS_SPACE),
        },
    )
    .unwrap();
    let file = std::fs::File::open(deb).unwrap();
    let len = file.metadata().unwrap().len();
    let started = Instant::now();
    let result = unpack_deb_sized(
        BufReader::with_capacity(256 * 1024, file),
        known.then_some(len),
        PKG,
        Path::new(out),
        &Limits::default(),
    );
    let elapsed = started.elapsed();
    let error = match result {
        Ok(s) => format!("OK {s:?}"),
        Err(e) => e.to_string(),
    };
    println!(
        "HOSTILE {} {} {}",
        elapsed.as_micros(),
        peak_rss_kb(),
        error.replace('\n', " ")
    );
}

/// This process's peak resident set size (`VmHWM`), in kB.
fn peak_rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

const GIB8: u64 = 8 << 30;

#[test]
fn ar_members_claiming_8_gib_are_refused_at_their_header() {
    let control = Comp::Zst.compress(&control_tar(PKG));
    let small_data = Comp::Zst.compress(&support::tar(&support::hello_entries()));
    // `debian-binary` written GNU style (`debian-binary/`) or plain.
    let start = |out: &mut Vec<u8>, gnu: bool| {
        out.extend_from_slice(AR_MAGIC);
        let field = if gnu {
            "debian-binary/"
        } else {
            "debian-binary"
        };
        out.extend_from_slice(&ar_header_raw(field, 4));
        out.extend_from_slice(b"2.0\n");
    };
    // The data member claims 8 GiB; the file holds a few KB of it.
    let mut data_claim = Vec::new();
    start(&mut data_claim, true);
    data_claim.extend_from_slice(&ar_header("control.tar.zst", control.len() as u64));
    data_claim.extend_from_slice(&control);
    if control.len() % 2 == 1 {
        data_claim.push(b'\n');
    }
    data_claim.extend_from_slice(&ar_header("data.tar.zst", GIB8));
    data_claim.extend_from_slice(&small_data);
    let claim = format!("claims {GIB8} bytes");
    refused(
        "data member, length unknown",
        &data_claim,
        false,
        &["ar member `data.tar.zst`", &claim, "the limits allow"],
    );
    refused(
        "data member, length known",
        &data_claim,
        true,
        &[
            "ar member `data.tar.zst`",
            &claim,
            "what is left of the file",
        ],
    );
    // A GNU name table (`//`) and a BSD long name (`#1/LEN`, in an archive
    // without GNU-style names) claiming 8 GiB: the `ar` crate allocated
    // both before reading them.
    for (name, gnu) in [("/", true), (&format!("#1/{GIB8}")[..], false)] {
        let mut bytes = Vec::new();
        start(&mut bytes, gnu);
        let field = if gnu {
            format!("{name}/")
        } else {
            name.to_string()
        };
        bytes.extend_from_slice(&ar_header_raw(&field, GIB8));
        bytes.extend_from_slice(&[b'x'; 4096]);
        refused(
            &format!("member `{name}`"),
            &bytes,
            false,
            &[&format!("ar member `{name}`"), &claim],
        );
    }
}

/// A data.tar.zst whose first entry is `extension` (a header claiming
/// `len` bytes of `body_start` followed by a run of `fill`), then a small
/// file; the zstd frame holds the run as RLE blocks, so it weighs a few
/// hundred KB at most.
fn bomb(kind: u8, name: &[u8], body_start: &[u8], fill: u8, len: u64, body_end: &[u8]) -> Vec<u8> {
    let run = len - body_start.len() as u64 - body_end.len() as u64;
    let mut frame = ZstdFrame::new();
    frame
        .raw(&tar_header(name, kind, len))
        .raw(body_start)
        .run(fill, run)
        .raw(body_end);
    let pad = (512 - len % 512) % 512;
    let mut rest = vec![0u8; pad as usize];
    rest.extend_from_slice(&support::tar(&[Entry::file("./after", "x")]));
    frame.raw(&rest);
    frame.finish()
}

#[test]
fn a_100_mb_gnu_long_name_is_refused_before_it_is_read() {
    let len = 100_000_001; // 100 MB of name and its NUL
    let data = bomb(b'L', b"././@LongLink", b"./", b'a', len, b"\0");
    assert!(data.len() < 4 << 20, "{} bytes", data.len());
    let bytes = deb_zst_data(PKG, data);
    let o = refused(
        "100 MB GNU long name",
        &bytes,
        false,
        &[
            "entry `././@LongLink`",
            "GNU long name of 100000001 bytes exceeds the limit of 65536 bytes",
        ],
    );
    eprintln!("{} bytes of .deb: {o:?}", bytes.len());
}

#[test]
fn a_1_gb_pax_record_is_refused_before_it_is_read() {
    let len: u64 = 1_000_000_000;
    // One well-formed record of exactly 1 GB: `1000000000 comment=aaa…\n`.
    let data = bomb(
        b'x',
        b"././@PaxHeader",
        b"1000000000 comment=",
        b'a',
        len,
        b"\n",
    );
    assert!(data.len() < 1 << 20, "{} bytes", data.len());
    let bytes = deb_zst_data(PKG, data);
    let o = refused(
        "1 GB PAX record",
        &bytes,
        false,
        &[
            "entry `././@PaxHeader`",
            "PAX extended header of 1000000000 bytes exceeds the limit of 65536 bytes",
        ],
    );
    eprintln!("{} bytes of .deb: {o:?}", bytes.len());
}

#[test]
fn a_1_gb_gnu_long_link_is_refused_before_it_is_read() {
    let len: u64 = 1_000_000_001;
    let data = bomb(b'K', b"././@LongLink", b"", b'b', len, b"\0");
    let bytes = deb_zst_data(PKG, data);
    refused(
        "1 GB GNU long link",
        &bytes,
        false,
        &["GNU long link of 1000000001 bytes exceeds the limit"],
    );
}

/// The bomb builder itself: the frame decodes to exactly what it says.
#[test]
fn zstd_frames_built_by_blocks_decode() {
    let mut frame = ZstdFrame::new();
    let bytes = frame.raw(b"head").run(b'z', 300_000).raw(b"tail").finish();
    let mut decoded = Vec::new();
    zstd::stream::read::Decoder::new(&bytes[..])
        .unwrap()
        .read_to_end(&mut decoded)
        .unwrap();
    assert_eq!(decoded.len(), 300_008);
    assert!(decoded.starts_with(b"head") && decoded.ends_with(b"zzzztail"));
}

/// The fuzz target's seeds (composer/fuzz/seeds/deb/) stay valid .debs;
/// `IMAGO_WRITE_FUZZ_SEEDS=1` rewrites them from the fixture builder.
#[test]
fn fuzz_seeds_unpack() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/deb");
    let write = std::env::var_os("IMAGO_WRITE_FUZZ_SEEDS").is_some();
    for (name, bytes) in support::fuzz_seeds() {
        let path = dir.join(&name);
        if write {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &bytes).unwrap();
        }
        let committed = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let tmp = tempfile::tempdir().unwrap();
        unpack_deb_sized(
            &committed[..],
            Some(committed.len() as u64),
            "seed",
            &tmp.path().join("out"),
            &Limits::default(),
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}
