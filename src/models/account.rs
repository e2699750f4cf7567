//! The `accounts` table: the [`Account`] read model, the [`NewAccount`]
//! insert model, the name and password rules, and the queries, including
//! argon2id hashing and verification.
//!
//! Everything here blocks (SQLite I/O, and argon2 is slow on purpose), so it
//! is called from the `DbExecutor`'s SyncArbiter, never on an async arbiter.
//! A password leaves this module only as an argon2id PHC string, and neither
//! the password nor the hash ever appears in a `Debug` print or an error.

use std::fmt;

use argon2::password_hash::{self, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use rand_core::OsRng;

use super::schema::accounts;
use super::{DbConnection, DbError};
use crate::session::AccountId;

/// Shortest account name, in characters.
pub const NAME_MIN_LEN: usize = 3;
/// Longest account name, in characters.
pub const NAME_MAX_LEN: usize = 30;
/// Longest password, in characters: a passphrase fits, a pasted file does not.
pub const PASSWORD_MAX_LEN: usize = 256;

/// The argon2id hash of a random password nobody knows, made with
/// `Argon2::default()`'s parameters. [`Account::authenticate`] verifies
/// against it when the name is unknown, so a login attempt takes as long
/// whether or not the account exists.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$t4tfAklryjQ+amvzxeF/4g$JrKxzmuRbbUPabL4HAUoY5NcDBxn3pdkGbqeUhMup+Y";

/// One row of `accounts`.
#[derive(Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = accounts, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct Account {
    pub id: i32,
    /// The name as the player typed it when creating the account.
    pub name: String,
    /// `name` lower-cased: what uniqueness and look-ups use.
    pub name_key: String,
    /// An argon2id PHC string. Private so that only this module's
    /// verification reads it.
    password_hash: String,
    pub is_superuser: bool,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds of the last successful login, `None` before the first.
    pub last_login_at: Option<i64>,
}

impl fmt::Debug for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Account")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("name_key", &self.name_key)
            .field("password_hash", &"<redacted>")
            .field("is_superuser", &self.is_superuser)
            .field("created_at", &self.created_at)
            .field("last_login_at", &self.last_login_at)
            .finish()
    }
}

/// A row to insert into `accounts`.
///
/// Its fields are private: only [`Account::create`] builds one, after it has
/// validated the name, derived the key and hashed the password.
#[derive(Insertable)]
#[diesel(table_name = accounts)]
pub struct NewAccount<'a> {
    name: &'a str,
    name_key: &'a str,
    password_hash: &'a str,
    is_superuser: bool,
    created_at: i64,
}

impl fmt::Debug for NewAccount<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewAccount")
            .field("name", &self.name)
            .field("name_key", &self.name_key)
            .field("password_hash", &"<redacted>")
            .field("is_superuser", &self.is_superuser)
            .field("created_at", &self.created_at)
            .finish()
    }
}

impl Account {
    /// The typed id the rest of the crate uses for this account.
    pub fn account_id(&self) -> AccountId {
        AccountId(self.id)
    }

    /// Creates an account after checking the name and password rules: the
    /// same as [`Account::prepare`] and then [`PreparedAccount::insert`] on one
    /// connection.
    pub fn create(
        conn: &mut DbConnection,
        name: &str,
        password: &str,
        superuser: bool,
        min_password_length: usize,
        now_millis: i64,
    ) -> Result<Account, DbError> {
        Self::prepare(
            conn,
            name,
            password,
            superuser,
            min_password_length,
            now_millis,
        )?
        .insert(conn)
    }

    /// Checks the name and password rules and hashes the password: everything
    /// of a new account but the write, which [`PreparedAccount::insert`] does.
    ///
    /// The slow part thus never holds the database's write lock, and runs
    /// beside other hashes while writes take turns. A name that differs from
    /// an existing one only in case is [`DbError::NameTaken`].
    pub fn prepare(
        conn: &mut DbConnection,
        name: &str,
        password: &str,
        superuser: bool,
        min_password_length: usize,
        now_millis: i64,
    ) -> Result<PreparedAccount, DbError> {
        validate_name(name)?;
        validate_password(name, password, min_password_length)?;
        // A taken name is refused before the (deliberately slow) hash; the
        // unique index still settles a race between two creations.
        if Self::find_by_name(conn, name)?.is_some() {
            return Err(DbError::NameTaken);
        }
        Ok(PreparedAccount {
            name: name.to_owned(),
            name_key: name_key(name),
            password_hash: hash_password(password)?,
            is_superuser: superuser,
            created_at: now_millis,
        })
    }

