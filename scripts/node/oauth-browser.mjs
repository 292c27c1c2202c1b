// Completes an OAuth authorization in Debian's chromium, headless, as a person would, and
// turns on two-step sign-in on the way:
//  1. opens the authorization URL and signs in with the password;
//  2. goes to the account page, sets up two-step sign-in (reads the key off the page, as an
//     authenticator app would scan it, and enters the app's code), sees the recovery codes;
//  3. in a fresh browser (no cookies) opens the same authorization URL, signs in with the
//     password and then a TOTP code, allows on the consent page, and waits until the browser
//     reaches the redirect URI.
// Screenshots of each page go to the directory given.
//
// node oauth-browser.mjs URL TENANT USERNAME REDIRECT_PREFIX SCREENSHOT_DIR
// The password comes on standard input (never in argv). Exit 0 when the redirect was
// reached; the final URL is printed on stdout, then `recovery codes: N`.
import { chromium } from 'playwright-core';
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const [url, tenant, username, redirectPrefix, shots] = process.argv.slice(2);
const password = readFileSync(0, 'utf8').trim();
const shot = (page, name) => page.screenshot({ path: join(shots, name), fullPage: true });

// RFC 6238 (HMAC-SHA1, 6 digits, 30 s) with Node's crypto: independent of Coffer's code.
function base32Decode(text) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const c of text.replace(/\s/g, '').toUpperCase()) {
    const value = alphabet.indexOf(c);
    if (value < 0) throw new Error('the key is not base32');
    bits += value.toString(2).padStart(5, '0');
  }
  const bytes = [];
  for (let i = 0; i + 8 <= bits.length; i += 8) bytes.push(parseInt(bits.slice(i, i + 8), 2));
  return Buffer.from(bytes);
}
function totp(key, step) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const mac = createHmac('sha1', base32Decode(key)).update(counter).digest();
  const offset = mac[mac.length - 1] & 0x0f;
  const value = (mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000;
  return value.toString().padStart(6, '0');
}
const step = () => Math.floor(Date.now() / 30000);

// The fields are found by their labels, as assistive technology finds them.
async function signIn(page) {
  await page.getByLabel('Organization').fill(tenant);
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.keyboard.press('Enter');
}

const browser = await chromium.launch({
  executablePath: process.env.COFFER_CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update'],
});
try {
  // 1-2: sign in, then set up two-step sign-in from the account page.
  const first = await (await browser.newContext()).newPage();
  first.setDefaultTimeout(20000);
  await first.goto(url);
  await shot(first, '1-sign-in.png');
  await signIn(first);
  await first.getByRole('button', { name: 'Allow' }).waitFor();
  await first.goto(new URL('/oauth/grants', url).href);
  await first.getByRole('button', { name: 'Set up two-step sign-in' }).click();
  await first.getByRole('img', { name: /QR code/ }).waitFor();
  await shot(first, '2-enroll.png');
  const key = (await first.locator('dt:text-is("Key") + dd code').innerText()).trim();
  await first.getByLabel('The code the app shows').fill(totp(key, step()));
  await first.keyboard.press('Enter');
  await first.getByRole('heading', { name: 'Two-step sign-in is on' }).waitFor();
  const recoveryCodes = await first.locator('ul.codes li').count();
  await shot(first, '3-recovery-codes.png');

  // 3: a new browser signs in with the password and a code, and allows.
  const page = await (await browser.newContext()).newPage();
  page.setDefaultTimeout(20000);
  let reached = null;
  page.on('framenavigated', (frame) => {
    if (frame === page.mainFrame() && frame.url().startsWith(redirectPrefix)) {
      reached = frame.url();
    }
  });
  await page.goto(url);
  await signIn(page);
  await page.getByLabel('Code').waitFor();
  await shot(page, '4-second-factor.png');
  // The next step's code: the current one was spent confirming the key moments ago, and
  // Coffer accepts one step either side of now.
  await page.getByLabel('Code').fill(totp(key, step() + 1));
  await page.keyboard.press('Enter');
  await page.getByRole('button', { name: 'Allow' }).waitFor();
  await shot(page, '5-consent.png');
  await page.getByRole('button', { name: 'Allow' }).click();
  const deadline = Date.now() + 20000;
  while (reached === null && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  if (reached === null) {
    await shot(page, '6-stuck.png');
    console.error(`never reached ${redirectPrefix}; at ${page.url()}`);
    process.exit(1);
  }
  await shot(page, '6-redirected.png');
  console.log(reached);
  console.log(`recovery codes: ${recoveryCodes}`);
} finally {
  await browser.close();
}
