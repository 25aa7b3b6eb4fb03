// browser.mjs — one headless Chromium for the dashboard tests (Debian's
// chromium driven by playwright-core, which never downloads a browser).
import { createRequire } from 'node:module';
import { join } from 'node:path';

const require = createRequire(join(process.env.RIFT_SRC, 'dashboard', 'package.json'));
const { chromium } = require('playwright-core');

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    // root in CI has no user namespace sandbox; the pages are our own files.
    args: ['--no-sandbox', '--disable-gpu'],
  });
}
