-- Tokens revoked before they expire: one token by its `jti`, or every token of a subject
-- (`sub`) issued up to `issued_before`. Loaded at start, so a revocation outlives a restart.
CREATE TABLE token_revocations (
    id bigserial PRIMARY KEY,
    jti text,
    subject text,
    -- For a subject: tokens whose `iat` is at or before this time are refused.
    issued_before timestamptz,
    reason text,
    -- The `sub` of who revoked it (or the role, for a token without one).
    revoked_by text NOT NULL,
    revoked_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((jti IS NULL) <> (subject IS NULL)),
    CHECK ((subject IS NULL) = (issued_before IS NULL))
);

-- Revoking a token twice keeps the first record.
CREATE UNIQUE INDEX token_revocations_jti ON token_revocations (jti) WHERE jti IS NOT NULL;
