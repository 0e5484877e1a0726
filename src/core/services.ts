// Per-service state machine and priority ordering. Pure planning: given the
// services and a target level, say which scripts may start now.
import type { ScriptEvent, ServiceDef, ServiceReport, ServiceState } from './types';
import { assertNever, STATUS_MASTER, STATUS_NOT_PROMOTABLE, STATUS_SLAVE, STATUS_STOPPED } from './types';

/** The level a runner wants its services at. */
export type ServiceTarget = 'stopped' | 'started' | 'promoted';

/** Where a failed service is in its failure sequence (`failed`, then `stop`). */
type FailurePath = 'none' | 'run-failed' | 'run-stop';

/**
 * Why a status must run before anything else: koinode just started, it
 * started after an earlier koinode died while this service's scripts ran
 * with the role possibly held ('interrupted'), or maintenance ended. A
 * service that appeared in the folder while koinode ran ('added') is asked
 * first too, as at boot, but without holding up the others: no koinode ever
 * ran its scripts, so it cannot hold the role from an earlier one.
 */
export type CheckReason = 'boot' | 'interrupted' | 'resume' | 'added';

export interface ServiceRt {
  def: ServiceDef;
  state: ServiceState;
  running: ScriptEvent | null;
  runId: number | null;
  /**
   * From the start of promote until a demote or stop succeeds (or, after one
   * failed, until the runner's hold bound has passed with no script running).
   */
  holding: boolean;
  failurePath: FailurePath;
  /** Last status exit was 93 (live but not promotable). */
  notPromotable: boolean;
  /**
   * A status said 0, 90 or 91 since the service was last started (or it has
   * no status script): only then may it be promoted, or its runner chosen.
   */
  ready: boolean;
  disabled: boolean;
  /** A status that must run before any other script of this runner. */
  check: CheckReason | null;
  /**
   * Found possibly promoted after an earlier koinode was killed: it is
   * demoted before anything else, whatever the target (its real state is
   * unknown, so neither "promoted" nor "started" may be assumed).
   */
  demoteFirst: boolean;
  /** When the next periodic status is due (runner clock). */
  nextStatusMs: number;
  /**
   * A status said 92 while it ran (not a boot check): it died. Kept, even
   * through its restart, until a heartbeat shows this runner is not the
   * designated master (the leader moved the role, or never gave it), so the
   * leader cannot miss it however fast the restart goes.
   */
  died: boolean;
  /** The KOI_SCORE its last good status printed (null: none). */
  score: number | null;
  /** A removed service whose demote failed: its stop runs at once, in no order (no failure). */
  stopNow: boolean;
  /** Let go of by timing alone (its demote or stop failed), until a script or status of it shows where it is. */
  releasedByTime: boolean;
  /**
   * Its directory left the services folder: it goes down with the scripts
   * known of it (a failure of them fails nothing) and is forgotten once
   * stopped and not holding.
   */
  removed: boolean;
}

export interface PlannedRun {
  service: ServiceRt;
  event: ScriptEvent;
}

export function newService(def: ServiceDef, check: CheckReason | null = null): ServiceRt {
  return {
    def,
    state: 'stopped',
    running: null,
    runId: null,
    holding: false,
    failurePath: 'none',
    notPromotable: false,
    ready: false,
    disabled: def.disabled ?? false,
    check,
    demoteFirst: false,
    nextStatusMs: Infinity,
    died: false,
    score: null,
    stopNow: false,
    releasedByTime: false,
    removed: false,
  };
}

/** Going down on its own, in no order: disabled by its file, or removed from the folder. */
function leaving(s: ServiceRt): boolean {
  return s.disabled || s.removed;
}

export function hasScript(s: ServiceRt, event: ScriptEvent): boolean {
  return s.def.scripts === undefined || s.def.scripts.includes(event);
}

/** 0 stopped, 1 started, 2 promoted; states in motion count where they come from. */
function level(state: ServiceState): 0 | 1 | 2 {
  switch (state) {
    case 'failed':
    case 'stopped':
    case 'starting':
      return 0;
    case 'started':
    case 'promoting':
    case 'stopping':
    case 'failing':
      return 1;
    case 'promoted':
    case 'demoting':
      return 2;
    default:
      return assertNever(state);
  }
}

function targetLevel(t: ServiceTarget): 0 | 1 | 2 {
  switch (t) {
    case 'stopped':
      return 0;
    case 'started':
      return 1;
    case 'promoted':
      return 2;
    default:
      return assertNever(t);
  }
}

