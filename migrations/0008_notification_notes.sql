-- Why a notification was recorded and not sent: the silence that covered it, or the mute
-- timing that held for its route (`muted`, a status of its own).
ALTER TABLE notifications ADD COLUMN note text;

-- Of a Twilio contact point's recipients (one message each, in order), how many were sent by
-- an attempt that then failed on a later one: the retry starts after them.
ALTER TABLE notifications ADD COLUMN delivered_to integer NOT NULL DEFAULT 0;
