// authql example frontend, the account's second factors: an authenticator
// app (TOTP), recovery codes, passkeys. Runs after app.js and mfa.js,
// whose functions it uses.
//
// Why it works this way:
// - An authenticator app is set up in two steps: enrollTotp makes a key,
//   shown as a QR code (an SVG image authql draws, as a data: URI: no
//   third party sees the key) and as text to type; confirmTotp with a code
//   the app shows proves the app has it, and only then does the factor
//   count. Until then nothing changes for the account.
// - The key and the recovery codes are secrets shown once: they live in
//   the page only while shown, and are removed from it when the user is
//   done or signs out. authql keeps the key encrypted and the recovery
//   codes hashed, and cannot show either again.
// - Adding, removing and regenerating ask authql's step-up (mfa.js) when
//   the session has not proven the second factor recently.
'use strict';

const MFA = `mfa { enabled factors { id label createdAt lastUsedAt }
  passkeys { id label createdAt lastUsedAt backedUp } recoveryCodesRemaining }`;

// mfaStatus is the account's MfaStatus as last loaded (null: not yet).
let mfaStatus = null;

// enrollment is the TOTP enrollment under way, if any.
let enrollment = null;

async function loadMfa() {
  const data = await authed(`{ me { ${MFA} } }`);
  showMfa(data.me.mfa);
}

function showMfa(status) {
  mfaStatus = status;
  show('mfa-state', status.enabled
    ? 'On: signing in with your password also asks for a code of your app or a passkey.'
    : 'Off: your password alone signs you in.');
  $('mfa-state').dataset.enabled = String(status.enabled);
  fillTable('mfa-factors', status.factors, (f) => [
    f.label, when(f.createdAt), f.lastUsedAt ? when(f.lastUsedAt) : 'never',
    button('Remove', 'remove', () => removeFactor(f.id)),
  ]);
  fillTable('passkeys', status.passkeys, (p) => {
    const label = document.createElement('input');
    label.value = p.label;
    label.maxLength = 64;
    label.className = 'passkey-name';
    label.setAttribute('aria-label', 'Name of the passkey');
    const cell = document.createElement('span');
    cell.append(label, ' ', button('Rename', 'rename', () => renamePasskey(p.id, label.value)));
    return [cell, when(p.createdAt), p.lastUsedAt ? when(p.lastUsedAt) : 'never', p.backedUp ? 'yes' : 'no',
      button('Delete', 'delete', () => deletePasskey(p.id))];
  });
  show('recovery-remaining', status.recoveryCodesRemaining
    ? `${status.recoveryCodesRemaining} unused recovery codes.`
    : 'No recovery codes: you get them with your first authenticator app.');
  $('recovery-regenerate').hidden = !status.enabled;
}

// fillTable shows one row per item, cells from cellsOf (text or elements),
// each row with the item's id; an empty list hides the table.
function fillTable(id, items, cellsOf) {
  const rows = items.map((item) => {
    const tr = document.createElement('tr');
    tr.dataset.id = item.id;
    for (const c of cellsOf(item)) {
      const td = document.createElement('td');
      td.append(c); // a string is appended as text, never as markup
      tr.appendChild(td);
    }
    return tr;
  });
  $(id).querySelector('tbody').replaceChildren(...rows);
  $(id).hidden = rows.length === 0;
}

function button(text, className, action) {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = className;
  b.textContent = text;
  b.addEventListener('click', run(action));
  return b;
}

// ---- Authenticator app ----

async function enrollTotp() {
  const data = await authed(`mutation ($label: String) {
    enrollTotp(label: $label) { factorId secret otpauthUri qrCode expiresAt } }`,
  { label: $('totp-label').value.trim() || null });
  enrollment = data.enrollTotp;
  $('totp-qr').src = enrollment.qrCode;
  // In groups of four, as apps show and take it (they ignore the spaces).
  show('totp-secret', enrollment.secret.replace(/(.{4})(?=.)/g, '$1 '));
  $('totp-uri').href = enrollment.otpauthUri;
  show('totp-expires', `Confirm before ${when(enrollment.expiresAt)}, or set it up again.`);
  $('totp-code').value = '';
  $('totp-enroll-form').hidden = true;
  $('totp-setup').hidden = false;
  $('totp-code').focus();
}

