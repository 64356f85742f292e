//! Running commands in the guest, the waits built on them, and file copies.
//!
//! Every method takes an explicit timeout, multiplied by the accelerator
//! factor, which covers everything the call does (including waiting for the
//! backdoor of a booting guest). Waits poll with [`retry`]; each attempt's
//! command gets at most the time left, and the timeout message says what the
//! last attempt saw (its exit code and output).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use regex::Regex;

use crate::backdoor::{Reply, RunError};
use crate::command::{GuestCommand, shell_quote};
use crate::console::Cursor;
use crate::error::{Error, Failure, show_output};
use crate::machine::Machine;
use crate::retry::{Poll, retry};

/// The longest pause between attempts of a wait.
const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// The result of a guest command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// The exit status.
    pub status: i32,
    /// Its stdout.
    pub stdout: Vec<u8>,
    /// Its stderr.
    pub stderr: Vec<u8>,
}

impl Output {
    /// stdout as text (invalid UTF-8 replaced).
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// stderr as text (invalid UTF-8 replaced).
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// A command that succeeds when something listens on TCP `port` (state
/// `0A` in /proc/net/tcp or tcp6).
fn listening(port: u16) -> GuestCommand {
    GuestCommand::Shell(format!(
        "grep -qE '^ *[0-9]+: [0-9A-F]+:{port:04X} [0-9A-F]+:[0-9A-F]+ 0A ' /proc/net/tcp /proc/net/tcp6 2>/dev/null"
    ))
}

/// A console pattern, or the error naming it.
fn console_regex(pattern: &str) -> Result<Regex, Error> {
    Regex::new(pattern)
        .map_err(|e| Error::Config(format!("invalid console pattern /{pattern}/: {e}")))
}

/// A one-line summary of an attempt, for timeout messages.
fn summary(output: &Output) -> String {
    format!(
        "exit code {}\nstdout: {}\nstderr: {}",
        output.status,
        show_output(&output.stdout),
        show_output(&output.stderr)
    )
}

impl Machine {
    /// Runs a command with `stdin`, within `timeout` (already scaled).
    pub(crate) fn run_command(
        &self,
        command: &GuestCommand,
        stdin: &[u8],
        timeout: Duration,
    ) -> Result<Output, Error> {
        let running = self.running()?;
        let display = command.to_string();
        let mut cursor = self.console.boot_cursor();
        let mut abort = || self.kernel_panic(&mut cursor);
        match running
            .backdoor
            .run(&command.script(), stdin, timeout, &display, &mut abort)
        {
            Ok(Reply {
                timed_out: true,
                stdout,
                stderr,
                ..
            }) => Err(Error::CommandTimedOut {
                command: display,
                limit: timeout,
                stdout,
                stderr,
            }),
            Ok(reply) => Ok(Output {
                status: reply.status,
                stdout: reply.stdout,
                stderr: reply.stderr,
            }),
            Err(RunError::Error(e)) => Err(e),
            Err(RunError::Closed) => {
                Err(self.exited_error(&running, &format!("running {display}")))
            }
        }
    }

    /// An error if the kernel panicked (in the current boot, from `cursor` on).
    pub(crate) fn kernel_panic(&self, cursor: &mut Cursor) -> Option<Error> {
        self.console
            .find_kernel_panic(cursor)
            .map(|line| Error::KernelPanic {
                machine: self.name().to_owned(),
                line,
            })
    }

    fn must_succeed(
        &self,
        command: &GuestCommand,
        stdin: &[u8],
        timeout: Duration,
    ) -> Result<Output, Error> {
        let output = self.run_command(command, stdin, timeout)?;
        if output.status == 0 {
            Ok(output)
        } else {
            Err(Error::CommandFailed {
                command: command.to_string(),
                status: output.status,
                stdout: output.stdout,
                stderr: output.stderr,
            })
        }
    }

