-- Notifications: where alerts are sent (contact points), how they are routed (one policy
-- document), and the outbox every notification is written to before it is sent.

CREATE TABLE contact_points (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    kind        text NOT NULL,
    -- What may be shown: URLs without credentials, numbers, addresses.
    settings    jsonb NOT NULL,
    -- The secret fields as JSON, encrypted (XChaCha20-Poly1305, nonce first); never shown.
    secret      bytea,
    created_by  text,
    updated_by  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- The routing policy: one document, replaced as a whole.
CREATE TABLE notification_policy (
    id          boolean PRIMARY KEY DEFAULT true CHECK (id),
    routes      jsonb NOT NULL,
    updated_by  text,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- The outbox. A row is written in the same database transaction as the alert transition that
-- caused it; a transition delivered again after a restart finds its rows there already.
CREATE TABLE notifications (
    id                bigserial PRIMARY KEY,
    contact_point_id  bigint NOT NULL REFERENCES contact_points (id) ON DELETE CASCADE,
    rule_id           bigint,
    instance          text NOT NULL DEFAULT '',
    -- `firing`, `resolved` or `test`.
    kind              text NOT NULL,
    -- The transition's cause (`tx:<source>:<position>`, `due:<µs>`), or `test:<µs>`.
    cause             text NOT NULL,
    -- What the message says, whatever the channel.
    content           jsonb NOT NULL,
    -- `pending` (to send), `sending` (handed to the channel), `sent`, `dead` (given up),
    -- `silenced` (a silence covered it: recorded, never sent).
    status            text NOT NULL,
    attempts          integer NOT NULL DEFAULT 0,
    -- Sends started again after a restart found them in flight.
    repeats           integer NOT NULL DEFAULT 0,
    next_attempt_at   timestamptz NOT NULL DEFAULT now(),
    last_error        text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    sent_at           timestamptz,
    -- Receivers that can de-duplicate use it (the webhook's `Idempotency-Key`).
    idempotency_key   text NOT NULL UNIQUE,
    -- Notifications of one contact point with the same group key go out as one message (the
    -- route's `groupBy`); null: alone.
    group_key         text,
    UNIQUE (contact_point_id, rule_id, instance, kind, cause)
);
CREATE INDEX notifications_due ON notifications (contact_point_id, id) WHERE status IN ('pending', 'sending');
CREATE INDEX notifications_instance ON notifications (rule_id, instance, id);
