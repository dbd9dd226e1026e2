-- opslive's own state: the sources it reads and how far it has read them.
-- Positions are stored as text in the source's own notation (PostgreSQL LSN `X/Y`), so other
-- source kinds (binlog GTIDs) fit the same columns.

CREATE TABLE sources (
    name        text PRIMARY KEY,
    kind        text NOT NULL,
    slot        text,
    publication text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE source_watermarks (
    source           text PRIMARY KEY REFERENCES sources (name) ON DELETE CASCADE,
    -- The position the current replica was loaded at (its slot's consistent point).
    snapshot_position text,
    snapshot_at      timestamptz,
    received         text NOT NULL DEFAULT '0/0',
    applied          text NOT NULL DEFAULT '0/0',
    checkpointed     text,
    acknowledged     text NOT NULL DEFAULT '0/0',
    updated_at       timestamptz NOT NULL DEFAULT now()
);
