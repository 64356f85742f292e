//! Errors of the driver.
//!
//! [`Error`] says *what* went wrong (a command's exit code and output, a wait
//! that timed out and what it last saw, QEMU dying). The public `Machine` and
//! `Driver` methods wrap it in a [`Failure`], which adds *where*: the failing
//! step, the whole step log and the console tail of every machine of the test,
//! so a failed test explains itself without re-running it.

use std::fmt;
use std::io;
use std::time::Duration;

/// How many bytes of a command's output a message shows (the tail).
const OUTPUT_SHOWN: usize = 4096;

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file-system or socket operation failed.
    #[error("{what}: {source}")]
    Io {
        /// The operation and the path it concerned.
        what: String,
        #[source]
        source: io::Error,
    },
    /// A helper program (QEMU, qemu-img) could not be run or failed.
    #[error("{program} failed: {detail}")]
    Program {
        /// The program and its arguments.
        program: String,
        /// Its exit status and stderr, or why it could not start.
        detail: String,
    },
    /// The machine configuration is unusable.
    #[error("invalid machine configuration: {0}")]
    Config(String),
    /// Host-side preparation of a test (building a system, an image) failed.
    #[error("test setup failed: {0}")]
    Setup(String),
    /// An operation needed a running machine.
    #[error("machine {0} is not running (call start() first)")]
    NotRunning(String),
    /// `start()` on a machine that already runs.
    #[error("machine {0} is already running")]
    AlreadyRunning(String),
    /// QEMU exited while the driver needed it.
    #[error("QEMU of machine {machine} exited ({status}) while {during}{stderr}")]
    QemuExited {
        /// The machine name.
        machine: String,
        /// QEMU's exit status.
        status: String,
        /// What the driver was doing.
        during: String,
        /// QEMU's stderr (prefixed by a newline), if any.
        stderr: String,
    },
    /// A wait ran out of time.
    #[error("timed out after {limit:.1?} waiting for {what}{}", last_seen(.last))]
    Timeout {
        /// What was waited for, e.g. "`test -e /x` to succeed".
        what: String,
        /// The (accelerator-scaled) time limit.
        limit: Duration,
        /// The last observation, e.g. the last exit code and output.
        last: Option<String>,
    },
    /// A command that had to succeed exited with a non-zero status.
    #[error("command {command} failed with exit code {status}{}", outputs(.stdout, .stderr))]
    CommandFailed {
        /// The command as shown to the user.
        command: String,
        /// Its exit status.
        status: i32,
        /// Its stdout.
        stdout: Vec<u8>,
        /// Its stderr.
        stderr: Vec<u8>,
    },
    /// A command that had to fail exited with status 0.
    #[error("command {command} succeeded but was expected to fail{}", outputs(.stdout, .stderr))]
    CommandSucceeded {
        /// The command as shown to the user.
        command: String,
        /// Its stdout.
        stdout: Vec<u8>,
        /// Its stderr.
        stderr: Vec<u8>,
    },
    /// A command ran longer than its timeout and was killed in the guest.
    #[error("command {command} timed out after {limit:.1?} and was killed{}", outputs(.stdout, .stderr))]
    CommandTimedOut {
        /// The command as shown to the user.
        command: String,
        /// The (accelerator-scaled) time limit.
        limit: Duration,
        /// Its stdout so far.
        stdout: Vec<u8>,
        /// Its stderr so far.
        stderr: Vec<u8>,
    },
    /// A systemd unit entered the failed state while being waited for.
    #[error("unit {unit} failed{}", indent_block("status", .status))]
    UnitFailed {
        /// The unit name.
        unit: String,
        /// `systemctl status` and the journal tail.
        status: String,
    },
    /// The guest side of the backdoor broke the protocol.
    #[error("backdoor protocol error: {0}")]
    Protocol(String),
    /// The guest rebooted or the backdoor restarted while a command ran.
    #[error("the backdoor restarted (guest rebooted?) while running {command}")]
    BackdoorRestarted {
        /// The command that was running.
        command: String,
    },
    /// The guest kernel panicked while the driver waited for it.
    #[error("the kernel of machine {machine} panicked: {line}")]
    KernelPanic {
        /// The machine name.
        machine: String,
        /// The console line reporting the panic.
        line: String,
    },
    /// A QEMU monitor (QMP) command failed.
    #[error("QEMU monitor command {command} failed: {message}")]
    Monitor {
        /// The QMP command.
        command: String,
        /// QEMU's error message.
        message: String,
    },
}

impl Error {
    /// An [`Error::Io`] naming the operation.
    pub(crate) fn io(what: impl Into<String>, source: io::Error) -> Self {
        Self::Io {
            what: what.into(),
            source,
        }
    }
}

fn last_seen(last: &Option<String>) -> String {
    match last {
        Some(last) => indent_block("last seen", last),
        None => String::new(),
    }
}

/// Renders both outputs of a command, each under a heading, tail-truncated.
fn outputs(stdout: &[u8], stderr: &[u8]) -> String {
    let mut text = String::new();
    text.push_str(&indent_block("stdout", &show_output(stdout)));
    text.push_str(&indent_block("stderr", &show_output(stderr)));
    text
}

/// Output bytes for humans: lossy UTF-8, only the last 4 KiB, `(empty)`.
pub(crate) fn show_output(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "(empty)".to_owned();
    }
    if bytes.len() > OUTPUT_SHOWN {
        let tail = &bytes[bytes.len() - OUTPUT_SHOWN..];
        format!(
            "[... {} earlier bytes not shown]\n{}",
            bytes.len() - OUTPUT_SHOWN,
            String::from_utf8_lossy(tail)
        )
    } else {
        String::from_utf8_lossy(bytes).into_owned()
    }
}

fn indent_block(title: &str, body: &str) -> String {
    let mut text = format!("\n  {title}:");
    for line in body.trim_end().lines() {
        text.push_str("\n    ");
        text.push_str(line);
    }
    text
}

/// A failed driver operation with everything needed to understand it: the
/// error, the failing step, the step log and every machine's console tail.
///
/// `Debug` prints the same full report as `Display`, so a test returning
/// `Result<(), Failure>` shows it when it fails.
pub struct Failure(Box<FailureInner>);

struct FailureInner {
    error: Error,
    step: String,
    report: String,
}

impl Failure {
    pub(crate) fn new(error: Error, step: String, report: String) -> Self {
        Self(Box::new(FailureInner {
            error,
            step,
            report,
        }))
    }

    /// What went wrong.
    pub fn error(&self) -> &Error {
        &self.0.error
    }

    /// The step that failed, as shown in the step log.
    pub fn step(&self) -> &str {
        &self.0.step
    }

    /// The step log and console tails captured when the failure happened.
    pub fn report(&self) -> &str {
        &self.0.report
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "step failed: {}", self.0.step)?;
        writeln!(f, "error: {}", self.0.error)?;
        write!(f, "\n{}", self.0.report)
    }
}

impl fmt::Debug for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for Failure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0.error)
    }
}
