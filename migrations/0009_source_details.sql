-- Sources of every kind: what a source keeps on its server (a PostgreSQL slot and publication,
-- a MariaDB replica id) is the kind's own, so it moves from PostgreSQL-named columns into one
-- JSON object. Positions stay text in the source's notation: `X/Y`, the high and low 32 bits in
-- hex (PostgreSQL's LSN; MariaDB's binlog file number and offset in it).

ALTER TABLE sources ADD COLUMN details jsonb NOT NULL DEFAULT '{}';
UPDATE sources SET details = jsonb_strip_nulls(jsonb_build_object('slot', slot, 'publication', publication));
ALTER TABLE sources DROP COLUMN slot, DROP COLUMN publication;
