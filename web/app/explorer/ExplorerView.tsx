// GraphiQL against /graphql as the signed-in user: queries over HTTP, subscriptions (live
// queries) over the WebSocket, both with the session's token, so introspection and completion
// show the role's own schema. Loaded only on this route (Monaco is large), in the browser only.
"use client";
import "graphiql/setup-workers/webpack";
import "graphiql/style.css";
import dynamic from "next/dynamic";
import { useMemo } from "react";
import { createGraphiQLFetcher } from "@graphiql/toolkit";
import { useHydrated, useSession } from "@/lib/auth/useSession";
import type { Example } from "./examples";

const GraphiQL = dynamic(() => import("graphiql").then((m) => m.GraphiQL), { ssr: false, loading: () => <p className="muted">Loading GraphiQL…</p> });

export function ExplorerView({ examples }: { examples: readonly Example[] }) {
  const hydrated = useHydrated();
  const session = useSession();
  const token = session?.token ?? null;
  const fetcher = useMemo(() => {
    if (!hydrated || !token) return null;
    const { protocol, host } = window.location;
    const authorization = `Bearer ${token}`;
    return createGraphiQLFetcher({
      url: `${protocol}//${host}/graphql`,
      subscriptionUrl: `${protocol === "https:" ? "wss:" : "ws:"}//${host}/graphql`,
      headers: { Authorization: authorization },
      wsConnectionParams: { Authorization: authorization },
    });
  }, [hydrated, token]);
  const tabs = useMemo(() => examples.map((e) => ({ query: e.query })), [examples]);
  if (!fetcher) return null;
  return (
    <div className="explorer" data-testid="explorer">
      <GraphiQL fetcher={fetcher} defaultTabs={tabs} shouldPersistHeaders={false} />
    </div>
  );
}
