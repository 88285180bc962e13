// authql example frontend, second factors at sign-in: the second step of
// a login (MFA_REQUIRED → verifyMfa), signing in with a passkey, and
// step-up (INSUFFICIENT_USER_AUTHENTICATION → reauthenticate → retry).
// Runs after app.js and accounts.js, whose functions it uses, and fills
// app.js's hooks.
//
// Why it works this way:
// - A login of an account with a second factor returns no tokens, only a
//   challenge (MFA_REQUIRED with extensions.challengeId): single use, five
//   minutes. It lives in a variable of this page, never in storage: a
//   reload starts the login again.
// - One field takes either a 6-digit code of the authenticator app or a
//   recovery code: the shape tells them apart (a recovery code is longer
//   and has letters), so the user need not pick first.
// - Passkeys go through the browser's own WebAuthn (navigator.credentials),
//   which binds each answer to this page's origin: a look-alike site gets
//   answers that authql refuses. authql sends the options as JSON and the
//   browser's parse*OptionsFromJSON and toJSON turn them into its objects
//   and back, so this page touches no base64 or CBOR itself.
// - Step-up: operations that manage credentials ask, in authql's schema,
//   for a second factor (@auth(aal: 2)) and/or a recent sign-in (maxAge).
//   authql refuses them before doing anything, saying what is missing;
//   the page asks the user to prove themself again in the same session
//   (reauthenticate), then sends the same operation once more. A passkey
//   answers a ceremony authql began: beginPasskeyLogin's, whose challenge
//   names it to reauthenticate.
'use strict';

// ---- WebAuthn ----

// publicKeyOptions returns the publicKey member of authql's WebAuthn
// options (the JSON of a ceremony, or MFA_REQUIRED's webauthnOptions).
// authql sends the member itself; a wrapping {publicKey: …} is accepted too.
function publicKeyOptions(options) {
  const o = typeof options === 'string' ? JSON.parse(options) : options;
  return o.publicKey || o;
}

// webauthn runs one WebAuthn ceremony of the browser: 'create' to register
// a passkey, 'get' to prove one. It returns the credential's JSON, as
// authql takes it.
async function webauthn(kind, options) {
  if (!window.PublicKeyCredential || !PublicKeyCredential.parseRequestOptionsFromJSON) {
    throw new GraphQLError([{ message: 'This browser cannot use passkeys here (it needs WebAuthn and a secure context: https or localhost).', extensions: { code: 'WEBAUTHN_UNSUPPORTED' } }]);
  }
  const json = publicKeyOptions(options);
  let cred;
  try {
    cred = kind === 'create'
      ? await navigator.credentials.create({ publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(json) })
      : await navigator.credentials.get({ publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(json) });
  } catch (err) {
    // NotAllowedError: cancelled, timed out, or no passkey for this site.
    throw new GraphQLError([{ message: `The passkey prompt ended without a passkey: ${err.message}`, extensions: { code: 'WEBAUTHN_' + err.name } }]);
  }
  return JSON.stringify(cred.toJSON());
}

// ---- The second step of a login ----

// challenge is the MFA_REQUIRED being answered: its extensions.
let challenge = null;

SAY.INSUFFICIENT_USER_AUTHENTICATION = () => 'Confirm it is you to do this: sign in again, with your second factor if you have one.';

// proofOf is the MfaProof of what the user typed: a TOTP code or a
// recovery code (see above).
function proofOf(typed) {
  const code = typed.replace(/\s/g, '');
  return /^[0-9]{6}$/.test(code) ? { totpCode: code } : { recoveryCode: code };
}

// mfaRequired shows the second step of a login.
function mfaRequired(ext) {
  challenge = ext;
  const methods = ext.methods || [];
  const codes = methods.includes('TOTP') || methods.includes('RECOVERY_CODE');
  show('mfa-step-note', `Your password is right. Prove it is you with a second factor before ${when(ext.expiresAt)}.`);
  show('mfa-code-what', methods.includes('TOTP')
    ? (methods.includes('RECOVERY_CODE') ? 'Code from your authenticator app, or a recovery code' : 'Code from your authenticator app')
    : 'A recovery code');
  $('mfa-code-label').hidden = !codes;
  $('mfa-verify').hidden = !codes;
  $('mfa-code').value = '';
  $('mfa-passkey').hidden = !(methods.includes('WEBAUTHN') && ext.webauthnOptions);
  $('signed-out').hidden = true;
  $('mfa-step').hidden = false;
  (codes ? $('mfa-code') : $('mfa-passkey')).focus();
}

async function verifyMfa(proof) {
  const data = await call(`mutation ($challengeId: ID!, $proof: MfaProof!) {
    verifyMfa(challengeId: $challengeId, proof: $proof) { ${GRANT} } }`,
  { challengeId: challenge.challengeId, proof });
  endSecondStep();
  signedIn(data.verifyMfa);
}

function endSecondStep() {
  challenge = null;
  $('mfa-code').value = '';
  $('mfa-step').hidden = true;
}

async function verifyCode() {
  await verifyMfa(proofOf($('mfa-code').value));
}

async function verifyPasskey() {
  await verifyMfa({ webauthnResponse: await webauthn('get', challenge.webauthnOptions) });
}

