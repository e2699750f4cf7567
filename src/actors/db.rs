//! The database executor: a SyncArbiter actor that owns the diesel pool and
//! does every blocking database and password-hashing job for the Server.
//!
//! Its handlers run on the SyncArbiter's own threads, so SQLite and argon2
//! never block an async arbiter. Messages carry plain passwords in and
//! [`AccountRecord`]s out; a password or hash is never logged, printed by
//! `Debug`, or sent back. The world and character messages answer with plain
//! records ([`RoomRecord`], [`ExitRecord`], [`CharacterRecord`]) so that no
//! diesel type leaves this file. The logic lives in [`crate::models`]; the
//! handlers only check out a connection and call it.
//!
//! Reads (and password hashing) use the pool. Writes use the write pool (on
//! SQLite its one connection, so they take turns instead of fighting over
//! SQLite's lock) and are tried again with [`Backoff`] while they fail for a
//! transient reason ([`DbError::is_transient`]), for up to
//! `database.write_timeout`; only then does the caller hear of the failure.
//! A write a player waits for hashes before it queues for the writer, so the
//! slow part never holds anyone else's write back.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::actors::server::metrics::ServerMetrics;
use crate::models::account::Account;
use crate::models::character::Character;
pub use crate::models::character::CharacterSave;
use crate::models::world::{self, Exit, Room, LIMBO};
use crate::models::{DbConn, DbConnection, DbError, DbPool};
use crate::session::{now_millis, AccountId, CharacterId, RoomId};

/// What the rest of the Server knows about an account: no hash, no
/// timestamps, cheap to clone into sessions and messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRecord {
    pub id: AccountId,
    pub name: String,
    pub is_superuser: bool,
}

impl From<&Account> for AccountRecord {
    fn from(account: &Account) -> Self {
        AccountRecord {
            id: account.account_id(),
            name: account.name.clone(),
            is_superuser: account.is_superuser,
        }
    }
}

/// The SyncArbiter actor; each of its threads holds a handle to both pools.
pub struct DbExecutor {
    pool: DbPool,
    writer: DbPool,
    write_timeout: Duration,
    metrics: Arc<ServerMetrics>,
}

/// The pools the executor works with: `read` for queries that only read (and
/// the connection a password check reads its account with), `write` for
/// everything that changes the database (see [`crate::models::open_write_pool`]).
#[derive(Clone)]
pub struct DbPools {
    /// Reads, and the reading half of a login, a creation or a password change.
    pub read: DbPool,
    /// Every write; on SQLite one connection.
    pub write: DbPool,
}

/// The first pause before a failed write is tried again.
const WRITE_RETRY_FIRST: Duration = Duration::from_millis(10);
/// The longest pause between two attempts of a write.
const WRITE_RETRY_MAX: Duration = Duration::from_secs(1);

/// Pauses between attempts: from `first`, doubling up to `max`. Each pause is
/// drawn between half and all of that, so writers that failed together do not
/// all come back at the same moment.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    first: Duration,
    max: Duration,
}

impl Backoff {
    /// Pauses from `first`, doubling up to `max`.
    pub fn new(first: Duration, max: Duration) -> Self {
        Self {
            next: first,
            first,
            max,
        }
    }

    /// The longest pause the next [`Backoff::pause`] may be.
    pub fn peek(&self) -> Duration {
        self.next
    }

    /// The next pause; the one after it is twice as long, up to `max`.
    pub fn pause(&mut self) -> Duration {
        let ceiling = self.next;
        self.next = (self.next * 2).min(self.max);
        ceiling.mul_f64(0.5 + fastrand::f64() / 2.0)
    }

    /// Starts again from `first` (after a success).
    pub fn reset(&mut self) {
        self.next = self.first;
    }
}

/// Records how long one query took when it goes out of scope, however the
/// handler returns.
struct QueryTimer<'a> {
    metrics: &'a ServerMetrics,
    query: &'static str,
    started: Instant,
}

impl Drop for QueryTimer<'_> {
    fn drop(&mut self) {
        self.metrics.db_query(self.query, self.started.elapsed());
    }
}

impl Actor for DbExecutor {
    type Context = SyncContext<Self>;
}

