// The frame of every page: sends a signed-out visitor to /signin/, shows the pages the role
// can read (decided from its SDL), who is signed in, and the connection badge.
"use client";
import Link from "next/link";
import { usePathname } from "next/navigation";
import { useEffect, type ReactNode } from "react";
import { ConnectionBadge } from "./ConnectionBadge";
import { useHydrated, useSession, sessionChanged } from "@/lib/auth/useSession";
import { clearToken } from "@/lib/auth/token";
import { signInUrl } from "@/lib/auth/signInRedirect";
import { useRoleSchema } from "@/lib/schema/useRoleSchema";
import { readablePages } from "@/lib/navigation/pages";
import { disposeLiveRuntime, liveRuntime } from "@/lib/live/runtime";

export function AppShell({ children }: { children: ReactNode }) {
  const pathname = usePathname();
  const hydrated = useHydrated();
  const session = useSession();
  const schema = useRoleSchema(session);
  // Sign-in, and the acknowledgement page a message links to, work signed out.
  const signedOutPage = pathname.startsWith("/signin") || pathname.startsWith("/ack");
  const runtime = hydrated && session && !signedOutPage ? liveRuntime() : null;

  useEffect(() => {
    if (hydrated && !session && !signedOutPage) window.location.replace(signInUrl("signed-out", window.location.pathname + window.location.search));
  }, [hydrated, session, signedOutPage]);

  if (signedOutPage) return <main className="shell-main">{children}</main>;
  if (!hydrated || !session) return <main className="shell-main muted">Loading…</main>;

  const pages = schema.status === "ready" ? readablePages(schema.schema) : [];
  const signOut = () => {
    disposeLiveRuntime();
    clearToken();
    sessionChanged();
  };
  return (
    <>
      <header className="shell-header">
        <span className="shell-brand">opslive</span>
        <nav className="shell-nav" aria-label="Pages">
          {pages.map((page) => (
            <Link key={page.href} href={page.href} aria-current={isCurrent(pathname, page.href) ? "page" : undefined}>
              {page.label}
            </Link>
          ))}
        </nav>
        <ConnectionBadge client={runtime?.client ?? null} />
        <span className="shell-user">
          <span title={session.sub}>{session.sub || "(no sub)"}</span>
          <span className="muted">{session.role}</span>
          <button type="button" onClick={signOut}>
            Sign out
          </button>
        </span>
      </header>
      <main className="shell-main">
        {schema.status === "error" ? <p className="error">Could not read your role&apos;s schema: {schema.error}</p> : null}
        {children}
      </main>
    </>
  );
}

function isCurrent(pathname: string, href: string): boolean {
  if (href === "/") return pathname === "/";
  return pathname.startsWith(href.replace(/\/$/, ""));
}
