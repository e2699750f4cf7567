//! The `characters` table: the [`Character`] read model, the
//! [`NewCharacter`] insert model, the character name rule, and the queries
//! (create within the account's limit, list, delete, move, mark puppeted).
//!
//! Everything here blocks (SQLite I/O), so it runs on the `DbExecutor`'s
//! SyncArbiter, never on an async arbiter. Ownership is checked here, in the
//! query itself: an account can delete only its own characters.

use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};

use super::account::{name_key, validate_name};
use super::schema::{accounts, characters, rooms};
use super::{DbConnection, DbError};
use crate::session::{AccountId, CharacterId, RoomId};

/// One row of `characters`.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = characters, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct Character {
    pub id: i32,
    /// The owning account.
    pub account_id: i32,
    /// The name as the player typed it when creating the character.
    pub name: String,
    /// `name` lower-cased: what uniqueness and look-ups use.
    pub name_key: String,
    pub description: String,
    /// The room the character is in, also while nobody plays it.
    pub location_id: i32,
    /// The account that last played the character: usually the owner, but
    /// a superuser may play another account's character. `None` before the
    /// first time, or once that account has been deleted.
    pub last_puppeted_by: Option<i32>,
    /// Unix milliseconds, `None` before the first time.
    pub last_puppeted_at: Option<i64>,
    /// Unix milliseconds.
    pub created_at: i64,
}

/// A row to insert into `characters`.
///
/// Its fields are private: only [`Character::create`] builds one, after it
/// has validated the name and derived the key.
#[derive(Debug, Insertable)]
#[diesel(table_name = characters)]
pub struct NewCharacter<'a> {
    account_id: i32,
    name: &'a str,
    name_key: &'a str,
    description: &'a str,
    location_id: i32,
    created_at: i64,
}

impl Character {
    /// The typed id the rest of the crate uses for this character.
    pub fn character_id(&self) -> CharacterId {
        CharacterId(self.id)
    }

    /// The typed id of the owning account.
    pub fn account(&self) -> AccountId {
        AccountId(self.account_id)
    }

    /// The typed id of the room the character is in.
    pub fn location(&self) -> RoomId {
        RoomId(self.location_id)
    }

