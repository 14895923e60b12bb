// A real OpenID Connect provider on loopback for glmweb's SSO tests.
//
//   node provider.mjs   with OIDC_PORT, OIDC_CLIENT_ID, OIDC_CLIENT_SECRET,
//                       OIDC_REDIRECT_URIS (comma separated), OIDC_ACCOUNTS (a JSON file)
//
// Accounts: the JSON file maps a login to its claims, e.g.
//   {"alice": {"email": "alice@example.com", "groups": ["staff"]}}
// It is read again at every sign-in, so a test changes claims between sign-ins
// by rewriting it. The subject (sub) is the login. The sign-in and consent
// pages are the package's devInteractions: any password is accepted.
import fs from 'node:fs';
import Provider from 'oidc-provider';

const port = Number(process.env.OIDC_PORT);
const issuer = `http://127.0.0.1:${port}`;

function claimsOf(login) {
  const accounts = JSON.parse(fs.readFileSync(process.env.OIDC_ACCOUNTS, 'utf8'));
  return accounts[login];
}

const provider = new Provider(issuer, {
  clients: [{
    client_id: process.env.OIDC_CLIENT_ID,
    client_secret: process.env.OIDC_CLIENT_SECRET,
    redirect_uris: process.env.OIDC_REDIRECT_URIS.split(','),
    grant_types: ['authorization_code'],
    response_types: ['code'],
  }],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username', 'groups'],
  },
  cookies: { keys: ['glmweb-test-only-cookie-key'] },
  features: { devInteractions: { enabled: true } },
  async findAccount(ctx, login) {
    if (claimsOf(login) === undefined) return undefined;
    return {
      accountId: login,
      async claims() {
        return { sub: login, preferred_username: login, ...claimsOf(login) };
      },
    };
  },
});
provider.on('server_error', (ctx, error) => console.error('server_error', error));
provider.listen(port, '127.0.0.1', () => console.log(`listening ${issuer}`));
