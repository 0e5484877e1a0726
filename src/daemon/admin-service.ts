// The Admin service of koinode: `koi` calls (checked, then answered here or
// forwarded to the leader or to the node they name) and watch streams. It
// sees the daemon through AdminHost; commands reach the core only through
// `submit`, and their replies come back through `reply`.
import type * as grpc from '@grpc/grpc-js';
import type { AdminCommand, AdminReply } from '../core/types';
import type { KoiNode } from '../core/node';
import type { KoiConfig } from '../config/config';
import { formatHostPort } from '../config/values';
import type { AdminRequest, AdminResponse, LocalJson, StatusJson, WatchEvent } from '../admin-types';
import type { Authenticator, Envelope } from '../transport/auth';
import type { TrafficCounters } from '../transport/peers';
import { channelCredentials } from '../transport/grpc';
import { AdminClient } from '../transport/admin-client';
import { serviceError } from '../transport/status';
import { decodeAdminRequest, encodeAdminReply, encodeWatchEvent } from '../transport/admin-codec';
import { AuthError, UnreachableError } from '../errors';

const ADMIN_REPLY_TIMEOUT_MS = 5_000;

/** What the admin service reads of the core: never its insides. */
export type AdminCore = Pick<KoiNode, 'leader' | 'epoch' | 'role' | 'state' | 'isLeader'>;

export interface AdminHost {
  readonly core: AdminCore;
  readonly auth: Authenticator;
  /** The configuration now (a reload replaces it). */
  config(): KoiConfig;
  status(): StatusJson;
  traffic(): TrafficCounters;
  /** Hand an admin command to the core (its reply comes through AdminService.reply). */
  submit(requestId: number, command: AdminCommand): void;
  /** SIGHUP's reload, for `koi reconfigure`. */
  reload(): Promise<AdminResponse>;
  /** A caller that did not authenticate: logged, rate-limited. */
  refused(from: string, err: AuthError): void;
}

interface Watcher {
  /** Events sent on this stream so far: seq counts per stream, so a gap shows a loss. */
  seq: number;
  send(ev: WatchEvent): void;
}

export class AdminService {
  private readonly pending = new Map<number, (r: AdminReply) => void>();
  private readonly watchers = new Set<Watcher>();
  private readonly clients = new Map<string, AdminClient>();
  private readonly startedMs = Date.now();
  private nextRequestId = 1;
  private lastView = '';

  constructor(
    private readonly host: AdminHost,
    private readonly version: string,
  ) {}

  /** The implementation of the Admin service, for grpc.Server.addService. */
  implementation(): grpc.UntypedServiceImplementation {
    return {
      Call: (call: grpc.ServerUnaryCall<Envelope, Envelope>, cb: grpc.sendUnaryData<Envelope>) => this.call(call, cb),
      Watch: (call: grpc.ServerWritableStream<Envelope, Envelope>) => this.watch(call),
    };
  }

  /** The core's answer to a command submitted earlier. */
  reply(rep: AdminReply): void {
    const done = this.pending.get(rep.requestId);
    this.pending.delete(rep.requestId);
    done?.(rep);
  }

  /** Send an event to every watch stream. */
  publish(ev: Omit<WatchEvent, 'seq' | 'time'>): void {
    if (this.watchers.size === 0) return;
    const time = new Date().toISOString();
    for (const w of this.watchers) w.send({ seq: ++w.seq, time, ...ev } as WatchEvent);
  }

  /** Leader, epoch, master and maintenance as this node sees them: one event per change. */
  viewChanged(): void {
    if (this.watchers.size === 0) return;
    const view = this.view();
    const key = JSON.stringify(view);
    if (key === this.lastView) return;
    this.lastView = key;
    this.publish(view);
  }

  private view(): Omit<WatchEvent, 'seq' | 'time'> {
    const core = this.host.core;
    const s = core.state;
    return { node: this.host.config().node.name, kind: 'view', leader: core.leader, epoch: core.epoch, master: s.master, maintenance: s.maintenance, manualMaster: s.manualMaster };
  }

  close(): void {
    for (const c of this.clients.values()) c.close();
  }

  private call(call: grpc.ServerUnaryCall<Envelope, Envelope>, cb: grpc.sendUnaryData<Envelope>): void {
    const auth = this.host.auth;
    let from: string;
    let minor: number;
    let req: AdminRequest;
    try {
      const opened = auth.open(call.request);
      from = opened.from;
      // Answer in the caller's minor when it is older than ours.
      minor = Math.min(opened.minor, auth.protocol.maxMinor);
      req = decodeAdminRequest(opened.body);
    } catch (e) {
      const err = e instanceof AuthError ? e : new AuthError(String(e), 'malformed');
      this.host.refused(callerHost(call.getPeer()), err);
      cb(serviceError(err));
      return;
    }
    const reply = (res: AdminResponse) => {
      let body: Buffer;
      try {
        body = encodeAdminReply(res, req.op);
      } catch (e) {
        cb(serviceError(new Error(`cannot encode the reply to ${req.op}: ${(e as Error).message}`)));
        return;
      }
      cb(null, auth.seal(body, minor));
    };
    this.handle(req, from).then(reply, (e: unknown) => reply({ ok: false, code: 'error', error: (e as Error).message }));
  }

