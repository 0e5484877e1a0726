// Adversarial fuzz of the pure Runner: a real-world model of each service
// where a script that is killed or fails may or may not have had its effect.
// Property: whenever the runner's report says holding: false, no service is
// (possibly) promoted and no promote runs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Runner, type LeaderView, type RunnerOutput } from '../../src/core/runner';
import { initialClusterState } from '../../src/core/state';
import type { ScriptEvent, ServiceDef } from '../../src/core/types';
import { Rng } from '../sim/rng';
import { simParams } from '../sim/run-seed';

interface Real {
  level: 0 | 1 | 2;
  /** A demote/stop failed (not cut) since: releasePastBound may free it by timing. */
  stopFailed: boolean;
}
interface Run {
  runId: number;
  service: string;
  event: ScriptEvent;
  endAtMs: number; // Infinity: hangs
  termDies: boolean;
  termMs: number | null;
  killed?: boolean;
  outcome: 'ok' | 'fail';
  check: string | null;
}

export const stats: Record<string, number> = {};
const bump = (k: string) => (stats[k] = (stats[k] ?? 0) + 1);
export function fuzzOne(seed: number, steps = 400): string | null {
  const rng = new Rng(seed);
  const p = simParams({ killGraceMs: rng.pick([50, 100]), statusIntervalMs: rng.pick([100, 300, 1000]) });
  const nsvc = rng.int(1, 3);
  const defs: ServiceDef[] = Array.from({ length: nsvc }, (_, i) => ({ name: `s${i}`, priority: rng.chance(0.7) ? rng.int(1, 3) * 10 : null }));
  const real = new Map<string, Real>();
  const interrupted: string[] = [];
  for (const d of defs) {
    const lv = rng.pick([0, 1, 2] as const);
    real.set(d.name, { level: lv, stopFailed: false });
    if (lv === 2 || rng.chance(0.2)) interrupted.push(d.name);
  }
  let runId = 0;
  let nowMs = 1000;
  const maint = rng.chance(0.1);
  const runner = new Runner('n2', p, defs, 1, () => ++runId, nowMs, maint, interrupted);
  let state = { ...initialClusterState(), maintenance: maint };
  let seq = 0;
  const runs = new Map<number, Run>();
  const log: string[] = [];
  let violation: string | null = null;

  const outcomeLevel = (cur: 0 | 1 | 2, ev: ScriptEvent, full: boolean): 0 | 1 | 2 => {
    // full: the script completed its effect.
    switch (ev) {
      case 'start':
        return full ? (cur === 0 ? 1 : cur) : cur;
      case 'promote':
        return full ? 2 : cur;
      case 'demote':
        return full ? (cur === 2 ? 1 : cur) : cur;
      case 'stop':
        return full ? 0 : cur;
      default:
        return cur;
    }
  };

  const statusCode = (name: string, check: string | null): number => {
    const lv = real.get(name)!.level;
    if (lv === 0) return 92;
    const canFail = !(check === 'boot' && lv === 2);
    if (canFail && rng.chance(0.05)) return 1;
    if (lv === 2) return rng.pick([90, 0]);
    return rng.pick([91, 0, 93, 0]);
  };

  const handle = (out: RunnerOutput) => {
    for (const r of out.runs) {
      const s = runner.services.find((x) => x.def.name === r.service)!;
      const hang = rng.chance(0.15);
      const run: Run = {
        runId: r.runId,
        service: r.service,
        event: r.event,
        endAtMs: hang ? Infinity : nowMs + rng.int(1, 400),
        termDies: rng.chance(0.6),
        termMs: null,
        outcome: rng.chance(0.1) ? 'fail' : 'ok',
        check: s.check,
      };
      runs.set(r.runId, run);
      bump(`run ${r.event}`);
      log.push(`${nowMs} run ${r.runId} ${r.service}/${r.event}${hang ? ' hang' : ''} ${run.outcome} check=${s.check}`);
    }
    for (const sg of out.signals) {
      const run = runs.get(sg.runId);
      if (run === undefined) continue;
      log.push(`${nowMs} ${sg.signal} ${sg.runId}${sg.cut ? ' cut' : ''}`);
      if (sg.cut) bump(`cut ${run.event}`);
      if (sg.signal === 'SIGKILL') {
        run.killed = true;
        run.endAtMs = Math.min(run.endAtMs, nowMs);
      }
      else if (run.termDies) {
        run.termMs = nowMs;
        run.endAtMs = Math.min(run.endAtMs, nowMs + rng.int(0, 30));
      }
    }
    for (const e of out.events) log.push(`${nowMs} event ${e.kind}`);
  };

  const check = (where: string) => {
    if (violation !== null) return;
    const rep = runner.report(nowMs);
    if (rep.holding) return;
    for (const [name, r] of real) {
      const promoteRunning = [...runs.values()].some((x) => x.service === name && x.event === 'promote');
      if ((r.level === 2 || promoteRunning) && !r.stopFailed) {
        violation = `${nowMs} (${where}): report holding=false but ${name} real level ${r.level}${promoteRunning ? ' (promote running)' : ''}; core state ${runner.services.map((s) => `${s.def.name}:${s.state}/${s.holding}/${s.running}`).join(' ')}`;
      }
    }
  };

  const tick = () => {
    const out: RunnerOutput = { runs: [], signals: [], events: [] };
    runner.tick(nowMs, out);
    handle(out);
    check('tick');
  };

  let leaseEcho = -Infinity;
  for (let i = 0; i < steps && violation === null; i++) {
    nowMs += rng.int(1, 120);
    // Scripts that end by now.
    for (const run of [...runs.values()].sort((a, b) => a.endAtMs - b.endAtMs)) {
      if (run.endAtMs > nowMs) continue;
      runs.delete(run.runId);
      const killed = run.termMs !== null || run.endAtMs !== Infinity && false;
      let exit: number | null;
      let signal: string | null = null;
      const rr = real.get(run.service)!;
      if (run.killed === true && !(run.termMs !== null && run.endAtMs < nowMs)) {
        rr.level = outcomeLevel(rr.level, run.event, rng.chance(0.5));
        exit = null;
        signal = 'SIGKILL';
      } else if (run.event === 'status') {
        if (run.termMs !== null && rng.chance(0.5)) {
          exit = null;
          signal = 'SIGTERM';
        } else exit = statusCode(run.service, run.check);
      } else if (run.termMs !== null || run.endAtMs !== Infinity && run.outcome === 'fail') {
        // killed or failed: effect happened or not, at random
        const full = rng.chance(0.5);
        rr.level = outcomeLevel(rr.level, run.event, full);
        if (run.termMs !== null && rng.chance(0.3)) {
          exit = 0; // finished anyway
          rr.level = outcomeLevel(rr.level, run.event, true);
        } else if (run.termMs !== null) {
          exit = null;
          signal = 'SIGTERM';
        } else exit = 1;
      } else {
        rr.level = outcomeLevel(rr.level, run.event, true);
        exit = 0;
      }
      // A SIGKILL ends it without effect guarantee too.
      if (!killed && signal === null && run.endAtMs < Infinity && run.termMs === null && exit === 0) {
        // normal
      }
      const ok = exit === 0 && signal === null;
      if ((run.event === 'demote' || run.event === 'stop') && !ok) rr.stopFailed = true;
      if ((run.event === 'demote' || run.event === 'stop') && ok) rr.stopFailed = false;
      log.push(`${nowMs} end ${run.runId} ${run.service}/${run.event} exit=${exit} sig=${signal} real=${rr.level}`);
      const out: RunnerOutput = { runs: [], signals: [], events: [] };
      runner.scriptDone(nowMs, run.runId, exit, signal, [], nowMs, out);
      handle(out);
      check('scriptDone');
    }
    // SIGKILLed hanging runs: handled through endAtMs = now at signal time; kill effects random.
    const roll = rng.next();
    if (roll < 0.35) {
      // heartbeat
      seq++;
      const designated = rng.chance(0.7);
      const grant = designated && rng.chance(0.85);
      if (grant) leaseEcho = nowMs - rng.int(0, 50);
      if (rng.chance(0.04)) state = { ...state, stopped: state.stopped.includes('n2') ? [] : ['n2'] };
      if (rng.chance(0.03)) state = { ...state, maintenance: !state.maintenance };
      if (rng.chance(0.02)) state = { ...state, recoverTokens: { n2: (state.recoverTokens['n2'] ?? 0) + 1 } };
      const hb: LeaderView = { epoch: 1, seq, master: designated ? 'n2' : rng.chance(0.5) ? 'n3' : null, masterEpoch: 1, grant: grant ? { echoMs: leaseEcho, incarnation: 1 } : null };
      runner.onHeartbeat(nowMs, hb, state, true);
      log.push(`${nowMs} hb ${seq} master=${hb.master} grant=${grant} stopped=${state.stopped.join()} maint=${state.maintenance}`);
      tick();
      if (!runner.report(nowMs).holding) runner.reportedFree(seq);
    } else if (roll < 0.37) {
      const d = rng.pick(defs);
      const s = runner.services.find((x) => x.def.name === d.name)!;
      runner.setDisabled(d.name, !s.disabled);
      log.push(`${nowMs} disabled ${d.name} ${!s.disabled}`);
    } else if (roll < 0.372) {
      runner.shutDown();
      log.push(`${nowMs} shutdown`);
    } else {
      tick();
    }
  }
  if (violation !== null) return `${violation}\n${log.slice(-60).join('\n')}`;
  return null;
}

test('runner cut fuzz: holding=false only when no service may be promoted', () => {
  const n = Number(process.env.CUTFUZZ_N ?? 800);
  const from = Number(process.env.CUTFUZZ_FROM ?? 1);
  const bad: string[] = [];
  for (let seed = from; seed < from + n; seed++) {
    const v = fuzzOne(seed);
    if (v !== null) {
      bad.push(`seed ${seed}: ${v}`);
      if (bad.length >= 3) break;
    }
  }
  assert.equal(bad.length, 0, bad.join('\n\n'));
  const cuts = Object.entries(stats).filter(([k]) => /cut/.test(k)).reduce((a, [, v]) => a + v, 0);
  assert.ok(cuts > 0, `the fuzz cut scripts short: ${JSON.stringify(stats)}`);
});
