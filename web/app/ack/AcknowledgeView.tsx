// The confirmation: what the message was about, as it stands now, and one button.
"use client";
import { useSearchParams } from "next/navigation";
import { useEffect, useState } from "react";
import { useSession } from "@/lib/auth/useSession";
import { acknowledge, readTicket, type AckAlert, type AckAnswer } from "./ackApi";

export function AcknowledgeView() {
  const ticket = useSearchParams().get("t");
  const session = useSession();
  const [shown, setShown] = useState<AckAnswer | null>(null);
  const [done, setDone] = useState<AckAnswer | null>(null);
  const [note, setNote] = useState("");
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    if (ticket) void readTicket(ticket).then(setShown);
  }, [ticket]);

  if (!ticket) return <p className="error">This link has no ticket: open the whole link from the message.</p>;
  if (!shown) return <p className="muted">Loading…</p>;
  const latest = done ?? shown;
  const alert = latest.alert;
  const submit = async () => {
    setBusy(true);
    setDone(await acknowledge(ticket, note, session?.token ?? null));
    setBusy(false);
  };
  return (
    <section className="panel" aria-labelledby="ack-title" style={{ maxWidth: 640 }}>
      <h1 id="ack-title" style={{ margin: "0 0 8px", fontSize: 20 }}>
        Acknowledge alert
      </h1>
      {alert ? <AlertFacts alert={alert} /> : null}
      {!latest.ok ? (
        <p className="error" role="alert">
          {latest.error}
        </p>
      ) : null}
      {latest.ok && alert?.acknowledged ? (
        <p role="status">
          {done?.ok && !done.already ? "Acknowledged" : "Already acknowledged"} by {alert.acknowledged.by ?? "someone"} at{" "}
          {new Date(alert.acknowledged.at).toLocaleString()}
          {alert.acknowledged.note ? ` — “${alert.acknowledged.note}”` : ""}. Reminders stop until it resolves.
        </p>
      ) : null}
      {latest.ok && alert?.firing && !alert.acknowledged ? (
        <form
          onSubmit={(e) => {
            e.preventDefault();
            void submit();
          }}
          style={{ display: "grid", gap: 8 }}
        >
          <label>
            Note (optional){" "}
            <input value={note} onChange={(e) => setNote(e.target.value)} placeholder="on it" style={{ width: "100%" }} />
          </label>
          <p className="muted" style={{ margin: 0 }}>
            {session?.sub ? `Recorded as ${session.sub}.` : "You are not signed in: recorded as the message’s recipient."}
          </p>
          <div>
            <button type="submit" disabled={busy}>
              Acknowledge
            </button>
          </div>
        </form>
      ) : null}
      {latest.ok && alert && !alert.firing ? <p className="muted">This alert is not firing any more: nothing to acknowledge.</p> : null}
    </section>
  );
}

function AlertFacts({ alert }: { alert: AckAlert }) {
  return (
    <dl className="facts">
      <dt>Rule</dt>
      <dd>{alert.rule}</dd>
      <dt>Severity</dt>
      <dd>{alert.severity}</dd>
      {alert.summary ? (
        <>
          <dt>Summary</dt>
          <dd>{alert.summary}</dd>
        </>
      ) : null}
      {alert.value ? (
        <>
          <dt>Value</dt>
          <dd>{alert.value}</dd>
        </>
      ) : null}
      <dt>Firing since</dt>
      <dd>{new Date(alert.firingSince).toLocaleString()}</dd>
      {alert.labels && Object.keys(alert.labels).length ? (
        <>
          <dt>Labels</dt>
          <dd>
            {Object.entries(alert.labels)
              .map(([k, v]) => `${k}=${v}`)
              .join(", ")}
          </dd>
        </>
      ) : null}
    </dl>
  );
}
