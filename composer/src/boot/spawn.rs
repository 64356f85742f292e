//! Starting a VM's processes (QEMU, virtiofsd) so that they die with the
//! process that started them, even when it is killed with SIGKILL and has
//! no chance to stop them.
//!
//! The parent-death signal of Linux (`PR_SET_PDEATHSIG`) does this. It is
//! set by util-linux's `setpriv --pdeathsig KILL`, which then executes the
//! program, so no code runs between `fork` and `exec` here. The signal
//! fires when the *thread* that forked exits, not the process, so every
//! such child is forked by one long-lived spawner thread: a short-lived
//! thread that starts a VM (a test's, a deploy's) would otherwise take the
//! VM with it when it ends. Without `setpriv` (not on PATH) children start
//! as usual and are stopped only by their owner's `Drop`.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Mutex, OnceLock};

/// A command running `program` that dies with this process: `program`
/// under `setpriv --pdeathsig KILL` where `setpriv` can, else `program`
/// itself. Start it with [`spawn`].
pub fn command(program: impl AsRef<OsStr>) -> Command {
    if has_setpriv() {
        let mut command = Command::new("setpriv");
        command
            .args(["--pdeathsig", "KILL", "--"])
            .arg(program.as_ref());
        command
    } else {
        Command::new(program)
    }
}

/// Starts `command` from the process-wide spawner thread (see the module
/// documentation).
pub fn spawn(command: Command) -> io::Result<Child> {
    type Request = (Command, Sender<io::Result<Child>>);
    static SPAWNER: OnceLock<Option<Mutex<Sender<Request>>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = channel::<Request>();
        std::thread::Builder::new()
            .name("imago-vm-spawner".to_owned())
            .spawn(move || {
                for (mut command, reply) in rx {
                    let _ = reply.send(command.spawn());
                }
            })
            .ok()
            .map(|_| Mutex::new(tx))
    });
    let Some(spawner) = spawner else {
        let mut command = command;
        return command.spawn();
    };
    let gone = || io::Error::other("the VM spawner thread is gone");
    let (reply_tx, reply_rx) = channel();
    spawner
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((command, reply_tx))
        .map_err(|_| gone())?;
    reply_rx.recv().unwrap_or_else(|_| Err(gone()))
}

/// Whether a `setpriv` that knows `--pdeathsig` is on PATH (asked once).
fn has_setpriv() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| {
        Command::new("setpriv")
            .arg("--help")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("--pdeathsig"))
    })
}

/// Where `program` would be found: itself if it names a path, else the
/// first executable file of that name in a directory of `PATH`. A program
/// started through `setpriv` is looked up by `setpriv`, whose failure is
/// only an exit status, so callers look first to report a missing program
/// by name.
pub fn find_program(program: &OsStr) -> Option<PathBuf> {
    let is_executable = |p: &Path| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if Path::new(program).components().count() > 1 {
        let path = PathBuf::from(program);
        return is_executable(&path).then_some(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| OsString::from("/usr/bin:/bin"));
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_found_on_path_or_by_their_path() {
        let sh = find_program(OsStr::new("sh")).expect("sh on PATH");
        assert!(sh.is_absolute(), "{}", sh.display());
        assert_eq!(find_program(sh.as_os_str()), Some(sh.clone()));
        assert_eq!(find_program(OsStr::new("no-such-program-imago")), None);
        assert_eq!(find_program(OsStr::new("/nonexistent/sh")), None);
    }

    #[test]
    fn a_spawned_command_runs_with_its_arguments_and_stdio() {
        let mut command = command("sh");
        command
            .args(["-c", "echo $0", "hello"])
            .stdout(Stdio::piped());
        let out = spawn(command).unwrap().wait_with_output().unwrap();
        assert!(out.status.success());
        assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n");
    }
}