  private watch(call: grpc.ServerWritableStream<Envelope, Envelope>): void {
    const auth = this.host.auth;
    let minor: number;
    try {
      const opened = auth.open(call.request);
      minor = Math.min(opened.minor, auth.protocol.maxMinor);
      if (decodeAdminRequest(opened.body).op !== 'watch') throw new AuthError('Admin.Watch takes a watch request', 'malformed');
    } catch (e) {
      const err = e instanceof AuthError ? e : new AuthError(String(e), 'malformed');
      this.host.refused(callerHost(call.getPeer()), err);
      call.emit('error', serviceError(err));
      return;
    }
    const w: Watcher = {
      seq: 0,
      send: (ev) => {
        try {
          call.write(auth.seal(encodeWatchEvent(ev), minor));
        } catch {
          // An event the schema cannot carry is dropped; the seq gap shows it.
        }
      },
    };
    this.watchers.add(w);
    // The newcomer learns the view now; the others already have it.
    const view = this.view();
    this.lastView = JSON.stringify(view);
    w.send({ seq: ++w.seq, time: new Date().toISOString(), ...view } as WatchEvent);
    const gone = () => this.watchers.delete(w);
    call.on('cancelled', gone);
    call.on('close', gone);
    call.on('error', gone);
  }

  private async handle(req: AdminRequest, from: string): Promise<AdminResponse> {
    const forwarded = from !== 'koi';
    const core = this.host.core;
    const name = this.host.config().node.name;
    switch (req.op) {
      case 'local':
        return { ok: true, code: 'ok', data: this.local() };
      case 'failures':
        return { ok: true, code: 'ok', data: core.state.failures };
      case 'status': {
        if (core.isLeader() || forwarded) return { ok: true, code: 'ok', data: this.host.status() };
        const viaLeader = await this.toLeader(req);
        return viaLeader ?? { ok: true, code: 'ok', data: this.host.status() };
      }
      case 'command': {
        const rep = await this.command(req.command);
        if (rep.code === 'not-leader' && !forwarded && rep.leader !== null && rep.leader !== name) {
          const viaLeader = await this.toLeader(req);
          if (viaLeader !== null) return viaLeader;
        }
        return replyToResponse(rep);
      }
      case 'reconfigure':
        if (req.node !== null && req.node !== name) {
          if (forwarded) return { ok: false, code: 'refused', error: `reconfigure for ${req.node} reached ${name}` };
          return this.toNode(req.node, { op: 'reconfigure', node: req.node });
        }
        return this.host.reload();
      case 'watch':
        return { ok: false, code: 'error', error: 'watch is a stream: use the Watch call' };
    }
  }

  private command(command: AdminCommand): Promise<AdminReply> {
    const requestId = this.nextRequestId++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(requestId);
        resolve({ requestId, ok: false, code: 'not-committed', error: 'no answer from the core in time — check koi status and retry', leader: this.host.core.leader });
      }, ADMIN_REPLY_TIMEOUT_MS);
      this.pending.set(requestId, (r) => {
        clearTimeout(timer);
        resolve(r);
      });
      this.host.submit(requestId, command);
    });
  }

  private async toLeader(req: AdminRequest): Promise<AdminResponse | null> {
    const leader = this.host.core.leader;
    if (leader === null || leader === this.host.config().node.name) return null;
    try {
      return await this.toNode(leader, req);
    } catch {
      return null;
    }
  }

  private async toNode(node: string, req: AdminRequest): Promise<AdminResponse> {
    const config = this.host.config();
    const addr = config.cluster.transport.find((p) => p.name === node);
    if (addr === undefined) return { ok: false, code: 'refused', error: `no node named ${node} — see koi status for the names` };
    let client = this.clients.get(node);
    if (client === undefined) {
      client = new AdminClient(formatHostPort(addr), this.host.auth, channelCredentials(config));
      this.clients.set(node, client);
    }
    try {
      return await client.call(req, ADMIN_REPLY_TIMEOUT_MS);
    } catch (e) {
      if (e instanceof UnreachableError) return { ok: false, code: 'unavailable', error: `${node} did not answer: ${e.message}` };
      throw e;
    }
  }

  private local(): LocalJson {
    const c = this.host.config();
    const core = this.host.core;
    const st = this.host.status();
    const me = st.nodes.find((n) => n.name === c.node.name)!;
    return {
      name: c.node.name,
      address: me.address,
      elector: c.node.elector,
      runner: c.node.runner,
      role: core.role,
      epoch: core.epoch,
      leader: core.leader,
      master: core.state.master,
      maintenance: core.state.maintenance,
      state: me.state,
      services: me.services,
      config: c.file,
      servicesFolder: c.service.folder,
      uptimeMs: Date.now() - this.startedMs,
      pid: process.pid,
      version: this.version,
      traffic: { ...this.host.traffic() },
      rssBytes: process.memoryUsage.rss(),
      protocol: { ...this.host.auth.protocol },
    };
  }
}

function replyToResponse(r: AdminReply): AdminResponse {
  if (r.ok) return r.note ? { ok: true, code: 'ok', data: { note: r.note } } : { ok: true, code: 'ok' };
  switch (r.code) {
    case 'not-leader':
      return { ok: false, code: 'not-leader', error: r.error ?? `this node is not the leader (${r.leader ?? 'none'}) and could not forward` };
    case 'refused':
      return { ok: false, code: 'refused', error: r.error ?? 'refused' };
    case 'not-committed':
    case 'ok':
      return { ok: false, code: 'unavailable', error: r.error ?? 'not confirmed' };
  }
}

/**
 * The caller's address without its port: refusals are logged once a minute
 * per caller, and a client that connects afresh for every call has a new
 * port each time.
 */
function callerHost(peer: string): string {
  const m = /^(?:ipv[46]:)?\[?(.*?)\]?:\d+$/.exec(peer);
  return m === null ? peer : m[1]!;
}
