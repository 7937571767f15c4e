// The test identity provider: node-oidc-provider (a certified OpenID Provider) on
// 127.0.0.1, standing in for NHS CIS2 in the tests. Never used by the app itself.
//
//   node tools/oidc/provider.mjs CONFIG.json
//
// CONFIG.json: {"issuer": "http://127.0.0.1:PORT", "port": PORT_TO_LISTEN_ON,
//   "clients": [{"client_id", "client_secret", "redirect_uris": [...]}],
//   "accounts": [{"sub", "email", "email_verified", "name"}],
//   "signing_key": {an RSA private JWK with kid, use and alg}, "cookie_key": "hex"}
// The tests make both keys (tests/services/oidc.py): this process generates nothing, so
// its start does not wait on key generation, and it says each step it reaches.
// The issuer may name another port than the one listened on: the tests put a proxy
// there (tests/services/oidc.py) that forwards every request with its Host header.
//
// Signing in is not interactive: the login page is a one-field form, and
// POST /interaction/<uid>/login with email=<a test account's email> signs that account
// in and grants the scopes the client asked for (no consent page), then the provider
// redirects to the client with the code, as CIS2 would after the smartcard check.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';

import Provider from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
console.log(`oidc-provider: configuration read (node ${process.version})`);
const byEmail = new Map(config.accounts.map((a) => [a.email.toLowerCase(), a]));
const bySub = new Map(config.accounts.map((a) => [a.sub, a]));

const provider = new Provider(config.issuer, {
  clients: config.clients.map((c) => ({
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    ...c,
  })),
  jwks: { keys: [config.signing_key] },
  cookies: { keys: [config.cookie_key] },
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
  // Put the scope's claims (email) in the ID token itself, as the app reads them there.
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  features: { devInteractions: { enabled: false } },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  async findAccount(ctx, sub) {
    const account = bySub.get(sub);
    if (!account) return undefined;
    return {
      accountId: sub,
      async claims() {
        return { sub, email: account.email, email_verified: account.email_verified, name: account.name };
      },
    };
  },
});

function readBody(req) {
  return new Promise((resolve, reject) => {
    let body = '';
    req.on('data', (chunk) => { body += chunk; });
    req.on('end', () => resolve(body));
    req.on('error', reject);
  });
}

function answer(res, status, text) {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8' });
  res.end(text);
}

async function interaction(req, res, uid, action) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) return answer(res, 400, 'interaction mismatch');
  if (!action) {
    return answer(res, 200, `<form method="post" action="/interaction/${uid}/login">`
      + '<label>Email <input name="email"></label><button>Sign in</button></form>');
  }
  const email = new URLSearchParams(await readBody(req)).get('email') || '';
  const account = byEmail.get(email.toLowerCase());
  if (!account) return answer(res, 400, `no test account ${email}`);
  const grant = new provider.Grant({ accountId: account.sub, clientId: details.params.client_id });
  grant.addOIDCScope(details.params.scope);
  const grantId = await grant.save();
  return provider.interactionFinished(req, res,
    { login: { accountId: account.sub }, consent: { grantId } },
    { mergeWithLastSubmission: false });
}

console.log('oidc-provider: provider configured');
const handle = provider.callback();
const server = createServer((req, res) => {
  const path = new URL(req.url, config.issuer).pathname;
  const match = path.match(/^\/interaction\/([\w-]+)(?:\/(login))?$/);
  if (!match) return handle(req, res);
  if (match[2] && req.method !== 'POST') return answer(res, 405, 'POST only');
  return interaction(req, res, match[1], match[2]).catch((err) => answer(res, 400, String(err)));
});
server.listen(config.port, '127.0.0.1', () => {
  console.log(`oidc-provider for ${config.issuer} listening on 127.0.0.1:${config.port}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
