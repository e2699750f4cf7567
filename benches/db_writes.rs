//! Criterion benchmarks of the database's write path, on every backend this run can
//! reach: SQLite in a temp dir always, and PostgreSQL when
//! `GATEHOUSE_TEST_POSTGRES_URL` names a server (a database is made for the run and
//! dropped after).
//!
//! - `db_writes/<backend>/one_move`: [`Character::save_all`] of one character's new
//!   room, on the writers' pool: one transaction, one commit (on SQLite one sync to
//!   disk, `synchronous = FULL`). Its rate is how many separate writes a second the
//!   backend sustains.
//! - `db_writes/<backend>/batch_of_50` and `batch_of_1000`: the same for 50 or 1000
//!   characters in one transaction, as the World saves them; the throughput is rows
//!   per second.
//!
//! Run with `GATEHOUSE_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres
//! cargo bench --bench db_writes`. Reports land in `target/criterion/`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};

use gatehouse::models::account::Account;
use gatehouse::models::character::{Character, CharacterSave};
use gatehouse::models::world::LIMBO;
use gatehouse::models::{open_pool, open_write_pool, run_migrations, DbPool};
use gatehouse::session::{CharacterId, RoomId};
use gatehouse::settings::DatabaseTarget;

/// Characters made for the run; the batches move the first 50 or all of them.
const CHARACTERS: usize = 1000;

/// A backend ready to write to, and what keeps it alive.
struct Backend {
    name: &'static str,
    writer: DbPool,
    characters: Vec<CharacterId>,
    _dir: Option<tempfile::TempDir>,
    drop_database: Option<(String, String)>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        if let Some((admin, name)) = &self.drop_database {
            if let Ok(mut conn) = PgConnection::establish(admin) {
                let _ = conn.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
            }
        }
    }
}

fn prepare(name: &'static str, target: DatabaseTarget) -> (DbPool, Vec<CharacterId>) {
    let pool = open_pool(&target, 2).unwrap();
    run_migrations(&pool).unwrap();
    let writer = open_write_pool(&target, &pool, Duration::from_secs(10)).unwrap();
    let mut conn = writer.get().unwrap();
    let account = Account::create(&mut conn, "Bencher", "correct horse", false, 8, 0)
        .unwrap()
        .account_id();
    let characters = (0..CHARACTERS)
        .map(|n| {
            Character::create(&mut conn, account, &format!("Walker{n}"), "", LIMBO, 0, 0)
                .unwrap()
                .character_id()
        })
        .collect();
    drop(conn);
    eprintln!("{name}: {CHARACTERS} characters ready");
    (writer, characters)
}

fn backends() -> Vec<Backend> {
    let dir = tempfile::tempdir().unwrap();
    let (writer, characters) = prepare(
        "sqlite",
        DatabaseTarget::Sqlite(dir.path().join("gatehouse.db")),
    );
    let mut all = vec![Backend {
        name: "sqlite",
        writer,
        characters,
        _dir: Some(dir),
        drop_database: None,
    }];
    if let Ok(admin) = std::env::var("GATEHOUSE_TEST_POSTGRES_URL") {
        let admin = admin.trim().to_owned();
        if !admin.is_empty() {
            let name = format!("gatehouse_bench_{}", std::process::id());
            let mut conn = PgConnection::establish(&admin).unwrap();
            conn.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .unwrap();
            conn.batch_execute(&format!("CREATE DATABASE {name}"))
                .unwrap();
            let base = admin.split('?').next().unwrap_or(&admin);
            let server = base.rsplit_once('/').map_or(base, |(server, _)| server);
            let (writer, characters) = prepare(
                "postgres",
                DatabaseTarget::Postgres(format!("{server}/{name}")),
            );
            all.push(Backend {
                name: "postgres",
                writer,
                characters,
                _dir: None,
                drop_database: Some((admin.clone(), name)),
            });
        }
    }
    all
}

/// Moves for `characters`, to a room that changes with `round`.
fn moves(characters: &[CharacterId], round: usize) -> Vec<CharacterSave> {
    characters
        .iter()
        .enumerate()
        .map(|(n, &character)| CharacterSave {
            character,
            location: Some(RoomId(1 + ((n + round) % 3) as i32)),
            puppeted: None,
        })
        .collect()
}

fn db_writes(c: &mut Criterion) {
    for backend in backends() {
        let mut group = c.benchmark_group(format!("db_writes/{}", backend.name));
        group.sample_size(20);
        group.measurement_time(Duration::from_secs(8));
        for (label, count) in [
            ("one_move", 1),
            ("batch_of_50", 50),
            ("batch_of_1000", 1000),
        ] {
            let characters = &backend.characters[..count];
            group.throughput(Throughput::Elements(count as u64));
            let mut round = 0;
            group.bench_function(label, |b| {
                b.iter(|| {
                    round += 1;
                    let mut conn = backend.writer.get().unwrap();
                    let written =
                        Character::save_all(&mut conn, &moves(characters, round)).unwrap();
                    assert_eq!(written, count);
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, db_writes);
criterion_main!(benches);
