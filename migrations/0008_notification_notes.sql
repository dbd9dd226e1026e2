-- Why a notification was recorded and not sent: the silence that covered it, or the mute
-- timing that held for its route (`muted`, a status of its own).
ALTER TABLE notifications ADD COLUMN note text;
