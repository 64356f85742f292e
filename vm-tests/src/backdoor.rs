//! The host side of the backdoor: running shell commands in the guest.
//!
//! The guest runs `modules/testing/backdoor.sh` as root on a virtio-serial
//! port named `org.imago.backdoor` (not a tty: no echo, no line discipline,
//! ~15x faster than a virtio console for large outputs) whose host end is a
//! Unix socket the driver listens on. The
//! protocol is line based and ASCII only, so binary data, console echo and
//! partial lines cannot corrupt it (the full description is at the top of
//! `backdoor.sh` and in docs/vm-tests.md):
//!
//! * host → guest: `run <id> <timeout> <stdin-len> <base64 script>`, then
//!   `<stdin-len>` bytes of base64 stdin;
//! * guest → host: `@imago-bd ready`, then per command `@imago-bd out <id> <n>`
//!   and base64 lines, `@imago-bd err <id> <n>` and base64 lines, and
//!   `@imago-bd exit <id> <status> <timed-out>`.
//!
//! A reader thread parses the guest's lines ([`Parser`]) into [`Event`]s on a
//! channel; [`Backdoor::run`] waits for readiness, sends one request and waits
//! for the reply with the same id. Replies to older ids (from a command the
//! host gave up on) are discarded; a `ready` while a command runs means the
//! guest rebooted. The decoded byte counts are checked against the headers.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::{Duration, Instant};

use data_encoding::BASE64;

use crate::error::Error;

/// The marker every guest → host protocol line starts with.
const MARKER: &str = "@imago-bd ";

/// How often a waiting command checks whether to give up early.
const ABORT_POLL: Duration = Duration::from_millis(250);

/// Extra time after a command's timeout for the guest to report it.
const REPLY_GRACE: Duration = Duration::from_secs(5);

/// The outcome of one guest command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The exit status (128 + signal for a killed command).
    pub status: i32,
    /// Whether the guest killed the command for running too long.
    pub timed_out: bool,
    /// Its stdout.
    pub stdout: Vec<u8>,
    /// Its stderr.
    pub stderr: Vec<u8>,
}

/// Something the guest said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The backdoor (re)started and waits for commands.
    Ready,
    /// The complete reply to request `id`.
    Reply(u64, Reply),
    /// The guest rejected request `id` as malformed.
    Bad(u64),
    /// The guest's output broke the protocol.
    Protocol(String),
}

#[derive(Debug)]
enum Section {
    Out,
    Err { stdout: Vec<u8> },
}

#[derive(Debug)]
struct Pending {
    id: u64,
    len: usize,
    base64: String,
    section: Section,
}

/// Turns guest lines into events.
#[derive(Debug, Default)]
pub struct Parser {
    pending: Option<Pending>,
}

impl Parser {
    /// Parses one line (without its newline).
    pub fn line(&mut self, line: &str) -> Option<Event> {
        let line = line.trim_end_matches('\r');
        // A marker can follow garbage (a partial line cut by a reboot): the
        // last marker on the line counts.
        let Some(pos) = line.rfind(MARKER) else {
            if let Some(pending) = &mut self.pending {
                let data = line.trim();
                if data
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=')
                {
                    pending.base64.push_str(data);
                }
            }
            return None;
        };
        let words: Vec<&str> = line[pos + MARKER.len()..].split_whitespace().collect();
        match words.as_slice() {
            ["ready", ..] => {
                self.pending = None;
                Some(Event::Ready)
            }
            ["bad", id] => {
                self.pending = None;
                Some(Event::Bad(id.parse().unwrap_or(0)))
            }
            ["out", id, len] => match (id.parse(), len.parse()) {
                (Ok(id), Ok(len)) => {
                    self.pending = Some(Pending {
                        id,
                        len,
                        base64: String::new(),
                        section: Section::Out,
                    });
                    None
                }
                _ => Some(self.broken(line)),
            },
            ["err", id, len] => {
                let Some(pending) = self.pending.take() else {
                    return Some(self.broken(line));
                };
                let (Ok(id), Ok(len)) = (id.parse::<u64>(), len.parse()) else {
                    return Some(self.broken(line));
                };
                if pending.id != id || !matches!(pending.section, Section::Out) {
                    return Some(self.broken(line));
                }
                match decode(&pending, "stdout") {
                    Ok(stdout) => {
                        self.pending = Some(Pending {
                            id,
                            len,
                            base64: String::new(),
                            section: Section::Err { stdout },
                        });
                        None
                    }
                    Err(e) => Some(e),
                }
            }
            ["exit", id, status, timed_out] => {
                let Some(pending) = self.pending.take() else {
                    return Some(self.broken(line));
                };
                let (Ok(id), Ok(status)) = (id.parse::<u64>(), status.parse()) else {
                    return Some(self.broken(line));
                };
                let stderr = match decode(&pending, "stderr") {
                    Ok(stderr) => stderr,
                    Err(e) => return Some(e),
                };
                match pending.section {
                    Section::Err { stdout } if pending.id == id => Some(Event::Reply(
                        id,
                        Reply {
                            status,
                            timed_out: *timed_out == "1",
                            stdout,
                            stderr,
                        },
                    )),
                    _ => Some(self.broken(line)),
                }
            }
            _ => Some(self.broken(line)),
        }
    }

