// The status page as a person sees it: headless Chromium (Debian's chromium,
// driven by playwright-core) loads it from a live cluster, reads leader and
// master, checks the colours, and saves a screenshot.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePorts } from '../../src/demo/local-cluster';
import { TestCluster } from './harness';

const CHROMIUM = '/usr/bin/chromium';

test('the status page in headless Chromium shows leader, master and coloured states, and refreshes', async (t) => {
  if (!existsSync(CHROMIUM)) {
    t.skip(`${CHROMIUM} is not installed (.ci/run installs Debian's chromium)`);
    return;
  }
  const { chromium } = await import('playwright-core');
  const [mport] = await freePorts(1);
  const c = await TestCluster.start(undefined, { start: false });
  const browser = await chromium.launch({
    timeout: 60_000,
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const conf = c.node('n1').conf;
    writeFileSync(conf, readFileSync(conf, 'utf8').replace('[node]', `[node]\nmetrics = 127.0.0.1:${mport}`));
    for (const n of c.nodes) c.startNode(n.name);
    const s = await c.waitFor('settled under n1', (x) => c.settled(x) && x.cluster.leader === 'n1' && x.nodes.every((n) => n.reachable), 10_000);
    const page = await browser.newPage({ viewport: { width: 1000, height: 420 } });
    await page.goto(`http://127.0.0.1:${mport}/`);
    assert.equal(await page.textContent('#leader'), 'n1');
    assert.equal(await page.textContent('#master'), s.cluster.master);
    const masterBadge = page.locator('span.b', { hasText: /^master$/ }).first();
    assert.equal(await masterBadge.evaluate((el) => getComputedStyle(el).backgroundColor), 'rgb(46, 125, 50)', 'master is green');
    const dir = mkdtempSync(join(tmpdir(), 'koi-page-'));
    const shot = join(dir, 'status-page.png');
    await page.screenshot({ path: shot });
    assert.ok(statSync(shot).size > 5000, `screenshot saved at ${shot}`);
    // It refreshes itself: a switchover shows up without reloading by hand.
    const to = s.cluster.master === 'n2' ? 'n3' : 'n2';
    assert.equal((await c.koi(['promote', to])).code, 0);
    await page.waitForFunction((name) => document.querySelector('#master')?.textContent === name, to, { timeout: 8000 });
  } finally {
    await browser.close();
    await c.stop();
  }
});