function cancelSecondStep() {
  endSecondStep();
  signedOut();
}

// passkeyLogin signs in with a passkey alone: without an email the
// browser offers the passkeys it has for this site (a discoverable
// credential names its account itself).
async function passkeyLogin() {
  const begun = await call('mutation { beginPasskeyLogin { ceremonyId options } }');
  const credential = await webauthn('get', begun.beginPasskeyLogin.options);
  const data = await call(`mutation ($ceremonyId: ID!, $credential: String!) {
    finishPasskeyLogin(ceremonyId: $ceremonyId, credential: $credential) { ${GRANT} } }`,
  { ceremonyId: begun.beginPasskeyLogin.ceremonyId, credential });
  signedIn(data.finishPasskeyLogin);
}

// ---- Step-up ----

// stepping is the step-up under way: the refusal, and its promise's ends.
let stepping = null;

// stepUp asks the user to prove themself again for the refused operation
// (err, an INSUFFICIENT_USER_AUTHENTICATION); it resolves once
// reauthenticate has raised the session, and rejects with err if the user
// cancels. Operations refused at once share the one prompt.
function stepUp(err) {
  if (stepping) {
    return stepping.promise;
  }
  const ext = err.errors[0].extensions || {};
  const secondFactor = ext.acrValues === 'aal2';
  const status = mfaStatus; // factors.js: the account's factors, if loaded
  const codes = !status || status.factors.length > 0 || status.recoveryCodesRemaining > 0;
  const passkeys = !status || status.passkeys.length > 0;
  let why = secondFactor ? 'This needs your second factor' : 'This needs your password';
  if (ext.maxAge) {
    why += `, proven in the last ${wait(ext.maxAge)}`;
  }
  show('stepup-note', why + '.');
  showError(null, $('stepup-error'));
  $('stepup-password').value = '';
  $('stepup-code').value = '';
  // The password alone proves no second factor: for aal2 the code or the
  // passkey is what counts, and the password (proven at sign-in) may be
  // given again or not.
  show('stepup-password-what', secondFactor && (codes || passkeys) ? 'Password (optional)' : 'Password');
  $('stepup-code-label').hidden = !codes;
  $('stepup-passkey').hidden = !passkeys;
  stepping = { err };
  stepping.promise = new Promise((resolve, reject) => {
    stepping.resolve = resolve;
    stepping.reject = reject;
  });
  $('stepup').showModal();
  // Where the missing proof goes: the code for a second factor.
  (secondFactor && codes ? $('stepup-code') : $('stepup-password')).focus();
  return stepping.promise;
}

// reauthenticate sends what the user gave, and on success closes the
// prompt: the session is raised, and the refused operation is sent again.
async function reauthenticate(proof) {
  const password = $('stepup-password').value;
  const vars = { password: password || null, proof: proof || null };
  const data = await authed(`mutation ($password: String, $proof: MfaProof) {
    reauthenticate(password: $password, proof: $proof) { ${GRANT} } }`, vars);
  // A new access token for the raised session, and its rotated refresh
  // token in the cookie.
  steppedUp(data.reauthenticate);
}

function steppedUp(grant) {
  signedIn(grant);
  const s = stepping;
  stepping = null;
  $('stepup').close();
  s.resolve();
}

// inPrompt runs an action of the prompt, showing its errors in the prompt
// (the page's own error box is behind it).
function inPrompt(action) {
  return async (event) => {
    if (event) {
      event.preventDefault();
    }
    showError(null, $('stepup-error'));
    try {
      await action();
    } catch (err) {
      showError(err, $('stepup-error'));
    }
  };
}

async function stepUpWithForm() {
  const typed = $('stepup-code').value.trim();
  if (!typed && !$('stepup-password').value) {
    throw new Error('Enter your password or a code.');
  }
  await reauthenticate(typed ? proofOf(typed) : null);
}

// stepUpWithPasskey proves a passkey of the signed-in user: the ceremony
// of a beginPasskeyLogin for their email, answered to reauthenticate
// (which refuses another account's passkey). The session stays the same,
// raised, as with a code.
async function stepUpWithPasskey() {
  const begun = await call('mutation ($email: String) { beginPasskeyLogin(email: $email) { options } }',
    { email: $('me-email').textContent });
  await reauthenticate({ webauthnResponse: await webauthn('get', begun.beginPasskeyLogin.options) });
}

// The prompt closed without a reauthenticate (Cancel, or Escape): the
// operation fails with its refusal.
$('stepup').addEventListener('close', () => {
  if (stepping) {
    const s = stepping;
    stepping = null;
    s.reject(s.err);
  }
});

$('stepup-form').addEventListener('submit', inPrompt(stepUpWithForm));
$('stepup-passkey').addEventListener('click', inPrompt(stepUpWithPasskey));
$('stepup-cancel').addEventListener('click', () => $('stepup').close());
$('mfa-step-form').addEventListener('submit', run(verifyCode));
$('mfa-passkey').addEventListener('click', run(verifyPasskey));
$('mfa-cancel').addEventListener('click', run(async () => cancelSecondStep()));
$('passkey-login').addEventListener('click', run(passkeyLogin));

hooks.mfaRequired = mfaRequired;
hooks.stepUp = stepUp;