impl DbExecutor {
    fn conn(&self) -> Result<DbConn, DbError> {
        Ok(self.pool.get()?)
    }

    /// Runs `write` on the writer's connection, and again after a pause each
    /// time it fails for a transient reason, until it succeeds, fails for
    /// good, or the next attempt would start after `write_timeout`. Each
    /// attempt is a transaction of its own (or one statement), so a failed
    /// one has left nothing behind.
    fn write<T>(
        &self,
        query: &'static str,
        mut write: impl FnMut(&mut DbConnection) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        let deadline = Instant::now() + self.write_timeout;
        let mut backoff = Backoff::new(WRITE_RETRY_FIRST, WRITE_RETRY_MAX);
        let mut attempt = 1;
        loop {
            let result = self
                .writer
                .get()
                .map_err(DbError::from)
                .and_then(|mut conn| write(&mut conn));
            match result {
                Err(e) if e.is_transient() && Instant::now() + backoff.peek() < deadline => {
                    let pause = backoff.pause();
                    log::debug!("{query}: attempt {attempt} failed ({e}); again in {pause:?}");
                    self.metrics.db_write_retry(query);
                    std::thread::sleep(pause);
                    attempt += 1;
                }
                Ok(done) => {
                    if attempt > 1 {
                        log::info!("{query}: written at attempt {attempt}");
                    }
                    return Ok(done);
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn timer(&self, query: &'static str) -> QueryTimer<'_> {
        QueryTimer {
            metrics: &self.metrics,
            query,
            started: Instant::now(),
        }
    }
}

/// Starts `threads` executor threads (at least one, since none would leave
/// every message waiting forever) sharing `pools`, trying each write for up
/// to `write_timeout`, and timing every query into `metrics`. Call it inside a
/// running actix `System`. More threads than the pool has connections only
/// wait.
pub fn start(
    pools: DbPools,
    threads: usize,
    write_timeout: Duration,
    metrics: Arc<ServerMetrics>,
) -> Addr<DbExecutor> {
    SyncArbiter::start(threads.max(1), move || DbExecutor {
        pool: pools.read.clone(),
        writer: pools.write.clone(),
        write_timeout,
        metrics: Arc::clone(&metrics),
    })
}

/// A database answer with the executor's own failure folded in, so callers
/// handle one error type.
pub fn answer<T>(sent: Result<Result<T, DbError>, MailboxError>) -> Result<T, DbError> {
    sent.map_err(|e| DbError::Unavailable(e.to_string()))?
}

/// The wall clock as the `BIGINT` unix milliseconds the table stores.
fn now_db_millis() -> i64 {
    i64::try_from(now_millis()).unwrap_or(i64::MAX)
}

/// Create an account, checking the name and password rules.
#[derive(Message)]
#[rtype(result = "Result<AccountRecord, DbError>")]
pub struct CreateAccount {
    pub name: String,
    pub password: String,
    pub superuser: bool,
    /// The game's minimum, from the settings.
    pub min_password_length: usize,
}

impl fmt::Debug for CreateAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreateAccount")
            .field("name", &self.name)
            .field("password", &"<redacted>")
            .field("superuser", &self.superuser)
            .field("min_password_length", &self.min_password_length)
            .finish()
    }
}

impl Handler<CreateAccount> for DbExecutor {
    type Result = Result<AccountRecord, DbError>;

    fn handle(&mut self, msg: CreateAccount, _: &mut Self::Context) -> Self::Result {
        let _timed = self.timer("create_account");
        let prepared = Account::prepare(
            &mut *self.conn()?,
            &msg.name,
            &msg.password,
            msg.superuser,
            msg.min_password_length,
            now_db_millis(),
        )?;
        let account = self.write("create_account", |conn| prepared.insert(conn))?;
        log::info!(
            "account created: account={} name={} superuser={}",
            account.id,
            account.name,
            account.is_superuser
        );
        Ok(AccountRecord::from(&account))
    }
}

/// Check a login; `None` for an unknown name or a wrong password alike.
#[derive(Message)]
#[rtype(result = "Result<Option<AccountRecord>, DbError>")]
pub struct Authenticate {
    pub name: String,
    pub password: String,
}

impl fmt::Debug for Authenticate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticate")
            .field("name", &self.name)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Handler<Authenticate> for DbExecutor {
    type Result = Result<Option<AccountRecord>, DbError>;

    fn handle(&mut self, msg: Authenticate, _: &mut Self::Context) -> Self::Result {
        let _timed = self.timer("authenticate");
        let Some(account) = Account::check_login(&mut *self.conn()?, &msg.name, &msg.password)?
        else {
            return Ok(None);
        };
        let now = now_db_millis();
        self.write("record_login", |conn| {
            Account::record_login(conn, account.account_id(), now)
        })?;
        Ok(Some(AccountRecord::from(&account)))
    }
}

/// Look an account up by id; `None` if it no longer exists.
#[derive(Message, Debug)]
#[rtype(result = "Result<Option<AccountRecord>, DbError>")]
pub struct GetAccount {
    pub id: AccountId,
}

impl Handler<GetAccount> for DbExecutor {
    type Result = Result<Option<AccountRecord>, DbError>;

    fn handle(&mut self, msg: GetAccount, _: &mut Self::Context) -> Self::Result {
        let _timed = self.timer("get_account");
        let mut conn = self.conn()?;
        Ok(Account::find(&mut conn, msg.id)?
            .as_ref()
            .map(AccountRecord::from))
    }
}

/// Change a player's own password; `Ok(false)` when `old_password` is wrong.
#[derive(Message)]
#[rtype(result = "Result<bool, DbError>")]
pub struct ChangePassword {
    pub account: AccountId,
    pub old_password: String,
    pub new_password: String,
    /// The game's minimum, from the settings.
    pub min_password_length: usize,
}

impl fmt::Debug for ChangePassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChangePassword")
            .field("account", &self.account)
            .field("old_password", &"<redacted>")
            .field("new_password", &"<redacted>")
            .field("min_password_length", &self.min_password_length)
            .finish()
    }
}

impl Handler<ChangePassword> for DbExecutor {
    type Result = Result<bool, DbError>;

