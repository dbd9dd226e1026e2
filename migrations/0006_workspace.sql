-- Each user's own workspace in the dashboard, keyed by the token's `sub`: the queries saved in
-- the Explorer, and how the overview arranges its KPI tiles.
CREATE TABLE saved_queries (
    id bigserial PRIMARY KEY,
    owner text NOT NULL,
    name text NOT NULL,
    query text NOT NULL,
    variables jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (owner, name)
);

-- KPI ids are not foreign keys: a deleted KPI drops out of the tiles when the page reads them,
-- and a layout never blocks deleting a KPI.
CREATE TABLE overview_layouts (
    owner text PRIMARY KEY,
    tiles bigint[] NOT NULL,
    hidden bigint[] NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
