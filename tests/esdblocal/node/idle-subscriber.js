// The official Node.js client's catch-up subscription, left idle, for test_idle_clients.py.
// usage: node idle-subscriber.js <connection string> <stream>
// Prints one JSON line per step on stdout: {"confirmed":true} once the server confirms the
// subscription, then {"received":"<type>"} for the first event, or {"error":"..."} when the
// subscription ends with an error; exits 0 after the event, 1 after an error.
const { EventStoreDBClient } = require("@eventstore/db-client");

const [uri, stream] = process.argv.slice(2);
const client = EventStoreDBClient.connectionString(uri); // the client's default keep-alive
const started = Date.now();
const say = (message) => process.stdout.write(JSON.stringify(message) + "\n");

const subscription = client.subscribeToStream(stream);
subscription.on("confirmation", () => say({ confirmed: true }));
subscription.on("data", ({ event }) => {
  if (!event) return;
  say({ received: event.type, after: (Date.now() - started) / 1000 });
  subscription.unsubscribe().finally(() => client.dispose().finally(() => process.exit(0)));
});
subscription.on("error", (error) => {
  say({ error: `${error.name}: ${error.message}`, after: (Date.now() - started) / 1000 });
  process.exit(1);
});
