-- Alert rules, the state of their instances, and every transition with its provenance.

CREATE TABLE alert_rules (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    definition  jsonb NOT NULL,
    created_by  text,
    updated_by  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Instances that are pending or firing now; a resolved one is deleted (its history stays).
CREATE TABLE alert_instances (
    rule_id          bigint NOT NULL REFERENCES alert_rules (id) ON DELETE CASCADE,
    instance         text NOT NULL,
    labels           jsonb NOT NULL DEFAULT '{}',
    state            text NOT NULL,
    since            timestamptz NOT NULL,
    active_since     timestamptz NOT NULL,
    due              timestamptz,
    condition        boolean NOT NULL,
    value            text,
    summary          text NOT NULL DEFAULT '',
    row_image        jsonb,
    acknowledged_by  text,
    acknowledged_at  timestamptz,
    ack_note         text,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (rule_id, instance)
);

-- Every change of state. `cause` is `tx:<source>:<position>` or `due:<µs>`: a transaction
-- delivered again after a restart yields the same transitions, recorded once.
CREATE TABLE alert_transitions (
    id           bigserial PRIMARY KEY,
    rule_id      bigint NOT NULL REFERENCES alert_rules (id) ON DELETE CASCADE,
    instance     text NOT NULL,
    labels       jsonb NOT NULL DEFAULT '{}',
    from_state   text NOT NULL,
    to_state     text NOT NULL,
    at           timestamptz NOT NULL,
    cause        text NOT NULL,
    source       text,
    position     text,
    -- The position as a number, to find what lies beyond a checkpoint.
    position_num bigint,
    commit_ts    timestamptz,
    value        text,
    row_before   jsonb,
    row_after    jsonb,
    summary      text NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (rule_id, instance, to_state, cause)
);
CREATE INDEX alert_transitions_at ON alert_transitions (at DESC);
CREATE INDEX alert_transitions_instance ON alert_transitions (rule_id, instance, id);

-- Silences suppress notification (not evaluation) of instances whose labels match.
CREATE TABLE silences (
    id          bigserial PRIMARY KEY,
    matchers    jsonb NOT NULL,
    starts_at   timestamptz NOT NULL,
    ends_at     timestamptz NOT NULL,
    comment     text,
    created_by  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expired_at  timestamptz
);