    fn broken(&mut self, line: &str) -> Event {
        self.pending = None;
        Event::Protocol(format!("unexpected line from the guest: {line:?}"))
    }
}

fn decode(pending: &Pending, what: &str) -> Result<Vec<u8>, Event> {
    let bytes = BASE64.decode(pending.base64.as_bytes()).map_err(|e| {
        Event::Protocol(format!(
            "{what} of request {} is not valid base64: {e}",
            pending.id
        ))
    })?;
    if bytes.len() != pending.len {
        return Err(Event::Protocol(format!(
            "{what} of request {} has {} bytes, the guest announced {}",
            pending.id,
            bytes.len(),
            pending.len
        )));
    }
    Ok(bytes)
}

/// Encodes a request: the header line and the base64 stdin in 76-column lines.
pub fn encode_request(id: u64, guest_timeout: Duration, script: &str, stdin: &[u8]) -> Vec<u8> {
    // Tenths of a second, rounded up, at least 0.1 s (`sleep` takes decimals
    // in busybox and coreutils).
    let tenths = guest_timeout.as_millis().div_ceil(100).max(1);
    let mut body = String::new();
    for chunk in stdin.chunks(57) {
        body.push_str(&BASE64.encode(chunk));
        body.push('\n');
    }
    let mut request = format!(
        "run {id} {}.{} {} {}\n",
        tenths / 10,
        tenths % 10,
        body.len(),
        BASE64.encode(script.as_bytes())
    )
    .into_bytes();
    request.extend_from_slice(body.as_bytes());
    request
}

/// Why [`Backdoor::run`] could not get a reply.
#[derive(Debug)]
pub enum RunError {
    /// The connection closed: QEMU exited.
    Closed,
    /// Anything else.
    Error(Error),
}

impl From<Error> for RunError {
    fn from(e: Error) -> Self {
        Self::Error(e)
    }
}

struct State {
    events: Receiver<Event>,
    ready: bool,
    next_id: u64,
}

/// A connection to the backdoor of one QEMU process.
pub struct Backdoor {
    writer: Mutex<UnixStream>,
    state: Mutex<State>,
}

impl Backdoor {
    /// Takes over an accepted connection and starts its reader thread.
    pub fn new(stream: UnixStream, machine: &str) -> Result<Self, Error> {
        let reader = stream
            .try_clone()
            .map_err(|e| Error::io("cloning the backdoor socket", e))?;
        let (tx, rx) = channel();
        std::thread::Builder::new()
            .name(format!("{machine}-backdoor"))
            .spawn(move || read_events(reader, &tx))
            .map_err(|e| Error::io("starting the backdoor reader", e))?;
        Ok(Self {
            writer: Mutex::new(stream),
            state: Mutex::new(State {
                events: rx,
                ready: false,
                next_id: 1,
            }),
        })
    }

    /// Forgets readiness (the guest is rebooting) and stale events.
    pub fn reset(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.ready = false;
        while state.events.try_recv().is_ok() {}
    }

