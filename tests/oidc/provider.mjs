// A real OpenID Connect provider for the dashboard's browser test: the
// certified `oidc-provider` package, over HTTPS with the test's throwaway
// CA, with its development sign-in pages. Test use only.
//
// Settings (environment):
//   OIDC_PORT          port on 127.0.0.1; the issuer is https://localhost:<port>
//   OIDC_CERT, OIDC_KEY  PEM files of a certificate for localhost
//   OIDC_REDIRECT      the dashboard's /auth/callback URL
//   OIDC_AFTER_LOGOUT  where sign-out returns (the dashboard's /login)
//   OIDC_AUDIENCE      the hub's audience (HUB_OIDC_AUDIENCE)
//   OIDC_PEOPLE        JSON: { "<login>": { hub_role, hub_org_code, hub_partnerships } }
//
// Prints "oidc-provider listening on <issuer>" when ready.

import https from 'node:https';
import fs from 'node:fs';
import Provider from 'oidc-provider';

const port = Number(process.env.OIDC_PORT);
const issuer = `https://localhost:${port}`;
const audience = process.env.OIDC_AUDIENCE;
const people = JSON.parse(process.env.OIDC_PEOPLE);
const hubClaims = (id) => {
  const p = people[id];
  return p ? { hub_role: p.hub_role, hub_org_code: p.hub_org_code, hub_partnerships: p.hub_partnerships } : {};
};

const provider = new Provider(issuer, {
  clients: [{
    client_id: 'hub-dashboard',
    // A public client: PKCE, no secret.
    token_endpoint_auth_method: 'none',
    grant_types: ['authorization_code'],
    response_types: ['code'],
    redirect_uris: [process.env.OIDC_REDIRECT],
    post_logout_redirect_uris: [process.env.OIDC_AFTER_LOGOUT],
  }],
  pkce: { methods: ['S256'], required: () => true },
  claims: {
    openid: ['sub'],
    hub: ['hub_role', 'hub_org_code', 'hub_partnerships'],
  },
  // The hub's claims in the ID token itself (the dashboard reads them there).
  conformIdTokenClaims: false,
  cookies: { keys: ['hub-test-provider-cookie-key'] },
  async findAccount(ctx, id) {
    if (!people[id]) return undefined;
    return { accountId: id, async claims() { return { sub: id, ...hubClaims(id) }; } };
  },
  // A first-party client: no consent screen.
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId
      || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope('openid hub');
    grant.addOIDCClaims(['hub_role', 'hub_org_code', 'hub_partnerships']);
    grant.addResourceScope(audience, 'hub');
    await grant.save();
    return grant;
  },
  // Access tokens for the hub: JWTs with its audience and claims, which
  // every hub service checks against this provider's keys.
  features: {
    devInteractions: { enabled: true },
    rpInitiatedLogout: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => audience,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: 'hub',
        audience,
        accessTokenTTL: 3600,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'RS256' } },
      }),
    },
  },
  async extraTokenClaims(ctx, token) {
    return hubClaims(token.accountId);
  },
});

https.createServer({
  key: fs.readFileSync(process.env.OIDC_KEY),
  cert: fs.readFileSync(process.env.OIDC_CERT),
}, provider.callback()).listen(port, '127.0.0.1', () => {
  console.log(`oidc-provider listening on ${issuer}`);
});
