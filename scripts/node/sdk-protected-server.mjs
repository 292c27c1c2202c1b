// The README's recipe, runnable: an MCP server written with the TypeScript MCP SDK, protected
// by Coffer through the SDK's requireBearerAuth and a verifier that checks Coffer's JWTs
// against its JWKS (aud = this server). The SDK test connects to it like to the Rust example.
//
// node sdk-protected-server.mjs PORT COFFER_ISSUER
// Prints `listening on 127.0.0.1:PORT` once it accepts connections.
import express from 'express';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { requireBearerAuth } from '@modelcontextprotocol/sdk/server/auth/middleware/bearerAuth.js';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { z } from 'zod';

const [port, coffer] = process.argv.slice(2);
const resource = `http://127.0.0.1:${port}/mcp`;
const app = express();
app.use(express.json());

// --- the README recipe ---
const jwks = createRemoteJWKSet(new URL(`${coffer}/v1/auth/jwks`));
app.get('/.well-known/oauth-protected-resource/mcp', (req, res) => res.json({
  resource, authorization_servers: [coffer],
  scopes_supported: ['mcp:read', 'mcp:write', 'mcp:admin'], bearer_methods_supported: ['header'],
}));
app.use('/mcp', requireBearerAuth({
  requiredScopes: ['mcp:read'],
  resourceMetadataUrl: `http://127.0.0.1:${port}/.well-known/oauth-protected-resource/mcp`,
  verifier: {
    async verifyAccessToken(token) {
      const { payload } = await jwtVerify(token, jwks, { issuer: coffer, audience: resource, algorithms: ['RS256'] });
      return { token, clientId: payload.client_id ?? '', scopes: payload.scope.split(' '),
               expiresAt: payload.exp, resource: new URL(resource), extra: { tenant: payload.tenant, sub: payload.sub } };
    },
  },
}));
// --- end of the recipe ---

// A stateless server per request, with the same two tools as the Rust example.
app.post('/mcp', async (req, res) => {
  const server = new McpServer({ name: 'coffer-sdk-example', version: '0.1.0' });
  const auth = req.auth;
  server.registerTool('whoami', { description: 'Who the access token speaks for' }, async () => ({
    content: [{ type: 'text', text: `${auth.extra.sub} in tenant ${auth.extra.tenant} with ${auth.scopes.join(' ')}` }],
  }));
  server.registerTool('echo', { description: 'Echoes its text', inputSchema: { text: z.string() } },
    async ({ text }) => ({ content: [{ type: 'text', text }] }));
  const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
  res.on('close', () => { transport.close(); server.close(); });
  await server.connect(transport);
  await transport.handleRequest(req, res, req.body);
});

app.listen(Number(port), '127.0.0.1', () => console.log(`listening on 127.0.0.1:${port}`));
