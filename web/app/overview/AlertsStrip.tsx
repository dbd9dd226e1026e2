// The alerts strip: every alert pending or firing that the role may read, live. A newly firing
// alert flashes the strip (and beeps, when the user turned sound on: a WebAudio tone, no asset).
// Acknowledge records who and when on the server; the strip shows it from the next update.
"use client";
import { useEffect, useRef, useState } from "react";
import { graphqlRequest } from "@/lib/http/graphqlRequest";
import { useLiveResult } from "@/lib/live/hooks";
import type { LiveStore } from "@/lib/live/store";
import { canMutate, type RoleSchema } from "@/lib/schema/roleSchema";
import { usePrunedDocument } from "@/lib/schema/usePrunedDocument";
import { AcknowledgeAlert, FiringAlerts, type LiveAlert } from "./documents";

const ORDER: Record<string, number> = { FIRING: 0, PENDING: 1 };
const SEVERITY: Record<string, number> = { CRITICAL: 0, WARNING: 1, INFO: 2 };

export function alertKey(alert: { ruleId: string; instance: string }): string {
  return `${alert.ruleId}\u0000${alert.instance}`;
}

export function AlertsStrip({ store, schema, token }: { store: LiveStore | null; schema: RoleSchema | null; token: string }) {
  const { document } = usePrunedDocument(FiringAlerts, schema);
  const result = useLiveResult(store, document);
  const [sound, setSound] = useState(false);
  const [signal, setSignal] = useState(0);
  const seen = useRef<Set<string> | null>(null);
  const alerts = (result.data?.alerts ?? []).slice().sort((a, b) => (ORDER[a.state] ?? 2) - (ORDER[b.state] ?? 2) || (SEVERITY[a.severity] ?? 3) - (SEVERITY[b.severity] ?? 3) || b.since.localeCompare(a.since));
  const firing = alerts.filter((a) => a.state === "FIRING");

  useEffect(() => {
    if (!result.data) return;
    const keys = new Set(result.data.alerts.filter((a) => a.state === "FIRING").map(alertKey));
    const fresh = seen.current !== null && [...keys].some((k) => !seen.current!.has(k));
    seen.current = keys;
    if (!fresh) return;
    setSignal((n) => n + 1);
    if (sound) beep();
  }, [result.data, sound]);

  if (schema && !document) return <p className="panel-note">Your role has no alerts.</p>;
  const canAck = schema ? canMutate(schema, "acknowledgeAlert") : false;
  return (
    <div key={signal} className={`alerts-strip${signal > 0 ? " signal" : ""}`} data-testid="alerts-strip">
      <div className="toolbar">
        <span className="live-value">
          <strong data-testid="firing-count">{result.data ? firing.length : "…"}</strong> firing
          {alerts.length > firing.length ? <span className="muted"> · {alerts.length - firing.length} pending</span> : null}
        </span>
        <label className="muted">
          <input type="checkbox" checked={sound} onChange={(e) => setSound(e.target.checked)} /> sound
        </label>
        {result.error ? <span className="error">{result.error}</span> : null}
      </div>
      {alerts.slice(0, 12).map((alert) => (
        <AlertItem key={alertKey(alert)} alert={alert} token={token} canAck={canAck} />
      ))}
      {alerts.length > 12 ? <p className="muted">and {alerts.length - 12} more on the Alerts page</p> : null}
      {result.data && alerts.length === 0 ? <p className="muted">Nothing pending or firing.</p> : null}
    </div>
  );
}

function AlertItem({ alert, token, canAck }: { alert: LiveAlert; token: string; canAck: boolean }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const acknowledge = async () => {
    setBusy(true);
    setError(null);
    try {
      await graphqlRequest(token, AcknowledgeAlert, { ruleId: alert.ruleId, instance: alert.instance, note: null });
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    } finally {
      setBusy(false);
    }
  };
  return (
    <div className="alert-item live-value" data-rule={alert.ruleName} data-instance={alert.instance} data-state={alert.state} data-severity={alert.severity} data-acknowledged={alert.acknowledged}>
      <span className="badge">{alert.state.toLowerCase()}</span>
      <span>
        <strong>{alert.ruleName}</strong> <span>{alert.summary}</span>
        <br />
        <span className="muted" style={{ fontSize: 12 }}>
          since {new Date(alert.activeSince).toLocaleTimeString()}
          {alert.cause?.position ? ` · fired by ${alert.cause.source ?? ""} ${alert.cause.position}` : alert.cause?.dueAt ? ` · due ${new Date(alert.cause.dueAt).toLocaleTimeString()}` : ""}
          {alert.silenced ? " · silenced" : ""}
          {alert.acknowledged ? ` · acknowledged by ${alert.acknowledgedBy ?? "someone"}` : ""}
        </span>
        {error ? <span className="error"> · {error}</span> : null}
      </span>
      {canAck && !alert.acknowledged ? (
        <button type="button" disabled={busy} onClick={() => void acknowledge()}>
          Acknowledge
        </button>
      ) : (
        <span />
      )}
    </div>
  );
}

function beep(): void {
  try {
    const audio = new AudioContext();
    const tone = audio.createOscillator();
    const gain = audio.createGain();
    tone.frequency.value = 880;
    gain.gain.setValueAtTime(0.15, audio.currentTime);
    gain.gain.exponentialRampToValueAtTime(0.001, audio.currentTime + 0.4);
    tone.connect(gain).connect(audio.destination);
    tone.start();
    tone.stop(audio.currentTime + 0.4);
    tone.onended = () => void audio.close();
  } catch {
    // No audio (autoplay policy, no device): the visual signal remains.
  }
}
