/** @vitest-environment jsdom */
// Token expiry routes to sign-in: the stored token is dropped and the page the user was on is
// kept for after the new sign-in; stored tokens past `exp` are not offered to pages.
import { describe, expect, it } from "vitest";
import { redirectToSignIn, setNavigate } from "./signInRedirect";
import { loadSession, saveToken, TOKEN_STORAGE_KEY } from "./token";

function token(claims: Record<string, unknown>): string {
  const encode = (value: unknown) => btoa(JSON.stringify(value)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  return `${encode({ alg: "HS256", typ: "JWT" })}.${encode(claims)}.signature`;
}

describe("sign-in redirect", () => {
  it("clears the token and keeps the page to come back to", () => {
    const visited: string[] = [];
    setNavigate((url) => visited.push(url));
    window.history.pushState({}, "", "/orders/?channel=web&status=paid");
    saveToken(token({ role: "ops_manager", sub: "omar@demo.opslive", exp: Math.floor(Date.now() / 1000) + 60 }));
    expect(loadSession()?.role).toBe("ops_manager");
    redirectToSignIn("expired");
    expect(sessionStorage.getItem(TOKEN_STORAGE_KEY)).toBeNull();
    const url = new URL(visited[0] ?? "", "http://x");
    expect(url.pathname).toBe("/signin/");
    expect(url.searchParams.get("reason")).toBe("expired");
    expect(url.searchParams.get("next")).toBe("/orders/?channel=web&status=paid");
  });

  it("does not hand out a stored token whose exp has passed", () => {
    saveToken(token({ role: "finance", sub: "fay", exp: Math.floor(Date.now() / 1000) - 1 }));
    expect(loadSession()).toBeNull();
    expect(sessionStorage.getItem(TOKEN_STORAGE_KEY)).toBeNull();
  });
});
