//! Read-only database connections for the threads of one [`super::Store`].
//!
//! A lookup takes an idle connection (or opens one) and gives it back when
//! done, so parallel builders look up the cache at the same time instead of
//! queueing for one connection; WAL readers do not block each other or the
//! writer. Connections keep their cached statements between lookups.

use super::db;
use super::error::Result;
use rusqlite::Connection;
use std::ops::Deref;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

/// Idle connections beyond this many are closed instead of kept.
const MAX_IDLE: usize = 16;

#[derive(Debug)]
pub(crate) struct Readers {
    db_path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

/// A connection taken from [`Readers`]; back to the pool on drop.
pub(crate) struct Reader<'a> {
    pool: &'a Readers,
    conn: Option<Connection>,
}

impl Readers {
    /// A pool for `db_path`, with one connection opened now (so that a
    /// database that cannot be read is an error at open).
    pub(crate) fn open(db_path: PathBuf) -> Result<Readers> {
        let first = db::open_reader(&db_path)?;
        Ok(Readers {
            db_path,
            idle: Mutex::new(vec![first]),
        })
    }

    pub(crate) fn get(&self) -> Result<Reader<'_>> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let conn = match idle {
            Some(c) => c,
            None => db::open_reader(&self.db_path)?,
        };
        Ok(Reader {
            pool: self,
            conn: Some(conn),
        })
    }
}

impl Deref for Reader<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        // Present from creation until drop.
        self.conn.as_ref().expect("a reader holds its connection")
    }
}

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            let mut idle = self
                .pool
                .idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if idle.len() < MAX_IDLE {
                idle.push(conn);
            }
        }
    }
}
