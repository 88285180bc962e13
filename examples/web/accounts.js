// authql example frontend, the account pages: forgot password, reset,
// verify email, change password, change email, delete the account. Runs
// after app.js, whose functions (call, authed, run, ...) it uses.
//
// Mailed links and codes, and why they are handled this way:
// - authql mails ${AUTH_APP_URL}/reset#token=…, /verify#token=… and
//   /confirm-email#token=…; this page is served at each of those paths and
//   shows the part of location.pathname. The token is in the fragment,
//   which browsers never send to a server: not in the request for the
//   page, not in a Referer. So a mail scanner that fetches the link uses up
//   nothing, and no log on the way sees the token.
// - The page reads the token once, keeps it in a variable, and removes it
//   from the address bar (history.replaceState), so that it does not stay
//   in the history, in a bookmark or in a screenshot. It goes nowhere but
//   in the body of the GraphQL POST that uses it.
// - Nothing is used up on load: the user presses the button. A scanner
//   that runs the page's script still consumes nothing.
// - Every mail also has a short code, for when the link opens elsewhere
//   (another browser, another device). A code is only valid with the
//   requestId of its request, which only the tab that asked for the mail
//   knows: kept in sessionStorage (this tab only; it is useless without
//   the code, which only the mailbox has).
'use strict';

// The mailed requests, by the path of their link.
const REQUESTS = {
  reset: {
    title: 'Set a new password',
    mutation: 'resetPassword',
    submit: 'Set the new password',
    elsewhere: 'Ask for a reset mail from this browser to type its code here.',
    done: 'Your password is changed and every session of the account has ended. Log in with the new password.',
  },
  verify: {
    title: 'Verify your email',
    mutation: 'verifyEmail',
    submit: 'Verify my email',
    elsewhere: 'Sign in and ask for a verification mail from this browser to type its code here.',
    done: 'Your email is verified.',
  },
  'confirm-email': {
    title: 'Confirm your new email',
    mutation: 'confirmEmailChange',
    submit: 'Confirm my new email',
    elsewhere: 'Sign in and ask for the email change from this browser to type its code here.',
    done: 'Your email is changed.',
  },
};

const page = location.pathname.slice(location.pathname.lastIndexOf('/') + 1);

// The request shown in #request: its kind, and the token of its link or
// the pending request of this tab (for a code).
let shown = null;

// takeToken returns the token of a mailed link from the URL fragment, and
// removes the fragment from the address bar (see above).
function takeToken() {
  const m = /^#token=([A-Za-z0-9_-]+)$/.exec(location.hash);
  if (location.hash) {
    history.replaceState(history.state, '', location.pathname + location.search);
  }
  return m ? m[1] : null;
}

// pending returns the request of this tab of a kind, if it has not expired.
function pending(kind) {
  const key = 'authql.' + kind;
  try {
    const r = JSON.parse(sessionStorage.getItem(key));
    if (r && r.requestId && new Date(r.expiresAt) > new Date()) {
      return r;
    }
  } catch {
    // Nothing usable stored.
  }
  sessionStorage.removeItem(key);
  return null;
}

// requested remembers a request this tab made (an EmailRequest), and shows
// the form for its code.
function requested(kind, request) {
  sessionStorage.setItem('authql.' + kind, JSON.stringify(request));
  showRequest(kind, null, request);
}

function showRequest(kind, token, request) {
  const r = REQUESTS[kind];
  shown = { kind, token, request };
  show('request-title', r.title);
  if (token) {
    show('request-note', 'The link of your mail is read.' + (kind === 'reset' ? ' Choose a new password:' : ''));
  } else if (request) {
    show('request-note', `authql mailed a link and a code, valid until ${when(request.expiresAt)}. ` +
      'Open the link, or type the code here:');
  } else {
    show('request-note', 'Open the link of your mail. ' + r.elsewhere);
  }
  $('request-form').hidden = !token && !request;
  $('request-code-label').hidden = !!token;
  $('request-code').required = !token;
  $('request-code').value = '';
  $('request-password-label').hidden = kind !== 'reset';
  $('request-password').required = kind === 'reset';
  show('request-submit', r.submit);
  $('request').hidden = false;
}

