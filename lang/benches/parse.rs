//! Parser throughput on configuration-like text.
//!
//! Generates a few MB of text shaped like system modules (attribute sets,
//! strings with interpolation, indented strings, lists, `let`, functions,
//! comments), parses it repeatedly and prints the median throughput in MB/s.
//! Run with `cargo bench -p imago-lang --bench parse`.
//!
//! Two clocks are reported: wall time, and the CPU time of the benchmark
//! thread (from `/proc/thread-self/schedstat`, on Linux), which stays
//! meaningful when other work shares the machine.

// Tests and benches read their fixtures from disk (lang/clippy.toml forbids
// file system, environment and clock access in the language itself).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

/// The allocator the `imago` binary uses, so that figures match it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use imago_lang::parser::parse;
use imago_lang::printer::print;
use imago_lang::source::FileId;
use std::fmt::Write as _;
use std::hint::black_box;
use std::time::Instant;

/// One module-like block; `i` varies the names.
fn block(out: &mut String, i: usize) {
    let _ = write!(
        out,
        r#"
  # Service {i}: a web server with its configuration file.
  service{i} = {{ config, lib, pkgs, ... }}:
    let
      cfg = config.services.web{i};
      port = 8000 + {i};
      /* Users that may log in. */
      users = [ "alice" "bob" "carol-{i}" ];
    in {{
      options.services.web{i} = {{
        enable = lib.mkEnableOption "web server {i}";
        root = lib.mkOption {{ type = lib.types.path; default = ./www/site{i}; }};
      }};
      config = lib.mkIf cfg.enable {{
        environment.etc."web{i}/server.conf".text = ''
          listen ${{toString port}}
          root ${{cfg.root}}
          workers 4
        '';
        systemd.services."web{i}" = {{
          description = "Web server ${{toString {i}}}";
          wantedBy = [ "multi-user.target" ];
          after = [ "network.target" ] ++ lib.optional cfg.tls "tls-keys.service";
          serviceConfig = {{
            ExecStart = "${{pkgs.busybox}}/bin/httpd -f -p ${{toString port}}";
            Restart = "always";
            User = if cfg.user != null then cfg.user else "web";
          }};
        }};
        users.users = lib.genAttrs users (name: {{ isNormalUser = true; home = "/home/${{name}}"; }});
        networking.firewall.allowedTCPPorts = [ port (port + 1) ];
        assertions = [ {{ assertion = port > 1024 || cfg.privileged; message = "port ${{toString port}}"; }} ];
      }};
    }};
"#
    );
}

/// Nanoseconds this thread has run on a CPU, where Linux tells.
fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

/// Runs `f` `runs` times; returns the median rates (wall, CPU) in MB/s for
/// `bytes(result)` bytes per run.
fn measure<T>(
    runs: usize,
    mut f: impl FnMut() -> T,
    bytes: impl Fn(&T) -> usize,
) -> (f64, Option<f64>) {
    let mut wall = Vec::with_capacity(runs);
    let mut cpu = Vec::with_capacity(runs);
    for _ in 0..runs {
        let c0 = thread_cpu_ns();
        let t = Instant::now();
        let out = f();
        let secs = t.elapsed().as_secs_f64();
        let c1 = thread_cpu_ns();
        let mb = bytes(&out) as f64 / 1e6;
        wall.push(mb / secs);
        if let (Some(a), Some(b)) = (c0, c1)
            && b > a
        {
            cpu.push(mb / ((b - a) as f64 / 1e9));
        }
        black_box(out);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let c = (cpu.len() == runs).then(|| median(&mut cpu));
    (median(&mut wall), c)
}

fn main() {
    let mut text = String::from("{\n");
    let mut i = 0;
    while text.len() < 4 << 20 {
        block(&mut text, i);
        i += 1;
    }
    text.push_str("}\n");
    let check = parse(FileId(0), &text);
    assert!(
        check.errors.is_empty(),
        "benchmark text has errors: {:?}",
        &check.errors[..1]
    );

    let runs = 15;
    let len = text.len();
    let (wall, cpu) = measure(runs, || parse(FileId(0), black_box(&text)), |_| len);
    let cpu = cpu.map_or(String::new(), |c| format!(", {c:.0} MB/s of CPU time"));
    println!(
        "parse: {:.1} MB of configuration text, median of {runs} runs: {wall:.0} MB/s wall{cpu}",
        len as f64 / 1e6
    );
    let (wall, cpu) = measure(runs, || print(black_box(&check.expr)), String::len);
    let cpu = cpu.map_or(String::new(), |c| format!(", {c:.0} MB/s of CPU time"));
    println!("print: median of {runs} runs: {wall:.0} MB/s wall{cpu} (of printed text)");
}
