//! Module-system benchmark (harness = false; prints medians).
//!
//! 1. The complete configuration of examples/minimal.imago with the module
//!    library (`IMAGO_MODULES` overrides the library directory): wall time of
//!    a fresh evaluator + `eval_modules` + the whole config as JSON, and the
//!    peak resident memory of one such evaluation in a fresh process (this
//!    binary re-runs itself and reads VmHWM from /proc/self/status).
//!    Targets: < 20 ms, < 30 MB. The same for examples/web.imago (nginx,
//!    sudo, a firewall, timers: most of the library in use). Target: < 30 ms.
//! 2. 500 generated modules declaring 20 options each (plus definitions,
//!    priorities, conditions and list contributions), merged and converted to
//!    JSON. Target: < 500 ms.

// Tests and benches read their fixtures from disk (lang/clippy.toml forbids
// file system, environment and clock access in the language itself).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

/// The allocator the `imago` binary uses, so that figures match it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use imago_lang::eval::{Evaluator, Value};
use imago_lang::hook::NoStore;
use imago_lang::io::{EvalIo, FileKind, MemoryIo};
use imago_lang::modules::{ModuleSource, eval_modules};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Reads the real file system (benchmark scaffolding: the library itself
/// never touches files).
struct Fs;

impl EvalIo for Fs {
    fn read_file(&self, path: &Path) -> std::io::Result<String> {
        std::fs::read_to_string(path)
    }

    fn kind(&self, path: &Path) -> std::io::Result<Option<FileKind>> {
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => Ok(Some(FileKind::Directory)),
            Ok(_) => Ok(Some(FileKind::File)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

const CHILD_ENV: &str = "IMAGO_MODULES_BENCH_CHILD";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn library_dir() -> PathBuf {
    std::env::var_os("IMAGO_MODULES").map_or_else(|| repo().join("modules"), PathBuf::from)
}

/// One complete evaluation of examples/minimal; the JSON text length.
fn eval_minimal() -> Result<usize, String> {
    eval_example("minimal.imago")
}

/// One complete evaluation of examples/`name`; the JSON text length.
fn eval_example(name: &str) -> Result<usize, String> {
    let ev = Evaluator::new(Rc::new(Fs), Rc::new(NoStore));
    let lib_dir = library_dir();
    let list = ev
        .eval_file(&lib_dir.join("module-list.imago"))
        .and_then(|v| ev.force(&v))
        .map_err(|e| format!("module list: {e}"))?;
    let mut modules = vec![ModuleSource::Path(repo().join("examples").join(name))];
    for item in list.as_list().map(|l| l.to_vec()).unwrap_or_default() {
        if let Ok(Value::Path(p)) = ev.force(&item) {
            modules.push(ModuleSource::Path(p.to_path_buf()));
        }
    }
    let pkgs = ev.packages_value();
    let evaluated =
        eval_modules(&ev, modules, vec![("pkgs".into(), pkgs)]).map_err(|e| e.to_string())?;
    let json = evaluated
        .config_json(&ev, None)
        .map_err(|e| e.to_string())?;
    Ok(json.to_string().len())
}

/// 500 modules × 20 options, in memory.
fn generated_io(modules: usize, options: usize) -> (MemoryIo, Vec<PathBuf>) {
    let mut io = MemoryIo::new();
    let mut paths = Vec::new();
    io.add(
        "/gen/shared.imago",
        "{ lib, ... }: { options.all = lib.mkOption { type = lib.types.listOf lib.types.str; default = [ ]; }; }",
    );
    paths.push(PathBuf::from("/gen/shared.imago"));
    for m in 0..modules {
        let mut text = String::from("{ lib, config, ... }:\nlet t = lib.types; in\n{\n  options.m");
        let _ = writeln!(text, "{m} = {{");
        for o in 0..options {
            let ty = match o % 4 {
                0 => "t.int",
                1 => "t.str",
                2 => "(t.listOf t.str)",
                _ => "(t.attrsOf t.int)",
            };
            let default = match o % 4 {
                0 => "0",
                1 => "\"\"",
                2 => "[ ]",
                _ => "{ }",
            };
            let _ = writeln!(
                text,
                "    o{o} = lib.mkOption {{ type = {ty}; default = {default}; description = \"Option {o} of module {m}.\"; }};"
            );
        }
        text.push_str("  };\n  config = lib.mkMerge [\n    {\n");
        for o in 0..options {
            let def = match o % 4 {
                0 => format!("lib.mkDefault {o}"),
                1 => format!("\"value-{m}-{o}\""),
                2 => format!("[ \"a{o}\" \"b{o}\" ]"),
                _ => format!("{{ x = {o}; y = lib.mkIf (config.m{m}.o0 > 0) 1; }}"),
            };
            let _ = writeln!(text, "      m{m}.o{o} = {def};");
        }
        let _ = writeln!(
            text,
            "      all = [ config.m{m}.o1 ];\n    }}\n    (lib.mkIf (config.m{m}.o0 >= 0) {{ m{m}.o2 = lib.mkAfter [ \"late\" ]; }})\n  ];\n}}"
        );
        let path = PathBuf::from(format!("/gen/m{m}.imago"));
        io.add(path.clone(), text);
        paths.push(path);
    }
    (io, paths)
}

fn eval_generated(io: &MemoryIo, paths: &[PathBuf]) -> usize {
    let ev = Evaluator::new(Rc::new(io.clone()), Rc::new(NoStore));
    let modules = paths.iter().cloned().map(ModuleSource::Path).collect();
    let evaluated = match eval_modules(&ev, modules, Vec::new()) {
        Ok(e) => e,
        Err(e) => panic!("generated modules fail: {e}"),
    };
    match evaluated.config_json(&ev, None) {
        Ok(j) => j.to_string().len(),
        Err(e) => panic!("generated modules fail: {e}"),
    }
}

/// CPU time the current thread has used (from /proc/thread-self/schedstat),
/// so that figures stay meaningful on a busy machine.
fn thread_cpu() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(Duration::ZERO, Duration::from_nanos)
}

/// Runs `f` on a large-stack thread; (wall time, CPU time of that thread).
fn measure<T: Send>(f: impl FnOnce() -> T + Send) -> (Duration, Duration, T) {
    let wall = Instant::now();
    let (cpu, out) = imago_lang::eval::with_large_stack(|| {
        let start = thread_cpu();
        let out = f();
        (thread_cpu() - start, out)
    })
    .unwrap_or_else(|e| panic!("no evaluation thread: {e}"));
    (wall.elapsed(), cpu, out)
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Times `runs` complete evaluations of examples/`name` and prints the
/// medians against the target.
fn time_example(name: &str, runs: usize, target_ms: u32) {
    let (mut walls, mut cpus) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let (wall, cpu, r) = measure(|| eval_example(name));
        assert!(r.is_ok());
        walls.push(wall);
        cpus.push(cpu);
    }
    println!(
        "examples/{}, full config: median {:.2} ms CPU ({:.2} ms wall) over {runs} runs (target < {target_ms} ms)",
        name.trim_end_matches(".imago"),
        median(cpus).as_secs_f64() * 1e3,
        median(walls).as_secs_f64() * 1e3
    );
}

fn main() {
    if std::env::var_os(CHILD_ENV).is_some() {
        // Child: one evaluation, then report the peak RSS.
        let ok = imago_lang::eval::with_large_stack(eval_minimal)
            .map(|r| r.is_ok())
            .unwrap_or(false);
        println!("{} {}", ok, peak_rss_kib().unwrap_or(0));
        return;
    }
    let runs = 15;

    // 1. examples/minimal with the library.
    match imago_lang::eval::with_large_stack(eval_minimal) {
        Ok(Ok(_)) => {
            time_example("minimal.imago", runs, 20);
            let child = std::env::current_exe()
                .and_then(|exe| std::process::Command::new(exe).env(CHILD_ENV, "1").output());
            match child {
                Ok(out) => {
                    let text = String::from_utf8_lossy(&out.stdout);
                    let mut parts = text.split_whitespace();
                    let ok = parts.next() == Some("true");
                    let kib: u64 = parts.next().and_then(|k| k.parse().ok()).unwrap_or(0);
                    println!(
                        "examples/minimal, peak RSS of one evaluation in a fresh process: {:.1} MB{} (target < 30 MB)",
                        kib as f64 / 1024.0,
                        if ok { "" } else { " (evaluation failed)" }
                    );
                }
                Err(e) => println!("peak RSS: cannot run the child process: {e}"),
            }
        }
        Ok(Err(e)) => println!("examples/minimal: skipped, it does not evaluate:\n{e}"),
        Err(e) => println!("examples/minimal: skipped, no evaluation thread: {e}"),
    }

    // 1b. examples/web with the library.
    match imago_lang::eval::with_large_stack(|| eval_example("web.imago")) {
        Ok(Ok(_)) => {
            time_example("web.imago", runs, 30);
        }
        Ok(Err(e)) => println!("examples/web: skipped, it does not evaluate:\n{e}"),
        Err(e) => println!("examples/web: skipped, no evaluation thread: {e}"),
    }

    // 2. 500 generated modules × 20 options.
    let (io, paths) = generated_io(500, 20);
    let gen_runs = 7;
    let (mut walls, mut cpus) = (Vec::new(), Vec::new());
    for _ in 0..gen_runs {
        let (wall, cpu, len) = measure(|| eval_generated(&io, &paths));
        assert!(len > 0);
        walls.push(wall);
        cpus.push(cpu);
    }
    println!(
        "500 modules x 20 options: median {:.1} ms CPU ({:.1} ms wall) over {gen_runs} runs (target < 500 ms)",
        median(cpus).as_secs_f64() * 1e3,
        median(walls).as_secs_f64() * 1e3
    );
}
