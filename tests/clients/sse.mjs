// Subscribes with the graphql-sse client library (GraphQL over Server-Sent Events) and prints
// every result as one JSON line, so a Rust test can drive the database and read what the client
// saw.
//
//   node sse.mjs single|distinct|single2 http://HOST/graphql/stream TOKEN 'subscription { … }' [VARIABLES_JSON]
//
// single: "single connection mode" (PUT reserves a stream token, GET opens the one event stream,
// POST starts the operation on it; this script never unsubscribes, so it never sends the DELETE
// that stops one); distinct: "distinct connections mode" (one POST per operation whose response is
// the event stream); single2: one single-connection client subscribing the same query twice, lines
// tagged {"op": 1 | 2, …}, to check that two operations share one event stream.
//
// Results print as they arrive; errors print as {"error": "…"} (plus "status"/"body" when the
// server answered with an unexpected response), or {"errors": […]} for a GraphQL errors array;
// completion prints {"complete": true}. The process runs until killed.
import { createClient } from "graphql-sse";

const [mode, url, token, query, variablesJson] = process.argv.slice(2);
const print = (value) => process.stdout.write(JSON.stringify(value) + "\n");

if (!["single", "distinct", "single2"].includes(mode) || !url || token === undefined || !query) {
  console.error("usage: node sse.mjs single|distinct|single2 URL TOKEN QUERY [VARIABLES_JSON]");
  process.exit(2);
}

const request = variablesJson ? { query, variables: JSON.parse(variablesJson) } : { query };

const isResponseLike = (value) =>
  typeof value === "object" && value !== null &&
  typeof value.ok === "boolean" && typeof value.status === "number" && typeof value.statusText === "string";

// Read a Response's body for the error report (the library never reads the body of a response it
// rejects, and fetchFn below buffers it).
// (In single2 mode both operations are rejected with the same Response, hence the cache.)
const bodies = new WeakMap();
async function responseDetail(response) {
  if (!bodies.has(response)) {
    bodies.set(response, response.text().catch((error) => `<body unavailable: ${error?.message ?? error}>`));
  }
  const body = await bodies.get(response);
  return {
    error: `Server responded with ${response.status} ${response.statusText}: ${body}`,
    status: response.status,
    body,
  };
}

// graphql-sse reports NetworkError (with .response when the server answered unexpectedly), plain
// Errors (protocol/parse problems), or — defensively — arrays of GraphQL errors and raw Responses.
async function describeError(error) {
  if (Array.isArray(error)) return { errors: error };
  if (isResponseLike(error)) return responseDetail(error);
  if (error instanceof Error) {
    const name = error.name && error.name !== "Error" ? `${error.name}: ` : "";
    const cause = error.cause ? ` (cause: ${error.cause?.message ?? String(error.cause)})` : "";
    if (isResponseLike(error.response)) {
      const detail = await responseDetail(error.response);
      return { ...detail, error: `${name}${error.message}: ${detail.body}` };
    }
    return { error: `${name}${error.message}${cause}` };
  }
  if (typeof error === "object" && error !== null) {
    return { error: String(error.message ?? error.reason ?? JSON.stringify(error)) };
  }
  return { error: String(error) };
}

function subscribe(client, tag) {
  const out = (value) => print(tag === undefined ? value : { op: tag, ...value });
  client.subscribe(request, {
    next: (result) => out(result),
    error: (error) => {
      describeError(error).then(out, (failure) => out({ error: String(failure) }));
    },
    complete: () => out({ complete: true }),
  });
}

// Node's built-in fetch, except that every response that is not an event stream (PUT/POST/DELETE
// answers in single connection mode, and any non-2xx answer) is read in full before the library
// sees it: on failure the library aborts the request's signal before reporting the error, which
// would otherwise make the body unreadable for the error report. The HTTP traffic is unchanged.
async function fetchFn(input, init) {
  const response = await fetch(input, init);
  const accept = new Headers(init?.headers).get("accept");
  if (response.ok && accept === "text/event-stream") return response;
  const body = await response.arrayBuffer();
  return new Response([101, 204, 205, 304].includes(response.status) ? null : body, {
    status: response.status,
    statusText: response.statusText,
    headers: response.headers,
  });
}

const client = createClient({
  url,
  fetchFn,
  singleConnection: mode !== "distinct",
  headers: { Authorization: `Bearer ${token}` },
  retryAttempts: 0,
});

if (mode === "single2") {
  subscribe(client, 1);
  subscribe(client, 2);
} else {
  subscribe(client);
}

// Stay alive until killed, even after the stream has completed or failed.
setInterval(() => {}, 1 << 30);
