// Sends the user to the sign-in page when their token expires or the server refuses it,
// remembering where they were. Navigation is injectable so tests can observe it.

import { clearToken } from "./token";

export type SignInReason = "expired" | "revoked" | "refused" | "signed-out";

export type Navigate = (url: string) => void;

let navigate: Navigate = (url) => window.location.assign(url);

/** Replaces how the app navigates (tests). */
export function setNavigate(next: Navigate): void {
  navigate = next;
}

export function signInUrl(reason: SignInReason, from?: string): string {
  const params = new URLSearchParams({ reason });
  if (from && !from.startsWith("/signin")) params.set("next", from);
  return `/signin/?${params.toString()}`;
}

export function redirectToSignIn(reason: SignInReason): void {
  clearToken();
  const from = typeof window === "undefined" ? undefined : window.location.pathname + window.location.search;
  navigate(signInUrl(reason, from));
}