    /// The account with this id, if any.
    pub fn find(conn: &mut DbConnection, id: AccountId) -> Result<Option<Account>, DbError> {
        Ok(accounts::table
            .find(id.0)
            .select(Account::as_select())
            .first(conn)
            .optional()?)
    }

    /// The account with this name in any letter case, if any.
    pub fn find_by_name(conn: &mut DbConnection, name: &str) -> Result<Option<Account>, DbError> {
        Ok(accounts::table
            .filter(accounts::name_key.eq(name_key(name)))
            .select(Account::as_select())
            .first(conn)
            .optional()?)
    }

    /// Checks a login. `None` means "no such name or wrong password", on
    /// purpose indistinguishable, in the answer and in the time it takes.
    /// On success it records `now_millis` as the last login: the same as
    /// [`Account::check_login`] and then [`Account::record_login`].
    pub fn authenticate(
        conn: &mut DbConnection,
        name: &str,
        password: &str,
        now_millis: i64,
    ) -> Result<Option<Account>, DbError> {
        let Some(mut account) = Self::check_login(conn, name, password)? else {
            return Ok(None);
        };
        Self::record_login(conn, account.account_id(), now_millis)?;
        account.last_login_at = Some(now_millis);
        Ok(Some(account))
    }

    /// The password check of a login, which only reads: `None` for an
    /// unknown name and for a wrong password alike, taking the same time (a
    /// dummy hash is verified for an unknown name).
    pub fn check_login(
        conn: &mut DbConnection,
        name: &str,
        password: &str,
    ) -> Result<Option<Account>, DbError> {
        let Some(account) = Self::find_by_name(conn, name)? else {
            verify_hash(password, DUMMY_HASH)?;
            return Ok(None);
        };
        Ok(account.verify_password(password)?.then_some(account))
    }

    /// Records `now_millis` as account `id`'s last successful login.
    pub fn record_login(
        conn: &mut DbConnection,
        id: AccountId,
        now_millis: i64,
    ) -> Result<(), DbError> {
        diesel::update(accounts::table.find(id.0))
            .set(accounts::last_login_at.eq(Some(now_millis)))
            .execute(conn)?;
        Ok(())
    }

    /// Whether `password` is this account's password.
    pub fn verify_password(&self, password: &str) -> Result<bool, DbError> {
        verify_hash(password, &self.password_hash)
    }

    /// Replaces the password of account `id`, after checking the password
    /// rules against its name. Callers that act for the player check the old
    /// password first (see [`Account::change_password`]); this one is also
    /// for admins resetting a forgotten password.
    pub fn set_password(
        conn: &mut DbConnection,
        id: AccountId,
        new_password: &str,
        min_password_length: usize,
    ) -> Result<(), DbError> {
        let account = Self::find(conn, id)?.ok_or(DbError::AccountNotFound)?;
        account.store_password(conn, new_password, min_password_length)
    }

    /// Replaces the password of account `id` if `old_password` is its current
    /// one; `Ok(false)` when it is not. The same as
    /// [`Account::prepare_password_change`] and then [`PasswordChange::store`].
    pub fn change_password(
        conn: &mut DbConnection,
        id: AccountId,
        old_password: &str,
        new_password: &str,
        min_password_length: usize,
    ) -> Result<bool, DbError> {
        match Self::prepare_password_change(
            conn,
            id,
            old_password,
            new_password,
            min_password_length,
        )? {
            Some(change) => {
                change.store(conn)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Checks `old_password` and the rules for `new_password`, and hashes it:
    /// everything of a password change but the write. `None` when
    /// `old_password` is wrong.
    pub fn prepare_password_change(
        conn: &mut DbConnection,
        id: AccountId,
        old_password: &str,
        new_password: &str,
        min_password_length: usize,
    ) -> Result<Option<PasswordChange>, DbError> {
        let account = Self::find(conn, id)?.ok_or(DbError::AccountNotFound)?;
        if !account.verify_password(old_password)? {
            return Ok(None);
        }
        validate_password(&account.name, new_password, min_password_length)?;
        Ok(Some(PasswordChange {
            id,
            password_hash: hash_password(new_password)?,
        }))
    }

    /// How many accounts exist (0 means the first one becomes the superuser).
    pub fn count(conn: &mut DbConnection) -> Result<i64, DbError> {
        Ok(accounts::table.count().get_result(conn)?)
    }

    fn store_password(
        &self,
        conn: &mut DbConnection,
        new_password: &str,
        min_password_length: usize,
    ) -> Result<(), DbError> {
        validate_password(&self.name, new_password, min_password_length)?;
        PasswordChange {
            id: self.account_id(),
            password_hash: hash_password(new_password)?,
        }
        .store(conn)
    }
}

/// A new account whose rules are checked and whose password is hashed, ready
/// to be written; made by [`Account::prepare`]. It holds a hash, never the
/// password, and its `Debug` hides the hash.
pub struct PreparedAccount {
    name: String,
    name_key: String,
    password_hash: String,
    is_superuser: bool,
    created_at: i64,
}

impl fmt::Debug for PreparedAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PreparedAccount")
            .field("name", &self.name)
            .field("password_hash", &"<redacted>")
            .field("is_superuser", &self.is_superuser)
            .finish()
    }
}

impl PreparedAccount {
    /// Writes the account. The insert comes first, so the transaction holds
    /// the write lock from its start (a busy SQLite file is waited out by
    /// `busy_timeout` rather than failing halfway through). A name taken
    /// meanwhile is [`DbError::NameTaken`].
    pub fn insert(&self, conn: &mut DbConnection) -> Result<Account, DbError> {
        let new = NewAccount {
            name: &self.name,
            name_key: &self.name_key,
            password_hash: &self.password_hash,
            is_superuser: self.is_superuser,
            created_at: self.created_at,
        };
        conn.transaction(|conn| {
            diesel::insert_into(accounts::table)
                .values(&new)
                .execute(conn)
                .map_err(|e| match e {
                    DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
                        DbError::NameTaken
                    }
                    other => DbError::Query(other),
                })?;
            Ok(accounts::table
                .filter(accounts::name_key.eq(&self.name_key))
                .select(Account::as_select())
                .first(conn)?)
        })
    }
}