    /// Creates a character for `account` in room `location`.
    ///
    /// `max_characters` is the most characters one account may have; 0
    /// means no limit. The count and the insert share one transaction that
    /// first locks the account, so two creations racing for the last free slot
    /// cannot both succeed. Character names are unique across all accounts in any
    /// letter case: a clash is [`DbError::NameTaken`].
    pub fn create(
        conn: &mut DbConnection,
        account: AccountId,
        name: &str,
        description: &str,
        location: RoomId,
        max_characters: u32,
        now_millis: i64,
    ) -> Result<Character, DbError> {
        validate_character_name(name)?;
        let key = name_key(name);
        let new = NewCharacter {
            account_id: account.0,
            name,
            name_key: &key,
            description,
            location_id: location.0,
            created_at: now_millis,
        };
        // The first statement writes the account's row (to itself): on SQLite
        // that takes the write lock before the count, on PostgreSQL it locks
        // the row, so two creations for one account take turns and the count
        // still holds when the row goes in.
        conn.transaction(|conn| {
            let locked = diesel::update(accounts::table.find(account.0))
                .set(accounts::id.eq(accounts::id))
                .execute(conn)?;
            if locked == 0 {
                return Err(DbError::AccountNotFound);
            }
            if max_characters > 0 {
                let owned: i64 = characters::table
                    .filter(characters::account_id.eq(account.0))
                    .count()
                    .get_result(conn)?;
                if owned >= i64::from(max_characters) {
                    return Err(DbError::CharacterLimit(max_characters));
                }
            }
            diesel::insert_into(characters::table)
                .values(&new)
                .execute(conn)
                .map_err(|e| match e {
                    DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
                        DbError::NameTaken
                    }
                    // The account was checked above, so the missing row is
                    // the room.
                    DieselError::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, _) => {
                        DbError::RoomNotFound
                    }
                    other => DbError::Query(other),
                })?;
            Ok(characters::table
                .filter(characters::name_key.eq(&key))
                .select(Character::as_select())
                .first(conn)?)
        })
    }

    /// The character with this id, if any.
    pub fn find(
        conn: &mut DbConnection,
        character: CharacterId,
    ) -> Result<Option<Character>, DbError> {
        Ok(characters::table
            .find(character.0)
            .select(Character::as_select())
            .first(conn)
            .optional()?)
    }

    /// The characters `account` owns, oldest first.
    pub fn list_for_account(
        conn: &mut DbConnection,
        account: AccountId,
    ) -> Result<Vec<Character>, DbError> {
        Ok(characters::table
            .filter(characters::account_id.eq(account.0))
            .order(characters::id)
            .select(Character::as_select())
            .load(conn)?)
    }

    /// Deletes `character` if `account` owns it. `Ok(false)` when it does
    /// not, or when there is no such character: the caller learns nothing
    /// about other accounts' characters either way.
    pub fn delete(
        conn: &mut DbConnection,
        account: AccountId,
        character: CharacterId,
    ) -> Result<bool, DbError> {
        let deleted = diesel::delete(
            characters::table
                .filter(characters::id.eq(character.0))
                .filter(characters::account_id.eq(account.0)),
        )
        .execute(conn)?;
        Ok(deleted > 0)
    }

    /// Moves `character` to `room`.
    pub fn set_location(
        conn: &mut DbConnection,
        character: CharacterId,
        room: RoomId,
    ) -> Result<(), DbError> {
        let updated = diesel::update(characters::table.find(character.0))
            .set(characters::location_id.eq(room.0))
            .execute(conn)
            .map_err(|e| match e {
                DieselError::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, _) => {
                    DbError::RoomNotFound
                }
                other => DbError::Query(other),
            })?;
        if updated == 0 {
            return Err(DbError::CharacterNotFound);
        }
        Ok(())
    }

    /// Records that `account` started playing `character` at `now_millis`.
    ///
    /// Ownership is not checked: whether `account` may play the character
    /// (its owner, or a superuser) is the caller's decision.
    pub fn mark_puppeted(
        conn: &mut DbConnection,
        character: CharacterId,
        account: AccountId,
        now_millis: i64,
    ) -> Result<(), DbError> {
        let updated = diesel::update(characters::table.find(character.0))
            .set((
                characters::last_puppeted_by.eq(Some(account.0)),
                characters::last_puppeted_at.eq(Some(now_millis)),
            ))
            .execute(conn)
            .map_err(|e| match e {
                DieselError::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, _) => {
                    DbError::AccountNotFound
                }
                other => DbError::Query(other),
            })?;
        if updated == 0 {
            return Err(DbError::CharacterNotFound);
        }
        Ok(())
    }

    /// Writes many characters' newest state in one transaction: one commit
    /// (one sync to disk) for all of them, however many moved. Answers how
    /// many rows were written.
    ///
    /// A character deleted meanwhile, a room or an account that no longer
    /// exists, leaves its row as it is instead of failing the batch: the
    /// guards are in the statements, so the rest of the batch still commits.
    pub fn save_all(conn: &mut DbConnection, saves: &[CharacterSave]) -> Result<usize, DbError> {
        conn.transaction(|conn| {
            let mut written = 0;
            for save in saves {
                let id = save.character.0;
                if let Some(room) = save.location {
                    written += diesel::update(
                        characters::table
                            .filter(characters::id.eq(id))
                            .filter(diesel::dsl::exists(rooms::table.find(room.0))),
                    )
                    .set(characters::location_id.eq(room.0))
                    .execute(conn)?;
                }
                if let Some((account, at)) = save.puppeted {
                    written += diesel::update(
                        characters::table
                            .filter(characters::id.eq(id))
                            .filter(diesel::dsl::exists(accounts::table.find(account.0))),
                    )
                    .set((
                        characters::last_puppeted_by.eq(Some(account.0)),
                        characters::last_puppeted_at.eq(Some(at)),
                    ))
                    .execute(conn)?;
                }
            }
            Ok(written)
        })
    }
}

