-- The PostgreSQL twin of migrations/sqlite/2026-11-27-000002_create_world.
-- The world: rooms, the exits between them, and the player characters that
-- stand in them. Seeded with a three-room starting area whose ids are fixed,
-- since the code names Limbo (room 1) as the place new characters begin.

CREATE TABLE rooms (
    id SERIAL PRIMARY KEY,
    name TEXT NOT NULL CHECK (name <> ''),
    -- Shown by `look`; may span several lines.
    description TEXT NOT NULL
);

-- One-way links: a two-way passage is two rows, one from each side.
CREATE TABLE exits (
    id SERIAL PRIMARY KEY,
    -- The room the exit leaves from.
    room_id INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    -- What the player types to go through it, lower-cased ("north").
    name TEXT NOT NULL CHECK (name <> '' AND name = lower(name)),
    -- Other words for the same exit, comma-separated and lower-cased
    -- ("n" or "u,tower"); empty when there are none.
    aliases TEXT NOT NULL DEFAULT '' CHECK (aliases = lower(aliases)),
    destination_id INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    UNIQUE (room_id, name)
);

-- Player characters, each owned by one account.
CREATE TABLE characters (
    id SERIAL PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    -- The name as the player typed it when creating the character.
    name TEXT NOT NULL,
    -- The name lower-cased: unique across all accounts, so "Bob" and "bob"
    -- are one character. Names are ASCII, as account names are.
    name_key TEXT NOT NULL UNIQUE CHECK (name_key = lower(name)),
    description TEXT NOT NULL,
    -- No cascade: a room with characters in it cannot be deleted until they
    -- have been moved out.
    location_id INTEGER NOT NULL REFERENCES rooms(id),
    -- The account that last played the character (a superuser may play
    -- another account's character); NULL before the first time or once that
    -- account is gone.
    last_puppeted_by INTEGER NULL REFERENCES accounts(id) ON DELETE SET NULL,
    -- Unix milliseconds; NULL before the first time.
    last_puppeted_at BIGINT NULL,
    -- Unix milliseconds.
    created_at BIGINT NOT NULL
);

CREATE INDEX characters_account_id ON characters (account_id);

INSERT INTO rooms (id, name, description) VALUES
    (1, 'Limbo',
     'A grey, featureless void stretches away on every side. There is no ground '
     || 'underfoot and no sky overhead, only a soft light with no source and a '
     || 'hush that swallows every sound. This is where the newly arrived wait '
     || 'before they are anywhere at all. To the north, the grey thins into the '
     || 'outline of a stone archway.'),
    (2, 'The Gatehouse Courtyard',
     'Worn flagstones pave a square courtyard hemmed in by high granite walls, '
     || 'moss thick in the cracks between them. The great gate in the east wall '
     || 'is barred, its portcullis down. A narrow stair climbs the inside of the '
     || 'watchtower in the north corner, and to the south a stone archway opens '
     || 'onto a shifting grey nothing.'),
    (3, 'The Watchtower',
     'A platform of weathered timber crowns the tower, ringed by a waist-high '
     || 'parapet. From up here the land unrolls in every direction: dark forest, '
     || 'the silver thread of a river, and hills gone blue with distance. The '
     || 'wind never quite stops. A trapdoor in the floor opens onto the stair '
     || 'leading down.');

INSERT INTO exits (id, room_id, name, aliases, destination_id) VALUES
    (1, 1, 'north', 'n', 2),
    (2, 2, 'south', 's', 1),
    (3, 2, 'up', 'u,tower', 3),
    (4, 3, 'down', 'd', 2);

-- The rows above were given their ids; the sequences start after them.
SELECT setval(pg_get_serial_sequence('rooms', 'id'), (SELECT MAX(id) FROM rooms));
SELECT setval(pg_get_serial_sequence('exits', 'id'), (SELECT MAX(id) FROM exits));
