-- The PostgreSQL twin of migrations/sqlite/2026-11-27-000003_open_the_town.
-- The town beyond the gate: fourteen rooms east of the courtyard, so that a
-- busy game spreads out instead of standing in three rooms (a room tells
-- everyone in it what is said there, and 2,000 players in three rooms made
-- that the whole cost of the game). Ids continue the seeded ones.

UPDATE rooms SET description =
     'Worn flagstones pave a square courtyard hemmed in by high granite walls, '
     || 'moss thick in the cracks between them. The great gate in the east wall '
     || 'stands open, its portcullis raised, and the noise of the town drifts in. '
     || 'A narrow stair climbs the inside of the watchtower in the north corner, '
     || 'and to the south a stone archway opens onto a shifting grey nothing.'
WHERE id = 2;

INSERT INTO rooms (id, name, description) VALUES
    (4, 'The Gate Road',
     'A cobbled road runs from the gatehouse down into the town, rutted by cart '
     || 'wheels. The courtyard lies back through the gate to the west; ahead, to '
     || 'the east, the road widens into a busy square.'),
    (5, 'Market Square',
     'Stalls crowd every inch of the square under patched awnings: bread, rope, '
     || 'lamp oil, knives. Hawkers shout over one another. The gate road leaves to '
     || 'the west, temple steps rise to the north, a lane runs south towards the '
     || 'harbour, and Tanners'' Row opens to the east.'),
    (6, 'The Temple Steps',
     'Broad white steps, worn hollow in the middle, climb towards the temple '
     || 'doors to the north. Beggars and pigeons share the lowest step. The square '
     || 'is south; a quieter walk leads east.'),
    (7, 'Harbour Lane',
     'A steep lane of tall, leaning houses runs down towards the water, washing '
     || 'strung between the upper windows. The square is back up to the north, the '
     || 'quay below to the south, and the smell of the fishmarket comes from the east.'),
    (8, 'Tanners'' Row',
     'Vats of bark liquor steam in the yards on either side and the air is thick '
     || 'with it. The square is west; the row meets Scholars'' Walk to the north, '
     || 'the fishmarket to the south, and the east gate further on.'),
    (9, 'The Temple of the Lamp',
     'A single great lamp hangs on chains from the dome, and its light reaches '
     || 'every corner of the hall without a flicker. Benches face it in silence. '
     || 'The doors open south onto the steps.'),
    (10, 'Scholars'' Walk',
     'A gravel walk between clipped hedges, where students argue in pairs. The '
     || 'temple steps are west, Tanners'' Row south, and the library''s bronze doors '
     || 'east.'),
    (11, 'The Quay',
     'Fishing boats knock against the stone quay on the tide, and gulls wheel over '
     || 'the nets spread out to dry. Harbour Lane climbs north; the lantern of a '
     || 'tavern hangs over a door to the east.'),
    (12, 'The Fishmarket',
     'Slabs of cold stone glisten with the morning''s catch, and the fishwives '
     || 'call their prices. Harbour Lane is west, Tanners'' Row north, and the '
     || 'tavern''s back door east.'),
    (13, 'The East Gate',
     'A smaller gate than the one on the hill, left open in daylight, its guards '
     || 'more interested in dice than in travellers. The town is back to the west; '
     || 'a road runs east into the meadows.'),
    (14, 'The Library',
     'Shelves rise into shadow, ladders leaning against them, and the only sound '
     || 'is the scratch of a copyist''s pen. The doors lead west onto the walk.'),
    (15, 'The Drowned Lantern',
     'A low tavern of black beams and sawdust, loud with sailors. A fire roars at '
     || 'one end. The quay door is west and a back door opens north onto the '
     || 'fishmarket.'),
    (16, 'Meadow Road',
     'A dirt road between hay meadows, larks singing somewhere overhead. The east '
     || 'gate is west; further east a mill wheel turns on the stream.'),
    (17, 'The Old Mill',
     'The mill wheel groans round and round, and flour hangs in the air in the '
     || 'slanting light. The road leads back west.');

INSERT INTO exits (id, room_id, name, aliases, destination_id) VALUES
    (5, 2, 'east', 'e,gate', 4),
    (6, 4, 'west', 'w,gate', 2),
    (7, 4, 'east', 'e', 5),
    (8, 5, 'west', 'w', 4),
    (9, 5, 'north', 'n', 6),
    (10, 5, 'south', 's', 7),
    (11, 5, 'east', 'e', 8),
    (12, 6, 'south', 's', 5),
    (13, 6, 'north', 'n,temple', 9),
    (14, 6, 'east', 'e', 10),
    (15, 7, 'north', 'n', 5),
    (16, 7, 'south', 's,quay', 11),
    (17, 7, 'east', 'e', 12),
    (18, 8, 'west', 'w', 5),
    (19, 8, 'north', 'n', 10),
    (20, 8, 'south', 's', 12),
    (21, 8, 'east', 'e', 13),
    (22, 9, 'south', 's,out', 6),
    (23, 10, 'west', 'w', 6),
    (24, 10, 'south', 's', 8),
    (25, 10, 'east', 'e,library', 14),
    (26, 11, 'north', 'n', 7),
    (27, 11, 'east', 'e,tavern', 15),
    (28, 12, 'west', 'w', 7),
    (29, 12, 'north', 'n', 8),
    (30, 12, 'east', 'e,tavern', 15),
    (31, 13, 'west', 'w', 8),
    (32, 13, 'east', 'e', 16),
    (33, 14, 'west', 'w,out', 10),
    (34, 15, 'west', 'w,quay', 11),
    (35, 15, 'north', 'n,fishmarket', 12),
    (36, 16, 'west', 'w', 13),
    (37, 16, 'east', 'e,mill', 17),
    (38, 17, 'west', 'w,out', 16);

SELECT setval(pg_get_serial_sequence('rooms', 'id'), (SELECT MAX(id) FROM rooms));
SELECT setval(pg_get_serial_sequence('exits', 'id'), (SELECT MAX(id) FROM exits));
