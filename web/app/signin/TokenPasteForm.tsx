// Paste a token (from `opslive token`, or the demo banner): always available.
"use client";
import { useState } from "react";

export function TokenPasteForm({ disabled, onToken }: { disabled: boolean; onToken: (token: string) => void }) {
  const [token, setToken] = useState("");
  return (
    <form
      onSubmit={(event) => {
        event.preventDefault();
        onToken(token.replace(/^Bearer\s+/i, "").trim());
      }}
    >
      <h2>Paste a token</h2>
      <textarea
        aria-label="Token"
        value={token}
        onChange={(event) => setToken(event.target.value)}
        rows={4}
        style={{ width: "100%", fontFamily: "ui-monospace, monospace" }}
        placeholder="eyJ…"
      />
      <p>
        <button type="submit" disabled={disabled || token.trim() === ""}>
          Sign in with this token
        </button>
      </p>
    </form>
  );
}
