// The demo users a dev-login server offers: one click signs in as that user.
"use client";
import type { DemoUser } from "@/lib/auth/authApi";

export function DemoUserList({ users, disabled, onChoose }: { users: readonly DemoUser[]; disabled: boolean; onChoose: (sub: string) => void }) {
  if (users.length === 0) return <p className="muted">Dev login is on, but the server lists no demo users.</p>;
  return (
    <div>
      <h2>Demo users</h2>
      <ul style={{ listStyle: "none", padding: 0, display: "grid", gap: 6 }}>
        {users.map((user) => (
          <li key={user.sub}>
            <button type="button" disabled={disabled} onClick={() => onChoose(user.sub)} style={{ width: "100%", textAlign: "left" }} data-sub={user.sub}>
              <strong>{user.sub}</strong> <span className="muted">· {user.role}</span>
              {user.claims && Object.keys(user.claims).length > 0 ? <span className="muted"> · {describeClaims(user.claims)}</span> : null}
            </button>
          </li>
        ))}
      </ul>
    </div>
  );
}

function describeClaims(claims: Readonly<Record<string, unknown>>): string {
  return Object.entries(claims)
    .map(([name, value]) => `${name}: ${Array.isArray(value) ? value.join(", ") : JSON.stringify(value)}`)
    .join("; ");
}