// submitRequest sends the link's token, or the request's id and the typed
// code, to the request's mutation.
async function submitRequest() {
  const { kind, token, request } = shown;
  const reset = kind === 'reset';
  const vars = token ? { token } : { requestId: request.requestId, code: $('request-code').value.replace(/[\s-]/g, '').toUpperCase() };
  if (reset) {
    vars.newPassword = $('request-password').value;
  }
  await call(`mutation ($token: String, $requestId: ID, $code: String${reset ? ', $newPassword: String!' : ''}) {
    ${REQUESTS[kind].mutation}(token: $token, requestId: $requestId, code: $code${reset ? ', newPassword: $newPassword' : ''}) }`, vars);
  // Used up: the token and the request are of no more use.
  shown = null;
  sessionStorage.removeItem('authql.' + kind);
  $('request-password').value = '';
  $('request').hidden = true;
  $('forgot').hidden = true;
  if (reset) {
    // A reset ends every session of the account, this tab's too if it was
    // signed in to it: find out through the cookie.
    accessToken = null;
    await refresh().catch(() => {});
  } else if (accessToken) {
    await reloadMe();
  }
  notify(REQUESTS[kind].done);
}

async function forgot() {
  const email = $('forgot-email').value;
  const data = await call(`mutation ($email: String!) {
    requestPasswordReset(email: $email) { requestId expiresAt } }`, { email });
  requested('reset', data.requestPasswordReset);
  // authql answers the same whether or not the address has an account.
  notify(`If ${email} has an account, a link and a code are on their way to it.`);
}

async function sendVerification() {
  const data = await authed('mutation { sendEmailVerification { requestId expiresAt } }');
  requested('verify', data.sendEmailVerification);
  notify(`A link and a code are on their way to ${$('me-email').textContent}.`);
}

async function changePassword() {
  const signOut = $('pw-sign-out').checked;
  const data = await authed(`mutation ($current: String!, $new: String!, $signOut: Boolean) {
    changePassword(currentPassword: $current, newPassword: $new, signOutOtherSessions: $signOut) { ${GRANT} } }`,
  { current: $('pw-current').value, new: $('pw-new').value, signOut });
  // A fresh pair for this session (the cookie is replaced too).
  signedIn(data.changePassword);
  $('pw-current').value = '';
  $('pw-new').value = '';
  notify('Your password is changed' + (signOut ? ' and your other sessions have ended.' : '.'));
}

async function changeEmail() {
  const newEmail = $('new-email').value;
  const data = await authed(`mutation ($newEmail: String!, $password: String!) {
    requestEmailChange(newEmail: $newEmail, currentPassword: $password) { requestId expiresAt } }`,
  { newEmail, password: $('email-password').value });
  $('email-password').value = '';
  requested('confirm-email', data.requestEmailChange);
  notify(`A link and a code are on their way to ${newEmail}; your email changes once you confirm it. ` +
    'Your current address got a notice.');
}

async function deleteAccount() {
  // The form's required checkbox asks for the confirmation; checked here
  // too, for a submit that skipped the form's validation.
  if (!$('delete-confirm').checked) {
    throw new Error('Tick the box to confirm the deletion.');
  }
  await authed('mutation ($password: String!) { deleteAccount(password: $password) }',
    { password: $('delete-password').value });
  $('delete-password').value = '';
  $('delete-confirm').checked = false;
  signedOut();
  notify('Your account is deleted.');
}

$('request-form').addEventListener('submit', run(submitRequest));
$('forgot-form').addEventListener('submit', run(forgot));
$('send-verification').addEventListener('click', run(sendVerification));
$('password-form').addEventListener('submit', run(changePassword));
$('email-form').addEventListener('submit', run(changeEmail));
$('delete-form').addEventListener('submit', run(deleteAccount));

if (page === 'forgot') {
  $('forgot').hidden = false;
} else if (REQUESTS[page]) {
  showRequest(page, takeToken(), pending(page));
  // A second link opened in this tab while it shows the same path changes
  // only the fragment: the browser does not load the page again.
  window.addEventListener('hashchange', () => {
    if (location.hash.startsWith('#token=')) {
      showError(null);
      notify('');
      showRequest(page, takeToken(), pending(page));
    }
  });
}
