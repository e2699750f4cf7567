//! The database layer: the connection pool for SQLite or PostgreSQL (one
//! [`DbConnection`] type over both, chosen by `database.url`), the embedded
//! migrations of each backend, the generated [`schema`], and one module per table
//! with its read model, insert model and queries.
//!
//! Only this module and `actors::db` know diesel. Everything here blocks
//! (SQLite file I/O, argon2 hashing), so it runs on the `DbExecutor`'s
//! SyncArbiter threads or at startup, never on an async arbiter. No error
//! from this layer ever carries a password.
//!
//! Writes have a pool of their own ([`open_write_pool`]): on SQLite it is one
//! connection, since SQLite lets one writer in at a time and several writing
//! connections only fight over the lock; on PostgreSQL it is the read pool.
//! [`DbError::is_transient`] says which failures are worth trying again.

pub mod account;
pub mod character;
pub mod schema;
pub mod world;

use std::path::PathBuf;

use diesel::connection::SimpleConnection;
use diesel::r2d2::{self, CustomizeConnection, ManageConnection, R2D2Connection};
use diesel::{Connection, PgConnection, SqliteConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::settings::DatabaseTarget;

/// One database connection, to whichever backend `database.url` names. Every
/// query in this module is written once and runs on both.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
}

/// The pool every database job draws its connection from.
pub type DbPool = r2d2::Pool<DbManager>;

/// One connection checked out of a [`DbPool`].
pub type DbConn = r2d2::PooledConnection<DbManager>;

/// Every SQLite migration under `migrations/sqlite/`, compiled into the binary so a
/// deployed Server needs no migration files beside it.
pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
/// The same migrations for PostgreSQL, under `migrations/postgres/` (same versions).
pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Run on every new SQLite connection, since SQLite keeps these per connection
/// (except `journal_mode`, which the file remembers).
///
/// `busy_timeout` comes first so that a connection opened while another one
/// is switching the file to WAL waits instead of failing with "database is
/// locked". WAL lets the pool's readers run beside one writer; `synchronous =
/// FULL` makes a committed account survive a power cut; SQLite leaves
/// foreign keys off unless asked.
const CONNECTION_PRAGMAS: &str = "PRAGMA busy_timeout = 5000; \
     PRAGMA journal_mode = WAL; \
     PRAGMA synchronous = FULL; \
     PRAGMA foreign_keys = ON;";

