//! A small HTTP/1.1 server on 127.0.0.1 (a random port) that plays a
//! mirror, a snapshot service or a package cache, and misbehaves on
//! request: wrong bytes, truncated bodies, 206 answers, server errors,
//! stalls, redirect loops. With [`Server::accept_puts`] it also stores
//! what a PUT sends (a writable web cache); without, a PUT is answered
//! 405. Keep-alive connections are served until the client closes them;
//! the server stops when dropped.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
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
    /// The first reply to the first request, the second to every later one.
    Once(Box<Reply>, Box<Reply>),
}

#[derive(Default)]
struct State {
    routes: HashMap<String, Reply>,
    hits: HashMap<String, usize>,
    /// The status a PUT gets when stored (None: PUT refused with 405).
    puts: Option<u16>,
    /// The paths PUT, in order.
    put_log: Vec<String>,
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

    /// Stores what PUT sends (answering 201), or refuses PUT with
    /// `refusal` (405, 403…) when given.
    pub fn accept_puts(&self, refusal: Option<u16>) {
        self.state.lock().unwrap().puts = match refusal {
            None => Some(201),
            Some(status) => Some(status),
        };
    }

    /// What the server answers 200 for at `path`, if anything.
    pub fn body(&self, path: &str) -> Option<Vec<u8>> {
        match self.state.lock().unwrap().routes.get(path) {
            Some(Reply::Ok(bytes)) => Some(bytes.clone()),
            _ => None,
        }
    }

    /// The paths PUT so far, in order.
    pub fn put_log(&self) -> Vec<String> {
        self.state.lock().unwrap().put_log.clone()
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
        let (mut length, mut chunked) = (0usize, false);
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            if header == "\r\n" || header == "\n" {
                break;
            }
            let lower = header.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
            if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
                chunked = true;
            }
        }
        if method == "PUT" {
            let Some(body) = read_body(&mut reader, length, chunked) else {
                return;
            };
            let reply = {
                let mut st = state.lock().unwrap();
                *st.hits.entry(path.clone()).or_default() += 1;
                match st.puts {
                    Some(201) => {
                        st.put_log.push(path.clone());
                        st.routes.insert(path.clone(), Reply::Ok(body));
                        Reply::Status(201)
                    }
                    Some(refusal) => Reply::Status(refusal),
                    None => Reply::Status(405),
                }
            };
            respond(&mut out, &reply, false);
            continue;
        }
        let reply = {
            let mut st = state.lock().unwrap();
            *st.hits.entry(path.clone()).or_default() += 1;
            match st.routes.get(&path).cloned() {
                Some(Reply::Once(first, then)) => {
                    st.routes.insert(path.clone(), *then);
                    *first
                }
                Some(reply) => reply,
                None => Reply::Status(404),
            }
        };
        let head = method == "HEAD";
        let keep = respond(&mut out, &reply, head);
        if !keep {
            return;
        }
    }
}

/// A request's body: `length` bytes, or chunks.
fn read_body(reader: &mut BufReader<TcpStream>, length: usize, chunked: bool) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    if !chunked {
        body.resize(length, 0);
        reader.read_exact(&mut body).ok()?;
        return Some(body);
    }
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let size = usize::from_str_radix(line.trim().split(';').next()?, 16).ok()?;
        let mut chunk = vec![0; size + 2];
        reader.read_exact(&mut chunk).ok()?;
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(&chunk[..size]);
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
        // Resolved when the request is routed.
        Reply::Once(first, _) => respond(out, first, head),
    }
}
