// The draft's value, live, before it is saved: the table's aggregate under the draft's filter,
// window and grouping, as the signed-in user may compute it. It moves on each transaction like
// the saved KPI will.
"use client";
import { useMemo } from "react";
import { parse, type DocumentNode } from "@0no-co/graphql.web";
import type { TadaDocumentNode } from "gql.tada";
import { useLiveResult } from "@/lib/live/hooks";
import type { LiveStore } from "@/lib/live/store";
import { previewQuery, type KpiDraft } from "./kpiDraft";

type PreviewAnswer = Readonly<Record<string, readonly Record<string, unknown>[] | undefined>>;
type PreviewDocument = TadaDocumentNode<PreviewAnswer, { where?: unknown }>;

export function KpiPreview({ store, draft, typePrefix }: { store: LiveStore | null; draft: KpiDraft; typePrefix: string }) {
  const built = useMemo(() => {
    try {
      return { preview: previewQuery(draft, typePrefix), error: null };
    } catch (e) {
      return { preview: null, error: e instanceof Error ? e.message : String(e) };
    }
  }, [draft, typePrefix]);
  const queryText = built.preview?.query ?? null;
  const document = useMemo(() => (queryText ? (parse(queryText) as DocumentNode as PreviewDocument) : null), [queryText]);
  const result = useLiveResult(store, document, (built.preview?.variables ?? {}) as { where?: unknown });
  if (built.error) return <p className="error">{built.error}</p>;
  if (!built.preview) return <p className="panel-note">Aggregates over an expression are computed by the KPI itself: its value shows once it is saved.</p>;
  const groups = result.data?.[`${draft.table}Aggregate`] ?? null;
  return (
    <div className="live-value" data-testid="kpi-preview">
      {result.error ? <p className="error">{result.error}</p> : null}
      {groups === null ? (
        <p className="muted">{result.error ? "" : "Computing…"}</p>
      ) : draft.groupBy.length === 0 ? (
        <p className="kpi-value num" data-testid="kpi-preview-value">
          {formatValue(groups[0] ? built.preview.valueOf(groups[0]) : null)}
          {draft.unit ? <span className="muted kpi-unit"> {draft.unit}</span> : null}
        </p>
      ) : (
        <table className="grid-table">
          <tbody>
            {groups.map((group, i) => (
              <tr key={i}>
                <td>{Object.values((group["key"] as Record<string, unknown>) ?? {}).join(" / ")}</td>
                <td className="num">{formatValue(built.preview!.valueOf(group))}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {built.preview.caveats.map((c) => (
        <p key={c} className="panel-note small">
          Preview: {c}.
        </p>
      ))}
    </div>
  );
}

function formatValue(value: unknown): string {
  if (value === null || value === undefined) return "—";
  return String(value);
}
