// The Alerts page: rules, the alerts pending or firing now (live), silences and history. A rule
// chosen in the list (`?rule=` in the URL) narrows the instances and the history to it.
"use client";
import { usePathname, useRouter, useSearchParams } from "next/navigation";
import { useLiveContext } from "@/lib/live/useLiveContext";
import { useOneShot } from "@/lib/http/useOneShot";
import { canMutate, canQuery } from "@/lib/schema/roleSchema";
import { usePrunedDocument } from "@/lib/schema/usePrunedDocument";
import { AlertHistoryPanel } from "./AlertHistoryPanel";
import { AlertInstances } from "./AlertInstances";
import { AlertRulesPanel } from "./AlertRulesPanel";
import { AlertRules } from "./documents";
import { SilencesPanel } from "./SilencesPanel";

export function AlertsView() {
  const { session, store, schema } = useLiveContext();
  const params = useSearchParams();
  const router = useRouter();
  const pathname = usePathname();
  const ruleId = params.get("rule");
  const rules = useOneShot(session?.token ?? null, usePrunedDocument(AlertRules, schema).document);
  if (!session) return null;
  const canManage = schema ? canMutate(schema, "createAlertRule") : false;
  const select = (id: string | null) => router.replace(id ? `${pathname}?rule=${encodeURIComponent(id)}` : pathname, { scroll: false });
  return (
    <>
      <h1 style={{ margin: 0, fontSize: 20 }}>Alerts</h1>
      <section className="panel" aria-labelledby="instances-title">
        <h2 id="instances-title">Pending and firing</h2>
        <AlertInstances store={store} schema={schema} token={session.token} ruleId={ruleId} />
      </section>
      <section className="panel" aria-labelledby="rules-title">
        <h2 id="rules-title">Rules</h2>
        <AlertRulesPanel token={session.token} rules={rules} canManage={canManage} selected={ruleId} onSelect={select} />
      </section>
      <div className="grid-2">
        {schema && canQuery(schema, "silences") ? (
          <section className="panel" aria-labelledby="silences-title">
            <h2 id="silences-title">Silences</h2>
            <SilencesPanel token={session.token} canManage={canManage} />
          </section>
        ) : null}
        {schema && canQuery(schema, "alertHistory") ? (
          <section className="panel" aria-labelledby="history-title">
            <h2 id="history-title">History</h2>
            <AlertHistoryPanel token={session.token} ruleId={ruleId} />
          </section>
        ) : null}
      </div>
    </>
  );
}