    /// Runs a command and returns its status and output, whatever the status.
    pub fn execute(
        &self,
        command: impl Into<GuestCommand>,
        timeout: Duration,
    ) -> Result<Output, Failure> {
        let command = command.into();
        let timeout = self.scaled(timeout);
        self.step(format!("execute {command}"), || {
            self.run_command(&command, b"", timeout)
        })
    }

    /// Runs a command with `stdin` as its standard input and returns its
    /// status and output, whatever the status (e.g. a tar stream to unpack).
    pub fn execute_with_input(
        &self,
        command: impl Into<GuestCommand>,
        stdin: &[u8],
        timeout: Duration,
    ) -> Result<Output, Failure> {
        let command = command.into();
        let timeout = self.scaled(timeout);
        self.step(
            format!("execute {command} with {} bytes of input", stdin.len()),
            || self.run_command(&command, stdin, timeout),
        )
    }

    /// Runs a command that must exit with status 0; returns its stdout as
    /// text. The error of a failing command names it, its exit code and both
    /// outputs.
    pub fn succeed(
        &self,
        command: impl Into<GuestCommand>,
        timeout: Duration,
    ) -> Result<String, Failure> {
        self.succeed_bytes(command, timeout)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Like [`succeed`](Self::succeed), returning stdout as bytes.
    pub fn succeed_bytes(
        &self,
        command: impl Into<GuestCommand>,
        timeout: Duration,
    ) -> Result<Vec<u8>, Failure> {
        let command = command.into();
        let timeout = self.scaled(timeout);
        self.step(format!("succeed {command}"), || {
            self.must_succeed(&command, b"", timeout).map(|o| o.stdout)
        })
    }

    /// Runs a command that must exit with a non-zero status; returns its
    /// output.
    pub fn fail(
        &self,
        command: impl Into<GuestCommand>,
        timeout: Duration,
    ) -> Result<Output, Failure> {
        let command = command.into();
        let timeout = self.scaled(timeout);
        self.step(format!("fail {command}"), || {
            let output = self.run_command(&command, b"", timeout)?;
            if output.status == 0 {
                Err(Error::CommandSucceeded {
                    command: command.to_string(),
                    stdout: output.stdout,
                    stderr: output.stderr,
                })
            } else {
                Ok(output)
            }
        })
    }

    /// Polls `command` until its status satisfies `accept`.
    fn wait_for_status(
        &self,
        command: &GuestCommand,
        timeout: Duration,
        goal: &str,
        accept: fn(i32) -> bool,
    ) -> Result<Output, Error> {
        let mut attempts = 0;
        retry(
            &format!("{command} to {goal}"),
            timeout,
            POLL_INTERVAL,
            |left| {
                attempts += 1;
                match self.run_command(command, b"", left) {
                    Ok(output) if accept(output.status) => Ok(Poll::Ready(output)),
                    Ok(output) => Ok(Poll::Pending(Some(format!(
                        "attempt {attempts}: {}",
                        summary(&output)
                    )))),
                    Err(Error::CommandTimedOut { .. } | Error::Timeout { .. }) => Ok(
                        Poll::Pending(Some(format!("attempt {attempts}: did not finish in time"))),
                    ),
                    Err(e) => Err(e),
                }
            },
        )
    }

    /// Runs a command until it succeeds; returns its stdout.
    pub fn wait_until_succeeds(
        &self,
        command: impl Into<GuestCommand>,
        timeout: Duration,
    ) -> Result<String, Failure> {
        let command = command.into();
        let timeout = self.scaled(timeout);
        self.step(format!("wait until {command} succeeds"), || {
            self.wait_for_status(&command, timeout, "succeed", |s| s == 0)
                .map(|o| o.stdout_text())
        })
    }

    /// Runs a command until it fails; returns its output.
    pub fn wait_until_fails(
        &self,
        command: impl Into<GuestCommand>,
        timeout: Duration,
    ) -> Result<Output, Failure> {
        let command = command.into();
        let timeout = self.scaled(timeout);
        self.step(format!("wait until {command} fails"), || {
            self.wait_for_status(&command, timeout, "fail", |s| s != 0)
        })
    }

    /// Waits for a path to exist in the guest.
    pub fn wait_for_file(&self, path: &str, timeout: Duration) -> Result<(), Failure> {
        let command = GuestCommand::from(["test", "-e", path]);
        let timeout = self.scaled(timeout);
        self.step(format!("wait for file {path}"), || {
            self.wait_for_status(&command, timeout, "succeed", |s| s == 0)
                .map(drop)
        })
    }

    /// Waits for a TCP port to be listened on in the guest (any address,
    /// IPv4 or IPv6), read from /proc/net/tcp{,6} so no tool is needed.
    pub fn wait_for_open_port(&self, port: u16, timeout: Duration) -> Result<(), Failure> {
        let timeout = self.scaled(timeout);
        self.step(format!("wait for TCP port {port}"), || {
            self.wait_for_status(&listening(port), timeout, "succeed", |s| s == 0)
                .map(drop)
        })
    }

    /// Waits until nothing listens on a TCP port in the guest any more.
    pub fn wait_for_closed_port(&self, port: u16, timeout: Duration) -> Result<(), Failure> {
        let timeout = self.scaled(timeout);
        self.step(format!("wait for TCP port {port} to close"), || {
            self.wait_for_status(&listening(port), timeout, "fail", |s| s != 0)
                .map(drop)
        })
    }

    /// Waits for a systemd unit to be active. A unit that enters the failed
    /// state fails the wait at once, with its status and journal tail.
    pub fn wait_for_unit(&self, unit: &str, timeout: Duration) -> Result<(), Failure> {
        let timeout = self.scaled(timeout);
        let quoted = shell_quote(unit);
        let state = GuestCommand::Shell(format!("systemctl is-active -- {quoted}"));
        self.step(format!("wait for unit {unit}"), || {
            retry(&format!("unit {unit} to be active"), timeout, POLL_INTERVAL, |left| {
                let output = self.run_command(&state, b"", left)?;
                let text = output.stdout_text();
                match text.trim() {
                    "active" => Ok(Poll::Ready(())),
                    "failed" => {
                        let status = GuestCommand::Shell(format!(
                            "systemctl status --no-pager --lines=0 -- {quoted}; journalctl --no-pager --lines=30 --unit={quoted}"
                        ));
                        let details = self
                            .run_command(&status, b"", left.max(Duration::from_secs(5)))
                            .map_or_else(|e| format!("(could not get the status: {e})"), |o| {
                                format!("{}{}", o.stdout_text(), o.stderr_text())
                            });
                        Err(Error::UnitFailed {
                            unit: unit.to_owned(),
                            status: details,
                        })
                    }
                    other => Ok(Poll::Pending(Some(format!(
                        "state {other:?}{}",
                        if output.stderr.is_empty() {
                            String::new()
                        } else {
                            format!(", stderr: {}", output.stderr_text().trim())
                        }
                    )))),
                }
            })
        })
    }

    /// Waits for a line of the serial console (of the current boot) to match
    /// `pattern` (a regex); returns the line. Fails early if QEMU exits or
    /// the kernel panics.
    pub fn wait_for_console_text(
        &self,
        pattern: &str,
        timeout: Duration,
    ) -> Result<String, Failure> {
        let timeout = self.scaled(timeout);
        self.step(format!("wait for console text /{pattern}/"), || {
            let regex = console_regex(pattern)?;
            let mut cursor = self.console.boot_cursor();
            let mut panic_cursor = self.console.boot_cursor();
            retry(
                &format!("console text /{pattern}/"),
                timeout,
                Duration::from_millis(50),
                |_| {
                    if let Some(line) = self.console.find(&regex, &mut cursor) {
                        return Ok(Poll::Ready(line));
                    }
                    // A panicked guest prints nothing more: fail now.
                    if let Some(error) = self.kernel_panic(&mut panic_cursor) {
                        return Err(error);
                    }
                    let running = self.running()?;
                    let exited = running.qemu().exit_status().is_some();
                    if exited {
                        // Output written just before exiting may still be in
                        // flight; look once more.
                        std::thread::sleep(Duration::from_millis(100));
                        if let Some(line) = self.console.find(&regex, &mut cursor) {
                            return Ok(Poll::Ready(line));
                        }
                        return Err(self.exited_error(&running, "waiting for console text"));
                    }
                    Ok(Poll::Pending(
                        self.console.tail(1).pop().map(|l| format!("last line {l}")),
                    ))
                },
            )
        })
    }

    /// Types `keys` on the serial console every `interval` until a line of
    /// the console (of the current boot) matches `pattern`; returns the line.
    /// For boot menus that only open when a key arrives at the right moment.
    pub fn send_keys_until(
        &self,
        keys: &str,
        pattern: &str,
        interval: Duration,
        timeout: Duration,
    ) -> Result<String, Failure> {
        let timeout = self.scaled(timeout);
        self.step(format!("send keys {keys:?} until /{pattern}/"), || {
            let regex = console_regex(pattern)?;
            let mut cursor = self.console.boot_cursor();
            retry(
                &format!("console text /{pattern}/"),
                timeout,
                interval,
                |_| {
                    if let Some(line) = self.console.find(&regex, &mut cursor) {
                        return Ok(Poll::Ready(line));
                    }
                    self.write_console(keys.as_bytes())?;
                    Ok(Poll::Pending(
                        self.console.tail(1).pop().map(|l| format!("last line {l}")),
                    ))
                },
            )
        })
    }

    /// Copies a host file into the guest (through the backdoor; mode bits are
    /// kept, parent directories created, the file replaced atomically).
    pub fn copy_from_host(
        &self,
        source: &Path,
        destination: &str,
        timeout: Duration,
    ) -> Result<(), Failure> {
        let timeout = self.scaled(timeout);
        self.step(format!("copy {} from host to {destination}", source.display()), || {
            let data = std::fs::read(source)
                .map_err(|e| Error::io(format!("reading {}", source.display()), e))?;
            let mode = std::fs::metadata(source)
                .map_err(|e| Error::io(format!("reading {}", source.display()), e))?
                .permissions()
                .mode()
                & 0o7777;
            let dst = shell_quote(destination);
            let tmp = shell_quote(&format!("{destination}.imago-copy"));
            let script = format!(
                "mkdir -p \"$(dirname {dst})\" && cat > {tmp} && chmod {mode:o} {tmp} && mv -f {tmp} {dst}"
            );
            let command = GuestCommand::Shell(script);
            self.must_succeed(&command, &data, timeout).map(drop)
        })
    }

    /// Copies a guest file to the host (replacing `destination` atomically).
    pub fn copy_to_host(
        &self,
        source: &str,
        destination: &Path,
        timeout: Duration,
    ) -> Result<(), Failure> {
        let timeout = self.scaled(timeout);
        self.step(
            format!("copy {source} to host {}", destination.display()),
            || {
                let command = GuestCommand::from(["cat", "--", source]);
                let data = self.must_succeed(&command, b"", timeout)?.stdout;
                let parent = destination.parent().filter(|p| !p.as_os_str().is_empty());
                let mut tmp = tempfile::NamedTempFile::new_in(parent.unwrap_or(Path::new(".")))
                    .map_err(|e| {
                        Error::io(
                            format!("creating a file next to {}", destination.display()),
                            e,
                        )
                    })?;
                std::io::Write::write_all(&mut tmp, &data)
                    .map_err(|e| Error::io(format!("writing {}", destination.display()), e))?;
                tmp.persist(destination).map_err(|e| {
                    Error::io(format!("writing {}", destination.display()), e.error)
                })?;
                Ok(())
            },
        )
    }
}
