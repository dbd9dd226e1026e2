-- Built-in KPIs (a source's health: lag, retained WAL, heartbeat age, changes per second) have
-- a row here too, keyed by `<source>/<MEASURE>`, so they keep their id and their history
-- (kpi_history refers to this table) across restarts. Their definition is not stored: they
-- are sampled, not computed.
ALTER TABLE kpis ADD COLUMN builtin text UNIQUE;
