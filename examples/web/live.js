// authql example frontend: live session events. While signed in, the page
// holds one websocket to authql (graphql-ws's client, graphql-ws.min.js,
// served by authql itself) with a sessionEvents subscription, so that it
// learns at once of what happens to the account elsewhere:
// - the session revoked (a logout or "Revoke" in another browser, a
//   password reset...) or the account disabled: authql delivers the event
//   and closes the socket with 4401, and the page signs out;
// - TOKEN_EXPIRING, a minute before the access token expires: the page
//   refreshes, and authql keeps the socket open (it lives as long as the
//   session, not the token); a socket closed with 4403 (token expired
//   without a refresh, or refused) reconnects after a refresh;
// - other events (a sign-in elsewhere, roles changed...) are shown.
// The token travels in connection_init's payload, never in the URL.
'use strict';

(() => {
  let client = null; // the graphql-ws client while signed in
  let unsubscribe = null;
  let lifetime = 0; // seconds an access token lives (the grant's expiresIn)
  let stale = false; // closed 4403: refresh before reconnecting
  let session = null; // the session the socket runs on (its token's sid)

  // sessionOf reads the session id (sid) of an access token. Only to tell
  // sessions apart: the page trusts authql's answer, not this decoding.
  function sessionOf(token) {
    try {
      return JSON.parse(atob(token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/'))).sid;
    } catch {
      return null;
    }
  }

  // The socket's URL: the API's, on ws: or wss: as the page is served.
  function socketURL() {
    return new URL(API, location.href.replace(/^http/, 'ws')).href;
  }

  // connectionParams runs at each (re)connection: the current access
  // token, refreshed first when there is none.
  async function connectionParams() {
    if (stale) {
      stale = false;
      await refresh();
    } else if (refreshing) {
      await refreshing;
    }
    session = sessionOf(accessToken);
    return { authorization: `Bearer ${accessToken}` };
  }

  function closed(event) {
    const code = event && event.code;
    if (code === 4401 && accessToken && sessionOf(accessToken) !== session) {
      // The page moved to a new session (a password change or a first
      // factor replaces it) and the old one's socket ended: go on with a
      // socket of the new one.
      const grant = { expiresIn: lifetime, accessToken };
      stop();
      start(grant);
      return;
    }
    if (code === 4401) {
      // The session ended elsewhere: graphql-ws does not retry 4401.
      signedOut();
      notify('Signed out: this session was ended elsewhere.');
    } else if (code === 4403) {
      // The token expired or was refused: the client reconnects, and its
      // connectionParams refreshes first. (A refresh that fails signs out.)
      stale = true;
    }
    if (client) {
      show('live', `closed (${code || 'no code'})`);
    }
  }

  function event(e) {
    show('live-event', `${e.type}${e.current ? ' (this session)' : ''}`);
    // A token living under two minutes is warned of as soon as it is
    // issued: refreshing at each warning would never stop. Such a page
    // (the tests' AUTH_ACCESS_TTL=1s) relies on the 4403 above instead.
    if (e.type === 'TOKEN_EXPIRING' && lifetime >= 120) {
      refresh().catch(() => {});
    }
  }

  function start(grant) {
    lifetime = grant.expiresIn;
    if (client && sessionOf(grant.accessToken) !== session) {
      stop(); // a new session: a socket of its own
    }
    if (client) {
      return;
    }
    const c = graphqlWs.createClient({
      url: socketURL(),
      lazy: false, // the socket watches the session even between subscriptions
      onNonLazyError: () => {}, // closed handles it (the default logs it to the console)
      connectionParams,
      // 4401: the session ended; 4429: too many sockets. Everything else
      // (4403 after a refresh, 1001 a server going away, 1013) reconnects
      // with back-off.
      shouldRetry: (e) => !(e && (e.code === 4401 || e.code === 4429)),
      retryAttempts: 10,
      on: {
        connected: () => client === c && show('live', 'on'),
        closed: (e) => client === c && closed(e), // not a stopped client's
      },
    });
    client = c;
    unsubscribe = client.subscribe(
      { query: 'subscription { sessionEvents { type at sessionId current roles } }' },
      {
        next: ({ data }) => data && event(data.sessionEvents),
        error: () => {}, // the close is handled by closed
        complete: () => {},
      },
    );
  }

  function stop() {
    if (!client) {
      return;
    }
    const c = client;
    client = null;
    unsubscribe();
    c.dispose();
    show('live', 'off');
  }

  hooks.live = { start, stop };
  // Signed in before this script ran (app.js's refresh on load comes after
  // DOMContentLoaded, which waits for this deferred script): nothing to do.
})();
