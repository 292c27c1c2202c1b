// Completes an OAuth authorization in Debian's chromium, headless, as a person would: opens
// the authorization URL, signs in, allows on the consent page, and waits until the browser
// reaches the redirect URI. Screenshots of each page go to the directory given.
//
// node oauth-browser.mjs URL TENANT USERNAME REDIRECT_PREFIX SCREENSHOT_DIR
// The password comes on standard input (never in argv). Exit 0 when the redirect was
// reached; the final URL is printed on stdout.
import { chromium } from 'playwright-core';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const [url, tenant, username, redirectPrefix, shots] = process.argv.slice(2);
const password = readFileSync(0, 'utf8').trim();
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
  await page.getByRole('button', { name: 'Allow' }).waitFor();
  await page.screenshot({ path: join(shots, '2-consent.png'), fullPage: true });
  await page.getByRole('button', { name: 'Allow' }).click();
  const deadline = Date.now() + 20000;
  while (reached === null && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  if (reached === null) {
    await page.screenshot({ path: join(shots, '3-stuck.png'), fullPage: true });
    console.error(`never reached ${redirectPrefix}; at ${page.url()}`);
    process.exit(1);
  }
  await page.screenshot({ path: join(shots, '3-redirected.png'), fullPage: true });
  console.log(reached);
} finally {
  await browser.close();
}
