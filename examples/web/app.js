// authql example frontend: sign up, log in, me, silent refresh, sessions,
// log out; the account pages (accounts.js): forgot password, reset,
// verify email, change password or email, delete the account; and second
// factors (mfa.js: the second step of a login, passkey sign-in, step-up;
// factors.js: authenticator apps, recovery codes, passkeys). Plain
// JavaScript against authql's GraphQL API; copy what helps.
//
// Where the tokens live, and why:
// - The access token (short-lived) is kept in a variable, in memory only.
//   Never in localStorage or sessionStorage: any script that runs in the
//   page, including one injected through an XSS hole, can read those and
//   send the token elsewhere. A variable dies with the page.
// - The refresh token (long-lived) is never seen by this script at all:
//   with AUTH_REFRESH_COOKIE=true authql also sets it as an HttpOnly
//   cookie, which page scripts cannot read, restricted to /query, and
//   SameSite=Strict. This script never asks for the refreshToken field.
//   To get a new access token (after a reload, or when it has expired) it
//   calls `refresh` without an argument, and authql reads the cookie.
'use strict';

// The GraphQL endpoint. Same origin here; a frontend on another origin
// puts the API's full URL here and its own origin in AUTH_CORS_ORIGINS.
const API = '/query';

let accessToken = null; // in memory only (see above)
let refreshes = 0; // silent refreshes done, shown on the page
let refreshing = null; // the refresh in flight, if any (see refresh)

// What mfa.js adds to the flows here, each null until it is loaded:
// - mfaRequired(extensions): login answered MFA_REQUIRED; show the second step.
// - stepUp(err): an operation answered INSUFFICIENT_USER_AUTHENTICATION;
//   resolves once the user has proven themself again (reauthenticate),
//   rejects when they decline.
// - signedIn(), signedOut(): the signed-in view opened or closed.
// - live: live.js's socket ({ start, stop }), started once signed in and
//   stopped when signed out.
const hooks = { mfaRequired: null, stepUp: null, signedIn: null, signedOut: null, live: null };

// GraphQLError carries the errors of a GraphQL response. code is the first
// error's extensions.code (UNAUTHENTICATED, BAD_USER_INPUT, ...).
class GraphQLError extends Error {
  constructor(errors) {
    super(errors.map((e) => e.message).join('; '));
    this.errors = errors;
    this.code = (errors[0].extensions && errors[0].extensions.code) || 'UNKNOWN';
  }
}

// post sends one GraphQL document and returns the parsed response.
async function post(query, variables, token) {
  const headers = { 'Content-Type': 'application/json' };
  if (token) {
    headers.Authorization = 'Bearer ' + token;
  }
  const res = await fetch(API, {
    method: 'POST',
    headers,
    body: JSON.stringify({ query, variables }),
    // Send and accept the refresh cookie. Same-origin requests would do
    // that anyway; 'include' makes this code work from another origin too
    // (with that origin in AUTH_CORS_ORIGINS).
    credentials: 'include',
  });
  const type = res.headers.get('Content-Type') || '';
  if (!type.includes('application/json')) {
    throw new GraphQLError([{ message: `HTTP ${res.status} from ${API}`, extensions: { code: 'HTTP_' + res.status } }]);
  }
  return res.json();
}

// call runs an operation that needs no access token (register, login,
// refresh) and returns its data, or throws a GraphQLError.
async function call(query, variables) {
  const body = await post(query, variables, null);
  if (body.errors && body.errors.length) {
    throw new GraphQLError(body.errors);
  }
  return body.data;
}

