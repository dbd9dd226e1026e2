-- The replica positions a time-driven transition was decided on, as `{"<source>": <position>}`
-- (null for one caused by a transaction: its position says it). A restart that resumes from
-- an earlier checkpoint drops what was decided beyond it and decides it again.
ALTER TABLE alert_transitions ADD COLUMN basis jsonb;