    /// Runs `script` with `sh` in the guest, stdin from `stdin` (or
    /// /dev/null when empty). The whole call, including waiting for the
    /// backdoor to become ready, takes at most `timeout` (+ a short grace for
    /// the guest to report a command it killed).
    pub fn run(
        &self,
        script: &str,
        stdin: &[u8],
        timeout: Duration,
        display: &str,
        abort: &mut dyn FnMut() -> Option<Error>,
    ) -> Result<Reply, RunError> {
        let start = Instant::now();
        let deadline = start + timeout;
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        wait_ready(&mut state, deadline, timeout, abort)?;
        let id = state.next_id;
        state.next_id += 1;
        let left = deadline.saturating_duration_since(Instant::now());
        let request = encode_request(id, left, script, stdin);
        {
            let mut writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
            writer
                .set_write_timeout(Some(left.max(Duration::from_millis(100))))
                .map_err(|e| Error::io("configuring the backdoor socket", e))?;
            writer
                .write_all(&request)
                .map_err(|e| Error::io(format!("sending {display} to the backdoor"), e))?;
        }
        let reply_deadline = deadline + REPLY_GRACE;
        loop {
            match recv(&state, reply_deadline, abort)? {
                Ok(Event::Reply(got, reply)) if got == id => return Ok(reply),
                Ok(Event::Reply(..)) => {}
                Ok(Event::Ready) => {
                    state.ready = true;
                    return Err(Error::BackdoorRestarted {
                        command: display.to_owned(),
                    }
                    .into());
                }
                Ok(Event::Bad(got)) if got == id => {
                    return Err(Error::Protocol(format!("the guest rejected request {id}")).into());
                }
                Ok(Event::Bad(_)) => {}
                Ok(Event::Protocol(detail)) => return Err(Error::Protocol(detail).into()),
                Err(RecvTimeoutError::Timeout) => {
                    return Err(Error::Timeout {
                        what: format!("the guest to report the result of {display}"),
                        limit: timeout + REPLY_GRACE,
                        last: None,
                    }
                    .into());
                }
                Err(RecvTimeoutError::Disconnected) => return Err(RunError::Closed),
            }
        }
    }
}

/// Receives the next event before `deadline`, calling `abort` every
/// [`ABORT_POLL`] while waiting: an error from it (the guest kernel
/// panicked) ends the wait at once.
fn recv(
    state: &State,
    deadline: Instant,
    abort: &mut dyn FnMut() -> Option<Error>,
) -> Result<Result<Event, RecvTimeoutError>, RunError> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match state.events.recv_timeout(left.min(ABORT_POLL)) {
            Err(RecvTimeoutError::Timeout) if left > ABORT_POLL => {
                if let Some(error) = abort() {
                    return Err(error.into());
                }
            }
            other => return Ok(other),
        }
    }
}

fn wait_ready(
    state: &mut State,
    deadline: Instant,
    timeout: Duration,
    abort: &mut dyn FnMut() -> Option<Error>,
) -> Result<(), RunError> {
    while !state.ready {
        match recv(state, deadline, abort)? {
            Ok(Event::Ready) => state.ready = true,
            Ok(_) => {}
            Err(RecvTimeoutError::Timeout) => {
                return Err(Error::Timeout {
                    what: "the guest backdoor to announce itself (is backdoor.sh running on the org.imago.backdoor port?)"
                        .to_owned(),
                    limit: timeout,
                    last: None,
                }
                .into());
            }
            Err(RecvTimeoutError::Disconnected) => return Err(RunError::Closed),
        }
    }
    Ok(())
}

