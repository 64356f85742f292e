//! The store database (`.imago/db.sqlite`): which objects are valid, what
//! they reference, and the build cache.
//!
//! SQLite in WAL mode with a busy timeout, so several processes can share a
//! store. The schema version is `PRAGMA user_version`; [`open`] creates or
//! upgrades the schema and refuses a newer one. An object is valid exactly
//! when it has a row in `objects`; rows are written in one transaction
//! after the object is durable at its final path.

use super::digest::Blake3Digest;
use super::error::{Result, StoreError};
use super::path::StorePath;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

/// The schema this code writes.
pub const SCHEMA_VERSION: i64 = 2;

const SCHEMA: &str = "
CREATE TABLE objects (
    id         INTEGER PRIMARY KEY,
    path       TEXT NOT NULL UNIQUE,   -- <hash>-<name>
    digest     BLOB NOT NULL,          -- 32-byte BLAKE3 of the canonical serialization
    nar_size   INTEGER NOT NULL,       -- length of the canonical serialization
    deriver    TEXT,                   -- free text: what built it
    registered INTEGER NOT NULL        -- seconds since the Unix epoch
);
CREATE TABLE refs (
    referrer  INTEGER NOT NULL REFERENCES objects(id) ON DELETE CASCADE,
    reference INTEGER NOT NULL REFERENCES objects(id),
    PRIMARY KEY (referrer, reference)
);
CREATE INDEX refs_reference ON refs(reference);
CREATE TABLE build_cache (
    step_key BLOB PRIMARY KEY,         -- 32-byte BLAKE3 step key
    output   INTEGER NOT NULL REFERENCES objects(id) ON DELETE CASCADE
);
CREATE INDEX build_cache_output ON build_cache(output);
";

/// Version 2: the inputs of each step built here, so that `imago copy
/// --to` can copy a build's intermediate outputs and step records too.
const SCHEMA_2: &str = "
CREATE TABLE step_inputs (
    step_key BLOB NOT NULL,            -- a build_cache step key
    input    INTEGER NOT NULL REFERENCES objects(id) ON DELETE CASCADE,
    PRIMARY KEY (step_key, input)
);
CREATE INDEX step_inputs_input ON step_inputs(input);
";

/// What the database knows about one object.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ObjectInfo {
    pub path: StorePath,
    pub digest: Blake3Digest,
    /// Size of the canonical serialization in bytes.
    pub size: u64,
    pub references: BTreeSet<StorePath>,
    pub deriver: Option<String>,
    /// Registration time, seconds since the Unix epoch.
    pub registered: i64,
}

/// A new object to register.
#[derive(Debug, Clone)]
pub(crate) struct NewObject {
    pub path: StorePath,
    pub digest: Blake3Digest,
    pub size: u64,
    pub references: BTreeSet<StorePath>,
    pub deriver: Option<String>,
}

pub(crate) fn db_err(path: &Path) -> impl FnOnce(rusqlite::Error) -> StoreError + '_ {
    move |source| StoreError::Db {
        path: path.to_owned(),
        source,
    }
}

/// Opens (creating or upgrading) the database at `path`.
pub(crate) fn open(path: &Path) -> Result<Connection> {
    let err = |e| StoreError::Db {
        path: path.to_owned(),
        source: e,
    };
    let mut conn = Connection::open(path).map_err(err)?;
    conn.busy_timeout(Duration::from_secs(60)).map_err(err)?;
    // Switching to WAL needs a moment alone with the file; a second process
    // doing the same at once can get SQLITE_BUSY without the busy handler.
    let mut tries = 0;
    loop {
        match conn.pragma_update(None, "journal_mode", "WAL") {
            Ok(()) => break,
            Err(e) if is_busy(&e) && tries < 600 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => return Err(err(e)),
        }
    }
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(err)?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(err)?;
    stable_plans(&conn).map_err(err)?;
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(err)?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::SchemaVersion {
            path: path.to_owned(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    if version < SCHEMA_VERSION {
        // BEGIN IMMEDIATE: two processes creating or upgrading a store at
        // once serialize here.
        let tx = write_tx(&mut conn).map_err(err)?;
        let again: i64 = tx
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(err)?;
        if again < 1 {
            tx.execute_batch(SCHEMA).map_err(err)?;
        }
        if again < 2 {
            tx.execute_batch(SCHEMA_2).map_err(err)?;
        }
        if again < SCHEMA_VERSION {
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)
                .map_err(err)?;
        }
        tx.commit().map_err(err)?;
    }
    Ok(conn)
}

/// Opens a second connection to the database at `path` (created by
/// [`open`]) for lookups only.
pub(crate) fn open_reader(path: &Path) -> Result<Connection> {
    let err = |e| StoreError::Db {
        path: path.to_owned(),
        source: e,
    };
    let conn = Connection::open(path).map_err(err)?;
    conn.busy_timeout(Duration::from_secs(60)).map_err(err)?;
    conn.pragma_update(None, "query_only", "ON").map_err(err)?;
    stable_plans(&conn).map_err(err)?;
    Ok(conn)
}

/// Plans that do not depend on the values bound to a statement's parameters
/// (the query planner stability guarantee). Without it, a cached statement
/// whose plan could use the bound value is compiled again each time it runs
/// with another value: that recompiling was an eighth of the build threads'
/// time in a build of many small steps.
fn stable_plans(conn: &Connection) -> rusqlite::Result<()> {
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )
    .map(|_| ())
}

