// npm run demo: three koinodes on 127.0.0.1 with the example services, in a
// temporary directory. Prints the cluster whenever it changes; Ctrl-C stops
// everything cleanly.
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { StatusJson } from '../admin-types';
import { loadConfig } from '../config/load';
import { connect, newSecret } from '../cli/lazy';
import { KOI, REPO, startNode, stopAll, writeCluster, type LocalNode } from './local-cluster';

function line(st: StatusJson): string {
  const nodes = st.nodes.map((n) => `${n.name}${n.leader ? '*' : ''}:${n.state}`).join('  ');
  return `epoch ${st.cluster.epoch}  leader ${st.cluster.leader ?? '-'}  master ${st.cluster.master ?? '-'}  |  ${nodes}`;
}

async function main(): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), 'koi-demo-'));
  const nodes: LocalNode[] = await writeCluster({
    root,
    nodes: [
      { name: 'n1', priority: 3 },
      { name: 'n2', priority: 2 },
      { name: 'n3', priority: 1 },
    ],
    secret: newSecret(),
    servicesFrom: join(REPO, 'services', 'demo'),
    fillServices: (dir) => {
      copyFileSync(join(REPO, 'services', 'koi-service.sh'), join(dir, 'koi-service.sh'));
    },
    extra: { service: { demote_timeout: '2s' }, time: { status_interval: '2s' } },
  });
  for (const n of nodes) startNode(n);
  const koi = `node ${KOI} -f ${nodes[0]!.conf}`;
  process.stdout.write(
    [
      `koi demo: 3 nodes on 127.0.0.1 in ${root}`,
      ...nodes.map((n) => `  ${n.name}: port ${n.port}, pid ${n.proc?.pid}, log ${n.log}`),
      '',
      'In another terminal:',
      `  ${koi} status          # the cluster`,
      `  ${koi} promote n2      # switch the master by hand`,
      `  ${koi} watch           # events as they happen`,
      `  kill -9 <pid of the master's koinode>   # and watch the failover here`,
      '',
      'Ctrl-C stops the cluster and removes the directory.',
      '',
    ].join('\n'),
  );
  const config = loadConfig([nodes[0]!.conf], { client: true }).config;
  let last = '';
  let stopping = false;
  const poll = setInterval(() => {
    const up = nodes.find((n) => n.proc !== null);
    if (up === undefined || stopping) return;
    const client = connect(`127.0.0.1:${up.port}`, config);
    client
      .call({ op: 'status' }, 1500)
      .then((r) => {
        if (!r.ok) return;
        const l = line(r.data as StatusJson);
        if (l !== last) {
          last = l;
          process.stdout.write(`${new Date().toISOString().slice(11, 23)}  ${l}\n`);
        }
      })
      .catch(() => undefined)
      .finally(() => client.close());
  }, 500);
  const shutdown = async () => {
    if (stopping) return;
    stopping = true;
    clearInterval(poll);
    process.stdout.write('\nstopping the cluster (demote, stop services)...\n');
    await stopAll(nodes);
    rmSync(root, { recursive: true, force: true });
    process.stdout.write('done\n');
    process.exit(0);
  };
  process.on('SIGINT', () => void shutdown());
  process.on('SIGTERM', () => void shutdown());
  if (process.env.KOI_DEMO_SECONDS !== undefined) setTimeout(() => void shutdown(), Number(process.env.KOI_DEMO_SECONDS) * 1000);
}

main().catch((e: unknown) => {
  process.stderr.write(`demo: ${(e as Error).message}\n`);
  process.exit(1);
});
