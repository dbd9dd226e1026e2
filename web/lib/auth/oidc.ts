// OpenID Connect sign-in with the authorization code flow and PKCE (RFC 7636), for a public
// client in the browser: discovery document → authorize redirect (code_challenge S256, state,
// nonce) → back on /signin/ with `code` → token endpoint. The ID token is what opslive checks
// (its JWKS settings name the same issuer). Verifier and state wait in sessionStorage.
import type { OidcConfig } from "./authApi";

const PENDING_KEY = "opslive.oidc.pending";

interface Discovery {
  readonly authorization_endpoint: string;
  readonly token_endpoint: string;
}

interface Pending {
  readonly verifier: string;
  readonly state: string;
  readonly next: string | null;
}

async function discover(issuer: string): Promise<Discovery> {
  const response = await fetch(`${issuer.replace(/\/$/, "")}/.well-known/openid-configuration`);
  if (!response.ok) throw new Error(`the identity provider's discovery document answered ${response.status}`);
  return (await response.json()) as Discovery;
}

function randomString(bytes: number): string {
  const data = crypto.getRandomValues(new Uint8Array(bytes));
  return base64Url(data);
}

function base64Url(data: Uint8Array): string {
  let binary = "";
  for (const byte of data) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export async function pkceChallenge(verifier: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  return base64Url(new Uint8Array(digest));
}

/** Leaves for the identity provider's sign-in page. */
export async function startOidcSignIn(config: OidcConfig, next: string | null): Promise<void> {
  const discovery = await discover(config.issuer);
  const pending: Pending = { verifier: randomString(32), state: randomString(16), next };
  sessionStorage.setItem(PENDING_KEY, JSON.stringify(pending));
  const url = new URL(discovery.authorization_endpoint);
  url.search = new URLSearchParams({
    response_type: "code",
    client_id: config.clientId,
    redirect_uri: config.redirectUri,
    scope: config.scopes,
    state: pending.state,
    nonce: randomString(16),
    code_challenge: await pkceChallenge(pending.verifier),
    code_challenge_method: "S256",
  }).toString();
  window.location.assign(url.toString());
}

/** On return from the provider: trades the code for tokens; the ID token and where to go next. */
export async function finishOidcSignIn(config: OidcConfig, params: URLSearchParams): Promise<{ token: string; next: string | null }> {
  const raw = sessionStorage.getItem(PENDING_KEY);
  sessionStorage.removeItem(PENDING_KEY);
  if (!raw) throw new Error("no sign-in was started in this tab");
  const pending = JSON.parse(raw) as Pending;
  const error = params.get("error");
  if (error) throw new Error(`the identity provider said: ${params.get("error_description") ?? error}`);
  if (params.get("state") !== pending.state) throw new Error("the sign-in answer does not belong to this tab (state differs)");
  const code = params.get("code");
  if (!code) throw new Error("the identity provider sent no code");
  const discovery = await discover(config.issuer);
  const response = await fetch(discovery.token_endpoint, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "authorization_code",
      code,
      redirect_uri: config.redirectUri,
      client_id: config.clientId,
      code_verifier: pending.verifier,
    }).toString(),
  });
  if (!response.ok) throw new Error(`the token endpoint answered ${response.status}`);
  const body = (await response.json()) as { id_token?: unknown; access_token?: unknown };
  const token = typeof body.id_token === "string" ? body.id_token : typeof body.access_token === "string" ? body.access_token : null;
  if (!token) throw new Error("the token endpoint sent no token");
  return { token, next: pending.next };
}
