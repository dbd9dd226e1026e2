// The signed-in user's token: kept in sessionStorage (one tab's session, gone when it closes),
// read back with its claims decoded. The server checks the signature; the browser only reads
// `role`, `sub` and `exp` to choose pages and to know when to ask for a sign-in again.

export const TOKEN_STORAGE_KEY = "opslive.token";

export interface Session {
  readonly token: string;
  readonly role: string;
  readonly sub: string;
  /** Expiry, in milliseconds since the epoch. */
  readonly expiresAt: number;
  readonly claims: Readonly<Record<string, unknown>>;
}

/** Reads a JWT's claims (without checking it); null when it is not a JWT with `role` and `exp`. */
export function decodeToken(token: string): Session | null {
  const parts = token.trim().split(".");
  if (parts.length !== 3 || !parts[1]) return null;
  let claims: unknown;
  try {
    claims = JSON.parse(base64UrlDecode(parts[1]));
  } catch {
    return null;
  }
  if (typeof claims !== "object" || claims === null || Array.isArray(claims)) return null;
  const record = claims as Record<string, unknown>;
  const role = record["role"];
  const exp = record["exp"];
  if (typeof role !== "string" || typeof exp !== "number") return null;
  const sub = typeof record["sub"] === "string" ? record["sub"] : "";
  return { token: token.trim(), role, sub, expiresAt: exp * 1000, claims: record };
}

function base64UrlDecode(text: string): string {
  const base64 = text.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(text.length / 4) * 4, "=");
  const binary = atob(base64);
  const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
  return new TextDecoder().decode(bytes);
}

export function isExpired(session: Session, now: number = Date.now()): boolean {
  return session.expiresAt <= now;
}

function storage(): Storage | null {
  return typeof sessionStorage === "undefined" ? null : sessionStorage;
}

/** The stored session, or null when there is none or it has expired (then it is removed). */
export function loadSession(now: number = Date.now()): Session | null {
  const token = storage()?.getItem(TOKEN_STORAGE_KEY);
  if (!token) return null;
  const session = decodeToken(token);
  if (!session || isExpired(session, now)) {
    storage()?.removeItem(TOKEN_STORAGE_KEY);
    return null;
  }
  return session;
}

export function saveToken(token: string): Session | null {
  const session = decodeToken(token);
  if (session) storage()?.setItem(TOKEN_STORAGE_KEY, session.token);
  return session;
}

export function clearToken(): void {
  storage()?.removeItem(TOKEN_STORAGE_KEY);
}
