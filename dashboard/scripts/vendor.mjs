// Regenerates dashboard/vendor/ from node_modules (run `npm ci && npm run vendor`
// in dashboard/ after changing the uplot version in package.json).
//
// Why committed vendor files rather than `npm ci` in the build: the build and
// report.html must work offline and on a machine without node; the vendored
// files are pinned by package-lock.json, and this script makes them again.
import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(dirname(fileURLToPath(import.meta.url)));
const src = join(here, 'node_modules', 'uplot');
const out = join(here, 'vendor');
mkdirSync(out, { recursive: true });
const files = [
  ['dist/uPlot.iife.min.js', 'uPlot.iife.min.js'],
  ['dist/uPlot.min.css', 'uPlot.min.css'],
  ['LICENSE', 'uPlot.LICENSE'],
];
for (const [from, to] of files) copyFileSync(join(src, from), join(out, to));
const version = JSON.parse(readFileSync(join(src, 'package.json'), 'utf8')).version;
// The report inlines these files into a <script>/<style>: they must not close it.
for (const [, to] of files) {
  const text = readFileSync(join(out, to), 'utf8').toLowerCase();
  if (text.includes('</script') || text.includes('</style')) {
    console.error(`vendor: ${to} contains a closing tag; it cannot be inlined`);
    process.exit(1);
  }
}
console.log(`vendor: uPlot ${version} -> ${out}`);
