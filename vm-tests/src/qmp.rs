//! A minimal QMP (QEMU Machine Protocol) client.
//!
//! QMP is JSON, one object per line. After connecting, QEMU sends a greeting
//! and accepts commands once `qmp_capabilities` was executed. A reply is an
//! object with `return` or `error`; asynchronous `event` objects may arrive
//! at any time and are skipped. Calls are synchronous with a read timeout.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use serde_json::{Value, json};

use crate::error::Error;

/// How long QEMU may take to answer a monitor command.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// A connected QMP monitor.
#[derive(Debug)]
pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    /// Reads the greeting and negotiates capabilities.
    pub fn new(stream: UnixStream) -> Result<Self, Error> {
        stream
            .set_read_timeout(Some(REPLY_TIMEOUT))
            .map_err(|e| Error::io("configuring the QMP socket", e))?;
        let writer = stream
            .try_clone()
            .map_err(|e| Error::io("cloning the QMP socket", e))?;
        let mut qmp = Self {
            reader: BufReader::new(stream),
            writer,
        };
        let greeting = qmp.read_object("qmp_capabilities")?;
        if greeting.get("QMP").is_none() {
            return Err(Error::Monitor {
                command: "(greeting)".to_owned(),
                message: format!("unexpected greeting {greeting}"),
            });
        }
        qmp.execute("qmp_capabilities", None)?;
        Ok(qmp)
    }

    fn read_object(&mut self, command: &str) -> Result<Value, Error> {
        let mut line = String::new();
        let n = self
            .reader
            .read_line(&mut line)
            .map_err(|e| Error::io(format!("reading QMP reply to {command}"), e))?;
        if n == 0 {
            return Err(Error::Monitor {
                command: command.to_owned(),
                message: "QEMU closed the monitor connection".to_owned(),
            });
        }
        serde_json::from_str(&line).map_err(|e| Error::Monitor {
            command: command.to_owned(),
            message: format!("invalid JSON {line:?}: {e}"),
        })
    }

    /// Executes `command` with optional `arguments`; returns its `return`.
    pub fn execute(&mut self, command: &str, arguments: Option<Value>) -> Result<Value, Error> {
        let mut request = json!({ "execute": command });
        if let Some(arguments) = arguments {
            request["arguments"] = arguments;
        }
        let mut text = request.to_string();
        text.push('\n');
        self.writer
            .write_all(text.as_bytes())
            .map_err(|e| Error::io(format!("sending QMP command {command}"), e))?;
        loop {
            let reply = self.read_object(command)?;
            if let Some(value) = reply.get("return") {
                return Ok(value.clone());
            }
            if let Some(error) = reply.get("error") {
                return Err(Error::Monitor {
                    command: command.to_owned(),
                    message: error
                        .get("desc")
                        .and_then(Value::as_str)
                        .map_or_else(|| error.to_string(), str::to_owned),
                });
            }
            // An asynchronous event: not our reply.
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiates_skips_events_and_reports_errors() {
        let (client, server) = UnixStream::pair().unwrap();
        let fake = std::thread::spawn(move || {
            let mut reader = BufReader::new(server.try_clone().unwrap());
            let mut server = server;
            server.write_all(b"{\"QMP\": {\"version\": {}}}\n").unwrap();
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            assert!(line.contains("qmp_capabilities"));
            server.write_all(b"{\"return\": {}}\n").unwrap();
            line.clear();
            reader.read_line(&mut line).unwrap();
            assert!(line.contains("system_reset"));
            server
                .write_all(b"{\"event\": \"RESET\"}\n{\"return\": {}}\n")
                .unwrap();
            line.clear();
            reader.read_line(&mut line).unwrap();
            server
                .write_all(
                    b"{\"error\": {\"class\": \"GenericError\", \"desc\": \"no such key\"}}\n",
                )
                .unwrap();
        });
        let mut qmp = Qmp::new(client).unwrap();
        assert_eq!(qmp.execute("system_reset", None).unwrap(), json!({}));
        let err = qmp.execute("send-key", Some(json!({}))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "QEMU monitor command send-key failed: no such key"
        );
        fake.join().unwrap();
    }
}
