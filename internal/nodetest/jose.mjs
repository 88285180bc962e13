// Verifies an access token as a downstream service would, with jose and
// nothing but authql's discovery document: node jose.mjs BASE_URL TOKEN
// AUDIENCE. It fetches BASE_URL/.well-known/oauth-authorization-server,
// builds a remote JWKS from its jwks_uri and verifies the token against
// its issuer and AUDIENCE. It prints the token's payload as JSON, or the
// error's code and exits 1.
import { createRemoteJWKSet, jwtVerify } from "jose";

const [base, token, audience] = process.argv.slice(2);
if (!base || !token || !audience) {
  console.error("usage: node jose.mjs BASE_URL TOKEN AUDIENCE");
  process.exit(2);
}
const res = await fetch(new URL("/.well-known/oauth-authorization-server", base));
if (!res.ok) {
  console.error(`discovery: HTTP ${res.status}`);
  process.exit(2);
}
const meta = await res.json();
const jwks = createRemoteJWKSet(new URL(meta.jwks_uri));
try {
  const { payload } = await jwtVerify(token, jwks, { issuer: meta.issuer, audience, typ: "at+jwt" });
  console.log(JSON.stringify(payload));
} catch (err) {
  console.log(JSON.stringify({ error: err.code ?? err.name }));
  process.exit(1);
}
