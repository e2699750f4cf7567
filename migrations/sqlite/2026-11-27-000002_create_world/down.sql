-- Children first: with foreign keys on, a table still referenced cannot go.
DROP TABLE characters;
DROP TABLE exits;
DROP TABLE rooms;
