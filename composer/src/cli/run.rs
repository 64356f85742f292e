//! `imago run`: build a system (with `imago build`'s pipeline,
//! [`crate::pipeline::build_file`]), then boot it in QEMU with the serial
//! console on this terminal (see `crate::boot::run`). `--toplevel` boots an
//! already built toplevel instead.

use super::GlobalArgs;
use super::build::SystemArgs;
use crate::boot::forward::PortForward;
use crate::boot::run::{RunOptions, run_system};
use crate::debian::apt::default_deb_cache;
use crate::graph::BuildOptions;
use anyhow::Context;
use std::ffi::OsString;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub system: SystemArgs,
    /// Never touch the network while building.
    #[arg(long)]
    pub offline: bool,
    /// Build steps in parallel on this many threads (default: all cores).
    #[arg(long, value_name = "N")]
    pub jobs: Option<u16>,
    /// Guest memory: MiB, or with an M or G suffix.
    #[arg(long, default_value = "1024", value_parser = parse_memory, value_name = "SIZE")]
    pub memory: u32,
    /// Virtual CPUs.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub smp: u32,
    /// Forward a host port to a guest port on the user network
    /// (repeatable): `[tcp:|udp:][ADDRESS:]HOST_PORT:GUEST_PORT`, e.g.
    /// `--forward 8080:80` (the host side listens on 127.0.0.1 unless an
    /// address is given).
    #[arg(long = "forward", value_name = "HOST:GUEST")]
    pub forwards: Vec<PortForward>,
    /// An extra kernel parameter (repeatable), e.g. `--kernel-param imago.debug1`.
    #[arg(long = "kernel-param", value_name = "PARAM")]
    pub kernel_params: Vec<String>,
    /// Extra QEMU arguments, after `--`.
    #[arg(last = true, value_name = "QEMU_ARGS")]
    pub qemu_args: Vec<OsString>,
}

/// Parses `512`, `512M` or `2G` into MiB.
fn parse_memory(text: &str) -> Result<u32, String> {
    let (digits, factor) = match text.char_indices().last() {
        Some((i, 'G' | 'g')) => (&text[..i], 1024),
        Some((i, 'M' | 'm')) => (&text[..i], 1),
        _ => (text, 1),
    };
    let value: u32 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a size (examples: 512, 512M, 2G)"))?;
    let mib = value
        .checked_mul(factor)
        .filter(|&m| m >= 64)
        .ok_or_else(|| format!("`{text}`: memory must be at least 64 MiB"))?;
    Ok(mib)
}

impl Args {
    pub fn run(self, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
        let store = super::store::open_store(global)?;
        let Some(toplevel) = self.system.toplevel(
            global,
            &store,
            BuildOptions {
                jobs: self.jobs.map_or(0, usize::from),
                keep_going: false,
                offline: self.offline,
                repair: false,
                deb_cache: default_deb_cache(),
                progress: global.progress(),
            },
        )?
        else {
            return Ok(ExitCode::from(1));
        };
        let physical = store.physical(&toplevel);
        anyhow::ensure!(
            store
                .is_valid(&toplevel)
                .context("reading the store database")?,
            "{} is not a valid object of the store {}",
            toplevel.to_absolute(),
            store.dir().display()
        );
        let options = RunOptions {
            memory_mib: self.memory,
            smp: self.smp,
            extra_args: self.qemu_args,
            kernel_params: self.kernel_params,
            forwards: self.forwards,
            ..RunOptions::default()
        };
        let exit = run_system(&physical, &toplevel.to_absolute(), store.dir(), &options)
            .with_context(|| format!("booting {}", toplevel.to_absolute()))?;
        let status = exit.status;
        // Stopped by a signal: the shell's convention, 128 + the signal.
        if let Some(signal) = exit.stopped_by {
            return Ok(ExitCode::from(128u8.saturating_add(signal as u8)));
        }
        Ok(if status.success() {
            ExitCode::SUCCESS
        } else {
            eprintln!("imago: QEMU exited with {status}");
            ExitCode::from(1)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use crate::pipeline::DEFAULT_ATTR;
    use clap::Parser;
    use std::path::PathBuf;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        let mut argv = vec!["imago", "run"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv)?.command {
            Command::Run(args) => Ok(args),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn parses_file_memory_smp_and_qemu_args() {
        let args = parse(&[
            "sys.imago",
            "--memory",
            "2G",
            "--smp",
            "4",
            "--kernel-param",
            "imago.debug1",
            "--forward",
            "8080:80",
            "--forward",
            "udp:5353:53",
            "--",
            "-s",
            "-S",
        ])
        .unwrap();
        let fwd: Vec<String> = args.forwards.iter().map(ToString::to_string).collect();
        assert_eq!(fwd, ["tcp:127.0.0.1:8080:80", "udp:127.0.0.1:5353:53"]);
        assert!(parse(&["sys.imago", "--forward", "80"]).is_err());
        assert_eq!(args.system.file, Some(PathBuf::from("sys.imago")));
        assert_eq!(args.memory, 2048);
        assert_eq!(args.smp, 4);
        assert_eq!(args.kernel_params, ["imago.debug1"]);
        assert_eq!(args.qemu_args, [OsString::from("-s"), OsString::from("-S")]);
    }

    #[test]
    fn toplevel_replaces_the_file() {
        let args = parse(&["--toplevel", "./result"]).unwrap();
        assert_eq!(args.system.toplevel.as_deref(), Some("./result"));
        assert_eq!(args.memory, 1024);
        assert!(parse(&["sys.imago", "--toplevel", "./result"]).is_err());
        assert!(parse(&[]).is_err(), "FILE or --toplevel is required");
        assert!(parse(&["--toplevel", "x", "-A", "config.x"]).is_err());
        let args = parse(&["sys.imago"]).unwrap();
        assert_eq!(args.system.attr, DEFAULT_ATTR);
        assert!(!args.offline);
    }

    #[test]
    fn bad_memory_sizes_are_usage_errors() {
        assert_eq!(parse_memory("512").unwrap(), 512);
        assert_eq!(parse_memory("512m").unwrap(), 512);
        for bad in ["lots", "12", "5T", "", "99999999G"] {
            let err = parse(&["x", "--memory", bad]).unwrap_err();
            assert!(err.use_stderr(), "{bad}");
            assert!(err.to_string().contains("--memory"), "{err}");
        }
    }
}
