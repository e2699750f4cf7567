-- Anyone standing in the town goes back to Limbo, then the town goes.
UPDATE characters SET location_id = 1 WHERE location_id BETWEEN 4 AND 17;
DELETE FROM exits WHERE id BETWEEN 5 AND 38;
DELETE FROM rooms WHERE id BETWEEN 4 AND 17;
UPDATE rooms SET description =
     'Worn flagstones pave a square courtyard hemmed in by high granite walls, '
     || 'moss thick in the cracks between them. The great gate in the east wall '
     || 'is barred, its portcullis down. A narrow stair climbs the inside of the '
     || 'watchtower in the north corner, and to the south a stone archway opens '
     || 'onto a shifting grey nothing.'
WHERE id = 2;
