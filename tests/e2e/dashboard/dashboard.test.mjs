// dashboard.test.mjs — report.html of real simulator runs, in headless Chromium.
//
// Each test makes its own runs with the rift binary under test, opens the
// report from disk (file://, as a user would) and checks what the page shows
// against what run.json records. Screenshots land in $RIFT_ARTIFACTS.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { launch } from './browser.mjs';

const RIFT = process.env.RIFT;
const SRC = process.env.RIFT_SRC;
const ART = process.env.RIFT_ARTIFACTS;
const HERE = join(SRC, 'tests', 'e2e', 'dashboard');
const LEADER_RGB = [0x1b, 0x8a, 0x3a]; // LN_STATE_COLORS.leader

let browser;
let work;

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'rift-dash-'));
  browser = await launch();
});

after(async () => {
  if (browser) await browser.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

function rift(args, expectCode) {
  const r = spawnSync(RIFT, args, { encoding: 'utf8', timeout: 60000 });
  assert.equal(r.status, expectCode, `rift ${args.join(' ')} exited ${r.status}:\n${r.stderr}`);
  return r;
}

// A real simulator run; returns its directory and run.json.
function runScenario(name, scenario, extra, expectCode) {
  const dir = join(work, name);
  rift(['run', scenario, '--backend', 'sim', '--out', dir, ...extra], expectCode);
  assert.ok(existsSync(join(dir, 'report.html')), 'rift run writes report.html');
  return { dir, run: JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8')) };
}

async function open(dir, file = 'report.html') {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('dialog', (d) => { errors.push(`dialog: ${d.message()}`); d.dismiss(); });
  await page.goto(pathToFileURL(join(dir, file)).href);
  await page.waitForSelector('#verdict, .heatmap, .landing');
  page.errors = errors;
  return page;
}

async function shot(page, name) {
  await page.screenshot({ path: join(ART, `${name}.png`), fullPage: true });
}

// Leader terms from run.json's role events: [{node, start, end, ballot}].
function leaderTerms(run) {
  const end = run.metrics.duration_us;
  const terms = [];
  const open = new Map();
  const evs = run.events.filter((e) => e.kind === 'role').sort((a, b) => a.t_us - b.t_us);
  for (const e of evs) {
    if (open.has(e.node)) { terms.push({ ...open.get(e.node), end: e.t_us }); open.delete(e.node); }
    if (e.role === 'leader') open.set(e.node, { node: e.node, start: e.t_us, ballot: e.ballot });
  }
  for (const t of open.values()) terms.push({ ...t, end });
  // A crash ends a term too.
  for (const f of run.faults.filter((x) => x.kind === 'crash'))
    for (const t of terms) if (t.node === f.node && t.start < f.start_us && t.end > f.start_us) t.end = f.start_us;
  return terms;
}

const isLeaderColour = (rgb) => rgb && rgb.every((v, i) => Math.abs(v - LEADER_RGB[i]) < 12);

// Every leader term long enough to span pixels is drawn green in its lane, and
// no other lane is green at that instant.
async function checkLanes(page, run) {
  const terms = leaderTerms(run).filter((t) => t.end - t.start >= 150000);
  assert.ok(terms.length > 0, 'the run has leader terms to look for');
  const replicas = run.nodes.filter((n) => n.kind === 'replica').map((n) => n.name);
  const all = leaderTerms(run);
  // [replica, time, should it be green] at the middle of every term, for every lane.
  const probes = [];
  for (const t of terms) {
    const mid = Math.round((t.start + t.end) / 2);
    for (const r of replicas) {
      const leads = r === t.node || all.some((x) => x.node === r && x.start <= mid && mid < x.end);
      if (r === t.node || !leads) probes.push([r, mid, r === t.node]);
    }
  }
  const colours = await page.evaluate((ps) => ps.map(([r, at]) => window.riftApp.lanePixel(r, at)), probes);
  probes.forEach(([r, at, green], i) => {
    assert.equal(isLeaderColour(colours[i]), green,
      `${r} at ${at} µs: lane colour ${colours[i]}, expected ${green ? '' : 'not '}the leader's`);
  });
  return terms.length;
}

// Click the leader lanes chart at time t (µs), as a user would.
async function clickAt(page, t) {
  const box = await page.evaluate((at) => {
    const u = window.riftApp.tv.charts[0];
    u.over.scrollIntoView({ block: 'center' });
    const r = u.over.getBoundingClientRect();
    return { x: r.left + u.valToPos(at / 1e6, 'x'), y: r.top + 10 };
  }, t);
  await page.mouse.click(box.x, box.y);
}

async function cutLinks(page) {
  return page.$$eval('svg.graph g.link-cut title', (ts) => ts.map((t) => t.textContent.split(':')[0]).sort());
}

test('a passing run: verdict, key figures and the leader lanes match run.json', async () => {
  const { dir, run } = runScenario('pass', join(SRC, 'scenarios', 'chained.json'), [], 0);
  const page = await open(dir);
  assert.equal(await page.textContent('#verdict'), 'PASS');
  assert.equal(await page.title(), `PASS · ${run.name} · rift`);
  const leaderCard = await page.locator('.card', { hasText: 'Leader changes' }).locator('.card-value').textContent();
  assert.equal(leaderCard, String(run.metrics.leader_changes));
  const n = await checkLanes(page, run);
  assert.ok(n >= 1);
  // Every assertion of run.json is a row, and they all pass.
  const rows = await page.$$eval('table.assertions tbody tr', (trs) => trs.map((tr) => [tr.cells[0].textContent, tr.dataset.pass]));
  assert.deepEqual(rows, run.assertions.map((a) => [a.name, 'pass']));
  await shot(page, 'pass-chained');
  assert.deepEqual(page.errors, []);
  await page.close();
});

test('a failing run: failing assertions show as failing; every leader change is in the lanes', async () => {
  const { dir, run } = runScenario('fail', join(SRC, 'scenarios', 'chained.json'), ['--set', 'cluster.paxos.fd=naive'], 1);
  assert.equal(run.verdict, 'fail');
  const page = await open(dir);
  assert.equal(await page.textContent('#verdict'), 'FAIL');
  assert.ok((await page.getAttribute('header.top', 'class')).includes('fail'));
  for (const a of run.assertions) {
    const row = page.locator('table.assertions tbody tr', { has: page.locator('td.name', { hasText: a.name }) });
    const want = a.unknown ? 'unknown' : a.pass ? 'pass' : 'fail';
    assert.equal(await row.getAttribute('data-pass'), want, a.name);
    assert.equal(await row.locator('.badge').textContent(), want.toUpperCase());
  }
  assert.ok(run.assertions.some((a) => !a.pass), 'naive fails an assertion');
  // The story line names the failed assertion.
  const story = await page.textContent('.story');
  for (const a of run.assertions.filter((x) => !x.pass)) assert.ok(story.includes(a.message || a.name));
  const n = await checkLanes(page, run);
  assert.ok(n >= 3, `naive churns leaders (${n} terms drawn)`);
  await shot(page, 'fail-chained-naive');
  assert.deepEqual(page.errors, []);
  await page.close();
});

test('the scrubber changes the connectivity graph; events and zoom follow the shared axis', async () => {
  const { dir, run } = runScenario('scrub', join(SRC, 'scenarios', 'chained.json'), [], 0);
  const cut = run.faults.find((f) => f.kind === 'cut');
  const want = cut.links.map(([a, b]) => `${a} → ${b}`).sort();
  const page = await open(dir);
  await clickAt(page, cut.start_us - 1000000);
  assert.match(await page.textContent('.graph-when'), /At t = \d+\.\d{3} s/);
  assert.deepEqual(await cutLinks(page), [], 'before the cut nothing is cut');
  await clickAt(page, cut.start_us + 1000000);
  assert.deepEqual(await cutLinks(page), want, 'during the cut its links are red');
  const t = await page.evaluate(() => window.riftApp.tv.t);
  const leaders = leaderTerms(run).filter((x) => x.start <= t && t < x.end).map((x) => x.node);
  const drawn = await page.$$eval('svg.graph g.node-leader', (gs) => gs.map((g) => g.dataset.node));
  assert.deepEqual(drawn.sort(), leaders.sort(), 'the graph colours the leader of that instant');
  await shot(page, 'scrub-during-cut');
  // The slider to the end: everything healed.
  await page.focus('input.scrub');
  await page.keyboard.press('End');
  assert.deepEqual(await cutLinks(page), []);
  // An events row moves the scrubber to its time (the controller's rows: the actions).
  await page.selectOption('.ev-filters select', 'controller');
  const action = run.events.find((e) => e.kind === 'action' && e.action.do === 'cut');
  await page.locator('.ev-row', { hasText: 'cut at_ms' }).first().click();
  assert.equal(await page.evaluate(() => window.riftApp.tv.t), action.t_us);
  assert.deepEqual(await cutLinks(page), want);
  // Filters: one node, one kind fewer.
  await page.selectOption('.ev-filters select', 'r2');
  const nodes = await page.$$eval('.ev-row .ev-node', (s) => [...new Set(s.map((x) => x.textContent))]);
  assert.deepEqual(nodes, ['r2']);
  await page.uncheck('.ev-filters input[data-kind="ballot"]');
  const kinds = await page.$$eval('.ev-row .ev-kind', (s) => s.map((x) => x.textContent));
  assert.ok(kinds.length > 0 && !kinds.includes('ballot'));
  // Dragging across a chart zooms every chart to that window.
  const drag = await page.evaluate(() => {
    const u = window.riftApp.tv.charts[1];
    u.over.scrollIntoView({ block: 'center' });
    const r = u.over.getBoundingClientRect();
    return { y: r.top + 40, x0: r.left + u.valToPos(5, 'x'), x1: r.left + u.valToPos(8, 'x') };
  });
  await page.mouse.move(drag.x0, drag.y);
  await page.mouse.down();
  await page.mouse.move(drag.x1, drag.y, { steps: 5 });
  await page.mouse.up();
  const scales = await page.evaluate(() => window.riftApp.tv.charts.map((u) => [u.scales.x.min, u.scales.x.max]));
  for (const [mn, mx] of scales) {
    assert.ok(Math.abs(mn - 5) < 0.1 && Math.abs(mx - 8) < 0.1, `zoomed to ${mn}..${mx}`);
  }
  assert.deepEqual(page.errors, []);
  await page.close();
});

test('a non-linearizable history: the offending operations on their key', async () => {
  const { dir, run } = runScenario('amnesia', join(HERE, 'amnesia.json'), [], 1);
  const lin = run.checks.linearizable;
  assert.equal(lin.verdict, 'fail');
  const page = await open(dir);
  const section = page.locator('section', { has: page.locator('h2', { hasText: 'Not linearizable' }) });
  assert.ok(await section.isVisible());
  assert.ok((await section.textContent()).includes(`Key “${lin.key}”`));
  const invokes = lin.ops.filter((o) => o.type === 'invoke').length;
  assert.equal(await section.locator('g.lin-op').count(), invokes);
  const procs = [...new Set(lin.ops.map((o) => String(o.process)))].length;
  assert.equal(await section.locator('text.lin-proc').count(), procs);
  const row = page.locator('table.assertions tbody tr[data-pass="fail"] td.name');
  assert.ok((await row.allTextContents()).includes('linearizable'));
  await shot(page, 'amnesia-not-linearizable');
  assert.deepEqual(page.errors, []);
  await page.close();
});

const HOSTILE = [
  '</script><script>window.__pwned = 1</script>',
  '<img src=x onerror="window.__pwned=2">',
  '"><svg onload="window.__pwned=3">',
  '\u2028\u2029 line separators \u2028',
  '<!--<script>',
  'javascript:window.__pwned=4',
];

function hostile(i) {
  return `${HOSTILE[i % HOSTILE.length]} #${i}`;
}

test('a run file with hostile strings stays inert', async () => {
  const { run } = runScenario('hostile-src', join(SRC, 'scenarios', 'chained.json'), [], 0);
  let i = 0;
  run.name = hostile(i++);
  run.description = hostile(i++);
  run.backend = hostile(i++);
  run.started_at = hostile(i++);
  run.scenario.name = hostile(i++);
  run.events.slice(0, 40).forEach((e) => { e.node = hostile(i++); e.kind = hostile(i++); e[hostile(i++)] = hostile(i++); });
  run.faults.forEach((f) => { f.kind = hostile(i++); f.node = hostile(i++); f.links.push([hostile(i++), hostile(i++)]); });
  run.assertions.forEach((a) => { a.name = hostile(i++); a.message = hostile(i++); a.value = hostile(i++); a.pass = false; });
  run.checks.linearizable = { verdict: 'fail', key: hostile(i++), reason: hostile(i++), minimal: true,
    ops: [{ process: hostile(i++), type: 'invoke', f: 'put', key: 'k', value: hostile(i++), time: 1000 },
      { process: hostile(i - 2), type: 'ok', f: 'put', key: 'k', value: hostile(i++), time: 2000 }] };
  run.verdict = hostile(i++);
  const dir = join(work, 'hostile');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'run.json'), JSON.stringify(run));
  rift(['report', dir], 0);
  const html = readFileSync(join(dir, 'report.html'), 'utf8');
  // Exactly our three scripts (uPlot, the dashboard, the data): nothing closes one early.
  assert.equal((html.match(/<\/script/gi) || []).length, 3);
  assert.equal((html.match(/<script/gi) || []).length, 3);
  assert.ok(!html.includes('\u2028') && !html.includes('\u2029'));
  const page = await open(dir);
  assert.equal(await page.evaluate(() => window.__pwned), undefined);
  assert.equal(await page.locator('main img, main iframe').count(), 0);
  assert.equal(await page.textContent('h1'), run.name, 'the name shows as text, exactly');
  assert.equal(await page.textContent('.desc'), run.description);
  const names = await page.$$eval('table.assertions td.name', (tds) => tds.map((td) => td.textContent));
  assert.deepEqual(names, run.assertions.map((a) => a.name));
  // The events table shows hostile nodes literally.
  assert.ok((await page.locator('.ev-scroll').textContent()).includes(HOSTILE[0]) ||
    (await page.locator('.ev-filters').textContent()).includes(HOSTILE[0].slice(0, 10)));
  // Hover and click around: tooltips and the graph render data as text too.
  await clickAt(page, 6e6);
  await page.mouse.move(300, 300);
  await shot(page, 'hostile');
  assert.equal(await page.evaluate(() => window.__pwned), undefined);
  assert.deepEqual(page.errors.filter((e) => e.startsWith('dialog')), []);
  await page.close();

  // A hostile sweep: links that are not relative paths are not links.
  const sweepDir = join(work, 'hostile-sweep');
  mkdirSync(sweepDir, { recursive: true });
  writeFileSync(join(sweepDir, 'sweep.json'), JSON.stringify({
    schema_version: 1, scenario: hostile(0), params: [hostile(1)], seeds: 1,
    rows: [{ params: { [hostile(1)]: hostile(2) }, seed: 1, verdict: hostile(3), run_dir: 'javascript:window.__pwned=5' }],
  }));
  rift(['report', sweepDir], 0);
  const sp = await open(sweepDir);
  assert.equal(await sp.evaluate(() => window.__pwned), undefined);
  const hrefs = await sp.$$eval('a', (as) => as.map((a) => a.getAttribute('href')));
  assert.ok(hrefs.every((h) => h === null || !/^javascript:/i.test(h)), `hrefs: ${hrefs}`);
  await sp.close();
});

test('a sweep: the heatmap links each cell to its run', async () => {
  const dir = join(work, 'sweep');
  const args = ['sweep', join(SRC, 'scenarios', 'chained.json'), '--backend', 'sim', '--set', 'cluster.paxos.fd=naive,quorum',
    '--seeds', '1', '--out', dir];
  const r = spawnSync(RIFT, args, { encoding: 'utf8', timeout: 60000 });
  const sweep = JSON.parse(readFileSync(join(dir, 'sweep.json'), 'utf8'));
  assert.equal(r.status, sweep.rows.every((x) => x.verdict === 'pass') ? 0 : 1, r.stderr);
  const page = await open(dir);
  assert.equal(await page.locator('table.heatmap td.cell').count(), 2);
  const pass = sweep.rows.filter((r) => r.verdict === 'pass').length;
  assert.equal(await page.textContent('#app header .verdict-badge'), `${pass}/${sweep.rows.length} PASS`);
  await shot(page, 'sweep');
  const naive = sweep.rows.find((r) => r.params['cluster.paxos.fd'] === 'naive');
  const link = page.locator('table.heatmap a.seed').first();
  const href = await link.getAttribute('href');
  assert.equal(href, `${naive.run_dir.split('/').pop()}/report.html`);
  assert.ok(existsSync(join(dir, href)));
  await link.click();
  await page.waitForSelector('#verdict');
  assert.equal(await page.textContent('#verdict'), naive.verdict.toUpperCase());
  await page.close();
});

test('--live: the report follows a running simulation and ends with its verdict', async () => {
  const dir = join(work, 'live');
  const child = spawn(RIFT, ['run', join(HERE, 'live.json'), '--backend', 'sim', '--live', '--out', dir], { stdio: 'ignore' });
  const exited = new Promise((res) => child.on('exit', (code) => res(code)));
  const t0 = Date.now();
  while (!existsSync(join(dir, 'report.html')) && Date.now() - t0 < 10000) await new Promise((r) => setTimeout(r, 50));
  const page = await open(dir);
  await page.waitForFunction(() => document.getElementById('verdict').textContent === 'RUNNING', null, { timeout: 5000 });
  const d1 = await page.evaluate(() => window.riftApp.tv.duration);
  await page.waitForFunction((d) => window.riftApp.tv.duration > d + 500000, d1, { timeout: 5000 });
  await shot(page, 'live-running');
  const code = await exited;
  assert.equal(code, 0);
  assert.ok(Date.now() - t0 >= 3000, 'the simulator ran at wall-clock speed');
  await page.waitForFunction(() => document.getElementById('verdict').textContent === 'PASS', null, { timeout: 5000 });
  assert.match(await page.textContent('#live-status'), /finished/);
  // The final run, not a snapshot: every event of run.json is in the page.
  const run = JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8'));
  assert.ok((await page.textContent('footer')).includes(`${run.events.length} events`));
  assert.ok(await page.evaluate(() => window.riftApp.tv.duration) >= run.metrics.duration_us);
  await shot(page, 'live-finished');
  assert.deepEqual(page.errors, []);
  await page.close();
});