/// Starts a write transaction. IMMEDIATE takes the write lock up front
/// (waiting through the busy handler), so a transaction never fails
/// half-way because another process wrote since it first read.
pub(crate) fn write_tx(conn: &mut Connection) -> rusqlite::Result<Transaction<'_>> {
    conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(f.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

fn digest_from(blob: Vec<u8>) -> rusqlite::Result<Blake3Digest> {
    let bytes: [u8; 32] = blob.try_into().map_err(|b: Vec<u8>| {
        rusqlite::Error::FromSqlConversionFailure(
            b.len(),
            rusqlite::types::Type::Blob,
            "digest is not 32 bytes".into(),
        )
    })?;
    Ok(Blake3Digest(bytes))
}

fn path_from(text: String) -> rusqlite::Result<StorePath> {
    StorePath::try_from(text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

pub(crate) fn is_valid(conn: &Connection, path: &StorePath) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT 1 FROM objects WHERE path = ?1")?
        .exists([path.as_str()])
}

pub(crate) fn references(
    conn: &Connection,
    path: &StorePath,
) -> rusqlite::Result<BTreeSet<StorePath>> {
    let mut stmt = conn.prepare_cached(
        "SELECT r.path FROM refs JOIN objects o ON o.id = refs.referrer
         JOIN objects r ON r.id = refs.reference WHERE o.path = ?1",
    )?;
    let rows = stmt.query_map([path.as_str()], |row| path_from(row.get(0)?))?;
    rows.collect()
}

pub(crate) fn info(conn: &Connection, path: &StorePath) -> rusqlite::Result<Option<ObjectInfo>> {
    let row = conn
        .prepare_cached(
            "SELECT digest, nar_size, deriver, registered FROM objects WHERE path = ?1",
        )?
        .query_row([path.as_str()], |row| {
            Ok((
                digest_from(row.get(0)?)?,
                row.get::<_, i64>(1)?,
                row.get::<_, Option<String>>(2)?,
                row.get::<_, i64>(3)?,
            ))
        })
        .optional()?;
    let Some((digest, size, deriver, registered)) = row else {
        return Ok(None);
    };
    Ok(Some(ObjectInfo {
        path: path.clone(),
        digest,
        size: u64::try_from(size).unwrap_or(0),
        references: references(conn, path)?,
        deriver,
        registered,
    }))
}

/// Every valid object with its digest.
pub(crate) fn all_objects(conn: &Connection) -> rusqlite::Result<Vec<(StorePath, Blake3Digest)>> {
    let mut stmt = conn.prepare_cached("SELECT path, digest FROM objects ORDER BY path")?;
    let rows = stmt.query_map([], |row| {
        Ok((path_from(row.get(0)?)?, digest_from(row.get(1)?)?))
    })?;
    rows.collect()
}

/// Registers objects (whose references are either among `objects` or
/// already valid) inside `tx`. Already-valid paths are skipped.
pub(crate) fn register(
    tx: &Transaction<'_>,
    objects: &[&NewObject],
    now: i64,
) -> rusqlite::Result<()> {
    let mut insert = tx.prepare_cached(
        "INSERT OR IGNORE INTO objects (path, digest, nar_size, deriver, registered)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for o in objects {
        let size = i64::try_from(o.size).unwrap_or(i64::MAX);
        insert.execute(params![
            o.path.as_str(),
            &o.digest.0[..],
            size,
            o.deriver,
            now
        ])?;
    }
    let mut add_ref = tx.prepare_cached(
        "INSERT OR IGNORE INTO refs (referrer, reference)
         SELECT a.id, b.id FROM objects a, objects b WHERE a.path = ?1 AND b.path = ?2",
    )?;
    for o in objects {
        for r in &o.references {
            add_ref.execute(params![o.path.as_str(), r.as_str()])?;
        }
    }
    Ok(())
}

pub(crate) fn cache_get(
    conn: &Connection,
    key: &Blake3Digest,
) -> rusqlite::Result<Option<StorePath>> {
    conn.prepare_cached(
        "SELECT o.path FROM build_cache c JOIN objects o ON o.id = c.output WHERE c.step_key = ?1",
    )?
    .query_row([&key.0[..]], |row| path_from(row.get(0)?))
    .optional()
}

/// The step keys whose build-cache entries name `output`, sorted.
pub(crate) fn cache_keys_of(
    conn: &Connection,
    output: &StorePath,
) -> rusqlite::Result<Vec<Blake3Digest>> {
    let mut stmt = conn.prepare_cached(
        "SELECT c.step_key FROM build_cache c JOIN objects o ON o.id = c.output
         WHERE o.path = ?1 ORDER BY c.step_key",
    )?;
    let rows = stmt.query_map([output.as_str()], |row| digest_from(row.get(0)?))?;
    rows.collect()
}

/// Records the inputs of the step `key` (valid objects; others are
/// skipped).
pub(crate) fn add_step_inputs(
    conn: &Connection,
    key: &Blake3Digest,
    inputs: &[StorePath],
) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached(
        "INSERT OR IGNORE INTO step_inputs (step_key, input)
         SELECT ?1, id FROM objects WHERE path = ?2",
    )?;
    for input in inputs {
        stmt.execute(params![&key.0[..], input.as_str()])?;
    }
    Ok(())
}

/// The recorded inputs of the step `key`, sorted.
pub(crate) fn step_inputs(
    conn: &Connection,
    key: &Blake3Digest,
) -> rusqlite::Result<Vec<StorePath>> {
    let mut stmt = conn.prepare_cached(
        "SELECT o.path FROM step_inputs s JOIN objects o ON o.id = s.input
         WHERE s.step_key = ?1 ORDER BY o.path",
    )?;
    let rows = stmt.query_map([&key.0[..]], |row| path_from(row.get(0)?))?;
    rows.collect()
}

/// Records a cache entry; returns false if `output` is not valid.
pub(crate) fn cache_put(
    conn: &Connection,
    key: &Blake3Digest,
    output: &StorePath,
) -> rusqlite::Result<bool> {
    let n = conn
        .prepare_cached(
            "INSERT OR REPLACE INTO build_cache (step_key, output)
             SELECT ?1, id FROM objects WHERE path = ?2",
        )?
        .execute(params![&key.0[..], output.as_str()])?;
    Ok(n == 1)
}

/// Deletes objects' rows (with their references and cache entries).
pub(crate) fn delete(tx: &Transaction<'_>, paths: &[StorePath]) -> rusqlite::Result<()> {
    // Referrers go first; the caller passes a closed-under-referrers set.
    tx.execute_batch("PRAGMA defer_foreign_keys = ON")?;
    let mut stmt = tx.prepare_cached("DELETE FROM objects WHERE path = ?1")?;
    for p in paths {
        stmt.execute([p.as_str()])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::config::DbConfig;

    #[test]
    fn plans_do_not_depend_on_bound_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        for conn in [open(&path).unwrap(), open_reader(&path).unwrap()] {
            assert!(
                conn.db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG)
                    .unwrap()
            );
        }
    }

    #[test]
    fn a_version_1_database_gains_the_step_inputs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let input = StorePath::from_digest(&Blake3Digest::of(b"in"), "in").unwrap();
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(SCHEMA).unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
            conn.execute(
                "INSERT INTO objects (path, digest, nar_size, deriver, registered)
                 VALUES (?1, zeroblob(32), 1, NULL, 0)",
                [input.as_str()],
            )
            .unwrap();
        }
        let conn = open(&path).unwrap();
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let key = Blake3Digest::of(b"step");
        add_step_inputs(&conn, &key, std::slice::from_ref(&input)).unwrap();
        assert_eq!(step_inputs(&conn, &key).unwrap(), [input]);
        drop(conn);
        // Opening it again changes nothing.
        let conn = open(&path).unwrap();
        assert_eq!(step_inputs(&conn, &key).unwrap().len(), 1);
    }
}
