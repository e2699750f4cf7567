//! The database layer: the SQLite connection pool, the embedded migrations,
//! the generated [`schema`], and one module per table with its read model,
//! insert model and queries.
//!
//! Only this module and `actors::db` know diesel. Everything here blocks
//! (SQLite file I/O, argon2 hashing), so it runs on the `DbExecutor`'s
//! SyncArbiter threads or at startup, never on an async arbiter. No error
//! from this layer ever carries a password.

pub mod account;
pub mod character;
pub mod schema;
pub mod world;

use std::path::{Path, PathBuf};

use diesel::connection::SimpleConnection;
use diesel::r2d2::{self, ConnectionManager, CustomizeConnection};
use diesel::{Connection, SqliteConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

/// The pool every database job draws its connection from.
pub type DbPool = r2d2::Pool<ConnectionManager<SqliteConnection>>;

/// One connection checked out of a [`DbPool`].
pub type DbConn = r2d2::PooledConnection<ConnectionManager<SqliteConnection>>;

/// Every migration under `migrations/`, compiled into the binary so a
/// deployed Server needs no migration files beside it.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Run on every new connection, since SQLite keeps these per connection
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
    #[error("cannot open the database {}: {source}", .path.display())]
    Open {
        path: PathBuf,
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

/// Sets the [`CONNECTION_PRAGMAS`] on each connection the pool opens.
#[derive(Debug, Clone, Copy)]
struct SqlitePragmas;

impl CustomizeConnection<SqliteConnection, r2d2::Error> for SqlitePragmas {
    fn on_acquire(&self, conn: &mut SqliteConnection) -> Result<(), r2d2::Error> {
        conn.batch_execute(CONNECTION_PRAGMAS)
            .map_err(r2d2::Error::QueryError)
    }
}

/// Opens (creating if needed) the SQLite database at `path` behind a pool of
/// at most `pool_size` connections, each set up with the [`CONNECTION_PRAGMAS`].
///
/// One connection is opened directly first: a bad path or an unreadable file
/// then fails at once with SQLite's own reason, instead of after the pool's
/// 30 second connection timeout, and the switch to WAL happens before the
/// pool opens its connections side by side.
pub fn open_pool(path: &Path, pool_size: u32) -> Result<DbPool, DbError> {
    if pool_size == 0 {
        return Err(DbError::ZeroPoolSize);
    }
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| DbError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let url = path
        .to_str()
        .ok_or_else(|| DbError::NonUtf8Path(path.to_path_buf()))?;

    let mut first = SqliteConnection::establish(url).map_err(|source| DbError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    first.batch_execute(CONNECTION_PRAGMAS)?;
    drop(first);

    Ok(r2d2::Pool::builder()
        .max_size(pool_size)
        .connection_customizer(Box::new(SqlitePragmas))
        .build(ConnectionManager::<SqliteConnection>::new(url))?)
}

/// Applies every embedded migration the database has not seen yet, each in
/// its own transaction, and returns how many it applied (0 when up to date).
pub fn run_migrations(pool: &DbPool) -> Result<usize, DbError> {
    let mut conn = pool.get()?;
    let applied = conn
        .run_pending_migrations(MIGRATIONS)
        .map_err(|e| DbError::Migration(e.to_string()))?;
    Ok(applied.len())
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
        let pool = open_pool(&path, 2).unwrap();
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
    fn zero_pool_size_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = open_pool(&dir.path().join("db.sqlite3"), 0).unwrap_err();
        assert!(matches!(err, DbError::ZeroPoolSize), "{err}");
    }

    #[test]
    fn unopenable_path_fails_fast_with_the_path() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the database file should be.
        let err = open_pool(dir.path(), 1).unwrap_err();
        assert!(matches!(err, DbError::Open { .. }), "{err}");
        assert!(err.to_string().contains(&dir.path().display().to_string()));
    }

    /// How many migrations `migrations/` holds.
    fn migration_count() -> usize {
        diesel::migration::MigrationSource::<diesel::sqlite::Sqlite>::migrations(&MIGRATIONS)
            .unwrap()
            .len()
    }

    #[test]
    fn migrations_are_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let pool = open_pool(&dir.path().join("db.sqlite3"), 1).unwrap();
        assert_eq!(run_migrations(&pool).unwrap(), migration_count());
        assert_eq!(run_migrations(&pool).unwrap(), 0);
    }

    #[test]
    fn migrations_revert_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let pool = open_pool(&dir.path().join("db.sqlite3"), 1).unwrap();
        run_migrations(&pool).unwrap();
        let mut conn = pool.get().unwrap();
        conn.revert_all_migrations(MIGRATIONS).unwrap();
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
