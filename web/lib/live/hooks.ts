// The React side of the live layer: small hooks over the store with `useSyncExternalStore`.
// A component names the document (typed by gql.tada) and gets the latest snapshot; it re-renders
// at most once per animation frame however fast the messages come.
"use client";
import { useEffect, useMemo, useSyncExternalStore } from "react";
import { print } from "@0no-co/graphql.web";
import type { DocumentNode } from "@0no-co/graphql.web";
import type { ResultOf, TadaDocumentNode, VariablesOf } from "gql.tada";
import type { ConnectionSnapshot, LiveConnection, SubscriptionRequest } from "./client";
import type { LiveRow } from "./patches";
import { loadingRows } from "./store";
import type { LiveHandle, LiveStore, ResultSnapshot, RowsSnapshot } from "./store";

const printed = new WeakMap<DocumentNode, string>();

/** The query text of a document, printed once. */
export function queryText(document: DocumentNode): string {
  let text = printed.get(document);
  if (text === undefined) {
    text = print(document);
    printed.set(document, text);
  }
  return text;
}

function useHandle<S>(handle: LiveHandle<S> | null, fallback: S): S {
  useEffect(() => (handle ? handle.retain() : undefined), [handle]);
  const subscribe = useMemo(() => (handle ? handle.subscribe : () => () => {}), [handle]);
  const get = handle ? handle.get : () => fallback;
  return useSyncExternalStore(subscribe, get, () => fallback);
}

const IDLE_RESULT: ResultSnapshot<never> = { status: "loading", data: null, error: null, asOf: null, receivedAt: null };

/**
 * A plain live query (whole result per message); `store` null renders the loading state.
 * `minIntervalMs` paces it (see `SubscriptionRequest`).
 */
export function useLiveResult<D extends TadaDocumentNode<ResultOf<D>, VariablesOf<D>>>(
  store: LiveStore | null,
  document: D | null,
  variables?: VariablesOf<D>,
  minIntervalMs?: number,
): ResultSnapshot<ResultOf<D>> {
  const varsKey = JSON.stringify(variables ?? {});
  const handle = useMemo(
    () => (store && document ? store.result<ResultOf<D>>({ ...request(document, varsKey), ...(minIntervalMs ? { minIntervalMs } : {}) }) : null),
    // eslint-disable-next-line react-hooks/exhaustive-deps -- variables compared by value
    [store, document, varsKey, minIntervalMs],
  );
  return useHandle<ResultSnapshot<ResultOf<D>>>(handle, IDLE_RESULT);
}

const IDLE_ROWS: RowsSnapshot<never> = loadingRows<never>();

/** An incremental live query held as keyed rows. `Row` is the generated row type of the document. */
export function useLiveRows<Row extends LiveRow>(
  store: LiveStore | null,
  document: DocumentNode | null,
  field: string,
  keyFields: readonly string[],
  variables?: Readonly<Record<string, unknown>>,
): RowsSnapshot<Row> {
  const varsKey = JSON.stringify(variables ?? {});
  const keysKey = keyFields.join(",");
  const handle = useMemo(
    () => (store && document ? store.rows<Row>(request(document, varsKey), field, keysKey.split(",")) : null),
    [store, document, varsKey, field, keysKey],
  );
  return useHandle<RowsSnapshot<Row>>(handle, IDLE_ROWS);
}

function request(document: DocumentNode, varsKey: string): SubscriptionRequest {
  return { query: queryText(document), variables: JSON.parse(varsKey) as Record<string, unknown> };
}

const CONNECTING: ConnectionSnapshot = { state: "idle", since: 0, attempts: 0 };

/** The connection's state for the badge. */
export function useConnection(client: LiveConnection | null): ConnectionSnapshot {
  const subscribe = useMemo(() => (client ? client.connection.subscribe : () => () => {}), [client]);
  return useSyncExternalStore(subscribe, client ? client.connection.get : () => CONNECTING, () => CONNECTING);
}
