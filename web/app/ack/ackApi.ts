// The server's /api/ack endpoints: GET reads what a ticket names, POST acknowledges.
export interface AckedBy {
  by: string | null;
  at: string;
  note: string | null;
}

export interface AckAlert {
  ruleId: string;
  rule: string;
  severity: string;
  instance: string;
  firingSince: string;
  firing: boolean;
  labels: Record<string, string> | null;
  summary: string | null;
  value: string | null;
  acknowledged: AckedBy | null;
}

export type AckAnswer =
  | { ok: true; alert: AckAlert; already?: boolean }
  | { ok: false; error: string; alert?: AckAlert };

async function answer(response: Response): Promise<AckAnswer> {
  let body: { alert?: AckAlert; already?: boolean; error?: string } = {};
  try {
    body = await response.json();
  } catch {
    return { ok: false, error: `the server answered ${response.status} without a reason` };
  }
  if (response.ok && body.alert) return { ok: true, alert: body.alert, already: body.already };
  return { ok: false, error: body.error ?? `the server answered ${response.status}`, alert: body.alert };
}

export async function readTicket(ticket: string): Promise<AckAnswer> {
  try {
    return await answer(await fetch(`/api/ack?t=${encodeURIComponent(ticket)}`));
  } catch (e) {
    return { ok: false, error: `cannot reach the server: ${String(e)}` };
  }
}

export async function acknowledge(ticket: string, note: string, token: string | null): Promise<AckAnswer> {
  const headers: Record<string, string> = { "Content-Type": "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  try {
    const response = await fetch("/api/ack", {
      method: "POST",
      headers,
      body: JSON.stringify({ t: ticket, note: note.trim() || undefined }),
    });
    return await answer(response);
  } catch (e) {
    return { ok: false, error: `cannot reach the server: ${String(e)}` };
  }
}
