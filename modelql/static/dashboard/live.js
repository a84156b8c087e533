// A small graphql-transport-ws client: one socket, one subscription, reconnecting with
// backoff unless the server refused the key.

import { apiKey } from "./api.js";

const PROTOCOL = "graphql-transport-ws";

/**
 * Subscribe to `query`; `onData(data)` gets each result, `onState(text, kind)` the
 * connection's state. Returns a function that ends the subscription.
 */
export function subscribe(query, variables, { onData, onState, onError }) {
  let socket = null;
  let stopped = false;
  let backoff = 500;

  const connect = () => {
    const url = new URL("/graphql", window.location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    socket = new WebSocket(url, PROTOCOL);
    onState("connecting", "pending");
    socket.addEventListener("open", () => {
      const key = apiKey.get();
      const payload = key ? { authorization: `Bearer ${key}` } : {};
      socket.send(JSON.stringify({ type: "connection_init", payload }));
    });
    socket.addEventListener("message", (event) => {
      const message = JSON.parse(event.data);
      if (message.type === "connection_ack") {
        backoff = 500;
        onState("live", "ok");
        socket.send(JSON.stringify({ id: "1", type: "subscribe", payload: { query, variables } }));
      } else if (message.type === "next") {
        if (message.payload.errors?.length) onError(message.payload.errors);
        if (message.payload.data) onData(message.payload.data);
      } else if (message.type === "error") {
        onError(message.payload);
      } else if (message.type === "ping") {
        socket.send(JSON.stringify({ type: "pong" }));
      }
    });
    socket.addEventListener("close", (event) => {
      if (stopped) return;
      if (event.code === 4403) {
        onState("refused: the API key is missing, unknown or revoked", "error");
        return;
      }
      onState(`disconnected${event.reason ? ` (${event.reason})` : ""}; reconnecting`, "pending");
      setTimeout(connect, backoff);
      backoff = Math.min(backoff * 2, 10000);
    });
  };

  connect();
  return () => {
    stopped = true;
    socket?.close(1000, "done");
  };
}