    fn handle(&mut self, msg: ChangePassword, _: &mut Self::Context) -> Self::Result {
        let _timed = self.timer("change_password");
        let Some(change) = Account::prepare_password_change(
            &mut *self.conn()?,
            msg.account,
            &msg.old_password,
            &msg.new_password,
            msg.min_password_length,
        )?
        else {
            return Ok(false);
        };
        self.write("change_password", |conn| change.store(conn))?;
        log::info!("password changed: account={}", msg.account);
        Ok(true)
    }
}

/// A room as the game keeps it in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomRecord {
    pub id: RoomId,
    pub name: String,
    pub description: String,
}

impl From<Room> for RoomRecord {
    fn from(room: Room) -> Self {
        RoomRecord {
            id: room.room_id(),
            name: room.name,
            description: room.description,
        }
    }
}

/// A one-way exit from `room` to `destination`, with its aliases split out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitRecord {
    pub id: i32,
    pub room: RoomId,
    /// What a player types to use it, lower-cased.
    pub name: String,
    /// Other words for it, lower-cased.
    pub aliases: Vec<String>,
    pub destination: RoomId,
}

impl From<Exit> for ExitRecord {
    fn from(exit: Exit) -> Self {
        ExitRecord {
            id: exit.id,
            room: exit.room(),
            aliases: exit.alias_list(),
            destination: exit.destination(),
            name: exit.name,
        }
    }
}

/// What the rest of the Server knows about a character.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CharacterRecord {
    pub id: CharacterId,
    /// The owning account.
    pub account: AccountId,
    pub name: String,
    pub description: String,
    pub location: RoomId,
    /// Unix milliseconds of the last time anyone played it, `None` before.
    pub last_puppeted_at: Option<i64>,
}

impl From<Character> for CharacterRecord {
    fn from(character: Character) -> Self {
        CharacterRecord {
            id: character.character_id(),
            account: character.account(),
            location: character.location(),
            last_puppeted_at: character.last_puppeted_at,
            name: character.name,
            description: character.description,
        }
    }
}

/// Read every room and exit, each ordered by id.
#[derive(Message, Debug)]
#[rtype(result = "Result<(Vec<RoomRecord>, Vec<ExitRecord>), DbError>")]
pub struct LoadWorld;