/// A new password hash for an account, ready to be written; made by
/// [`Account::prepare_password_change`]. Its `Debug` hides the hash.
pub struct PasswordChange {
    id: AccountId,
    password_hash: String,
}

impl fmt::Debug for PasswordChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordChange")
            .field("id", &self.id)
            .field("password_hash", &"<redacted>")
            .finish()
    }
}

impl PasswordChange {
    /// Writes the new hash; [`DbError::AccountNotFound`] if the account is gone.
    pub fn store(&self, conn: &mut DbConnection) -> Result<(), DbError> {
        let updated = diesel::update(accounts::table.find(self.id.0))
            .set(accounts::password_hash.eq(&self.password_hash))
            .execute(conn)?;
        if updated == 0 {
            return Err(DbError::AccountNotFound);
        }
        Ok(())
    }
}

/// The unique key for `name`: names are ASCII (see [`validate_name`]), so
/// ASCII lower-casing is the whole case folding and matches SQLite's `lower()`.
pub fn name_key(name: &str) -> String {
    name.to_ascii_lowercase()
}

/// Checks the account name rules: 3 to 30 characters, a letter first, then
/// letters, digits, `_`, `-` or `.`.
///
/// Letters are ASCII only: case folding is then unambiguous, and look-alike
/// letters from other scripts cannot impersonate an existing name. The
/// message never repeats the name, which may be a mistyped password.
pub fn validate_name(name: &str) -> Result<(), DbError> {
    let len = name.chars().count();
    if !(NAME_MIN_LEN..=NAME_MAX_LEN).contains(&len) {
        return Err(DbError::InvalidName(format!(
            "an account name must be {NAME_MIN_LEN} to {NAME_MAX_LEN} characters long"
        )));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Err(DbError::InvalidName(
            "an account name must start with a letter (a-z)".to_owned(),
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        return Err(DbError::InvalidName(
            "an account name may contain only letters (a-z), digits, '_', '-' and '.'".to_owned(),
        ));
    }
    Ok(())
}

/// Checks the password rules for account `name`: at least
/// `min_password_length` and at most [`PASSWORD_MAX_LEN`] characters, and
/// not the name itself in any letter case.
pub fn validate_password(
    name: &str,
    password: &str,
    min_password_length: usize,
) -> Result<(), DbError> {
    let len = password.chars().count();
    if len < min_password_length {
        return Err(DbError::WeakPassword(format!(
            "a password must be at least {min_password_length} characters long"
        )));
    }
    if len > PASSWORD_MAX_LEN {
        return Err(DbError::WeakPassword(format!(
            "a password must be at most {PASSWORD_MAX_LEN} characters long"
        )));
    }
    if password.to_lowercase() == name.to_lowercase() {
        return Err(DbError::WeakPassword(
            "a password must not be the account name".to_owned(),
        ));
    }
    Ok(())
}

/// Hashes with argon2id (`Argon2::default()`) and a fresh random salt.
fn hash_password(password: &str) -> Result<String, DbError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| DbError::Hash(e.to_string()))
}

