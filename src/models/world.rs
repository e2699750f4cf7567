//! The `rooms` and `exits` tables: the [`Room`] and [`Exit`] read models and
//! [`load_world`], which reads the whole map at once.
//!
//! The map is small and changes only through migrations, so the Server loads
//! it whole at start-up and keeps it in memory; nothing here writes to it.
//! Like the rest of `models`, everything here blocks and runs on the
//! `DbExecutor`'s SyncArbiter or at start-up, never on an async arbiter.

use diesel::prelude::*;

use super::schema::{exits, rooms};
use super::{DbConnection, DbError};
use crate::session::RoomId;

/// The room every new character starts in, seeded by the
/// `create_world` migration with this fixed id.
pub const LIMBO: RoomId = RoomId(1);

/// One row of `rooms`.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = rooms, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct Room {
    pub id: i32,
    pub name: String,
    /// Shown by `look`; may span several lines.
    pub description: String,
}

impl Room {
    /// The typed id the rest of the crate uses for this room.
    pub fn room_id(&self) -> RoomId {
        RoomId(self.id)
    }
}

/// One row of `exits`: a one-way link from `room_id` to `destination_id`.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = exits, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct Exit {
    pub id: i32,
    /// The room the exit leaves from.
    pub room_id: i32,
    /// What a player types to use the exit, lower-cased (`north`).
    pub name: String,
    /// Other words for the exit as stored: comma-separated and lower-cased
    /// (`u,tower`), empty when there are none. [`Exit::alias_list`] splits it.
    pub aliases: String,
    pub destination_id: i32,
}

impl Exit {
    /// The typed id of the room the exit leaves from.
    pub fn room(&self) -> RoomId {
        RoomId(self.room_id)
    }

    /// The typed id of the room the exit leads to.
    pub fn destination(&self) -> RoomId {
        RoomId(self.destination_id)
    }

    /// The aliases one by one, trimmed, lower-cased, without empty entries.
    pub fn alias_list(&self) -> Vec<String> {
        self.aliases
            .split(',')
            .map(str::trim)
            .filter(|alias| !alias.is_empty())
            .map(str::to_ascii_lowercase)
            .collect()
    }
}

