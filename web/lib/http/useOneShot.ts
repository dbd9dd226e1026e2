// A query that is not live (rules, silences, history): loaded when the page opens and again when
// asked (after a mutation, or a Refresh click). Errors are kept for display, not thrown.
"use client";
import { useCallback, useEffect, useState } from "react";
import type { ResultOf, TadaDocumentNode, VariablesOf } from "gql.tada";
import { graphqlRequest } from "@/lib/http/graphqlRequest";

export interface OneShot<T> {
  readonly data: T | null;
  readonly error: string | null;
  readonly reload: () => void;
}

export function useOneShot<D extends TadaDocumentNode<ResultOf<D>, VariablesOf<D>>>(token: string | null, document: D | null, variables?: VariablesOf<D>): OneShot<ResultOf<D>> {
  const [data, setData] = useState<ResultOf<D> | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [round, setRound] = useState(0);
  const varsKey = JSON.stringify(variables ?? {});
  useEffect(() => {
    if (!token || !document) return;
    let cancelled = false;
    graphqlRequest(token, document, JSON.parse(varsKey) as VariablesOf<D>)
      .then((answer) => {
        if (cancelled) return;
        setData(answer);
        setError(null);
      })
      .catch((e: unknown) => {
        if (!cancelled) setError(e instanceof Error ? e.message : String(e));
      });
    return () => {
      cancelled = true;
    };
  }, [token, document, varsKey, round]);
  const reload = useCallback(() => setRound((n) => n + 1), []);
  return { data, error, reload };
}