/// `Ok(false)` for a wrong password; `Err` only when the stored hash itself
/// is unusable.
fn verify_hash(password: &str, hash: &str) -> Result<bool, DbError> {
    let parsed = PasswordHash::new(hash)
        .map_err(|e| DbError::Hash(format!("the stored password hash is malformed: {e}")))?;
    match Argon2::default().verify_password(password.as_bytes(), &parsed) {
        Ok(()) => Ok(true),
        Err(password_hash::Error::Password) => Ok(false),
        Err(e) => Err(DbError::Hash(e.to_string())),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::models::testing::databases;

    const MIN: usize = 8;

    #[test]
    fn create_then_authenticate() {
        for db in databases() {
            let pool = &db.pool;
            let conn = &mut pool.get().unwrap();
            let created =
                Account::create(conn, "Alice", "correct horse", false, MIN, 1_000).unwrap();
            assert_eq!(created.name, "Alice");
            assert_eq!(created.name_key, "alice");
            assert!(!created.is_superuser);
            assert_eq!(created.created_at, 1_000);
            assert_eq!(created.last_login_at, None);
            assert_eq!(created.account_id(), AccountId(created.id));

            let found = Account::authenticate(conn, "aLiCe", "correct horse", 2_000)
                .unwrap()
                .expect("right password logs in");
            assert_eq!(found.id, created.id);
            assert_eq!(found.last_login_at, Some(2_000));
            let reloaded = Account::find(conn, created.account_id()).unwrap().unwrap();
            assert_eq!(reloaded.last_login_at, Some(2_000));
            assert_eq!(Account::count(conn).unwrap(), 1);
        }
    }

    #[test]
    fn superuser_flag_is_stored() {
        for db in databases() {
            let pool = &db.pool;
            let conn = &mut pool.get().unwrap();
            let admin = Account::create(conn, "Admin", "correct horse", true, MIN, 0).unwrap();
            assert!(admin.is_superuser);
        }
    }

    #[test]
    fn wrong_password_and_unknown_name_both_give_none() {
        for db in databases() {
            let pool = &db.pool;
            let conn = &mut pool.get().unwrap();
            Account::create(conn, "Alice", "correct horse", false, MIN, 0).unwrap();
            assert!(Account::authenticate(conn, "Alice", "wrong horse", 1)
                .unwrap()
                .is_none());
            assert!(Account::authenticate(conn, "Bob", "correct horse", 1)
                .unwrap()
                .is_none());
            assert!(Account::authenticate(conn, "not a name!", "x", 1)
                .unwrap()
                .is_none());
            let alice = Account::find_by_name(conn, "alice").unwrap().unwrap();
            assert_eq!(alice.last_login_at, None, "a failed login is not a login");
        }
    }

    #[test]
    fn dummy_hash_costs_what_a_real_one_does() {
        let real_hash = hash_password("any password").unwrap();
        let real = PasswordHash::new(&real_hash).unwrap();
        let dummy = PasswordHash::new(DUMMY_HASH).unwrap();
        assert_eq!(dummy.algorithm, real.algorithm);
        assert_eq!(dummy.version, real.version);
        assert_eq!(
            argon2::Params::try_from(&dummy).unwrap(),
            argon2::Params::try_from(&real).unwrap()
        );
        assert!(!verify_hash("", DUMMY_HASH).unwrap());
    }

    #[test]
    fn name_in_another_case_is_taken() {
        for db in databases() {
            let pool = &db.pool;
            let conn = &mut pool.get().unwrap();
            Account::create(conn, "Alice", "correct horse", false, MIN, 0).unwrap();
            let err = Account::create(conn, "ALICE", "another horse", false, MIN, 0).unwrap_err();
            assert!(matches!(err, DbError::NameTaken), "{err:?}");
            assert_eq!(err.to_string(), "That name is already taken.");
            assert_eq!(Account::count(conn).unwrap(), 1);
        }
    }

    #[test]
    fn invalid_names_are_refused_with_the_rule() {
        for db in databases() {
            let pool = &db.pool;
            let conn = &mut pool.get().unwrap();
            let cases = [
                ("Al", "3 to 30 characters"),
                (&"a".repeat(31), "3 to 30 characters"),
                ("1alice", "start with a letter"),
                ("_alice", "start with a letter"),
                ("al ice", "only letters"),
                ("alicé", "only letters"),
                ("al;ce", "only letters"),
            ];
            for (name, rule) in cases {
                let err = Account::create(conn, name, "correct horse", false, MIN, 0).unwrap_err();
                assert!(matches!(err, DbError::InvalidName(_)), "{name}: {err:?}");
                let message = err.to_string();
                assert!(message.starts_with("invalid account name: "), "{message}");
                assert!(message.contains(rule), "{name}: {message}");
            }
            for name in ["Bob", "a.b-c_d9", &"z".repeat(30)] {
                validate_name(name).unwrap();
            }
            assert_eq!(Account::count(conn).unwrap(), 0);
        }
    }

    #[test]
    fn weak_passwords_are_refused_without_echoing_them() {
        for db in databases() {
            let pool = &db.pool;
            let conn = &mut pool.get().unwrap();
            let long = "x".repeat(PASSWORD_MAX_LEN + 1);
            let cases = [
                ("short", "at least 8 characters"),
                (long.as_str(), "at most 256 characters"),
                ("aLiCeSmItH", "must not be the account name"),
            ];
            for (password, rule) in cases {
                let err = Account::create(conn, "AliceSmith", password, false, MIN, 0).unwrap_err();
                assert!(matches!(err, DbError::WeakPassword(_)), "{err:?}");
                let message = err.to_string();
                assert!(message.starts_with("password refused: "), "{message}");
                assert!(message.contains(rule), "{message}");
                assert!(!message.contains(password), "{message}");
            }
            Account::create(
                conn,
                "AliceSmith",
                &"x".repeat(PASSWORD_MAX_LEN),
                false,
                MIN,
                0,
            )
            .unwrap();
        }
    }

    #[test]
    fn stored_hash_is_argon2id_and_hides_the_password() {
        for db in databases() {
            let pool = &db.pool;
            let conn = &mut pool.get().unwrap();
            let password = "correct horse";
            let account = Account::create(conn, "Alice", password, false, MIN, 0).unwrap();
            assert!(account.password_hash.starts_with("$argon2id$"));
            assert!(!account.password_hash.contains(password));
            let debug = format!("{account:?}");
            assert!(debug.contains("<redacted>"), "{debug}");
            assert!(!debug.contains(&account.password_hash), "{debug}");

            let other = Account::create(conn, "Bob", password, false, MIN, 0).unwrap();
            assert_ne!(other.password_hash, account.password_hash, "salts differ");
        }
    }

    #[test]
    fn set_password_replaces_the_old_one() {
        for db in databases() {
            let pool = &db.pool;
            let conn = &mut pool.get().unwrap();
            let account = Account::create(conn, "Alice", "correct horse", false, MIN, 0).unwrap();
            Account::set_password(conn, account.account_id(), "battery staple", MIN).unwrap();
            assert!(Account::authenticate(conn, "Alice", "correct horse", 1)
                .unwrap()
                .is_none());
            assert!(Account::authenticate(conn, "Alice", "battery staple", 1)
                .unwrap()
                .is_some());

            let err = Account::set_password(conn, account.account_id(), "alice", 3).unwrap_err();
            assert!(matches!(err, DbError::WeakPassword(_)), "{err:?}");
            let err =
                Account::set_password(conn, AccountId(999), "battery staple", MIN).unwrap_err();
            assert!(matches!(err, DbError::AccountNotFound), "{err:?}");
        }
    }

    #[test]
    fn change_password_needs_the_old_one() {
        for db in databases() {
            let pool = &db.pool;
            let conn = &mut pool.get().unwrap();
            let id = Account::create(conn, "Alice", "correct horse", false, MIN, 0)
                .unwrap()
                .account_id();
            assert!(
                !Account::change_password(conn, id, "wrong horse", "battery staple", MIN).unwrap()
            );
            assert!(
                Account::change_password(conn, id, "correct horse", "battery staple", MIN).unwrap()
            );
            assert!(Account::authenticate(conn, "alice", "battery staple", 1)
                .unwrap()
                .is_some());
        }
    }

    #[test]
    fn the_table_refuses_rows_that_break_its_invariants() {
        for db in databases() {
            let pool = &db.pool;
            let conn = &mut pool.get().unwrap();
            let plaintext = NewAccount {
                name: "Alice",
                name_key: "alice",
                password_hash: "correct horse",
                is_superuser: false,
                created_at: 0,
            };
            let mismatched_key = NewAccount {
                name: "Alice",
                name_key: "bob",
                password_hash: DUMMY_HASH,
                is_superuser: false,
                created_at: 0,
            };
            for row in [plaintext, mismatched_key] {
                let err = diesel::insert_into(accounts::table)
                    .values(&row)
                    .execute(conn)
                    .unwrap_err();
                assert!(
                    matches!(
                        err,
                        DieselError::DatabaseError(DatabaseErrorKind::CheckViolation, _)
                    ),
                    "{row:?}: {err:?}"
                );
            }
        }
    }
}
