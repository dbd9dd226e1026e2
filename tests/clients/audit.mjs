// The GraphQL-over-HTTP spec's server audits (graphql-http, the spec's reference
// implementation) against a running opslive: `node audit.mjs <url> <token>`. Prints one JSON
// line per audit: { id, name, status: "ok" | "warn" | "error", reason }.
import { auditServer } from "graphql-http";

const [url, token] = process.argv.slice(2);
if (!url || !token) {
  console.error("usage: node audit.mjs <url> <token>");
  process.exit(2);
}

// Every request carries the token: opslive answers nothing unauthenticated.
const fetchFn = (input, init = {}) => {
  const headers = new Headers(init.headers);
  headers.set("authorization", `Bearer ${token}`);
  return fetch(input, { ...init, headers });
};

const results = await auditServer({ url, fetchFn });
for (const r of results) {
  console.log(JSON.stringify({ id: r.id, name: r.name, status: r.status, reason: r.status === "ok" ? null : r.reason }));
}
