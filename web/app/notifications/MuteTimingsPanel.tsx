// Mute timings: named weekly windows in a time zone during which the routes that name them send
// nothing (the log records MUTED). Listed in words; added or replaced by name with a form of one
// interval (days and hours), deleted when no route names them.
"use client";
import { useState } from "react";
import { graphqlRequest } from "@/lib/http/graphqlRequest";
import { attempt } from "@/lib/http/attempt";
import type { OneShot } from "@/lib/http/useOneShot";
import type { ResultOf } from "@/lib/graphql/graphql";
import { DeleteMuteTiming, SetMuteTiming, type MuteTimings } from "./documents";
import { WEEKDAYS, describeTiming, weekdayRanges, type MuteTiming } from "./policyModel";

export function MuteTimingsPanel({ token, timings, onChange }: { token: string; timings: OneShot<ResultOf<typeof MuteTimings>>; onChange: () => void }) {
  const [name, setName] = useState("");
  const [zone, setZone] = useState(() => Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC");
  const [days, setDays] = useState<Set<string>>(new Set(["saturday", "sunday"]));
  const [start, setStart] = useState("");
  const [end, setEnd] = useState("");
  const [error, setError] = useState<string | null>(null);
  const list = (timings.data?.muteTimings ?? []) as MuteTiming[];
  const run = async (action: () => Promise<unknown>) => {
    if (await attempt(action, setError)) {
      timings.reload();
      onChange();
    }
  };
  const save = () => {
    const weekdays = weekdayRanges(days);
    const interval = { ...(weekdays.length ? { weekdays } : {}), ...(start || end ? { times: [{ start: start || "00:00", end: end || "24:00" }] } : {}) };
    void run(() => graphqlRequest(token, SetMuteTiming, { timing: { name: name.trim(), timeZone: zone.trim(), intervals: [interval] } }));
  };
  const toggle = (day: string) =>
    setDays((d) => {
      const next = new Set(d);
      if (next.has(day)) next.delete(day);
      else next.add(day);
      return next;
    });
  return (
    <div>
      {error || timings.error ? (
        <p className="error" role="alert">
          {error ?? timings.error}
        </p>
      ) : null}
      <table className="grid-table" aria-label="Mute timings">
        <tbody>
          {list.map((t) => (
            <tr key={t.name}>
              <td>{t.name}</td>
              <td className="small">{describeTiming(t)}</td>
              <td>
                <button type="button" onClick={() => void run(() => graphqlRequest(token, DeleteMuteTiming, { name: t.name }))}>
                  Delete
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {timings.data && list.length === 0 ? <p className="muted">No mute timings.</p> : null}
      <form
        aria-label="Mute timing"
        style={{ display: "grid", gap: 6, marginTop: 8 }}
        onSubmit={(e) => {
          e.preventDefault();
          save();
        }}
      >
        <p className="toolbar" style={{ margin: 0 }}>
          <input aria-label="Mute timing name" placeholder="name (same name replaces)" value={name} onChange={(e) => setName(e.target.value)} required />
          <input aria-label="Time zone" value={zone} onChange={(e) => setZone(e.target.value)} style={{ width: 150 }} />
        </p>
        <p className="toolbar" style={{ margin: 0 }}>
          {WEEKDAYS.map((d) => (
            <label key={d} className="small">
              <input type="checkbox" checked={days.has(d)} onChange={() => toggle(d)} /> {d.slice(0, 3)}
            </label>
          ))}
        </p>
        <p className="toolbar" style={{ margin: 0 }}>
          <label className="small">
            from <input aria-label="From" type="time" value={start} onChange={(e) => setStart(e.target.value)} />
          </label>
          <label className="small">
            until <input aria-label="Until" placeholder="24:00" value={end} onChange={(e) => setEnd(e.target.value)} style={{ width: 70 }} />
          </label>
          <span className="muted small">no days: every day; no hours: all day</span>
          <button type="submit">Save mute timing</button>
        </p>
      </form>
    </div>
  );
}