function settled(s: ServiceRt): boolean {
  return s.running === null && s.failurePath === 'none' && !s.stopNow;
}

function atOrBelow(s: ServiceRt, l: number): boolean {
  return settled(s) && level(s.state) <= l;
}

function atOrAbove(s: ServiceRt, l: number): boolean {
  return settled(s) && s.state !== 'failed' && level(s.state) >= l;
}

function higher(a: ServiceRt, b: ServiceRt): boolean {
  return a.def.priority !== null && b.def.priority !== null && a.def.priority > b.def.priority;
}

/**
 * Scripts that may start now to move the services towards `target`.
 * A pending check (status after boot or maintenance) comes before anything
 * else. Then all demotes before any stop, in descending priority, and all
 * starts before any promote, in ascending priority. Equal priorities run
 * together; services without a priority never wait. A disabled service aims
 * at stopped. `urgent` drops the ordering of demotes: the lease ran out and
 * every holder must let go now.
 */
export function plan(services: ServiceRt[], target: ServiceTarget, urgent: boolean): PlannedRun[] {
  const out: PlannedRun[] = [];
  // The failure sequence of a failed service ignores ordering: it is broken.
  for (const s of services) {
    if (s.running !== null) continue;
    if (s.failurePath === 'run-failed') out.push({ service: s, event: 'failed' });
    else if (s.failurePath === 'run-stop' || s.stopNow) out.push({ service: s, event: 'stop' });
  }
  // A service found while running is asked alone; the others carry on.
  for (const s of services) if (s.check === 'added' && settled(s)) out.push({ service: s, event: 'status' });
  if (services.some((s) => s.check !== null && s.check !== 'added')) {
    for (const s of services) if (s.check !== null && s.check !== 'added' && settled(s)) out.push({ service: s, event: 'status' });
    return out;
  }
  // Services found possibly promoted are demoted (in order) before the runner
  // aims higher than started again.
  const aim: ServiceTarget = target === 'promoted' && services.some((s) => s.demoteFirst && level(s.state) === 2) ? 'started' : target;
  const want = (s: ServiceRt) => targetLevel(leaving(s) ? 'stopped' : aim);
  const live = services.filter((s) => s.failurePath === 'none' && s.state !== 'failed' && !leaving(s) && s.check === null);
  const goingDown = live.some((s) => level(s.state) > want(s) || s.state === 'demoting' || s.state === 'stopping');
  // Phases: every demote before any stop, every start before any promote.
  const demotesLeft = live.some((s) => s.state === 'promoted' || s.state === 'demoting' || s.state === 'promoting');
  const startsLeft = live.some((s) => (s.state === 'stopped' || s.state === 'starting') && want(s) > 0);
  for (const s of services) {
    if (!settled(s) || s.state === 'failed' || s.check !== null) continue;
    const l = level(s.state);
    if (leaving(s)) {
      // The operator took it out: it goes down on its own, in no order.
      if (l > 0) out.push({ service: s, event: l === 2 ? 'demote' : 'stop' });
      continue;
    }
    const w = want(s);
    if (l === 1 && w === 0 && demotesLeft) continue;
    if (l === 1 && w === 2 && startsLeft) continue;
    if (l > w) {
      const event: ScriptEvent = l === 2 ? 'demote' : 'stop';
      const floor = l - 1;
      // (A service just found, still being asked, holds up nothing going down.)
      const blocked =
        !(urgent && event === 'demote') && services.some((o) => o !== s && higher(o, s) && !atOrBelow(o, floor) && !(o.check === 'added' && level(o.state) <= floor));
      if (!blocked) out.push({ service: s, event });
    } else if (l < w && !goingDown) {
      const event: ScriptEvent = l === 0 ? 'start' : 'promote';
      // Promoted only once a status since its start said it is ready (and not 93).
      if (event === 'promote' && !promotableService(s)) continue;
      const ceiling = l + 1;
      const blocked = services.some((o) => o !== s && higher(s, o) && !leaving(o) && !atOrAbove(o, ceiling));
      if (!blocked) out.push({ service: s, event });
    }
  }
  return out;
}

/** The script went through, or it is a status that gave one of its answers (90-93): what it says stands. */
export function answered(event: ScriptEvent, exitCode: number | null, signal: string | null): boolean {
  if (signal !== null) return false;
  return exitCode === 0 || (event === 'status' && exitCode !== null && exitCode >= STATUS_MASTER && exitCode <= STATUS_NOT_PROMOTABLE);
}

