//! The database executor: a SyncArbiter actor that owns the diesel pool and
//! does every blocking database and password-hashing job for the Server.
//!
//! Its handlers run on the SyncArbiter's own threads, so SQLite and argon2
//! never block an async arbiter. Messages carry plain passwords in and
//! [`AccountRecord`]s out; a password or hash is never logged, printed by
//! `Debug`, or sent back. The logic lives in [`crate::models`]; the handlers
//! only check out a connection and call it.

use std::fmt;

use actix::prelude::*;

use crate::models::account::Account;
use crate::models::{DbConn, DbError, DbPool};
use crate::session::{now_millis, AccountId};

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

/// The SyncArbiter actor; each of its threads holds a handle to the one pool.
pub struct DbExecutor {
    pool: DbPool,
}

impl Actor for DbExecutor {
    type Context = SyncContext<Self>;
}

impl DbExecutor {
    fn conn(&self) -> Result<DbConn, DbError> {
        Ok(self.pool.get()?)
    }
}

/// Starts `threads` executor threads (at least one, since none would leave
/// every message waiting forever) sharing `pool`. Call it inside a running
/// actix `System`. More threads than the pool has connections only wait.
pub fn start(pool: DbPool, threads: usize) -> Addr<DbExecutor> {
    SyncArbiter::start(threads.max(1), move || DbExecutor { pool: pool.clone() })
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
        let mut conn = self.conn()?;
        let account = Account::create(
            &mut conn,
            &msg.name,
            &msg.password,
            msg.superuser,
            msg.min_password_length,
            now_db_millis(),
        )?;
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
        let mut conn = self.conn()?;
        let account = Account::authenticate(&mut conn, &msg.name, &msg.password, now_db_millis())?;
        Ok(account.as_ref().map(AccountRecord::from))
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
        let mut conn = self.conn()?;
        let changed = Account::change_password(
            &mut conn,
            msg.account,
            &msg.old_password,
            &msg.new_password,
            msg.min_password_length,
        )?;
        if changed {
            log::info!("password changed: account={}", msg.account);
        }
        Ok(changed)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::future::Future;
    use std::time::Duration;

    use super::*;
    use crate::models::{open_pool, run_migrations};

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
        let pool = open_pool(&dir.path().join("data/gatehouse.sqlite3"), 2).unwrap();
        run_migrations(&pool).unwrap();
        let db = start(pool, 2);

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
