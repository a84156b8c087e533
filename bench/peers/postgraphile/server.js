// The PostGraphile peer: PostGraphile v4 in library mode over ModelQL's tables, with the
// aggregates and connection-filter plugins, the smart tags of postgraphile.tags.json5 and the
// computed columns of functions.sql, on Node's HTTP server, in one process. (PostGraphile v5
// needs Node 22: on Node 20 it lacks Promise.withResolvers and every query fails.)
//
//     NODE_ENV=production node server.js <postgres connection string> <port>
"use strict";

const http = require("node:http");
const path = require("node:path");

const PgAggregatesPlugin = require("@graphile/pg-aggregates").default;
const { postgraphile } = require("postgraphile");
const { makePgSmartTagsFromFilePlugin } = require("postgraphile/plugins");
const ConnectionFilterPlugin = require("postgraphile-plugin-connection-filter");

const [connectionString, port] = process.argv.slice(2);
const SmartTagsPlugin = makePgSmartTagsFromFilePlugin(
  path.join(__dirname, "postgraphile.tags.json5"),
);

const middleware = postgraphile(connectionString, ["public"], {
  appendPlugins: [SmartTagsPlugin, PgAggregatesPlugin, ConnectionFilterPlugin],
  disableDefaultMutations: true,
  dynamicJson: true,
  setofFunctionsContainNulls: false,
  legacyRelations: "omit",
  graphiql: false,
  disableQueryLog: true,
  retryOnInitFail: false,
  watchPg: false,
  // predictions is partitioned by time: expose the parent table, not each partition.
  usePartitionedParent: true,
});

const server = http.createServer(middleware);
server.listen(Number(port), "127.0.0.1", () => console.log(`listening on ${port}`));
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => process.exit(0));
}
