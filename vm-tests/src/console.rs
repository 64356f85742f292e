//! A machine's serial console, recorded.
//!
//! QEMU's first serial port (`ttyS0`; `ttyAMA0` on arm64) is connected to a Unix socket the
//! driver listens on. A reader thread splits the byte stream into lines
//! (dropping `\r`, other control characters and ANSI escape sequences, which
//! firmware uses to clear the screen), stamps each with the time since the
//! test started, keeps them in memory and echoes them to stderr prefixed with
//! the machine name.
//!
//! The console outlives QEMU restarts: [`Console::mark_boot`] records where
//! the current boot begins, so `wait_for_console_text` only matches output of
//! the current boot (a marker printed before a crash does not satisfy a wait
//! after it). The incomplete last line is matched too, so prompts without a
//! newline can be waited for.

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::Duration;

use crate::steplog::StepLog;

/// One complete console line.
#[derive(Debug, Clone)]
struct Line {
    at: Duration,
    text: String,
}

/// Where the line splitter is within an escape sequence.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Escape {
    #[default]
    None,
    /// After ESC.
    Start,
    /// Inside a CSI sequence (`ESC [ ... final`).
    Csi,
}

#[derive(Debug, Default)]
struct State {
    lines: Vec<Line>,
    partial: Vec<u8>,
    escape: Escape,
    boot_start: usize,
}

/// The recorded console of one machine.
#[derive(Debug)]
pub struct Console {
    machine: String,
    log: StepLog,
    echo: bool,
    state: Mutex<State>,
}

/// A position in the console, for incremental matching.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cursor(usize);

