// fromStatus, the one place that reads a gRPC status for the caller: each
// failure grpc-js reports (its own words, as seen from real connections in
// test/integration/cli-errors.test.ts) becomes the right error class and a
// line that says what to do.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Code, fromStatus, lastError } from '../../src/transport/status';
import { exitFor } from '../../src/cli/exit';

const A = '10.0.0.2:42012';
const NO_CONN = (e: string) => `No connection established. Last error: ${e}. Resolution note: `;

const CASES: { what: string; code: number; details: string; tls?: boolean; stream?: boolean; exit: number; line: RegExp }[] = [
  { what: 'refused', code: Code.UNAVAILABLE, details: NO_CONN('Error: connect ECONNREFUSED 10.0.0.2:42012'), exit: 3, line: /^10\.0\.0\.2:42012 refused the connection — is koinode running on 10\.0\.0\.2:42012\?$/ },
  { what: 'unresolved', code: Code.UNAVAILABLE, details: 'Name resolution failed for target dns:10.0.0.2:42012', exit: 3, line: /^cannot resolve the host name 10\.0\.0\.2 — check -H/ },
  { what: 'getaddrinfo', code: Code.UNAVAILABLE, details: NO_CONN('Error: getaddrinfo ENOTFOUND db1'), exit: 3, line: /^cannot resolve the host name/ },
  { what: 'timeout', code: Code.DEADLINE_EXCEEDED, details: 'Deadline exceeded after 6.002s', exit: 3, line: /^no node answered at 10\.0\.0\.2:42012 within 6s — is koinode running\?$/ },
  { what: 'name', code: Code.UNAVAILABLE, details: NO_CONN("Error [ERR_TLS_CERT_ALTNAME_INVALID]: Hostname/IP does not match certificate's altnames: IP: 10.0.0.2 is not in the cert's list: 10.0.0.3"), tls: true, exit: 1, line: /^TLS: the certificate of 10\.0\.0\.2:42012 is not valid for the name 10\.0\.0\.2 \(Hostname\/IP does not match .*\) — .*subjectAltName IP:10\.0\.0\.2$/ },
  { what: 'untrusted', code: Code.UNAVAILABLE, details: NO_CONN('Error: self-signed certificate in certificate chain'), tls: true, exit: 1, line: /^TLS: koi does not trust the certificate of 10\.0\.0\.2:42012 \(self-signed certificate in certificate chain\) — \[cluster\] tls_ca/ },
  { what: 'our certificate refused', code: Code.UNAVAILABLE, details: NO_CONN('80EC47D3067F0000:error:0A00045C:SSL routines:ssl3_read_bytes:tlsv13 alert certificate required:../deps/openssl/openssl/ssl/record/rec_layer_s3.c:1601:SSL alert number 116\n (2026-12-02T15:03:11.868Z)'), tls: true, exit: 1, line: /^TLS: 10\.0\.0\.2:42012 refused koi's certificate \(tlsv13 alert certificate required\)/ },
  { what: 'plain node', code: Code.UNAVAILABLE, details: NO_CONN('Error: 80EC47D3067F0000:error:0A00010B:SSL routines:ssl3_get_record:wrong version number:../deps/openssl/openssl/ssl/record/ssl3_record.c:350:\n'), tls: true, exit: 1, line: /^TLS: 10\.0\.0\.2:42012 does not speak TLS \(wrong version number\)/ },
  { what: 'closed in handshake', code: Code.UNAVAILABLE, details: NO_CONN('Failed to connect (2026-12-02T15:03:11.861Z)'), tls: true, exit: 1, line: /^TLS: 10\.0\.0\.2:42012 closed the connection during the handshake/ },
  { what: 'closed, koi plain', code: Code.UNAVAILABLE, details: NO_CONN('Failed to connect (2026-12-02T15:03:11.840Z)'), exit: 1, line: /closed the connection before answering — if the nodes use TLS, give koi \[cluster\] tls_cert, tls_key and tls_ca too$/ },
  { what: 'stream lost', code: Code.UNAVAILABLE, details: 'Connection dropped', stream: true, exit: 3, line: /^lost the connection to 10\.0\.0\.2:42012 \(Connection dropped\) — koinode stopped or froze/ },
  { what: 'node ended the call', code: Code.CANCELLED, details: 'Call cancelled', exit: 3, line: /ended the call \(Call cancelled\) — koinode is stopping or restarting/ },
  { what: 'secret', code: Code.UNAUTHENTICATED, details: 'message from koi failed authentication — the secret differs from ours', exit: 1, line: /refused koi: wrong secret/ },
  { what: 'clock', code: Code.UNAUTHENTICATED, details: 'message from koi is -120s off our clock (window ±60s) — check NTP', exit: 1, line: /^10\.0\.0\.2:42012 refused us: message from koi is -120s off our clock \(window ±60s\) — check NTP$/ },
  { what: 'cluster id', code: Code.PERMISSION_DENIED, details: 'message from koi is for cluster 14, we are cluster 13', exit: 1, line: /wrong cluster id \(koi sent 14, the node is cluster 13\) — set \[cluster\] id = 13/ },
  { what: 'protocol', code: Code.FAILED_PRECONDITION, details: 'incompatible protocol 2.0: this node speaks 1.0–1.1', exit: 1, line: /^10\.0\.0\.2:42012 speaks another protocol version \(incompatible protocol 2\.0: this node speaks 1\.0–1\.1\) — use koi from the same koi release/ },
  { what: 'refusal', code: Code.FAILED_PRECONDITION, details: 'no leader right now', exit: 1, line: /^10\.0\.0\.2:42012: no leader right now$/ },
];

test('fromStatus: each failure gets its class (exit status) and a line that says what to do', () => {
  for (const c of CASES) {
    const e = fromStatus(c.code, c.details, A, 6000, { tls: c.tls, stream: c.stream });
    const { code, message } = exitFor(e);
    assert.equal(code, c.exit, `${c.what}: ${message}`);
    assert.match(message, c.line, c.what);
    assert.doesNotMatch(message, /\n/, `${c.what}: one line`);
  }
});

test('lastError keeps grpc-js reason only', () => {
  assert.equal(lastError(NO_CONN('Error: connect ECONNREFUSED 127.0.0.1:1')), 'connect ECONNREFUSED 127.0.0.1:1');
  assert.equal(lastError(NO_CONN('Failed to connect (2026-12-02T15:03:11.840Z)')), 'Failed to connect');
  assert.equal(lastError('Connection dropped'), 'Connection dropped');
});
