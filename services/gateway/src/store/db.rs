//! Opening the database and running migrations. All access goes through [`Store::call`],
//! which runs a closure on the blocking pool with the connection locked.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

/// A store error. Messages name what failed; they never contain message text or secrets.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite reported an error.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The database file could not be prepared.
    #[error("cannot open database {path}: {source}")]
    Open {
        /// The file.
        path: String,
        /// The cause.
        source: rusqlite::Error,
    },
    /// The database was written by a newer Pincer.
    #[error(
        "database schema version {found} is newer than this gateway understands ({known}); upgrade Pincer"
    )]
    TooNew {
        /// In the file.
        found: i64,
        /// Latest known.
        known: i64,
    },
    /// The blocking task panicked or was cancelled.
    #[error("database task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// A row does not hold what this gateway wrote (edited by hand, or corrupted).
    #[error("database row {table}/{key} is malformed: {problem}")]
    Malformed {
        /// The table.
        table: &'static str,
        /// The row's key.
        key: String,
        /// What is wrong.
        problem: String,
    },
    /// The connection lock was poisoned by a panic in another call.
    #[error("database connection lock poisoned")]
    Poisoned,
}

/// The schema version this gateway writes (one per migration).
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

const MIGRATIONS: &[&str] = &[
    // 1: sessions, transcripts, durable queues, leases.
    r#"
    CREATE TABLE sessions (
        session_key   TEXT PRIMARY KEY,
        channel       TEXT NOT NULL,
        account_id    TEXT NOT NULL,
        chat_id       TEXT NOT NULL,
        chat_kind     TEXT NOT NULL,
        agent_id      TEXT NOT NULL,
        created_at_ms INTEGER NOT NULL,
        updated_at_ms INTEGER NOT NULL
    );
    CREATE TABLE transcript (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        session_key   TEXT NOT NULL REFERENCES sessions(session_key),
        turn_id       TEXT NOT NULL,
        role          TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
        text          TEXT NOT NULL,
        created_at_ms INTEGER NOT NULL
    );
    CREATE INDEX transcript_by_session ON transcript(session_key, id);
    CREATE TRIGGER transcript_no_update BEFORE UPDATE ON transcript
        BEGIN SELECT RAISE(ABORT, 'transcript is append-only'); END;
    CREATE TRIGGER transcript_no_delete BEFORE DELETE ON transcript
        BEGIN SELECT RAISE(ABORT, 'transcript is append-only'); END;
    CREATE TABLE inbound (
        id                  INTEGER PRIMARY KEY AUTOINCREMENT,
        channel             TEXT NOT NULL,
        account_id          TEXT NOT NULL,
        platform_message_id TEXT NOT NULL,
        sender_id           TEXT NOT NULL,
        chat_id             TEXT NOT NULL,
        chat_kind           TEXT NOT NULL,
        thread_id           TEXT NOT NULL,
        text                TEXT NOT NULL,
        session_key         TEXT NOT NULL,
        state               TEXT NOT NULL CHECK (state IN ('pending', 'done', 'ignored')),
        note                TEXT NOT NULL DEFAULT '',
        received_at_ms      INTEGER NOT NULL,
        finished_at_ms      INTEGER,
        UNIQUE (channel, account_id, platform_message_id)
    );
    CREATE INDEX inbound_pending ON inbound(state, id);
    CREATE TABLE outbox (
        delivery_id        TEXT PRIMARY KEY,
        inbound_id         INTEGER NOT NULL UNIQUE REFERENCES inbound(id),
        channel            TEXT NOT NULL,
        account_id         TEXT NOT NULL,
        chat_id            TEXT NOT NULL,
        thread_id          TEXT NOT NULL,
        reply_to           TEXT NOT NULL,
        text               TEXT NOT NULL,
        state              TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'failed')),
        attempts           INTEGER NOT NULL DEFAULT 0,
        next_attempt_at_ms INTEGER NOT NULL,
        last_error         TEXT NOT NULL DEFAULT '',
        platform_ids       TEXT NOT NULL DEFAULT '',
        created_at_ms      INTEGER NOT NULL,
        sent_at_ms         INTEGER
    );
    CREATE INDEX outbox_pending ON outbox(state, next_attempt_at_ms);
    CREATE TABLE leases (
        channel       TEXT NOT NULL,
        account_id    TEXT NOT NULL,
        fencing_token INTEGER NOT NULL,
        holder        TEXT NOT NULL,
        expires_at_ms INTEGER NOT NULL,
        PRIMARY KEY (channel, account_id)
    );
    "#,
    r#"
    CREATE TABLE devices (
        device_id        TEXT PRIMARY KEY,
        state            TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'rejected', 'revoked')),
        role             TEXT,
        scopes           TEXT,
        token_hash       BLOB,
        token_generation INTEGER,
        at_ms            INTEGER NOT NULL,
        refused_state    TEXT,
        refused_at_ms    INTEGER,
        client           TEXT NOT NULL DEFAULT '',
        remote           TEXT NOT NULL DEFAULT '',
        last_seen_ms     INTEGER
    );
    "#,
    r#"
    CREATE TABLE approvals (
        id          TEXT PRIMARY KEY,
        agent_id    TEXT NOT NULL,
        session_key TEXT NOT NULL,
        turn_id     TEXT NOT NULL,
        binding     TEXT NOT NULL,
        reason      TEXT NOT NULL,
        created_ms  INTEGER NOT NULL,
        state       TEXT NOT NULL
    );
    "#,
    // 4: sender access: who sent a queued message, strangers' pairing requests, paired
    // senders, and session resets (`/new`).
    r#"
    ALTER TABLE inbound ADD COLUMN sender_class TEXT NOT NULL DEFAULT 'stranger';
    CREATE TABLE sender_requests (
        channel        TEXT NOT NULL,
        account_id     TEXT NOT NULL,
        sender_id      TEXT NOT NULL,
        code           TEXT NOT NULL,
        created_at_ms  INTEGER NOT NULL,
        state          TEXT NOT NULL CHECK (state IN ('pending', 'rejected')),
        rejected_at_ms INTEGER,
        PRIMARY KEY (channel, account_id, sender_id)
    );
    CREATE TABLE paired_senders (
        channel        TEXT NOT NULL,
        sender_id      TEXT NOT NULL,
        account_id     TEXT NOT NULL,
        approved_at_ms INTEGER NOT NULL,
        PRIMARY KEY (channel, sender_id)
    );
    CREATE TABLE session_epochs (
        base_key      TEXT PRIMARY KEY,
        epoch         INTEGER NOT NULL,
        updated_at_ms INTEGER NOT NULL
    );
    "#,
];

/// The gateway's database.
#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

impl Store {
    /// Opens (creating if needed) the database at `path`, in WAL mode, and migrates it.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path).map_err(|source| StoreError::Open {
            path: path.display().to_string(),
            source,
        })?;
        Self::prepare(conn)
    }

    /// An in-memory database, for tests.
    pub fn open_in_memory() -> Result<Self, StoreError> {
        Self::prepare(Connection::open_in_memory()?)
    }

    fn prepare(mut conn: Connection) -> Result<Self, StoreError> {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        migrate(&mut conn)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` with the connection on the blocking pool.
    pub async fn call<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().map_err(|_| StoreError::Poisoned)?;
            f(&mut guard)
        })
        .await?
    }

    /// The schema version.
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        self.call(|c| Ok(c.pragma_query_value(None, "user_version", |r| r.get(0))?))
            .await
    }
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(StoreError::TooNew {
            found: version,
            known,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