fn read_events(stream: UnixStream, events: &Sender<Event>) {
    let mut reader = BufReader::new(stream);
    let mut parser = Parser::default();
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                if line.last() == Some(&b'\n') {
                    line.pop();
                }
                if let Some(event) = parser.line(&String::from_utf8_lossy(&line))
                    && events.send(event).is_err()
                {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(parser: &mut Parser, text: &str) -> Vec<Event> {
        text.lines().filter_map(|l| parser.line(l)).collect()
    }

    #[test]
    fn full_reply_with_echo_and_noise() {
        let mut parser = Parser::default();
        let out = BASE64.encode(b"hello\n\x00\xff");
        let text = format!(
            "run 1 5 0 ZWNobw==\nnoise\n@imago-bd out 1 8\n{out}\n@imago-bd err 1 0\n@imago-bd exit 1 3 0\n"
        );
        let events = feed(&mut parser, &text);
        assert_eq!(
            events,
            vec![Event::Reply(
                1,
                Reply {
                    status: 3,
                    timed_out: false,
                    stdout: b"hello\n\x00\xff".to_vec(),
                    stderr: Vec::new()
                }
            )]
        );
    }

    #[test]
    fn ready_after_partial_line() {
        let mut parser = Parser::default();
        let events = feed(
            &mut parser,
            "@imago-bd out 4 10\nQUJD\n@imago-bd ou@imago-bd ready 1\n",
        );
        assert_eq!(events, vec![Event::Ready]);
    }

    #[test]
    fn length_mismatch_is_a_protocol_error() {
        let mut parser = Parser::default();
        let events = feed(&mut parser, "@imago-bd out 2 5\nQUJD\n@imago-bd err 2 0\n");
        let [Event::Protocol(detail)] = events.as_slice() else {
            panic!("{events:?}");
        };
        assert!(detail.contains("stdout of request 2 has 3 bytes, the guest announced 5"));
    }

    #[test]
    fn out_of_order_lines_are_protocol_errors() {
        let mut parser = Parser::default();
        let events = feed(&mut parser, "@imago-bd exit 1 0 0\n@imago-bd frobnicate\n");
        assert_eq!(events.len(), 2);
        assert!(events.iter().all(|e| matches!(e, Event::Protocol(_))));
    }

    #[test]
    fn request_encoding() {
        let request = encode_request(7, Duration::from_secs(3), "echo hi", &[1, 2, 3]);
        let text = String::from_utf8(request).unwrap();
        assert_eq!(text, "run 7 3.0 5 ZWNobyBoaQ==\nAQID\n");
        let empty = encode_request(8, Duration::from_millis(1501), "true", b"");
        assert_eq!(String::from_utf8(empty).unwrap(), "run 8 1.6 0 dHJ1ZQ==\n");
        let tiny = encode_request(9, Duration::ZERO, "true", b"");
        assert!(String::from_utf8(tiny).unwrap().starts_with("run 9 0.1 0 "));
    }
}

/// The guest script itself, run by the host's dash and bash over pipes.
#[cfg(test)]
mod script_tests {
    use std::io::{Read, Write};
    use std::process::{Child, Command, Stdio};

    use super::*;

    fn start(shell: &str) -> (Child, Backdoor, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("backdoor.sh");
        std::fs::write(&script, crate::BACKDOOR_SCRIPT).unwrap();
        let mut child = Command::new(shell)
            .arg(&script)
            .arg("-")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let (ours, theirs) = UnixStream::pair().unwrap();
        let (mut to_child, mut from_child) =
            (child.stdin.take().unwrap(), child.stdout.take().unwrap());
        let mut theirs_in = theirs.try_clone().unwrap();
        let mut theirs_out = theirs;
        std::thread::spawn(move || {
            let mut buf = [0_u8; 65536];
            while let Ok(n @ 1..) = from_child.read(&mut buf) {
                if theirs_out.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        });
        std::thread::spawn(move || {
            let mut buf = [0_u8; 65536];
            while let Ok(n @ 1..) = theirs_in.read(&mut buf) {
                if to_child.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        });
        (child, Backdoor::new(ours, "host").unwrap(), dir)
    }

    fn run(backdoor: &Backdoor, script: &str, stdin: &[u8], secs: u64) -> Reply {
        match backdoor.run(
            script,
            stdin,
            Duration::from_secs(secs),
            script,
            &mut || None,
        ) {
            Ok(reply) => reply,
            Err(RunError::Closed) => panic!("backdoor closed"),
            Err(RunError::Error(e)) => panic!("{e}"),
        }
    }

    fn exercise(shell: &str) {
        let (mut child, backdoor, _dir) = start(shell);
        let reply = run(&backdoor, "echo out; echo err >&2; exit 5", b"", 10);
        assert_eq!(
            (
                reply.status,
                reply.timed_out,
                &reply.stdout[..],
                &reply.stderr[..]
            ),
            (5, false, &b"out\n"[..], &b"err\n"[..]),
            "{shell}"
        );
        // Binary stdin comes back unchanged, in a script with quotes and
        // several lines.
        let data: Vec<u8> = (0..100_000_u32).map(|i| (i * 7 % 256) as u8).collect();
        let reply = run(&backdoor, "x='a b'\ncat; printf '%s' \"$x\" >&2", &data, 10);
        assert!(reply.stdout == data, "{shell}: stdin round trip differs");
        assert_eq!(reply.stderr, b"a b");
        // The working directory is / and stdin is /dev/null without data.
        let reply = run(&backdoor, "pwd; cat", b"", 10);
        assert_eq!(reply.stdout, b"/\n");
        // A command over its time is killed and reported.
        let start = Instant::now();
        let reply = run(&backdoor, "echo started; sleep 30", b"", 1);
        assert!(reply.timed_out, "{shell}: {reply:?}");
        assert_eq!(reply.stdout, b"started\n");
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{shell}: {:?}",
            start.elapsed()
        );
        assert_eq!(run(&backdoor, "echo alive", b"", 10).stdout, b"alive\n");
        let start = Instant::now();
        let reply = backdoor
            .run(
                "sleep 30",
                b"",
                Duration::from_millis(700),
                "sleep",
                &mut || None,
            )
            .unwrap_or_else(|_| panic!("{shell}: no reply"));
        assert!(reply.timed_out, "{shell}: {reply:?}");
        assert!(
            start.elapsed() < Duration::from_millis(2500),
            "{shell}: {:?}",
            start.elapsed()
        );
        // SIGTERM lets the script remove its working directory.
        let pid = child.id().to_string();
        assert!(Command::new("kill").arg(&pid).status().unwrap().success());
        child.wait().unwrap();
    }

    #[test]
    fn runs_under_dash() {
        exercise("dash");
    }

    #[test]
    fn runs_under_bash() {
        exercise("bash");
    }
}
