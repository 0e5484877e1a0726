// Optional mutual TLS between nodes and for koi: a cluster with certificates
// from a CA made by the test works end to end; a node without them cannot
// talk to it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TestCluster } from './harness';

function openssl(args: string[], cwd: string): void {
  const r = spawnSync('openssl', args, { cwd, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
}

test('mutual TLS: nodes and koi with certificates from one CA; a node without TLS is shut out', async (t) => {
  if (spawnSync('openssl', ['version']).status !== 0) {
    t.skip('openssl is not installed');
    return;
  }
  const c = await TestCluster.start(undefined, { start: false });
  try {
    const d = c.root;
    openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=koi-test-ca'], d);
    for (const n of c.nodes) {
      openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${n.name}.key`, '-out', `${n.name}.csr`, '-subj', `/CN=${n.name}`], d);
      writeFileSync(join(d, `${n.name}.ext`), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n');
      openssl(['x509', '-req', '-in', `${n.name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${n.name}.crt`, '-days', '2', '-extfile', `${n.name}.ext`], d);
    }
    // n1 and n2 use TLS; n3 does not.
    for (const n of c.nodes.filter((x) => x.name !== 'n3')) {
      const conf = readFileSync(n.conf, 'utf8').replace('[cluster]', `[cluster]\ntls_cert = ${join(d, `${n.name}.crt`)}\ntls_key = ${join(d, `${n.name}.key`)}\ntls_ca = ${join(d, 'ca.crt')}`);
      writeFileSync(n.conf, conf);
    }
    for (const n of c.nodes) c.startNode(n.name);
    const s = await c.waitFor('n1 and n2 settled over TLS', (x) => c.settled(x) && x.nodes.filter((n) => n.reachable).length === 2, 10_000);
    assert.equal(s.nodes.find((n) => n.name === 'n3')!.reachable, false, 'the plaintext node is shut out');
    assert.notEqual(s.cluster.master, 'n3');
    const r = await c.koi(['status', '--json'], 'n2');
    assert.equal(r.code, 0, `koi over TLS: ${r.stderr}`);
    const plain = await c.koi(['status', '-H', '127.0.0.1', '-p', String(c.node('n1').port), '-t', '2'], 'n3');
    assert.notEqual(plain.code, 0, 'koi without TLS gets no answer');
  } finally {
    await c.stop();
  }
});