/** Its status said it is ready since its last start, and not 93. */
export function promotableService(s: ServiceRt): boolean {
  return (s.ready || !hasScript(s, 'status')) && !s.notPromotable;
}

/** Started or promoted services whose periodic status is due and that are idle. */
export function dueStatus(services: ServiceRt[], nowMs: number): ServiceRt[] {
  return services.filter(
    (s) =>
      settled(s) && s.check === null && !s.removed && (s.state === 'started' || s.state === 'promoted') && nowMs >= s.nextStatusMs && hasScript(s, 'status'),
  );
}

/** The state a service shows while `event` runs. */
export function runningState(event: ScriptEvent, s: ServiceRt): ServiceState {
  switch (event) {
    case 'start':
      return 'starting';
    case 'stop':
      return 'stopping';
    case 'promote':
      return 'promoting';
    case 'demote':
      return 'demoting';
    case 'failed':
      return 'failing';
    case 'status':
      return s.state;
    default:
      return assertNever(event);
  }
}

export function beginScript(s: ServiceRt, event: ScriptEvent, runId: number): void {
  s.running = event;
  s.runId = runId;
  s.state = runningState(event, s);
  if (event === 'promote') s.holding = true;
  if (event === 'start') s.ready = false;
  if (event === 'stop') s.stopNow = false;
}

/**
 * A script whose end is no verdict on the service: a start, status or
 * promote cut short because the lease ran out or the service is being
 * stopped, or any script that ended while maintenance froze judgement. A
 * promote counts as gone through and a start as done (the demote, stop or
 * status that follows finds out the rest; a start that failed in maintenance
 * is tried again after it: `startDone` false); a demote or stop counts as not
 * done (a holder keeps holding); a status changes nothing. (Scripts of a
 * failure sequence are always judged: the runner has failed already.)
 */
export function abandonScript(s: ServiceRt, startDone = true): void {
  const event = s.running;
  s.running = null;
  s.runId = null;
  s.demoteFirst = false;
  switch (event) {
    case null:
      return;
    case 'status':
      s.check = s.check === 'resume' ? 'resume' : null;
      return;
    case 'promote':
      s.state = 'promoted';
      return;
    case 'start':
      s.state = startDone ? 'started' : 'stopped';
      return;
    case 'stop':
      s.state = 'started';
      return;
    case 'demote':
      s.state = 'promoted';
      return;
    case 'failed':
      s.failurePath = 'run-stop';
      return;
    default:
      assertNever(event);
  }
}

/**
 * A script that never ran: its file was gone when it was spawned (the
 * service was renamed, or the script removed, since the last rescan). The
 * service is where it was before, so the planner runs the event again
 * (from the new path, or as a missing script). A promote keeps the holding
 * it began (nothing proves the role is free).
 */
export function unrunScript(s: ServiceRt): void {
  const event = s.running;
  s.running = null;
  s.runId = null;
  switch (event) {
    case null:
    case 'status':
      return;
    case 'start':
      s.state = 'stopped';
      return;
    case 'promote':
      s.state = 'started';
      return;
    case 'demote':
      s.state = 'promoted';
      return;
    case 'stop':
      s.state = 'started';
      return;
    case 'failed':
      s.failurePath = 'run-stop';
      return;
    default:
      assertNever(event);
  }
}

/**
 * Apply the end of a script. Returns true when the service has just failed
 * (the caller records the failure and fails the runner).
 */
export function finishScript(s: ServiceRt, exitCode: number | null, signal: string | null): boolean {
  const event = s.running;
  s.running = null;
  s.runId = null;
  // Whatever ran next decided the service's state (an interrupted boot
  // status sets it again below).
  s.demoteFirst = false;
  if (event === null) return false;
  const ok = exitCode === 0 && signal === null;
  // (A first check's failure is no failure anyway, and its rules stand.)
  const firstCheck = event === 'status' && s.check !== null && s.check !== 'resume';
  if (s.removed && !ok && s.failurePath === 'none' && !firstCheck) {
    removedScriptFailed(s, event);
    return false;
  }
  switch (event) {
    case 'failed':
      s.failurePath = 'run-stop';
      return false;
    case 'status':
      return finishStatus(s, exitCode, signal);
    case 'stop':
      // Only a stop or demote that succeeded proves the role is let go; after
      // a failed one the runner keeps holding until its bound has passed.
      if (ok) s.holding = false;
      if (s.failurePath !== 'none') {
        s.failurePath = 'none';
        s.state = 'failed';
        return false;
      }
      if (ok) s.state = 'stopped';
      break;
    case 'demote':
      if (ok) s.holding = false;
      break;
    case 'start':
    case 'promote':
      break;
    default:
      return assertNever(event);
  }
  if (ok) {
    if (event === 'start' || event === 'demote') s.state = 'started';
    else if (event === 'promote') s.state = 'promoted';
    return false;
  }
  s.state = 'failing';
  s.failurePath = 'run-failed';
  return true;
}