// authed runs an operation with the access token. When authql answers
// UNAUTHENTICATED (the access token expired, typically) it refreshes once,
// silently, through the cookie, and tries again; only if that fails too is
// the user signed out. When it answers INSUFFICIENT_USER_AUTHENTICATION
// (the operation wants a second factor or a recent sign-in: @auth(aal,
// maxAge)), the user proves themself again and it is tried once more.
async function authed(query, variables) {
  if (!accessToken) {
    await refresh();
  }
  const token = accessToken;
  let body = await post(query, variables, token);
  if (isUnauthenticated(body)) {
    // Refresh only if no other call has done so since this one started:
    // several calls sent with the same expired token all come back
    // UNAUTHENTICATED, some after the first one's refresh has finished.
    if (accessToken === token) {
      await refresh();
    }
    body = await post(query, variables, accessToken);
  }
  if (hooks.stepUp && hasCode(body, 'INSUFFICIENT_USER_AUTHENTICATION')) {
    // Nothing was done: the directive refused before the resolver ran.
    await hooks.stepUp(new GraphQLError(body.errors));
    body = await post(query, variables, accessToken);
  }
  if (body.errors && body.errors.length) {
    throw new GraphQLError(body.errors);
  }
  return body.data;
}

function isUnauthenticated(body) {
  return hasCode(body, 'UNAUTHENTICATED');
}

function hasCode(body, code) {
  return (body.errors || []).some((e) => e.extensions && e.extensions.code === code);
}

const USER = 'id email roles emailVerified';
const GRANT = `accessToken expiresIn user { ${USER} }`; // no refreshToken: it stays in the cookie

// refresh gets a new access token through the refresh cookie. Single
// flight: calls made while one refresh is under way wait for that one
// instead of starting their own. Each refresh rotates the refresh token,
// so two parallel refreshes would present the same cookie twice, and
// authql treats a rotated token presented again as a possible theft
// (past AUTH_REFRESH_REUSE_INTERVAL it revokes the whole session).
function refresh() {
  if (!refreshing) {
    refreshing = (async () => {
      try {
        const data = await call(`mutation { refresh { ${GRANT} } }`);
        signedIn(data.refresh);
        refreshes++;
        show('refreshes', String(refreshes));
      } catch (err) {
        // No cookie, or an expired or revoked session: signed out.
        signedOut();
        throw err;
      } finally {
        refreshing = null;
      }
    })();
  }
  return refreshing;
}

// ---- The page ----

const $ = (id) => document.getElementById(id);

function show(id, text) {
  $(id).textContent = text; // textContent, never innerHTML: data is not markup
}

// The page's own words for the codes a user must act on, in place of
// authql's message: a client decides on the code, never on the message
// (which may change), and says what to do next.
const SAY = {
  EMAIL_NOT_VERIFIED: () => 'Verify your email first: open the link authql mailed to you, then log in.',
  ACCOUNT_DISABLED: () => 'This account is disabled: ask an administrator.',
  RATE_LIMITED: (e) => `Too many attempts: try again in ${wait(e.extensions.retryAfter)}.`,
};

function wait(seconds) {
  const s = Number(seconds) || 1;
  if (s < 120) {
    return s === 1 ? 'a second' : `${s} seconds`;
  }
  return `${Math.ceil(s / 60)} minutes`;
}

function showError(err, box = $('error')) {
  if (!err) {
    box.hidden = true;
    box.textContent = '';
    delete box.dataset.code;
    return;
  }
  const errors = err instanceof GraphQLError ? err.errors : [{ message: String(err.message || err) }];
  const code = (e) => (e.extensions && e.extensions.code) || 'NETWORK_ERROR';
  box.textContent = errors
    .map((e) => `${SAY[code(e)] ? SAY[code(e)](e) : e.message} (${code(e)})`)
    .join('\n');
  box.dataset.code = code(errors[0]);
  box.hidden = false;
}

// notify shows what just happened ('' hides it).
function notify(text) {
  show('notice', text);
  $('notice').hidden = !text;
}

function signedIn(grant) {
  accessToken = grant.accessToken;
  showUser(grant.user);
  if (hooks.live) {
    hooks.live.start(grant);
  }
}

