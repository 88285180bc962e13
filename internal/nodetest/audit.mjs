// Runs the graphql-http audit suite (GraphQL over HTTP conformance)
// against the authql at process.argv[2] (its /query URL) and prints one
// JSON line per audit that did not pass: {"id","name","status","reason"}.
// The Go test (graphql_http_test.go) decides which are acceptable.
import { auditServer } from "graphql-http";

const url = process.argv[2];
if (!url) {
  console.error("usage: node audit.mjs http://host:port/query");
  process.exit(2);
}
const results = await auditServer({ url });
for (const r of results) {
  if (r.status !== "ok") {
    console.log(JSON.stringify({ id: r.id, name: r.name, status: r.status, reason: r.reason }));
  }
}
console.log(JSON.stringify({ audits: results.length }));
