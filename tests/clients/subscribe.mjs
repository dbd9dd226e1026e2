// Subscribes with a real client library and prints every result as one JSON line, so a Rust
// test can drive the database and read what the client saw.
//
//   node subscribe.mjs transport|legacy ws://HOST/graphql TOKEN 'subscription { … }'
//
// transport: graphql-ws (the graphql-transport-ws protocol); legacy: subscriptions-transport-ws
// (the graphql-ws protocol). Errors print as {"error": …}; the process runs until killed.
import WebSocket from "ws";

const [protocol, url, token, query] = process.argv.slice(2);
const print = (value) => process.stdout.write(JSON.stringify(value) + "\n");

if (protocol === "transport") {
  const { createClient } = await import("graphql-ws");
  const client = createClient({
    url,
    webSocketImpl: WebSocket,
    connectionParams: { Authorization: `Bearer ${token}` },
    retryAttempts: 0,
  });
  client.subscribe({ query }, {
    next: (result) => print(result),
    error: (error) => print({ error: String(error?.message ?? error?.reason ?? JSON.stringify(error)) }),
    complete: () => print({ complete: true }),
  });
} else if (protocol === "legacy") {
  const { SubscriptionClient } = await import("subscriptions-transport-ws");
  const client = new SubscriptionClient(url, { connectionParams: { Authorization: `Bearer ${token}` } }, WebSocket);
  client.request({ query }).subscribe({
    next: (result) => print(result),
    error: (error) => print({ error: String(error?.message ?? JSON.stringify(error)) }),
    complete: () => print({ complete: true }),
  });
} else {
  console.error(`unknown protocol ${protocol}: transport or legacy`);
  process.exit(2);
}
