// The Notifications page: contact points, the routing policy, mute timings and the log. All of
// it needs the `manage_notifications` permission; a role without it is told so.
"use client";
import { useLiveContext } from "@/lib/live/useLiveContext";
import { useOneShot } from "@/lib/http/useOneShot";
import { ContactPointsPanel } from "./ContactPointsPanel";
import { ContactPoints, MuteTimings, Policy } from "./documents";
import { MuteTimingsPanel } from "./MuteTimingsPanel";
import { NotificationLogPanel } from "./NotificationLogPanel";
import { PolicyPanel } from "./PolicyPanel";

export function NotificationsView() {
  const { session } = useLiveContext();
  const token = session?.token ?? null;
  const points = useOneShot(token, ContactPoints);
  const policy = useOneShot(token, Policy);
  const timings = useOneShot(token, MuteTimings);
  if (!session || !token) return null;
  if (points.error?.includes("may not manage notifications")) {
    return (
      <>
        <h1 style={{ margin: 0, fontSize: 20 }}>Notifications</h1>
        <p className="muted">Your role ({session.role}) may not manage notifications: ask someone whose role has `manage_notifications`.</p>
      </>
    );
  }
  const list = points.data?.contactPoints ?? [];
  return (
    <>
      <h1 style={{ margin: 0, fontSize: 20 }}>Notifications</h1>
      <section className="panel" aria-labelledby="points-title">
        <h2 id="points-title">Contact points</h2>
        <ContactPointsPanel token={token} points={points} />
      </section>
      <div className="grid-2">
        <section className="panel" aria-labelledby="policy-title">
          <h2 id="policy-title">Routing policy</h2>
          <PolicyPanel token={token} policy={policy} points={list} />
        </section>
        <section className="panel" aria-labelledby="mute-title">
          <h2 id="mute-title">Mute timings</h2>
          <MuteTimingsPanel token={token} timings={timings} onChange={policy.reload} />
        </section>
      </div>
      <section className="panel" aria-labelledby="log-title">
        <h2 id="log-title">Log</h2>
        <NotificationLogPanel token={token} points={list} />
      </section>
    </>
  );
}