/// What the game knows of a character and the database does not have yet:
/// its newest room, and who last started playing it (the account and unix
/// milliseconds). Written by [`Character::save_all`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CharacterSave {
    pub character: CharacterId,
    /// The room it stands in now; `None`: unchanged.
    pub location: Option<RoomId>,
    /// The account that last started playing it, and when (unix
    /// milliseconds); `None`: unchanged.
    pub puppeted: Option<(AccountId, i64)>,
}

/// Checks a character name: the account name rules (see
/// [`validate_name`]), with the message naming a character.
pub fn validate_character_name(name: &str) -> Result<(), DbError> {
    validate_name(name).map_err(|e| match e {
        DbError::InvalidName(why) => {
            DbError::InvalidName(why.replacen("an account name", "a character name", 1))
        }
        other => other,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::models::account::Account;
    use crate::models::testing::databases;
    use crate::models::world::LIMBO;

    const NO_LIMIT: u32 = 0;

    fn account(conn: &mut DbConnection, name: &str) -> AccountId {
        Account::create(conn, name, "correct horse", false, 8, 0)
            .unwrap()
            .account_id()
    }

    fn create(
        conn: &mut DbConnection,
        owner: AccountId,
        name: &str,
        max: u32,
    ) -> Result<Character, DbError> {
        Character::create(conn, owner, name, "A plain figure.", LIMBO, max, 1_000)
    }

    #[test]
    fn create_then_find_and_list() {
        for db in databases() {
            let pool = &db.pool;
            let conn = &mut pool.get().unwrap();
            let alice = account(conn, "Alice");
            let created = create(conn, alice, "Ariadne", NO_LIMIT).unwrap();
            assert_eq!(created.name, "Ariadne");
            assert_eq!(created.name_key, "ariadne");
            assert_eq!(created.description, "A plain figure.");
            assert_eq!(created.account(), alice);
            assert_eq!(created.location(), LIMBO);
            assert_eq!(created.last_puppeted_by, None);
            assert_eq!(created.last_puppeted_at, None);
            assert_eq!(created.created_at, 1_000);
            assert_eq!(created.character_id(), CharacterId(created.id));

            let second = create(conn, alice, "Theseus", NO_LIMIT).unwrap();
            let listed = Character::list_for_account(conn, alice).unwrap();
            assert_eq!(listed, [created.clone(), second]);
            assert_eq!(
                Character::find(conn, created.character_id()).unwrap(),
                Some(created)
            );
            assert_eq!(Character::find(conn, CharacterId(999)).unwrap(), None);
        }
    }

    #[test]
    fn the_limit_counts_only_the_accounts_own_characters() {
        for db in databases() {
            let pool = &db.pool;
            let conn = &mut pool.get().unwrap();
            let alice = account(conn, "Alice");
            let bob = account(conn, "Bob");
            create(conn, alice, "Ariadne", 2).unwrap();
            create(conn, alice, "Theseus", 2).unwrap();
            let err = create(conn, alice, "Minos", 2).unwrap_err();
            assert!(matches!(err, DbError::CharacterLimit(2)), "{err:?}");
            assert_eq!(
                err.to_string(),
                "You may only have a maximum of 2 character(s)."
            );
            assert_eq!(Character::list_for_account(conn, alice).unwrap().len(), 2);

            create(conn, bob, "Minos", 2).unwrap();
            for name in ["Daedalus", "Icarus", "Pasiphae"] {
                create(conn, alice, name, NO_LIMIT).unwrap();
            }
        }
    }

    #[test]
    fn a_name_taken_by_another_account_in_any_case_is_refused() {
        for db in databases() {
            let pool = &db.pool;
            let conn = &mut pool.get().unwrap();
            let alice = account(conn, "Alice");
            let bob = account(conn, "Bob");
            create(conn, alice, "Ariadne", NO_LIMIT).unwrap();
            let err = create(conn, bob, "ARIADNE", NO_LIMIT).unwrap_err();
            assert!(matches!(err, DbError::NameTaken), "{err:?}");
            assert_eq!(err.to_string(), "That name is already taken.");
            assert!(Character::list_for_account(conn, bob).unwrap().is_empty());
        }
    }

    #[test]
    fn invalid_names_are_refused_as_character_names() {
        for db in databases() {
            let pool = &db.pool;
            let conn = &mut pool.get().unwrap();
            let alice = account(conn, "Alice");
            for name in ["Al", "9lives", "Ari adne", "Ariädne", &"a".repeat(31)] {
                let err = create(conn, alice, name, NO_LIMIT).unwrap_err();
                let DbError::InvalidName(why) = &err else {
                    panic!("{name}: {err:?}");
                };
                assert!(why.contains("a character name"), "{why}");
                assert!(!why.contains("account"), "{why}");
                assert!(!why.contains(name), "the message never echoes the name");
            }
            assert!(Character::list_for_account(conn, alice).unwrap().is_empty());
        }
    }

    #[test]
    fn unknown_account_or_room_is_refused() {
        for db in databases() {
            let pool = &db.pool;
            let conn = &mut pool.get().unwrap();
            let err = create(conn, AccountId(999), "Ariadne", NO_LIMIT).unwrap_err();
            assert!(matches!(err, DbError::AccountNotFound), "{err:?}");
            let alice = account(conn, "Alice");
            let err = Character::create(conn, alice, "Ariadne", "", RoomId(999), NO_LIMIT, 0)
                .unwrap_err();
            assert!(matches!(err, DbError::RoomNotFound), "{err:?}");
        }
    }

    #[test]
    fn delete_only_by_the_owner() {
        for db in databases() {
            let pool = &db.pool;
            let conn = &mut pool.get().unwrap();
            let alice = account(conn, "Alice");
            let bob = account(conn, "Bob");
            let ariadne = create(conn, alice, "Ariadne", NO_LIMIT)
                .unwrap()
                .character_id();
            assert!(!Character::delete(conn, bob, ariadne).unwrap());
            assert!(Character::find(conn, ariadne).unwrap().is_some());
            assert!(Character::delete(conn, alice, ariadne).unwrap());
            assert!(Character::find(conn, ariadne).unwrap().is_none());
            assert!(!Character::delete(conn, alice, ariadne).unwrap());
            // The name is free again.
            create(conn, bob, "ariadne", NO_LIMIT).unwrap();
        }
    }

    #[test]
    fn set_location_moves_the_character() {
        for db in databases() {
            let pool = &db.pool;
            let conn = &mut pool.get().unwrap();
            let alice = account(conn, "Alice");
            let id = create(conn, alice, "Ariadne", NO_LIMIT)
                .unwrap()
                .character_id();
            Character::set_location(conn, id, RoomId(3)).unwrap();
            let moved = Character::find(conn, id).unwrap().unwrap();
            assert_eq!(moved.location(), RoomId(3));

            let err = Character::set_location(conn, id, RoomId(999)).unwrap_err();
            assert!(matches!(err, DbError::RoomNotFound), "{err:?}");
            let err = Character::set_location(conn, CharacterId(999), LIMBO).unwrap_err();
            assert!(matches!(err, DbError::CharacterNotFound), "{err:?}");
            let unmoved = Character::find(conn, id).unwrap().unwrap();
            assert_eq!(unmoved.location(), RoomId(3));
        }
    }

    #[test]
    fn save_all_writes_every_row_in_one_go_and_skips_what_is_gone() {
        for db in databases() {
            let pool = &db.pool;
            let conn = &mut pool.get().unwrap();
            let alice = account(conn, "Alice");
            let ann = create(conn, alice, "Ann", NO_LIMIT).unwrap().character_id();
            let bob = create(conn, alice, "Bob", NO_LIMIT).unwrap().character_id();
            let saves = [
                CharacterSave {
                    character: ann,
                    location: Some(RoomId(3)),
                    puppeted: Some((alice, 7_000)),
                },
                CharacterSave {
                    character: bob,
                    location: Some(RoomId(2)),
                    puppeted: None,
                },
                // Gone since: a deleted character, a room that is no more.
                CharacterSave {
                    character: CharacterId(999),
                    location: Some(LIMBO),
                    puppeted: None,
                },
                CharacterSave {
                    character: bob,
                    location: Some(RoomId(999)),
                    puppeted: Some((AccountId(999), 1)),
                },
            ];
            assert_eq!(
                Character::save_all(conn, &saves).unwrap(),
                3,
                "{}",
                db.backend
            );
            let ann_now = Character::find(conn, ann).unwrap().unwrap();
            assert_eq!(ann_now.location(), RoomId(3));
            assert_eq!(ann_now.last_puppeted_by, Some(alice.0));
            assert_eq!(ann_now.last_puppeted_at, Some(7_000));
            let bob_now = Character::find(conn, bob).unwrap().unwrap();
            assert_eq!(bob_now.location(), RoomId(2));
            assert_eq!(bob_now.last_puppeted_by, None);
            assert_eq!(Character::save_all(conn, &[]).unwrap(), 0);
        }
    }

    #[test]
    fn mark_puppeted_records_who_and_when() {
        for db in databases() {
            let pool = &db.pool;
            let conn = &mut pool.get().unwrap();
            let alice = account(conn, "Alice");
            let admin = account(conn, "Admin");
            let id = create(conn, alice, "Ariadne", NO_LIMIT)
                .unwrap()
                .character_id();
            Character::mark_puppeted(conn, id, alice, 5_000).unwrap();
            let played = Character::find(conn, id).unwrap().unwrap();
            assert_eq!(played.last_puppeted_by, Some(alice.0));
            assert_eq!(played.last_puppeted_at, Some(5_000));

            Character::mark_puppeted(conn, id, admin, 6_000).unwrap();
            let err = Character::mark_puppeted(conn, CharacterId(999), alice, 7_000).unwrap_err();
            assert!(matches!(err, DbError::CharacterNotFound), "{err:?}");
            let err = Character::mark_puppeted(conn, id, AccountId(999), 7_000).unwrap_err();
            assert!(matches!(err, DbError::AccountNotFound), "{err:?}");

            // Deleting the account that last played it forgets who, not when.
            diesel::delete(accounts::table.find(admin.0))
                .execute(conn)
                .unwrap();
            let after = Character::find(conn, id).unwrap().unwrap();
            assert_eq!(after.last_puppeted_by, None);
            assert_eq!(after.last_puppeted_at, Some(6_000));
        }
    }

    #[test]
    fn deleting_an_account_deletes_its_characters() {
        for db in databases() {
            let pool = &db.pool;
            let conn = &mut pool.get().unwrap();
            let alice = account(conn, "Alice");
            let bob = account(conn, "Bob");
            create(conn, alice, "Ariadne", NO_LIMIT).unwrap();
            create(conn, alice, "Theseus", NO_LIMIT).unwrap();
            let minos = create(conn, bob, "Minos", NO_LIMIT).unwrap();
            diesel::delete(accounts::table.find(alice.0))
                .execute(conn)
                .unwrap();
            assert!(Character::list_for_account(conn, alice).unwrap().is_empty());
            assert_eq!(Character::list_for_account(conn, bob).unwrap(), [minos]);
            let left: i64 = characters::table.count().get_result(conn).unwrap();
            assert_eq!(left, 1);
        }
    }

    #[test]
    fn the_table_refuses_a_mismatched_name_key() {
        for db in databases() {
            let pool = &db.pool;
            let conn = &mut pool.get().unwrap();
            let alice = account(conn, "Alice");
            let row = NewCharacter {
                account_id: alice.0,
                name: "Ariadne",
                name_key: "theseus",
                description: "",
                location_id: LIMBO.0,
                created_at: 0,
            };
            let err = diesel::insert_into(characters::table)
                .values(&row)
                .execute(conn)
                .unwrap_err();
            assert!(
                matches!(
                    err,
                    DieselError::DatabaseError(DatabaseErrorKind::CheckViolation, _)
                ),
                "{err:?}"
            );
        }
    }
}