impl Handler<LoadWorld> for DbExecutor {
    type Result = Result<(Vec<RoomRecord>, Vec<ExitRecord>), DbError>;

    fn handle(&mut self, _: LoadWorld, _: &mut Self::Context) -> Self::Result {
        let _timed = self.timer("load_world");
        let mut conn = self.conn()?;
        let (rooms, exits) = world::load_world(&mut conn)?;
        Ok((
            rooms.into_iter().map(RoomRecord::from).collect(),
            exits.into_iter().map(ExitRecord::from).collect(),
        ))
    }
}

/// The characters an account owns, oldest first.
#[derive(Message, Debug)]
#[rtype(result = "Result<Vec<CharacterRecord>, DbError>")]
pub struct LoadCharacters {
    pub account: AccountId,
}

impl Handler<LoadCharacters> for DbExecutor {
    type Result = Result<Vec<CharacterRecord>, DbError>;

    fn handle(&mut self, msg: LoadCharacters, _: &mut Self::Context) -> Self::Result {
        let _timed = self.timer("load_characters");
        let mut conn = self.conn()?;
        Ok(Character::list_for_account(&mut conn, msg.account)?
            .into_iter()
            .map(CharacterRecord::from)
            .collect())
    }
}

/// Create a character in Limbo, within the account's character limit.
#[derive(Message, Debug)]
#[rtype(result = "Result<CharacterRecord, DbError>")]
pub struct CreateCharacter {
    pub account: AccountId,
    pub name: String,
    pub description: String,
    /// The game's limit per account, from the settings; 0 means none.
    pub max_characters: u32,
}

impl Handler<CreateCharacter> for DbExecutor {
    type Result = Result<CharacterRecord, DbError>;

    fn handle(&mut self, msg: CreateCharacter, _: &mut Self::Context) -> Self::Result {
        let _timed = self.timer("create_character");
        let now = now_db_millis();
        let character = self.write("create_character", |conn| {
            Character::create(
                conn,
                msg.account,
                &msg.name,
                &msg.description,
                LIMBO,
                msg.max_characters,
                now,
            )
        })?;
        log::info!(
            "character created: account={} character={} name={}",
            msg.account,
            character.id,
            character.name
        );
        Ok(CharacterRecord::from(character))
    }
}

/// Delete a character if the account owns it; `Ok(false)` otherwise.
#[derive(Message, Debug)]
#[rtype(result = "Result<bool, DbError>")]
pub struct DeleteCharacter {
    pub account: AccountId,
    pub character: CharacterId,
}

impl Handler<DeleteCharacter> for DbExecutor {
    type Result = Result<bool, DbError>;

    fn handle(&mut self, msg: DeleteCharacter, _: &mut Self::Context) -> Self::Result {
        let _timed = self.timer("delete_character");
        let deleted = self.write("delete_character", |conn| {
            Character::delete(conn, msg.account, msg.character)
        })?;
        if deleted {
            log::info!(
                "character deleted: account={} character={}",
                msg.account,
                msg.character
            );
        }
        Ok(deleted)
    }
}

/// Store many characters' newest state (rooms, who last played them) in one
/// transaction; answers how many rows were written. Rows whose character,
/// room or account is gone are left out, so they never fail the rest.
#[derive(Message, Debug)]
#[rtype(result = "Result<usize, DbError>")]
pub struct SaveCharacters {
    pub saves: Vec<CharacterSave>,
}

impl Handler<SaveCharacters> for DbExecutor {
    type Result = Result<usize, DbError>;

