// GraphQL over HTTP for the dashboard: the API key (kept in this tab only), and what an
// answer's errors mean for a panel.

const KEY = "modelql.apiKey";

export const apiKey = {
  get: () => sessionStorage.getItem(KEY),
  set: (key) => sessionStorage.setItem(KEY, key),
  clear: () => sessionStorage.removeItem(KEY),
};

/** Raised when the server wants a (valid) API key: HTTP 401. */
export class AuthenticationNeeded extends Error {}

/** Run one GraphQL document; resolves to {data, errors}. */
export async function graphql(query, variables = {}) {
  const headers = { "content-type": "application/json", accept: "application/json" };
  const key = apiKey.get();
  if (key) headers.authorization = `Bearer ${key}`;
  const response = await fetch("/graphql", {
    method: "POST",
    headers,
    body: JSON.stringify({ query, variables }),
  });
  if (response.status === 401) throw new AuthenticationNeeded((await response.json()).errors?.[0]?.message);
  const body = await response.json();
  return { data: body.data ?? null, errors: body.errors ?? [] };
}

const codes = (errors) => errors.map((error) => error.extensions?.code);

/** The server's schema lacks a field or value this document asks for (not merged yet). */
export const unavailable = (errors) => codes(errors).includes("GRAPHQL_VALIDATION_FAILED");

/** The key lacks a scope; returns the scope named, else null. */
export function forbidden(errors) {
  const error = errors.find((item) => item.extensions?.code === "FORBIDDEN");
  return error ? error.extensions.requiredScope ?? "another" : null;
}