/**
 * A script of a service removed from the folder failed (its directory is
 * usually gone with its scripts): no failure of the runner. What it was
 * doing counts as not done. A failed demote is followed by its stop at once,
 * as in a failure sequence: until that stop ends the role counts as held
 * (after a failed stop, until the runner's hold bound has passed).
 */
function removedScriptFailed(s: ServiceRt, event: ScriptEvent): void {
  switch (event) {
    case 'start':
    case 'stop':
      s.state = 'stopped';
      return;
    case 'promote':
      s.state = 'promoted';
      return;
    case 'demote':
      s.state = 'started';
      s.stopNow = true;
      return;
    case 'status':
      s.check = null;
      return;
    case 'failed':
      // (Not reached: a failure sequence under way goes on as usual.)
      return;
    default:
      assertNever(event);
  }
}

/**
 * Status corrects koi's idea of the service: 90 "I am master", 91 "I am
 * slave", 92 "stopped", 93 "live but not promotable". The corrective action
 * follows from planning (a stopped service is started again, a master on a
 * runner that should not be one is demoted). At boot, a failing status just
 * means the service is not running. After an interrupted promote or demote
 * (or any script run while the role may have been held) only an explicit
 * "stopped" is believed: anything else is taken as master, so a demote
 * runs before the runner can report itself free.
 */
function finishStatus(s: ServiceRt, exitCode: number | null, signal: string | null): boolean {
  const reason = s.check;
  s.check = null;
  const code = signal === null ? exitCode : null;
  if (code !== STATUS_NOT_PROMOTABLE) s.notPromotable = false;
  if (code === 0 || code === STATUS_MASTER || code === STATUS_SLAVE) s.ready = true;
  else if (code === STATUS_STOPPED) s.ready = false;
  if (reason === 'interrupted') {
    if (code === STATUS_NOT_PROMOTABLE) s.notPromotable = true;
    if (code === STATUS_STOPPED) {
      s.state = 'stopped';
      s.holding = false;
    } else {
      s.state = 'promoted';
      s.holding = true;
      s.demoteFirst = true;
    }
    return false;
  }
  const boot = reason === 'boot' || reason === 'added';
  switch (code) {
    case 0:
      if (boot) s.state = 'started';
      return false;
    case STATUS_MASTER:
      s.state = 'promoted';
      s.holding = true;
      return false;
    case STATUS_SLAVE:
      s.state = 'started';
      s.holding = false;
      return false;
    case STATUS_STOPPED:
      // (A boot check's 92 only says what was found.)
      if (!boot && s.state !== 'stopped') s.died = true;
      s.state = 'stopped';
      s.holding = false;
      return false;
    case STATUS_NOT_PROMOTABLE:
      s.notPromotable = true;
      if (boot) s.state = 'started';
      return false;
    default:
      if (boot) {
        s.state = 'stopped';
        return false;
      }
      s.state = 'failing';
      s.failurePath = 'run-failed';
      return true;
  }
}

export function allStarted(services: ServiceRt[]): boolean {
  return services.every(
    (s) =>
      s.disabled ||
      s.removed ||
      (s.failurePath === 'none' && (s.state === 'started' || s.state === 'promoted' || s.state === 'promoting' || s.state === 'demoting')),
  );
}

export function allSettledDown(services: ServiceRt[]): boolean {
  return services.every((s) => settled(s) && level(s.state) === 0);
}

export function serviceReport(s: ServiceRt): ServiceReport {
  return {
    name: s.def.name,
    priority: s.def.priority,
    state: s.state,
    running: s.running,
    failed: s.state === 'failed' || s.failurePath !== 'none',
    notPromotable: s.notPromotable,
    disabled: s.disabled,
    ...(s.died ? { died: true } : {}),
    ...(s.score !== null ? { score: s.score } : {}),
  };
}