    fn handle(&mut self, msg: SaveCharacters, _: &mut Self::Context) -> Self::Result {
        let _timed = self.timer("save_characters");
        self.write("save_characters", |conn| {
            Character::save_all(conn, &msg.saves)
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::future::Future;

    use diesel::connection::SimpleConnection;
    use diesel::{Connection, SqliteConnection};

    use super::*;
    use crate::models::{open_pool, open_write_pool, run_migrations};
    use crate::settings::DatabaseTarget;

    /// A migrated database at `target` behind an executor of two threads.
    fn executor(target: &DatabaseTarget, write_timeout: Duration) -> (Addr<DbExecutor>, DbPool) {
        let read = open_pool(target, 2).unwrap();
        run_migrations(&read).unwrap();
        let write = open_write_pool(target, &read, write_timeout).unwrap();
        let pools = DbPools {
            read: read.clone(),
            write,
        };
        (start(pools, 2, write_timeout, ServerMetrics::new()), read)
    }

    /// Generous for argon2 in a debug build on a slow CI machine, but a
    /// stuck executor still fails the test instead of hanging it.
    const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

    async fn reply<T>(request: impl Future<Output = Result<T, MailboxError>>) -> T {
        tokio::time::timeout(REPLY_TIMEOUT, request)
            .await
            .expect("executor replied in time")
            .expect("executor is running")
    }

    #[actix::test]
    async fn create_authenticate_and_change_password_through_messages() {
        let dir = tempfile::tempdir().unwrap();
        let target = DatabaseTarget::Sqlite(dir.path().join("data/gatehouse.sqlite3"));
        let (db, _) = executor(&target, Duration::from_secs(10));

        let created = reply(db.send(CreateAccount {
            name: "Alice".to_owned(),
            password: "correct horse".to_owned(),
            superuser: true,
            min_password_length: 8,
        }))
        .await
        .unwrap();
        assert_eq!(created.name, "Alice");
        assert!(created.is_superuser);

        let taken = reply(db.send(CreateAccount {
            name: "alice".to_owned(),
            password: "correct horse".to_owned(),
            superuser: false,
            min_password_length: 8,
        }))
        .await
        .unwrap_err();
        assert!(matches!(taken, DbError::NameTaken), "{taken:?}");

        let login = |password: &str| Authenticate {
            name: "ALICE".to_owned(),
            password: password.to_owned(),
        };
        let logged_in = reply(db.send(login("correct horse"))).await.unwrap();
        assert_eq!(logged_in, Some(created.clone()));
        assert_eq!(reply(db.send(login("wrong horse"))).await.unwrap(), None);

        let change = |old: &str, new: &str| ChangePassword {
            account: created.id,
            old_password: old.to_owned(),
            new_password: new.to_owned(),
            min_password_length: 8,
        };
        assert!(!reply(db.send(change("wrong horse", "battery staple")))
            .await
            .unwrap());
        assert!(reply(db.send(change("correct horse", "battery staple")))
            .await
            .unwrap());
        assert_eq!(reply(db.send(login("correct horse"))).await.unwrap(), None);
        assert_eq!(
            reply(db.send(login("battery staple"))).await.unwrap(),
            Some(created)
        );
    }

    #[actix::test]
    async fn characters_through_messages() {
        let dir = tempfile::tempdir().unwrap();
        let target = DatabaseTarget::Sqlite(dir.path().join("gatehouse.sqlite3"));
        let (db, _) = executor(&target, Duration::from_secs(10));

        let (rooms, exits) = reply(db.send(LoadWorld)).await.unwrap();
        assert_eq!(rooms[0].id, LIMBO);
        assert_eq!(rooms[0].name, "Limbo");
        let up = exits.iter().find(|e| e.name == "up").unwrap();
        assert_eq!(up.aliases, ["u", "tower"]);

        let alice = reply(db.send(CreateAccount {
            name: "Alice".to_owned(),
            password: "correct horse".to_owned(),
            superuser: false,
            min_password_length: 8,
        }))
        .await
        .unwrap();
        let create = |name: &str| CreateCharacter {
            account: alice.id,
            name: name.to_owned(),
            description: "A plain figure.".to_owned(),
            max_characters: 1,
        };
        let ariadne = reply(db.send(create("Ariadne"))).await.unwrap();
        assert_eq!(ariadne.account, alice.id);
        assert_eq!(ariadne.name, "Ariadne");
        assert_eq!(ariadne.location, LIMBO);
        assert_eq!(ariadne.last_puppeted_at, None);
        let full = reply(db.send(create("Theseus"))).await.unwrap_err();
        assert!(matches!(full, DbError::CharacterLimit(1)), "{full:?}");

        let loaded = reply(db.send(LoadCharacters { account: alice.id }))
            .await
            .unwrap();
        assert_eq!(loaded, std::slice::from_ref(&ariadne));

        let courtyard = up.room;
        let saved = reply(db.send(SaveCharacters {
            saves: vec![CharacterSave {
                character: ariadne.id,
                location: Some(courtyard),
                puppeted: Some((alice.id, 5_000)),
            }],
        }))
        .await
        .unwrap();
        assert_eq!(saved, 2);
        let loaded = reply(db.send(LoadCharacters { account: alice.id }))
            .await
            .unwrap();
        assert_eq!(loaded.len(), 1);
        assert_eq!(loaded[0].location, courtyard);
        assert!(loaded[0].last_puppeted_at.is_some());

        let stranger = AccountId(alice.id.0 + 1);
        let delete = |account| DeleteCharacter {
            account,
            character: ariadne.id,
        };
        assert!(!reply(db.send(delete(stranger))).await.unwrap());
        assert!(reply(db.send(delete(alice.id))).await.unwrap());
        assert!(reply(db.send(LoadCharacters { account: alice.id }))
            .await
            .unwrap()
            .is_empty());
    }

    /// A write lock held by another process for longer than SQLite's busy
    /// timeout: the write waits it out, is tried again, and commits once the
    /// lock is gone, instead of failing.
    #[actix::test]
    async fn a_write_outlasting_the_busy_timeout_is_tried_again_until_it_commits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gatehouse.sqlite3");
        let (db, _) = executor(
            &DatabaseTarget::Sqlite(path.clone()),
            Duration::from_secs(60),
        );
        let alice = reply(db.send(CreateAccount {
            name: "Alice".to_owned(),
            password: "correct horse".to_owned(),
            superuser: false,
            min_password_length: 8,
        }))
        .await
        .unwrap();
        let ariadne = reply(db.send(CreateCharacter {
            account: alice.id,
            name: "Ariadne".to_owned(),
            description: String::new(),
            max_characters: 0,
        }))
        .await
        .unwrap();

        let mut lock = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
        lock.batch_execute("BEGIN IMMEDIATE").unwrap();
        let save = db.send(SaveCharacters {
            saves: vec![CharacterSave {
                character: ariadne.id,
                location: Some(RoomId(2)),
                puppeted: None,
            }],
        });
        let release = async {
            // Past the 5 s busy timeout: the first attempt has failed by then.
            tokio::time::sleep(Duration::from_secs(6)).await;
            lock.batch_execute("ROLLBACK").unwrap();
        };
        let (saved, ()) = tokio::join!(reply(save), release);
        assert_eq!(saved.unwrap(), 1);
        let loaded = reply(db.send(LoadCharacters { account: alice.id }))
            .await
            .unwrap();
        assert_eq!(loaded[0].location, RoomId(2));
    }

    #[test]
    fn backoff_doubles_up_to_its_ceiling_and_jitters_below_it() {
        let mut backoff = Backoff::new(Duration::from_millis(10), Duration::from_millis(35));
        let ceilings: Vec<Duration> = (0..4)
            .map(|_| {
                let ceiling = backoff.peek();
                let pause = backoff.pause();
                assert!(
                    pause >= ceiling / 2 && pause <= ceiling,
                    "{pause:?} of {ceiling:?}"
                );
                ceiling
            })
            .collect();
        assert_eq!(
            ceilings,
            [10, 20, 35, 35].map(Duration::from_millis).to_vec()
        );
        backoff.reset();
        assert_eq!(backoff.peek(), Duration::from_millis(10));
    }

    #[test]
    fn message_debug_redacts_passwords() {
        let printed = [
            format!(
                "{:?}",
                CreateAccount {
                    name: "Alice".to_owned(),
                    password: "hunter22".to_owned(),
                    superuser: false,
                    min_password_length: 8,
                }
            ),
            format!(
                "{:?}",
                Authenticate {
                    name: "Alice".to_owned(),
                    password: "hunter22".to_owned(),
                }
            ),
            format!(
                "{:?}",
                ChangePassword {
                    account: AccountId(1),
                    old_password: "hunter22".to_owned(),
                    new_password: "hunter23".to_owned(),
                    min_password_length: 8,
                }
            ),
        ];
        for text in printed {
            assert!(text.contains("<redacted>"), "{text}");
            assert!(!text.contains("hunter2"), "{text}");
        }
    }
}
