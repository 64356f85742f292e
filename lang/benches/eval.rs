//! Evaluator benchmarks, side by side with Nix.
//!
//! Each program is written in the subset Imago and Nix share. For Imago the
//! time is parse + lower + evaluate + deep force + printing + freeing it all
//! (dropping the evaluator), in process; for Nix it is a
//! whole `nix-instantiate --eval --strict` run (so it includes Nix's start-up,
//! printed separately as the `nix startup` row). Nix runs offline, without a
//! daemon, as root: `--option build-users-group ''` with a dummy store and a
//! private state directory. Prints the median of repeated runs: wall time
//! for both, and for Imago also the CPU time of the evaluating thread (from
//! `/proc/thread-self/schedstat`, on Linux), which stays meaningful when
//! other work shares the machine.
//!
//! Run with `cargo bench -p imago-lang --bench eval`; extra arguments keep
//! only the programs whose name contains one of them (`-- attrs10k`).

// Tests and benches read their fixtures from disk (lang/clippy.toml forbids
// file system, environment and clock access in the language itself).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

/// The allocator the `imago` binary uses, so that figures match it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use imago_lang::eval::{Evaluator, with_large_stack};
use imago_lang::hook::NoStore;
use imago_lang::io::MemoryIo;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::rc::Rc;
use std::time::{Duration, Instant};

const IMAGO_RUNS: usize = 15;
const NIX_RUNS: usize = 5;

/// 10,000 attributes, each with a nested `let`, curried and pattern-matching
/// function calls, and a reference to an earlier attribute.
fn attrs_program(n: usize) -> String {
    let mut s = String::from(
        "let\n  f = x: y: x * 2 + y;\n  g = { a, b ? 1 }: a + b;\n  h = s: s.v + 1;\nin rec {\n",
    );
    for i in 0..n {
        let dep = if i == 0 {
            "1".to_string()
        } else {
            format!("a{}", i / 2)
        };
        let _ = writeln!(
            s,
            "  a{i} = let x = {i}; y = f x {dep}; z = let w = y + 1; in h {{ v = w; }}; in g {{ a = z; b = x; }};"
        );
    }
    s.push_str("}\n");
    s
}

/// Function calls: naive Fibonacci.
fn fib_program(n: u32) -> String {
    format!("let fib = n: if n < 2 then n else fib (n - 1) + fib (n - 2); in fib {n}\n")
}

/// Lists and builtins: genList, map, filter, foldl'.
fn lists_program(n: usize) -> String {
    format!(
        "let xs = builtins.genList (i: i * 3) {n}; ys = builtins.filter (x: x / 2 * 2 == x) (map (x: x + 1) xs); in builtins.foldl' (acc: x: acc + x) 0 ys\n"
    )
}

/// Strings: interpolation, concatStringsSep and attribute names.
fn strings_program(n: usize) -> String {
    format!(
        "let names = builtins.genList (i: \"name-${{toString i}}\") {n}; set = builtins.listToAttrs (map (n: {{ name = n; value = \"value of ${{n}}\"; }}) names); in builtins.stringLength (builtins.concatStringsSep \",\" (builtins.attrValues set))\n"
    )
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Time this thread has run on a CPU, where Linux tells.
fn thread_cpu() -> Option<Duration> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    Some(Duration::from_nanos(
        s.split_whitespace().next()?.parse().ok()?,
    ))
}

/// One run: wall time, CPU time (if known) and the printed result.
fn imago_once(text: &str) -> (Duration, Option<Duration>, String) {
    let cpu = thread_cpu();
    let start = Instant::now();
    let ev = Evaluator::new(Rc::new(MemoryIo::new()), Rc::new(NoStore));
    let out = match ev.eval_source("bench.imago", text, Path::new("/")) {
        Ok(v) => match ev.display(&v, true) {
            Ok(s) => s,
            Err(e) => format!("error: {e}"),
        },
        Err(e) => format!("error: {e}"),
    };
    // Freeing is part of the cost (and left for later, it would be charged
    // to the next run).
    drop(ev);
    let wall = start.elapsed();
    let cpu = cpu.zip(thread_cpu()).map(|(a, b)| b.saturating_sub(a));
    (wall, cpu, out)
}

fn nix_once(file: &Path, state: &Path) -> Option<(Duration, String)> {
    let start = Instant::now();
    let out = Command::new("nix-instantiate")
        .args([
            "--eval",
            "--strict",
            "--option",
            "build-users-group",
            "",
            "--store",
            "dummy://",
        ])
        .arg(file)
        .env("NIX_STATE_DIR", state)
        .env("NIX_CONF_DIR", state)
        .output()
        .ok()?;
    let elapsed = start.elapsed();
    if !out.status.success() {
        eprintln!(
            "nix-instantiate failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    Some((
        elapsed,
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
    ))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let tmp = std::env::temp_dir().join(format!("imago-eval-bench-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&tmp);
    let programs = [
        ("nix startup (1 + 1)", "1 + 1\n".to_string()),
        ("attrs10k", attrs_program(10_000)),
        ("fib 20", fib_program(20)),
        ("lists 100k", lists_program(100_000)),
        ("strings 10k", strings_program(10_000)),
    ];
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    println!(
        "{:<22} {:>12} {:>10} {:>12} {:>8}  result",
        "program", "imago (ms)", "cpu (ms)", "nix (ms)", "nix/imago"
    );
    for (name, text) in programs {
        if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        let t = text.clone();
        let (imago, cpu, result) = with_large_stack(move || {
            let runs: Vec<_> = (0..IMAGO_RUNS).map(|_| imago_once(&t)).collect();
            let result = runs[0].2.clone();
            let cpu: Option<Vec<Duration>> = runs.iter().map(|r| r.1).collect();
            (
                median(runs.iter().map(|r| r.0).collect()),
                cpu.map(median),
                result,
            )
        })
        .unwrap_or_else(|e| panic!("cannot start the evaluation thread: {e}"));
        let file = tmp.join(format!(
            "{}.nix",
            name.replace(|c: char| !c.is_alphanumeric(), "_")
        ));
        let nix = std::fs::write(&file, &text).ok().and_then(|_| {
            let runs: Option<Vec<(Duration, String)>> =
                (0..NIX_RUNS).map(|_| nix_once(&file, &tmp)).collect();
            let runs = runs?;
            let agree = runs[0].1 == result;
            Some((median(runs.into_iter().map(|r| r.0).collect()), agree))
        });
        let short: String = result.chars().take(40).collect();
        let cpu = cpu.map_or("n/a".to_string(), |c| format!("{:.2}", ms(c)));
        match nix {
            Some((n, agree)) => println!(
                "{name:<22} {:>12.2} {cpu:>10} {:>12.2} {:>8.1}  {short}{}",
                ms(imago),
                ms(n),
                ms(n) / ms(imago),
                if agree { "" } else { "  (DIFFERS from nix)" }
            ),
            None => println!(
                "{name:<22} {:>12.2} {cpu:>10} {:>12} {:>8}  {short}",
                ms(imago),
                "n/a",
                "-"
            ),
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
}
