//! A small HTTP/1.1 server on 127.0.0.1 (a random port) that plays a
//! mirror, a snapshot service or a package cache, and misbehaves on
//! request: wrong bytes, truncated bodies, 206 answers, server errors,
//! stalls, redirect loops. Keep-alive connections are served until the
//! client closes them; the server stops when dropped.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the server answers for one path.
#[derive(Debug, Clone)]
pub enum Reply {
    /// 200 with these bytes.
    Ok(Vec<u8>),
    /// This status, empty body.
    Status(u16),
    /// 206 Partial Content with these bytes, to a request for the whole.
    Partial(Vec<u8>),
    /// 200 announcing the full length, then only the first `n` bytes and
    /// the connection closes.
    Truncated(Vec<u8>, usize),
    /// 200, half the bytes, then silence for `Duration`.
    Stall(Vec<u8>, Duration),
    /// 302 to this path on the same server.
    Redirect(String),
}

#[derive(Default)]
struct State {
    routes: HashMap<String, Reply>,
    hits: HashMap<String, usize>,
}

pub struct Server {
    pub port: u16,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

impl Server {
    pub fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if sp.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let st = st.clone();
                std::thread::spawn(move || serve(conn, &st));
            }
        });
        Server { port, state, stop }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Answers `path` (starting with `/`) with `reply`.
    pub fn route(&self, path: &str, reply: Reply) {
        self.state
            .lock()
            .unwrap()
            .routes
            .insert(path.to_string(), reply);
    }

    /// How many requests `path` got.
    pub fn hits(&self, path: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .hits
            .get(path)
            .copied()
            .unwrap_or(0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve(conn: TcpStream, state: &Mutex<State>) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut out = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("").to_string();
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            if header == "\r\n" || header == "\n" {
                break;
            }
        }
        let reply = {
            let mut st = state.lock().unwrap();
            *st.hits.entry(path.clone()).or_default() += 1;
            st.routes.get(&path).cloned().unwrap_or(Reply::Status(404))
        };
        let head = method == "HEAD";
        let keep = respond(&mut out, &reply, head);
        if !keep {
            return;
        }
    }
}

/// Writes the answer; false when the connection must close.
fn respond(out: &mut TcpStream, reply: &Reply, head: bool) -> bool {
    let header = |status: &str, len: usize, extra: &str| {
        format!(
            "HTTP/1.1 {status}\r\ncontent-length: {len}\r\ncontent-type: application/octet-stream\r\n{extra}\r\n"
        )
    };
    let body = |out: &mut TcpStream, bytes: &[u8]| {
        if !head {
            let _ = out.write_all(bytes);
        }
    };
    match reply {
        Reply::Ok(bytes) => {
            let _ = out.write_all(header("200 OK", bytes.len(), "").as_bytes());
            body(out, bytes);
            true
        }
        Reply::Status(code) => {
            let _ = out.write_all(header(&format!("{code} Status"), 0, "").as_bytes());
            true
        }
        Reply::Partial(bytes) => {
            let range = format!(
                "content-range: bytes 0-{}/{}\r\n",
                bytes.len().saturating_sub(1),
                bytes.len()
            );
            let _ = out.write_all(header("206 Partial Content", bytes.len(), &range).as_bytes());
            body(out, bytes);
            true
        }
        Reply::Truncated(bytes, n) => {
            let _ = out.write_all(header("200 OK", bytes.len(), "").as_bytes());
            body(out, &bytes[..*n]);
            let _ = out.flush();
            false
        }
        Reply::Stall(bytes, wait) => {
            let _ = out.write_all(header("200 OK", bytes.len(), "").as_bytes());
            body(out, &bytes[..bytes.len() / 2]);
            let _ = out.flush();
            std::thread::sleep(*wait);
            false
        }
        Reply::Redirect(to) => {
            let _ =
                out.write_all(header("302 Found", 0, &format!("location: {to}\r\n")).as_bytes());
            true
        }
    }
}