function showUser(user) {
  show('status', `Signed in as ${user.email}`);
  show('me-email', user.email);
  show('me-verified', user.emailVerified ? 'yes' : 'no');
  $('send-verification').hidden = user.emailVerified;
  show('me-roles', user.roles.join(', '));
  show('me-id', user.id);
  const opened = $('signed-in').hidden;
  $('signed-out').hidden = true;
  $('signed-in').hidden = false;
  if (opened && hooks.signedIn) {
    hooks.signedIn();
  }
}

function signedOut() {
  accessToken = null;
  if (hooks.live) {
    hooks.live.stop();
  }
  show('status', 'Signed out');
  $('signed-in').hidden = true;
  $('sessions').hidden = true;
  $('signed-out').hidden = false;
  if (hooks.signedOut) {
    hooks.signedOut();
  }
}

// run runs an action of a button: clears the last error and notice, shows
// the new ones.
function run(action) {
  return async (event) => {
    if (event) {
      event.preventDefault();
    }
    showError(null);
    notify('');
    try {
      await action();
    } catch (err) {
      showError(err);
    }
  };
}

function credentials() {
  return { email: $('email').value, password: $('password').value };
}

async function login() {
  let data;
  try {
    data = await call(`mutation ($email: String!, $password: String!) {
      login(email: $email, password: $password) { ${GRANT} } }`, credentials());
  } catch (err) {
    if (err.code === 'MFA_REQUIRED' && hooks.mfaRequired) {
      // The password was right; the account asks for a second factor.
      $('password').value = '';
      hooks.mfaRequired(err.errors[0].extensions);
      return;
    }
    throw err;
  }
  signedIn(data.login);
  $('password').value = '';
}

async function register() {
  const data = await call(`mutation ($email: String!, $password: String!) {
    register(email: $email, password: $password) { ${GRANT} } }`, credentials());
  signedIn(data.register);
  $('password').value = '';
}

async function reloadMe() {
  const data = await authed(`{ me { ${USER} } }`);
  showUser(data.me);
}

async function loadSessions() {
  const data = await authed('{ mySessions { id createdAt lastUsedAt userAgent ip current } }');
  const rows = data.mySessions.map((s) => {
    const tr = document.createElement('tr');
    tr.dataset.id = s.id;
    if (s.current) {
      tr.className = 'current';
    }
    for (const text of [when(s.createdAt), when(s.lastUsedAt), s.userAgent, s.ip]) {
      const td = document.createElement('td');
      td.textContent = text;
      td.title = text;
      tr.appendChild(td);
    }
    const td = document.createElement('td');
    if (s.current) {
      td.textContent = 'this session';
    } else {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'revoke';
      b.textContent = 'Revoke';
      b.addEventListener('click', run(() => revokeSession(s.id)));
      td.appendChild(b);
    }
    tr.appendChild(td);
    tr.children[2].className = 'ua';
    return tr;
  });
  $('sessions').querySelector('tbody').replaceChildren(...rows);
  $('sessions').hidden = false;
}

function when(t) {
  return new Date(t).toLocaleString();
}

async function revokeSession(id) {
  await authed('mutation ($id: ID!) { revokeSession(id: $id) }', { id });
  await loadSessions();
}

async function logout() {
  try {
    // authql revokes the session and deletes the cookie.
    await authed('mutation { logout }');
  } finally {
    signedOut();
  }
}

$('credentials').addEventListener('submit', run(login));
$('register').addEventListener('click', run(register));
$('reload-me').addEventListener('click', run(reloadMe));
$('load-sessions').addEventListener('click', run(loadSessions));
$('logout').addEventListener('click', run(logout));

// On load, the access token is gone with the previous page; the refresh
// cookie, if any, survived: a silent refresh keeps the user signed in
// across reloads. Without a cookie the user is simply signed out, with no
// error shown. (accounts.js, which runs right after this file, shows the
// part of the path and takes a mailed link's token out of the address bar.)
// Once every script has run (DOMContentLoaded comes after the deferred
// ones): the answer must find mfa.js's hooks in place, and a script still
// loading could otherwise let it arrive first.
document.addEventListener('DOMContentLoaded', () => refresh().catch(() => {}));
