//! Running the `imago` binary the way a user does, without the variables
//! that would point it at another module library or inject faults.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Output};

/// `imago` with `args`, its environment cleared of Imago's test hooks and
/// of `IMAGO_MODULES` (the built-in module library is used).
pub fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_imago"));
    cmd.args(args)
        .env_remove("IMAGO_MODULES")
        .env_remove("IMAGO_FAULT_INJECT");
    cmd
}

/// Runs `imago` with `args` to completion.
pub fn imago(args: &[&str]) -> Output {
    command(args).output().expect("cannot run imago")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
