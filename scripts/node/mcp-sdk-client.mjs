// A real MCP client against an MCP server protected by Coffer: the TypeScript MCP SDK with its
// own OAuth client provider discovers Coffer from the server's 401, registers itself
// (by a client ID metadata document when one is given, else by dynamic registration), sends the user through Coffer's sign-in and consent (Debian's
// chromium, headless), gets a token, lists and calls the server's tools, refreshes, and is
// refused a refresh after revoking it.
//
// node mcp-sdk-client.mjs SERVER_URL CALLBACK_PORT TENANT USERNAME SCREENSHOT_DIR [METADATA_URL]
// The password comes on standard input. Prints one JSON object per step on stdout; exit 0
// when every step did what it should.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError, auth } from '@modelcontextprotocol/sdk/client/auth.js';
import { chromium } from 'playwright-core';
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const [serverUrl, callbackPort, tenant, username, shots, metadataUrl] = process.argv.slice(2);
const password = readFileSync(0, 'utf8').trim();
const redirectUrl = `http://127.0.0.1:${callbackPort}/callback`;
const step = (name, details = {}) => console.log(JSON.stringify({ step: name, ...details }));

// The SDK's OAuthClientProvider, kept in memory as an app would keep it on disk.
class Provider {
  constructor() {
    this.saved = {};
    this.authorizationUrl = null;
  }
  get redirectUrl() { return redirectUrl; }
  // With it, the SDK uses the URL as its client_id where the server supports documents.
  get clientMetadataUrl() { return metadataUrl; }
  get clientMetadata() {
    return {
      client_name: 'MCP SDK test client',
      redirect_uris: [redirectUrl],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
      application_type: 'native',
    };
  }
  clientInformation() { return this.saved.client; }
  saveClientInformation(client) { this.saved.client = client; }
  tokens() { return this.saved.tokens; }
  saveTokens(tokens) { this.saved.tokens = tokens; }
  redirectToAuthorization(url) { this.authorizationUrl = url; }
  saveCodeVerifier(verifier) { this.saved.verifier = verifier; }
  codeVerifier() { return this.saved.verifier; }
  invalidateCredentials(scope) {
    if (scope === 'all' || scope === 'tokens') delete this.saved.tokens;
    if (scope === 'all' || scope === 'client') delete this.saved.client;
  }
}

// The redirect URI: resolves with the code the browser brings back.
function callback() {
  return new Promise((resolve, reject) => {
    const server = createServer((request, response) => {
      const url = new URL(request.url, redirectUrl);
      response.end('OK, you can close this page.');
      server.close();
      if (url.searchParams.get('error')) reject(new Error(url.searchParams.get('error')));
      else resolve({ code: url.searchParams.get('code'), iss: url.searchParams.get('iss') });
    });
    server.listen(Number(callbackPort), '127.0.0.1');
    setTimeout(() => { server.close(); reject(new Error('no callback within 60 s')); }, 60000).unref();
  });
}

async function signInAndAllow(url) {
  const browser = await chromium.launch({
    executablePath: process.env.COFFER_CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update'],
  });
  try {
    const page = await browser.newPage();
    page.setDefaultTimeout(20000);
    await page.goto(url);
    await page.getByLabel('Organization').fill(tenant);
    await page.getByLabel('Username').fill(username);
    await page.getByLabel('Password').fill(password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('button', { name: 'Allow' }).waitFor();
    await page.screenshot({ path: join(shots, `sdk-consent-${metadataUrl ? 'document' : 'registered'}.png`), fullPage: true });
    await page.getByRole('button', { name: 'Allow' }).click();
    await page.waitForURL((u) => u.toString().startsWith(redirectUrl));
  } finally {
    await browser.close();
  }
}

const provider = new Provider();
const connect = async () => {
  const client = new Client({ name: 'coffer-sdk-test', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(serverUrl), { authProvider: provider }));
  return client;
};

// 1. Unauthenticated: the SDK reads the 401, discovers Coffer, registers, and asks to redirect.
let first = null;
try {
  first = await connect();
} catch (error) {
  if (!(error instanceof UnauthorizedError)) throw error;
}
if (first !== null || provider.authorizationUrl === null) throw new Error('no 401 challenge');
step('discovered', { client_id: provider.saved.client?.client_id, authorize: provider.authorizationUrl.origin });
// Ask for a refresh token too (offline_access), as a long-running client would.
provider.authorizationUrl = null;
const answer = await auth(provider, { serverUrl, scope: 'mcp:read mcp:write offline_access' });
if (answer !== 'REDIRECT' || provider.authorizationUrl === null) throw new Error(`auth said ${answer}`);

// 2. The user signs in and allows; the SDK exchanges the code.
const returned = callback();
await signInAndAllow(provider.authorizationUrl.toString());
const { code, iss } = await returned;
if (await auth(provider, { serverUrl, authorizationCode: code }) !== 'AUTHORIZED') {
  throw new Error('the code exchange failed');
}
const granted = provider.tokens();
step('authorized', { iss, scope: granted.scope, refresh: Boolean(granted.refresh_token) });

// 3. Tools, with the token.
const client = await connect();
const tools = await client.listTools();
const whoami = await client.callTool({ name: 'whoami', arguments: {} });
const echo = await client.callTool({ name: 'echo', arguments: { text: 'hello coffer' } });
step('tools', {
  tools: tools.tools.map((t) => t.name),
  whoami: whoami.content[0].text,
  echo: echo.content[0].text,
});
await client.close();

// 4. Refresh: a new access token and a rotated refresh token.
const before = provider.tokens();
if (await auth(provider, { serverUrl }) !== 'AUTHORIZED') throw new Error('the refresh failed');
const after = provider.tokens();
step('refreshed', {
  new_access: after.access_token !== before.access_token,
  rotated: after.refresh_token !== before.refresh_token,
});
const again = await connect();
await again.callTool({ name: 'whoami', arguments: {} });
await again.close();

// 5. Revocation (RFC 7009) of the refresh token: the next refresh is refused, and the SDK
// falls back to asking the user again.
const metadata = await (await fetch(new URL('/.well-known/oauth-authorization-server', iss))).json();
const revoked = await fetch(metadata.revocation_endpoint, {
  method: 'POST',
  headers: { 'content-type': 'application/x-www-form-urlencoded' },
  body: new URLSearchParams({ token: after.refresh_token, client_id: provider.saved.client.client_id }),
});
provider.authorizationUrl = null;
const afterRevocation = await auth(provider, { serverUrl });
// And the access token: the server (which asks Coffer about every token) refuses it.
const accessRevoked = await fetch(metadata.revocation_endpoint, {
  method: 'POST',
  headers: { 'content-type': 'application/x-www-form-urlencoded' },
  body: new URLSearchParams({ token: after.access_token, client_id: provider.saved.client.client_id }),
});
provider.saveTokens(after);
await new Promise((resolve) => setTimeout(resolve, 1100));
let accessRefused = false;
try {
  const late = await connect();
  await late.callTool({ name: 'whoami', arguments: {} });
} catch (error) {
  accessRefused = error instanceof UnauthorizedError || /401|Unauthorized/.test(String(error));
}
step('revoked', {
  status: revoked.status,
  refresh_refused: afterRevocation === 'REDIRECT' && provider.authorizationUrl !== null,
  access_status: accessRevoked.status,
  access_refused: accessRefused,
});
