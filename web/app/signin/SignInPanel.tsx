// The sign-in choices. A token, however obtained, is checked for a role and an expiry, stored
// in sessionStorage, and the user goes back where they came from (`?next=`).
"use client";
import { useSearchParams } from "next/navigation";
import { useEffect, useState } from "react";
import { devLogin, fetchAuthConfig, type AuthConfig } from "@/lib/auth/authApi";
import { finishOidcSignIn, startOidcSignIn } from "@/lib/auth/oidc";
import { isExpired, saveToken, decodeToken } from "@/lib/auth/token";
import { sessionChanged } from "@/lib/auth/useSession";
import { DemoUserList } from "./DemoUserList";
import { TokenPasteForm } from "./TokenPasteForm";

const REASONS: Record<string, string> = {
  expired: "Your session expired: sign in again.",
  revoked: "Your session was revoked by an administrator: sign in again.",
  refused: "The server refused your token: sign in again.",
  "signed-out": "Sign in to see the dashboard.",
};

export function SignInPanel() {
  const params = useSearchParams();
  const [config, setConfig] = useState<AuthConfig | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const next = safeNext(params.get("next"));
  const reason = params.get("reason");

  useEffect(() => {
    fetchAuthConfig()
      .then(setConfig)
      .catch((e: unknown) => {
        setConfig({ devLogin: false, users: [], oidc: null });
        setError(e instanceof Error ? e.message : String(e));
      });
  }, []);

  // Back from the identity provider with a code.
  useEffect(() => {
    if (!config?.oidc || !params.get("code")) return;
    setBusy(true);
    finishOidcSignIn(config.oidc, new URLSearchParams(params.toString()))
      .then(({ token, next: after }) => accept(token, safeNext(after)))
      .catch((e: unknown) => setError(e instanceof Error ? e.message : String(e)))
      .finally(() => setBusy(false));
  }, [config, params]);

  function accept(token: string, target: string): void {
    const session = decodeToken(token);
    if (!session) return setError("That is not a token with a role and an expiry (a JWT with `role` and `exp` claims).");
    if (isExpired(session)) return setError("That token has expired.");
    saveToken(token);
    sessionChanged();
    window.location.assign(target);
  }

  async function signInAs(sub: string): Promise<void> {
    setBusy(true);
    setError(null);
    try {
      accept(await devLogin(sub), next);
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    } finally {
      setBusy(false);
    }
  }

  return (
    <section className="panel" style={{ maxWidth: 640, margin: "40px auto" }} aria-labelledby="signin-title">
      <h1 id="signin-title" style={{ marginTop: 0 }}>
        Sign in to opslive
      </h1>
      {reason && REASONS[reason] ? <p>{REASONS[reason]}</p> : null}
      {error ? (
        <p className="error" role="alert">
          {error}
        </p>
      ) : null}
      {config === null ? <p className="muted">Asking the server how to sign in…</p> : null}
      {config?.devLogin ? <DemoUserList users={config.users} disabled={busy} onChoose={(sub) => void signInAs(sub)} /> : null}
      {config?.oidc ? (
        <p>
          <button type="button" disabled={busy} onClick={() => void startOidcSignIn(config.oidc!, next).catch((e: unknown) => setError(String(e)))}>
            Sign in with {new URL(config.oidc.issuer).host}
          </button>
        </p>
      ) : null}
      <TokenPasteForm disabled={busy} onToken={(token) => accept(token, next)} />
    </section>
  );
}

/** Only same-site paths: `?next=https://elsewhere` must not become an open redirect. */
function safeNext(next: string | null): string {
  if (!next || !next.startsWith("/") || next.startsWith("//") || next.startsWith("/signin")) return "/";
  return next;
}
