// probe.mjs — exits 0 when Chromium starts and renders a page.
import { launch } from './browser.mjs';

const browser = await launch();
const page = await browser.newPage();
await page.setContent('<p id="x">ok</p>');
const text = await page.textContent('#x');
await browser.close();
if (text !== 'ok') process.exit(1);