/// How long a query waits for a connection (all busy, or the server unreachable)
/// before it fails with "the game cannot check your password right now": as long
/// as SQLite's `busy_timeout`, rather than r2d2's 30 s.
const POOL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Opens connections of the configured backend for the pool (diesel's own
/// manager would try each backend in turn with the same string).
#[derive(Debug, Clone)]
pub struct DbManager {
    target: DatabaseTarget,
}

impl DbManager {
    fn establish(&self) -> Result<DbConnection, diesel::ConnectionError> {
        Ok(match &self.target {
            DatabaseTarget::Sqlite(path) => {
                let url = path.to_str().ok_or_else(|| {
                    diesel::ConnectionError::InvalidConnectionUrl(path.display().to_string())
                })?;
                DbConnection::Sqlite(SqliteConnection::establish(url)?)
            }
            DatabaseTarget::Postgres(url) => DbConnection::Postgres(PgConnection::establish(url)?),
        })
    }
}

impl ManageConnection for DbManager {
    type Connection = DbConnection;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<DbConnection, r2d2::Error> {
        self.establish().map_err(r2d2::Error::ConnectionError)
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), r2d2::Error> {
        conn.ping().map_err(r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        std::thread::panicking() || conn.is_broken()
    }
}

/// Everything that can go wrong in the database layer.
///
/// Each message reads on its own in an admin's log. [`DbError::NameTaken`]
/// and [`DbError::CharacterLimit`] are also shown to players as they are, so
/// they are whole sentences. None includes a password, and none echoes an
/// account name either: players often type their password at the name prompt.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot create the database directory {}: {source}", .path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the database path {} is not valid UTF-8", .0.display())]
    NonUtf8Path(PathBuf),
    #[error("the database pool size must be at least 1")]
    ZeroPoolSize,
    #[error("cannot open the database {target}: {source}")]
    Open {
        /// The file, or the server without its password.
        target: String,
        #[source]
        source: diesel::ConnectionError,
    },
    #[error("database connection pool: {0}")]
    Pool(#[from] r2d2::PoolError),
    #[error("database query failed: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("database migration failed: {0}")]
    Migration(String),
    /// An account or character name that differs from an existing one at
    /// most in letter case.
    #[error("That name is already taken.")]
    NameTaken,
    #[error("invalid account name: {0}")]
    InvalidName(String),
    #[error("password refused: {0}")]
    WeakPassword(String),
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("no such account")]
    AccountNotFound,
    /// The account already has the most characters the game allows.
    #[error("You may only have a maximum of {0} character(s).")]
    CharacterLimit(u32),
    #[error("no such character")]
    CharacterNotFound,
    #[error("no such room")]
    RoomNotFound,
    /// The executor itself did not answer (stopping, or its mailbox closed).
    #[error("the database executor is unavailable: {0}")]
    Unavailable(String),
}

impl DbError {
    /// Whether the same query may succeed if it is tried again in a moment:
    /// a busy or locked SQLite file, no connection free or reachable, a lost
    /// PostgreSQL connection, a serialization failure or a deadlock. Everything
    /// else (a taken name, a full disk, a broken file) fails the same way
    /// again, so the caller is told at once.
    pub fn is_transient(&self) -> bool {
        use diesel::result::{DatabaseErrorKind as Kind, Error as E};
        match self {
            DbError::Pool(_) => true,
            DbError::Query(E::BrokenTransactionManager) => true,
            DbError::Query(E::DatabaseError(kind, info)) => match kind {
                Kind::SerializationFailure | Kind::ClosedConnection | Kind::UnableToSendCommand => {
                    true
                }
                _ => {
                    let message = info.message();
                    // SQLITE_BUSY, SQLITE_LOCKED, and PostgreSQL's 40P01.
                    message.contains("database is locked")
                        || message.contains("database table is locked")
                        || message.contains("deadlock detected")
                }
            },
            _ => false,
        }
    }
}

/// Sets the [`CONNECTION_PRAGMAS`] on each SQLite connection the pool opens.
#[derive(Debug, Clone, Copy)]
struct SqlitePragmas;

impl CustomizeConnection<DbConnection, r2d2::Error> for SqlitePragmas {
    fn on_acquire(&self, conn: &mut DbConnection) -> Result<(), r2d2::Error> {
        match conn {
            DbConnection::Sqlite(conn) => conn
                .batch_execute(CONNECTION_PRAGMAS)
                .map_err(r2d2::Error::QueryError),
            DbConnection::Postgres(_) => Ok(()),
        }
    }
}

/// Opens the database `target` names behind a pool of at most `pool_size`
/// connections: a SQLite file (created with its directory if needed, each
/// connection set up with the `CONNECTION_PRAGMAS`) or a PostgreSQL server.
///
/// One connection is opened directly first: a bad path, an unreadable file or an
/// unreachable server then fails at once with the backend's own reason, instead of
/// after the pool's 30 second connection timeout, and SQLite's switch to WAL happens
/// before the pool opens its connections side by side.
pub fn open_pool(target: &DatabaseTarget, pool_size: u32) -> Result<DbPool, DbError> {
    if pool_size == 0 {
        return Err(DbError::ZeroPoolSize);
    }
    if let DatabaseTarget::Sqlite(path) = target {
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| DbError::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        if path.to_str().is_none() {
            return Err(DbError::NonUtf8Path(path.clone()));
        }
    }
    let manager = DbManager {
        target: target.clone(),
    };
    let mut first = manager.establish().map_err(|source| DbError::Open {
        target: target.to_string(),
        source,
    })?;
    if let DbConnection::Sqlite(conn) = &mut first {
        conn.batch_execute(CONNECTION_PRAGMAS)?;
    }
    drop(first);

    Ok(r2d2::Pool::builder()
        .max_size(pool_size)
        .connection_timeout(POOL_TIMEOUT)
        .connection_customizer(Box::new(SqlitePragmas))
        .build(manager)?)
}

/// The pool writes draw their connection from, for a database whose reads use
/// `pool`: on SQLite one connection of its own (with the same pragmas), so the
/// game's writes take turns in the process instead of polling SQLite's lock
/// against each other, which starves some of them past `busy_timeout` under
/// load; on PostgreSQL, which lets writers of different rows run side by side,
/// `pool` itself. A writer waits up to `wait` for its turn.
pub fn open_write_pool(
    target: &DatabaseTarget,
    pool: &DbPool,
    wait: std::time::Duration,
) -> Result<DbPool, DbError> {
    match target {
        DatabaseTarget::Postgres(_) => Ok(pool.clone()),
        DatabaseTarget::Sqlite(_) => Ok(r2d2::Pool::builder()
            .max_size(1)
            .connection_timeout(wait.max(std::time::Duration::from_millis(1)))
            .connection_customizer(Box::new(SqlitePragmas))
            .build(DbManager {
                target: target.clone(),
            })?),
    }
}

/// Applies every embedded migration the database has not seen yet (the set for its
/// backend), each in its own transaction, and returns how many it applied (0 when
/// up to date).
pub fn run_migrations(pool: &DbPool) -> Result<usize, DbError> {
    let mut conn = pool.get()?;
    let applied = match &mut *conn {
        DbConnection::Sqlite(conn) => conn
            .run_pending_migrations(SQLITE_MIGRATIONS)
            .map(|v| v.len()),
        DbConnection::Postgres(conn) => conn
            .run_pending_migrations(POSTGRES_MIGRATIONS)
            .map(|v| v.len()),
    };
    applied.map_err(|e| DbError::Migration(e.to_string()))
}

/// Databases for the model tests: every test runs on SQLite, and on PostgreSQL too
/// when `GATEHOUSE_TEST_POSTGRES_URL` names a server (CI sets it), each in a fresh
/// database of its own that is dropped afterwards.
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
pub(crate) mod testing {
    use super::*;

    /// The server the PostgreSQL runs use, e.g. `postgres://postgres@127.0.0.1/postgres`.
    pub const POSTGRES_URL_VAR: &str = "GATEHOUSE_TEST_POSTGRES_URL";

    /// A migrated, empty database; gone when dropped.
    pub struct TestDb {
        pub pool: DbPool,
        pub backend: &'static str,
        /// Where it is, to open more pools on it.
        pub target: DatabaseTarget,
        _dir: Option<tempfile::TempDir>,
        /// The server's URL and the database made for this test.
        postgres: Option<(String, String)>,
    }

    impl Drop for TestDb {
        fn drop(&mut self) {
            if let Some((admin, name)) = &self.postgres {
                if let Ok(mut conn) = PgConnection::establish(admin) {
                    let _ =
                        conn.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
                }
            }
        }
    }

    fn sqlite(pool_size: u32) -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        let target = DatabaseTarget::Sqlite(dir.path().join("gatehouse.sqlite3"));
        let pool = open_pool(&target, pool_size).unwrap();
        run_migrations(&pool).unwrap();
        TestDb {
            pool,
            backend: "sqlite",
            target,
            _dir: Some(dir),
            postgres: None,
        }
    }

    /// `url` with its database name replaced by `name`.
    pub fn with_database(url: &str, name: &str) -> String {
        let (base, query) = match url.split_once('?') {
            Some((base, query)) => (base, format!("?{query}")),
            None => (url, String::new()),
        };
        let server = match base.rsplit_once('/') {
            Some((server, _)) if server.contains("://") && !server.ends_with('/') => server,
            _ => base,
        };
        format!("{server}/{name}{query}")
    }

    fn postgres(admin: &str, pool_size: u32) -> TestDb {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!(
            "gatehouse_test_{}_{n}_{}",
            std::process::id(),
            crate::session::now_millis()
        );
        let mut conn = PgConnection::establish(admin)
            .unwrap_or_else(|e| panic!("{POSTGRES_URL_VAR}: cannot connect: {e}"));
        conn.batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        let target = DatabaseTarget::Postgres(with_database(admin, &name));
        let pool = open_pool(&target, pool_size).unwrap();
        run_migrations(&pool).unwrap();
        TestDb {
            pool,
            backend: "postgres",
            target,
            _dir: None,
            postgres: Some((admin.to_owned(), name)),
        }
    }

    /// A fresh database on every backend the tests can reach, each behind a
    /// pool of two connections.
    pub fn databases() -> Vec<TestDb> {
        databases_sized(2, 2)
    }

    /// The same with pools of the sizes given (PostgreSQL's connections are
    /// shared with other test runs, so it may get fewer).
    pub fn databases_sized(sqlite_pool: u32, postgres_pool: u32) -> Vec<TestDb> {
        let mut all = vec![sqlite(sqlite_pool)];
        if let Ok(admin) = std::env::var(POSTGRES_URL_VAR) {
            if !admin.trim().is_empty() {
                all.push(postgres(admin.trim(), postgres_pool));
            }
        }
        all
    }

    #[test]
    fn database_names_are_swapped_in_urls() {
        assert_eq!(
            with_database("postgres://u:p@h:5432/postgres", "t1"),
            "postgres://u:p@h:5432/t1"
        );
        assert_eq!(
            with_database("postgres://u@h/postgres?sslmode=disable", "t2"),
            "postgres://u@h/t2?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@h", "t3"), "postgres://u@h/t3");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use diesel::prelude::*;
    use diesel::sql_types::{BigInt, Text};

    #[derive(QueryableByName)]
    struct TextRow {
        #[diesel(sql_type = Text)]
        value: String,
    }

    #[derive(QueryableByName)]
    struct IntRow {
        #[diesel(sql_type = BigInt)]
        value: i64,
    }

    #[test]
    fn open_pool_creates_the_directory_and_sets_the_pragmas() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/data/gatehouse.sqlite3");
        let pool = open_pool(&DatabaseTarget::Sqlite(path.clone()), 2).unwrap();
        assert!(path.exists());

        let mut conn = pool.get().unwrap();
        let mode: TextRow =
            diesel::sql_query("SELECT journal_mode AS value FROM pragma_journal_mode")
                .get_result(&mut conn)
                .unwrap();
        assert_eq!(mode.value, "wal");
        let fk: IntRow = diesel::sql_query("SELECT foreign_keys AS value FROM pragma_foreign_keys")
            .get_result(&mut conn)
            .unwrap();
        assert_eq!(fk.value, 1);
        let sync: IntRow = diesel::sql_query("SELECT synchronous AS value FROM pragma_synchronous")
            .get_result(&mut conn)
            .unwrap();
        assert_eq!(sync.value, 2, "2 is FULL");
        let busy: IntRow = diesel::sql_query("SELECT timeout AS value FROM pragma_busy_timeout")
            .get_result(&mut conn)
            .unwrap();
        assert_eq!(busy.value, 5000);
    }

    #[test]
    fn busy_locked_and_lost_connections_are_transient_and_the_rest_is_not() {
        use diesel::result::{DatabaseErrorKind as Kind, Error as E};
        let db = |kind, message: &str| {
            DbError::Query(E::DatabaseError(kind, Box::new(message.to_owned())))
        };
        for transient in [
            db(Kind::Unknown, "database is locked"),
            db(Kind::Unknown, "database table is locked"),
            db(Kind::Unknown, "deadlock detected"),
            db(Kind::SerializationFailure, "could not serialize access"),
            db(Kind::ClosedConnection, "server closed the connection"),
            DbError::Query(E::BrokenTransactionManager),
        ] {
            assert!(transient.is_transient(), "{transient}");
        }
        for permanent in [
            db(Kind::Unknown, "database or disk is full"),
            db(Kind::UniqueViolation, "UNIQUE constraint failed"),
            DbError::NameTaken,
            DbError::CharacterNotFound,
            DbError::Unavailable("mailbox closed".to_owned()),
        ] {
            assert!(!permanent.is_transient(), "{permanent}");
        }
        // No connection free in time: the pool's own timeout.
        let dir = tempfile::tempdir().unwrap();
        let target = DatabaseTarget::Sqlite(dir.path().join("db.sqlite3"));
        let pool = open_pool(&target, 1).unwrap();
        let writer = open_write_pool(&target, &pool, std::time::Duration::from_millis(10)).unwrap();
        let _held = writer.get().unwrap();
        let Err(busy) = writer.get() else {
            panic!("a second writer got the one connection");
        };
        let busy = DbError::from(busy);
        assert!(busy.is_transient(), "{busy}");
    }

    #[test]
    fn zero_pool_size_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = open_pool(&DatabaseTarget::Sqlite(dir.path().join("db.sqlite3")), 0).unwrap_err();
        assert!(matches!(err, DbError::ZeroPoolSize), "{err}");
    }

    #[test]
    fn unopenable_path_fails_fast_with_the_path() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the database file should be.
        let err = open_pool(&DatabaseTarget::Sqlite(dir.path().to_path_buf()), 1).unwrap_err();
        assert!(matches!(err, DbError::Open { .. }), "{err}");
        assert!(err.to_string().contains(&dir.path().display().to_string()));
    }

    /// How many migrations `migrations/` holds.
    fn migration_count() -> usize {
        diesel::migration::MigrationSource::<diesel::sqlite::Sqlite>::migrations(&SQLITE_MIGRATIONS)
            .unwrap()
            .len()
    }

    #[test]
    fn migrations_are_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let pool = open_pool(&DatabaseTarget::Sqlite(dir.path().join("db.sqlite3")), 1).unwrap();
        assert_eq!(run_migrations(&pool).unwrap(), migration_count());
        assert_eq!(run_migrations(&pool).unwrap(), 0);
    }

    #[test]
    fn migrations_revert_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let pool = open_pool(&DatabaseTarget::Sqlite(dir.path().join("db.sqlite3")), 1).unwrap();
        run_migrations(&pool).unwrap();
        let mut conn = pool.get().unwrap();
        let DbConnection::Sqlite(sqlite) = &mut *conn else {
            panic!("a SQLite pool");
        };
        sqlite.revert_all_migrations(SQLITE_MIGRATIONS).unwrap();
        let left: Vec<TextRow> = diesel::sql_query(
            "SELECT name AS value FROM sqlite_master \
             WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
             AND name <> '__diesel_schema_migrations'",
        )
        .load(&mut conn)
        .unwrap();
        let left: Vec<String> = left.into_iter().map(|row| row.value).collect();
        assert!(left.is_empty(), "tables left after revert: {left:?}");
        drop(conn);
        assert_eq!(run_migrations(&pool).unwrap(), migration_count());
    }
}
