// Completes an OAuth authorization in Debian's chromium, headless, as a person would: opens
// the authorization URL, signs in (password, then the code of an authenticator app),
// allows on the consent page, and waits until the browser reaches the redirect URI.
// Screenshots of each page go to the directory given.
//
// node oauth-browser.mjs URL TENANT USERNAME REDIRECT_PREFIX SCREENSHOT_DIR
// Standard input (never argv): the password, and on a second line the user's TOTP secret
// in base32, which this script turns into codes as an authenticator app does. Exit 0 when
// the redirect was reached; the final URL is printed on stdout.
import { chromium } from 'playwright-core';
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const [url, tenant, username, redirectPrefix, shots] = process.argv.slice(2);
const [password, totpSecret] = readFileSync(0, 'utf8').split('\n').map((line) => line.trim());

// RFC 6238 (HMAC-SHA1, 6 digits, 30 s) with Node's crypto: independent of Coffer's code.
function base32Decode(text) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const c of text.toUpperCase()) {
    const value = alphabet.indexOf(c);
    if (value < 0) throw new Error('not base32');
    bits += value.toString(2).padStart(5, '0');
  }
  const bytes = [];
  for (let i = 0; i + 8 <= bits.length; i += 8) bytes.push(parseInt(bits.slice(i, i + 8), 2));
  return Buffer.from(bytes);
}
function totp(secret, step) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const mac = createHmac('sha1', base32Decode(secret)).update(counter).digest();
  const offset = mac[mac.length - 1] & 0x0f;
  const value = (mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000;
  return value.toString().padStart(6, '0');
}
const browser = await chromium.launch({
  executablePath: process.env.COFFER_CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update'],
});
try {
  const page = await browser.newPage();
  page.setDefaultTimeout(20000);
  let reached = null;
  page.on('framenavigated', (frame) => {
    if (frame === page.mainFrame() && frame.url().startsWith(redirectPrefix)) {
      reached = frame.url();
    }
  });
  await page.goto(url);
  await page.screenshot({ path: join(shots, '1-sign-in.png'), fullPage: true });
  // The fields are found by their labels, as assistive technology finds them.
  await page.getByLabel('Organization').fill(tenant);
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.keyboard.press('Enter');
  if (totpSecret) {
    await page.getByLabel('Code').waitFor();
    await page.screenshot({ path: join(shots, '2-second-factor.png'), fullPage: true });
    // The next step's code: the current one may have been spent confirming the enrollment
    // moments ago, and Coffer accepts one step either side of now.
    const step = Math.floor(Date.now() / 30000) + 1;
    await page.getByLabel('Code').fill(totp(totpSecret, step));
    await page.keyboard.press('Enter');
  }
  await page.getByRole('button', { name: 'Allow' }).waitFor();
  await page.screenshot({ path: join(shots, '3-consent.png'), fullPage: true });
  await page.getByRole('button', { name: 'Allow' }).click();
  const deadline = Date.now() + 20000;
  while (reached === null && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  if (reached === null) {
    await page.screenshot({ path: join(shots, '4-stuck.png'), fullPage: true });
    console.error(`never reached ${redirectPrefix}; at ${page.url()}`);
    process.exit(1);
  }
  await page.screenshot({ path: join(shots, '4-redirected.png'), fullPage: true });
  console.log(reached);
} finally {
  await browser.close();
}