async function confirmTotp() {
  const signOut = $('totp-sign-out').checked;
  const data = await authed(`mutation ($factorId: ID!, $code: String!, $signOut: Boolean) {
    confirmTotp(factorId: $factorId, code: $code, signOutOtherSessions: $signOut) {
      factor { id } recoveryCodes session { ${GRANT} } } }`,
  { factorId: enrollment.factorId, code: $('totp-code').value.replace(/\s/g, ''), signOut });
  const done = data.confirmTotp;
  // The session is raised to level 2, with new tokens (the cookie too).
  signedIn(done.session);
  endEnrollment();
  $('totp-label').value = '';
  if (done.recoveryCodes) {
    showRecoveryCodes(done.recoveryCodes);
  }
  await loadMfa();
  const others = signOut && done.recoveryCodes ? ' Your other sessions have ended.' : '';
  notify('Your authenticator app is on.' + others + (done.recoveryCodes ? ' Save your recovery codes below.' : ''));
}

// endEnrollment removes the key from the page.
function endEnrollment() {
  enrollment = null;
  $('totp-qr').removeAttribute('src');
  show('totp-secret', '');
  $('totp-uri').href = '#';
  $('totp-code').value = '';
  $('totp-setup').hidden = true;
  $('totp-enroll-form').hidden = false;
}

async function removeFactor(id) {
  await authed('mutation ($id: ID!) { removeMfaFactor(id: $id) }', { id });
  await loadMfa();
  notify('The authenticator app is removed.');
}

// ---- Recovery codes ----

function showRecoveryCodes(codes) {
  const items = codes.map((c) => {
    const li = document.createElement('li');
    li.textContent = c;
    return li;
  });
  $('recovery-list').replaceChildren(...items);
  $('recovery-codes').hidden = false;
}

function hideRecoveryCodes() {
  $('recovery-list').replaceChildren();
  $('recovery-codes').hidden = true;
}

async function regenerateRecoveryCodes() {
  const data = await authed('mutation { regenerateRecoveryCodes }');
  showRecoveryCodes(data.regenerateRecoveryCodes);
  await loadMfa();
  notify('New recovery codes: the old ones no longer work. Save these below.');
}

// ---- Passkeys ----

async function addPasskey() {
  const begun = await authed('mutation ($label: String) { beginPasskeyRegistration(label: $label) { ceremonyId options } }',
    { label: $('passkey-label').value.trim() || null });
  const credential = await webauthn('create', begun.beginPasskeyRegistration.options);
  await authed(`mutation ($ceremonyId: ID!, $credential: String!) {
    finishPasskeyRegistration(ceremonyId: $ceremonyId, credential: $credential) { id } }`,
  { ceremonyId: begun.beginPasskeyRegistration.ceremonyId, credential });
  $('passkey-label').value = '';
  await loadMfa();
  notify('Your passkey is added: sign in with it, or use it as a second factor.');
}

async function renamePasskey(id, label) {
  await authed('mutation ($id: ID!, $label: String!) { renamePasskey(id: $id, label: $label) { id } }', { id, label });
  await loadMfa();
  notify('The passkey is renamed.');
}

async function deletePasskey(id) {
  await authed('mutation ($id: ID!) { deletePasskey(id: $id) }', { id });
  await loadMfa();
  notify('The passkey is deleted. Remove it from your device or password manager too.');
}

// ---- The view ----

// Each sign-in loads the account's factors. A failure shows in the
// section rather than as the page's error: the rest of the page works.
hooks.signedIn = () => {
  endSecondStep();
  loadMfa().catch((err) => {
    delete $('mfa-state').dataset.enabled;
    showError(err, $('mfa-state'));
  });
};

// Signing out removes the secrets shown and the account's state.
hooks.signedOut = () => {
  mfaStatus = null;
  endEnrollment();
  hideRecoveryCodes();
  show('mfa-state', '…');
  delete $('mfa-state').dataset.enabled;
};

$('totp-enroll-form').addEventListener('submit', run(enrollTotp));
$('totp-confirm-form').addEventListener('submit', run(confirmTotp));
$('totp-cancel').addEventListener('click', run(async () => endEnrollment()));
$('recovery-regenerate').addEventListener('click', run(regenerateRecoveryCodes));
$('recovery-saved').addEventListener('click', run(async () => hideRecoveryCodes()));
$('passkey-add-form').addEventListener('submit', run(addPasskey));
