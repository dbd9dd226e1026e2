-- Fencing in the app database (a cluster's leader, see src/store/fence.rs): the newest epoch
-- that took the lead of each cluster. A leader claims its epoch before it writes; each write of
-- alert state, notifications or KPI history checks it in the same transaction, so a leader
-- that was paused past its lease writes nothing once a newer one has claimed.
CREATE TABLE leader_epochs (
    cluster text PRIMARY KEY,
    epoch bigint NOT NULL,
    claimed_at timestamptz NOT NULL DEFAULT now()
);

-- Which leadership wrote a row (NULL: a lone instance, or written before this migration).
ALTER TABLE alert_transitions ADD COLUMN epoch bigint;
ALTER TABLE notifications ADD COLUMN epoch bigint;
ALTER TABLE kpi_history ADD COLUMN epoch bigint;
