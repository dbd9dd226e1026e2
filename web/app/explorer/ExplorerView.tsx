// GraphiQL against /graphql as the signed-in user: queries over HTTP, subscriptions (live
// queries) over the WebSocket, both with the session's token, so introspection and completion
// show the role's own schema. Loaded only on this route (Monaco is large), in the browser only.
// Beside it, the user's saved queries, when the role's schema has them.
"use client";
import "graphiql/setup-workers/webpack";
import "graphiql/style.css";
import dynamic from "next/dynamic";
import { useMemo } from "react";
import { createGraphiQLFetcher, type Fetcher } from "@graphiql/toolkit";
import { useHydrated, useSession } from "@/lib/auth/useSession";
import { canMutate, canQuery } from "@/lib/schema/roleSchema";
import { useRoleSchema } from "@/lib/schema/useRoleSchema";
import type { Example } from "./examples";
import { mendOperation } from "./operationName";

const ExplorerIde = dynamic(() => import("./ExplorerIde").then((m) => m.ExplorerIde), { ssr: false, loading: () => <p className="muted">Loading GraphiQL…</p> });

export function ExplorerView({ examples }: { examples: readonly Example[] }) {
  const hydrated = useHydrated();
  const session = useSession();
  const token = session?.token ?? null;
  const schemaState = useRoleSchema(session);
  const schema = schemaState.status === "ready" ? schemaState.schema : null;
  const saved = useMemo(() => (schema && canQuery(schema, "savedQueries") ? { save: canMutate(schema, "saveQuery"), remove: canMutate(schema, "deleteSavedQuery") } : null), [schema]);
  const fetcher = useMemo(() => {
    if (!hydrated || !token) return null;
    const { protocol, host } = window.location;
    const authorization = `Bearer ${token}`;
    const base = createGraphiQLFetcher({
      url: `${protocol}//${host}/graphql`,
      subscriptionUrl: `${protocol === "https:" ? "wss:" : "ws:"}//${host}/graphql`,
      headers: { Authorization: authorization },
      wsConnectionParams: { Authorization: authorization },
    });
    const fetcher: Fetcher = (params, options) => base(...mendOperation(params, options));
    return fetcher;
  }, [hydrated, token]);
  const tabs = useMemo(() => examples.map((e) => ({ query: e.query })), [examples]);
  if (!fetcher || !session || !token) return null;
  return (
    <div className="explorer" data-testid="explorer">
      <ExplorerIde fetcher={fetcher} tabs={tabs} token={token} sub={session.sub} saved={saved} />
    </div>
  );
}