impl Console {
    /// An empty console of `machine`, timestamped by `log`'s clock.
    pub fn new(machine: &str, log: StepLog, echo: bool) -> Arc<Self> {
        Arc::new(Self {
            machine: machine.to_owned(),
            log,
            echo,
            state: Mutex::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a reader thread that records everything read from `stream`
    /// until it reaches end of file.
    pub fn spawn_reader(self: &Arc<Self>, mut stream: UnixStream) -> std::io::Result<()> {
        let console = Arc::clone(self);
        std::thread::Builder::new()
            .name(format!("{}-console", self.machine))
            .spawn(move || {
                let mut buf = [0_u8; 8192];
                loop {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => console.feed(&buf[..n]),
                    }
                }
                console.flush_partial();
            })
            .map(drop)
    }

    /// Records raw console bytes.
    pub fn feed(&self, bytes: &[u8]) {
        let at = self.log.elapsed();
        let mut state = self.lock();
        let mut done = Vec::new();
        for &byte in bytes {
            match state.escape {
                Escape::Start => {
                    state.escape = if byte == b'[' {
                        Escape::Csi
                    } else {
                        Escape::None
                    };
                    continue;
                }
                Escape::Csi => {
                    if (0x40..=0x7e).contains(&byte) {
                        state.escape = Escape::None;
                    }
                    continue;
                }
                Escape::None => {}
            }
            match byte {
                0x1b => state.escape = Escape::Start,
                b'\n' => {
                    let raw = std::mem::take(&mut state.partial);
                    let text = String::from_utf8_lossy(&raw).into_owned();
                    state.lines.push(Line {
                        at,
                        text: text.clone(),
                    });
                    done.push(text);
                }
                b'\t' => state.partial.push(byte),
                // Carriage returns and other control characters only move
                // the cursor of a terminal; they would garble logs.
                0..=0x1f | 0x7f => {}
                _ => state.partial.push(byte),
            }
        }
        drop(state);
        if self.echo {
            for text in done {
                eprintln!("{} # {text}", self.machine);
            }
        }
    }

    /// Turns an incomplete last line into a complete one.
    fn flush_partial(&self) {
        if !self.lock().partial.is_empty() {
            self.feed(b"\n");
        }
    }

    /// Marks the start of a new boot: later waits ignore earlier output.
    pub fn mark_boot(&self) {
        self.flush_partial();
        let mut state = self.lock();
        state.boot_start = state.lines.len();
    }

    /// A cursor at the start of the current boot.
    pub fn boot_cursor(&self) -> Cursor {
        Cursor(self.lock().boot_start)
    }

    /// Searches complete lines from `cursor` and the incomplete last line for
    /// `regex`; returns the matching line, and advances `cursor` past the
    /// complete lines searched.
    pub fn find(&self, regex: &regex::Regex, cursor: &mut Cursor) -> Option<String> {
        let state = self.lock();
        let start = cursor.0.max(state.boot_start);
        for line in state.lines.get(start..).unwrap_or_default() {
            if regex.is_match(&line.text) {
                return Some(line.text.clone());
            }
        }
        cursor.0 = state.lines.len();
        let partial = String::from_utf8_lossy(&state.partial);
        regex.is_match(&partial).then(|| partial.into_owned())
    }

    /// The line of the current boot, from `cursor` on, where Linux reports a
    /// panic, if any.
    pub fn find_kernel_panic(&self, cursor: &mut Cursor) -> Option<String> {
        static PANIC: LazyLock<regex::Regex> = LazyLock::new(|| {
            regex::Regex::new("Kernel panic - not syncing").unwrap_or_else(|e| unreachable!("{e}"))
        });
        self.find(&PANIC, cursor)
    }

    /// The last `n` lines (and the incomplete one), each with its timestamp.
    pub fn tail(&self, n: usize) -> Vec<String> {
        let state = self.lock();
        let skip = state.lines.len().saturating_sub(n);
        let mut out: Vec<String> = state.lines[skip..]
            .iter()
            .map(|line| format!("[{:>8.3}s] {}", line.at.as_secs_f64(), line.text))
            .collect();
        if !state.partial.is_empty() {
            out.push(format!(
                "[   ...   ] {} (no newline yet)",
                String::from_utf8_lossy(&state.partial)
            ));
        }
        out
    }

    /// The machine this console belongs to.
    pub fn machine(&self) -> &str {
        &self.machine
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_partial_and_boot_marks() {
        let console = Console::new("m", StepLog::new(false), false);
        console.feed(b"first\r\nmarker one\nsec");
        console.feed(b"ond\nprompt> ");
        let marker = regex::Regex::new("marker").unwrap();
        let prompt = regex::Regex::new("^prompt> $").unwrap();
        let mut cursor = console.boot_cursor();
        assert_eq!(
            console.find(&marker, &mut cursor).as_deref(),
            Some("marker one")
        );
        let mut cursor = console.boot_cursor();
        assert_eq!(
            console.find(&prompt, &mut cursor).as_deref(),
            Some("prompt> ")
        );

        console.mark_boot();
        let mut cursor = console.boot_cursor();
        assert_eq!(console.find(&marker, &mut cursor), None);
        console.feed(b"marker two\n");
        assert_eq!(
            console.find(&marker, &mut cursor).as_deref(),
            Some("marker two")
        );

        let tail = console.tail(2);
        assert_eq!(tail.len(), 2);
        assert!(tail[0].ends_with("] prompt> "), "{tail:?}");
        assert!(tail[1].ends_with("] marker two"), "{tail:?}");
    }

    #[test]
    fn escape_sequences_and_controls_are_dropped() {
        let console = Console::new("m", StepLog::new(false), false);
        console.feed(b"\x1b[2J\x1b[01;01H\x1b[=3hBdsDxe: loading\x07\r\n\x1bcx\ty\n");
        assert!(
            console.tail(2)[0].ends_with("] BdsDxe: loading"),
            "{:?}",
            console.tail(2)
        );
        assert!(
            console.tail(2)[1].ends_with("] x\ty"),
            "{:?}",
            console.tail(2)
        );
    }

    #[test]
    fn invalid_utf8_is_kept_lossily() {
        let console = Console::new("m", StepLog::new(false), false);
        console.feed(b"a\xffb\n");
        assert!(console.tail(1)[0].ends_with("a\u{fffd}b"));
    }
}