/// Every room and every exit, each ordered by id.
///
/// Both reads run in one transaction, so they see the same snapshot even
/// while another connection writes.
pub fn load_world(conn: &mut DbConnection) -> Result<(Vec<Room>, Vec<Exit>), DbError> {
    conn.transaction(|conn| {
        let rooms = rooms::table
            .order(rooms::id)
            .select(Room::as_select())
            .load(conn)?;
        let exits = exits::table
            .order(exits::id)
            .select(Exit::as_select())
            .load(conn)?;
        Ok((rooms, exits))
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::collections::{BTreeSet, HashSet};

    use super::*;
    use crate::models::testing::databases;

    /// The seeded world, loaded from every backend: they must agree.
    fn seeded_world() -> (Vec<Room>, Vec<Exit>) {
        let worlds: Vec<_> = databases()
            .iter()
            .map(|db| load_world(&mut db.pool.get().unwrap()).unwrap())
            .collect();
        for (other, db) in worlds[1..].iter().zip(databases().iter().skip(1)) {
            assert_eq!(other, &worlds[0], "{} seeds another world", db.backend);
        }
        worlds.into_iter().next().unwrap()
    }

    /// The rooms reachable from `start` following `edges` (from, to).
    fn reachable(start: RoomId, edges: &[(RoomId, RoomId)]) -> BTreeSet<RoomId> {
        let mut seen = BTreeSet::from([start]);
        let mut todo = vec![start];
        while let Some(room) = todo.pop() {
            for &(from, to) in edges {
                if from == room && seen.insert(to) {
                    todo.push(to);
                }
            }
        }
        seen
    }

    #[test]
    fn the_seeded_world_loads() {
        let (rooms, exits) = seeded_world();
        let names: Vec<&str> = rooms.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names[..3],
            ["Limbo", "The Gatehouse Courtyard", "The Watchtower"]
        );
        // The town beyond the gate.
        assert_eq!(names.len(), 17);
        assert_eq!(names[3], "The Gate Road");
        assert_eq!(rooms[0].room_id(), LIMBO);
        assert!(rooms.iter().all(|r| !r.description.trim().is_empty()));

        let by_name: Vec<(RoomId, &str, Vec<String>, RoomId)> = exits
            .iter()
            .map(|e| (e.room(), e.name.as_str(), e.alias_list(), e.destination()))
            .collect();
        let s = |words: &[&str]| words.iter().map(|w| (*w).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            by_name[..5],
            [
                (LIMBO, "north", s(&["n"]), RoomId(2)),
                (RoomId(2), "south", s(&["s"]), LIMBO),
                (RoomId(2), "up", s(&["u", "tower"]), RoomId(3)),
                (RoomId(3), "down", s(&["d"]), RoomId(2)),
                (RoomId(2), "east", s(&["e", "gate"]), RoomId(4)),
            ]
        );
        // Every passage in the town is two-way.
        for &(from, _, _, to) in &by_name {
            assert!(
                by_name.iter().any(|&(f, _, _, t)| f == to && t == from),
                "no way back from {to:?} to {from:?}"
            );
        }
    }

    #[test]
    fn every_exit_joins_two_existing_rooms() {
        let (rooms, exits) = seeded_world();
        let ids: HashSet<RoomId> = rooms.iter().map(Room::room_id).collect();
        for exit in &exits {
            assert!(ids.contains(&exit.room()), "{exit:?}");
            assert!(ids.contains(&exit.destination()), "{exit:?}");
        }
    }

    #[test]
    fn every_room_is_reachable_from_limbo_and_back() {
        let (rooms, exits) = seeded_world();
        let all: BTreeSet<RoomId> = rooms.iter().map(Room::room_id).collect();
        let forward: Vec<(RoomId, RoomId)> =
            exits.iter().map(|e| (e.room(), e.destination())).collect();
        let backward: Vec<(RoomId, RoomId)> =
            exits.iter().map(|e| (e.destination(), e.room())).collect();
        assert_eq!(reachable(LIMBO, &forward), all, "reachable from Limbo");
        assert_eq!(reachable(LIMBO, &backward), all, "Limbo reachable from");
    }

    #[test]
    fn no_two_exits_of_a_room_share_a_word() {
        let (_, exits) = seeded_world();
        let mut words = HashSet::new();
        for exit in &exits {
            for word in std::iter::once(exit.name.clone()).chain(exit.alias_list()) {
                assert!(words.insert((exit.room(), word.clone())), "{word} twice");
            }
        }
    }

    #[test]
    fn alias_list_skips_blanks_and_folds_case() {
        let exit = Exit {
            id: 1,
            room_id: 1,
            name: "up".to_owned(),
            aliases: " U, ,tower,".to_owned(),
            destination_id: 2,
        };
        assert_eq!(exit.alias_list(), ["u", "tower"]);
        let bare = Exit {
            aliases: String::new(),
            ..exit
        };
        assert!(bare.alias_list().is_empty());
    }

    #[test]
    fn the_table_refuses_exits_to_nowhere_and_upper_case_words() {
        for db in databases() {
            let pool = &db.pool;
            let conn = &mut pool.get().unwrap();
            let nowhere = diesel::insert_into(exits::table)
                .values((
                    exits::room_id.eq(1),
                    exits::name.eq("west"),
                    exits::destination_id.eq(99),
                ))
                .execute(conn);
            assert!(nowhere.is_err(), "{nowhere:?}");
            let shouting = diesel::insert_into(exits::table)
                .values((
                    exits::room_id.eq(1),
                    exits::name.eq("West"),
                    exits::destination_id.eq(2),
                ))
                .execute(conn);
            assert!(shouting.is_err(), "{shouting:?}");
        }
    }
}
