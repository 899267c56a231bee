// A small GraphQL client for the pages: queries over POST /graphql, subscriptions over graphql-transport-ws.
// Same origin only (the pages' Content Security Policy allows nothing else).

export class GraphQLFailure extends Error {
  constructor(errors) {
    super(errors.map((e) => e.message).join("; ") || "request failed");
    this.errors = errors;
    this.code = errors[0]?.extensions?.code || errors[0]?.code || null;
  }
}

function authorization(token) {
  return token ? { Authorization: `Bearer ${token}` } : {};
}

/** Runs a query or mutation; resolves to `data`, rejects with a GraphQLFailure listing the errors. */
export async function gql(query, variables = {}, token = null) {
  let response;
  try {
    response = await fetch("/graphql", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json", ...authorization(token) },
      body: JSON.stringify({ query, variables }),
    });
  } catch (error) {
    throw new GraphQLFailure([{ message: `network error: ${error.message}`, extensions: { code: "NETWORK" } }]);
  }
  let body;
  try {
    body = await response.json();
  } catch {
    throw new GraphQLFailure([{ message: `HTTP ${response.status}`, extensions: { code: "HTTP" } }]);
  }
  if (body.errors && body.errors.length) throw new GraphQLFailure(body.errors);
  return body.data;
}

/** The `errors` of a mutation payload as one GraphQLFailure, or nothing when the list is empty. */
export function payloadFailure(payload) {
  return payload && payload.errors && payload.errors.length ? new GraphQLFailure(payload.errors) : null;
}

/**
 * Subscribes over graphql-transport-ws. Reconnects after a dropped connection (backoff up to 15 s);
 * a refused subscription (an `error` message) is final.
 * Callbacks: onData(data), onError(GraphQLFailure), onState("connecting" | "live" | "offline" | "closed").
 * Returns { close() }.
 */
export function subscribe({ query, variables = {}, token = null, onData, onError, onState = () => {} }) {
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/graphql`;
  let socket = null;
  let closed = false;
  let attempts = 0;
  let timer = null;

  function connect() {
    onState("connecting");
    socket = new WebSocket(url, "graphql-transport-ws");
    socket.onopen = () => {
      socket.send(JSON.stringify({ type: "connection_init", payload: authorization(token) }));
    };
    socket.onmessage = (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      switch (message.type) {
        case "connection_ack":
          attempts = 0;
          socket.send(JSON.stringify({ id: "1", type: "subscribe", payload: { query, variables } }));
          onState("live");
          break;
        case "next":
          if (message.payload.errors && message.payload.errors.length) {
            onError(new GraphQLFailure(message.payload.errors));
          } else {
            onData(message.payload.data);
          }
          break;
        case "error":
          closed = true;
          onError(new GraphQLFailure(Array.isArray(message.payload) ? message.payload : [message.payload]));
          socket.close(1000);
          onState("closed");
          break;
        case "complete":
          closed = true;
          socket.close(1000);
          onState("closed");
          break;
        case "ping":
          socket.send(JSON.stringify({ type: "pong" }));
          break;
        default:
          break;
      }
    };
    socket.onclose = () => {
      if (closed) return;
      onState("offline");
      const delay = Math.min(15000, 1000 * 2 ** attempts);
      attempts += 1;
      timer = setTimeout(connect, delay);
    };
  }

  connect();
  return {
    close() {
      closed = true;
      clearTimeout(timer);
      if (socket && socket.readyState <= 1) {
        if (socket.readyState === 1) socket.send(JSON.stringify({ id: "1", type: "complete" }));
        socket.close(1000);
      }
      onState("closed");
    },
  };
}

/** Inline styles through the CSSOM (the pages' Content Security Policy refuses style attributes). */
export function setStyle(node, properties) {
  for (const [name, value] of Object.entries(properties)) node.style.setProperty(name, value);
}

/** Text nodes only: every value from the API goes into the page through here or textContent, never as HTML. */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "style") setStyle(node, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}
