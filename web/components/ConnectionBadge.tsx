// The live connection's state on every page — live, connecting, reconnecting or offline (idle on
// a page that subscribes to nothing, such as the Explorer, which has its own client) — with
// the age of the data while it is not live. It also marks <body> so stale values grey out.
"use client";
import { useEffect, useRef, useState } from "react";
import type { LiveConnection } from "@/lib/live/client";
import { useConnection } from "@/lib/live/hooks";
import { refreshRoleSchemas } from "@/lib/schema/useRoleSchema";

export function ConnectionBadge({ client }: { client: LiveConnection | null }) {
  const connection = useConnection(client);
  const [now, setNow] = useState(() => Date.now());
  const live = connection.state === "live" || connection.state === "idle";
  const wasDown = useRef(false);
  useEffect(() => {
    // Back after an outage: the server may have restarted with another policy or tables.
    if (connection.state === "live" && wasDown.current) refreshRoleSchemas();
    wasDown.current = connection.state === "reconnecting" || connection.state === "offline";
  }, [connection.state]);
  useEffect(() => {
    document.body.dataset["connection"] = connection.state;
    if (live) return;
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, [connection.state, live]);
  const last = client?.lastMessageAt ?? null;
  const age = last === null ? null : Math.max(0, Math.round((now - last) / 1000));
  return (
    <span className="connection" data-state={connection.state} role="status" aria-live="polite">
      {connection.state}
      {!live && age !== null ? <span className="muted">· data {formatAge(age)} old</span> : null}
      {connection.attempts > 0 && !live ? <span className="muted">· try {connection.attempts + 1}</span> : null}
    </span>
  );
}

export function formatAge(seconds: number): string {
  if (seconds < 60) return `${seconds} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min`;
  return `${Math.floor(seconds / 3600)} h`;
}
