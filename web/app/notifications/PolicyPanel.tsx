// The routing policy: each route's matchers, contact points (by name) and options in order, and
// the policy as JSON to edit; the server checks it (contact points and mute timings named must
// exist) and says which field is wrong.
"use client";
import { useEffect, useState } from "react";
import { graphqlRequest } from "@/lib/http/graphqlRequest";
import { attempt, errorText } from "@/lib/http/attempt";
import type { OneShot } from "@/lib/http/useOneShot";
import type { ResultOf } from "@/lib/graphql/graphql";
import { SetPolicy, type ContactPoint, type Policy } from "./documents";
import { describeMatchers, describeRouteOptions, type RoutingPolicy } from "./policyModel";

export function PolicyPanel({ token, policy, points }: { token: string; policy: OneShot<ResultOf<typeof Policy>>; points: readonly ContactPoint[] }) {
  const stored = (policy.data?.notificationPolicy ?? null) as RoutingPolicy | null;
  const [text, setText] = useState("");
  const [editing, setEditing] = useState(false);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    if (stored && !editing) setText(JSON.stringify({ routes: stored.routes }, null, 2));
  }, [stored, editing]);
  const name = (id: string | number) => points.find((p) => p.id === String(id))?.name ?? `#${id}`;
  const save = async () => {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (e) {
      return setError(`Not JSON: ${errorText(e)}`);
    }
    if (await attempt(() => graphqlRequest(token, SetPolicy, { policy: parsed }), setError)) {
      setEditing(false);
      policy.reload();
    }
  };
  return (
    <div>
      {error || policy.error ? (
        <p className="error" role="alert">
          {error ?? policy.error}
        </p>
      ) : null}
      <ol aria-label="Routes" style={{ paddingLeft: 20, margin: "0 0 8px" }}>
        {(stored?.routes ?? []).map((route, i) => (
          <li key={i} style={{ marginBottom: 6 }}>
            <code>{describeMatchers(route.matchers)}</code> → {route.contactPoints.map(name).join(", ")}
            {describeRouteOptions(route) ? <div className="small muted">{describeRouteOptions(route)}</div> : null}
          </li>
        ))}
      </ol>
      {stored && stored.routes.length === 0 ? <p className="muted">No routes: alerts are shown, not sent.</p> : null}
      {editing ? (
        <>
          <textarea aria-label="Policy JSON" rows={14} value={text} onChange={(e) => setText(e.target.value)} style={{ width: "100%", fontFamily: "monospace", fontSize: 12 }} />
          <p className="toolbar">
            <button type="button" onClick={() => void save()}>
              Save policy
            </button>
            <button type="button" onClick={() => setEditing(false)}>
              Cancel
            </button>
            <span className="muted small">
              A route: matchers, contactPoints (ids), continue, groupBy, groupWait, repeatInterval, muteTimings (names).
            </span>
          </p>
        </>
      ) : (
        <button type="button" onClick={() => setEditing(true)}>
          Edit routes
        </button>
      )}
    </div>
  );
}
