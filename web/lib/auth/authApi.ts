// The server's sign-in endpoints: `GET /auth/config` (is dev login on, the demo users, OIDC
// settings) and `POST /auth/dev-login` (a token for a demo user).

export interface DemoUser {
  readonly sub: string;
  readonly role: string;
  readonly claims?: Readonly<Record<string, unknown>>;
}

export interface OidcConfig {
  readonly issuer: string;
  readonly clientId: string;
  readonly redirectUri: string;
  readonly scopes: string;
}

export interface AuthConfig {
  readonly devLogin: boolean;
  readonly users: readonly DemoUser[];
  readonly oidc: OidcConfig | null;
}

export async function fetchAuthConfig(fetcher: typeof fetch = fetch): Promise<AuthConfig> {
  const response = await fetcher("/auth/config", { headers: { Accept: "application/json" } });
  if (response.status === 404) return { devLogin: false, users: [], oidc: null };
  if (!response.ok) throw new Error(`/auth/config answered ${response.status}`);
  const body = (await response.json()) as Partial<AuthConfig>;
  return { devLogin: body.devLogin === true, users: Array.isArray(body.users) ? body.users : [], oidc: body.oidc ?? null };
}

export async function devLogin(sub: string, fetcher: typeof fetch = fetch): Promise<string> {
  const response = await fetcher("/auth/dev-login", {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify({ sub }),
  });
  if (!response.ok) throw new Error(response.status === 404 ? "dev login is off on this server" : `dev login answered ${response.status}`);
  const body = (await response.json()) as { token?: unknown };
  if (typeof body.token !== "string") throw new Error("dev login answered without a token");
  return body.token;
}
