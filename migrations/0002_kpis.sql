-- KPIs defined at run time (GraphQL createKpi), and their per-minute history.
-- A definition is stored as the JSON of `KpiDefinition` (src/kpi/definition.rs): it is checked
-- against the replica before it is stored, and bound again at every start.

CREATE TABLE kpis (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    definition  jsonb NOT NULL,
    created_by  text,
    updated_by  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per KPI, group and minute: the minute's last value (exact text and as a float for
-- charts), its extremes, and the source position of the last change in it.
CREATE TABLE kpi_history (
    kpi_id        bigint NOT NULL REFERENCES kpis (id) ON DELETE CASCADE,
    -- '' when the KPI is ungrouped, else the canonical JSON of the group's key.
    group_key     text NOT NULL DEFAULT '',
    minute        timestamptz NOT NULL,
    last          text,
    last_value    double precision,
    min           double precision,
    max           double precision,
    last_position bigint,
    PRIMARY KEY (kpi_id, group_key, minute)
);
