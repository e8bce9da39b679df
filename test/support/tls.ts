/**
 * A throw-away certificate authority for tests, made with the `openssl` CLI (installed by `.ci/run`).
 * Every https server in the tests (upstream IdP, CIMD host, gateway) uses the one leaf certificate,
 * valid for `localhost`, `127.0.0.1` and `::1`; every client trusts `caPem` (or `caFile`, for child
 * processes and `extraCaCertificatesFile`).
 *
 * @example
 * const tls = await createTestCa();
 * https.createServer({ cert: tls.certPem, key: tls.keyPem }, handler);
 * const fetchWithCa = createTrustingFetch(tls.caPem);
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { RequestInit as UndiciRequestInit } from 'undici';
import { Agent, fetch as undiciFetch } from 'undici';

const run = promisify(execFile);

export interface TestCa {
  /** The CA certificate (PEM): what clients trust. */
  caPem: string;
  /** The leaf certificate (PEM) for localhost, 127.0.0.1 and ::1, signed by the CA. */
  certPem: string;
  /** The leaf's private key (PEM, unencrypted). */
  keyPem: string;
  /** Path of `caPem` on disk (for NODE_EXTRA_CA_CERTS or the gateway's `extraCaCertificatesFile`). */
  caFile: string;
  certFile: string;
  keyFile: string;
}

const cache = new Map<string, Promise<TestCa>>();
let defaultDir: string | undefined;

/** Whether the `openssl` CLI is on PATH; tests that need it skip with this as their reason otherwise. */
export function opensslAvailable(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * Creates (once per process and directory) a CA and a leaf certificate. Without `dir`, files go to a
 * fresh temporary directory removed when the process exits.
 */
/** One temporary directory per process for the CA, made on first use. */
function defaultTempDir(): string {
  defaultDir ??= makeTempDir();
  return defaultDir;
}

export function createTestCa(dir?: string): Promise<TestCa> {
  const target = dir ?? defaultTempDir();
  let pending = cache.get(target);
  if (!pending) {
    pending = generate(target);
    // A failure (for example no openssl) is not cached, so a later call can report it again.
    pending.catch(() => cache.delete(target));
    cache.set(target, pending);
  }
  return pending;
}

function makeTempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-gw-test-ca-'));
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function generate(dir: string): Promise<TestCa> {
  mkdirSync(dir, { recursive: true });
  const file = (name: string) => join(dir, name);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  try {
    await run('openssl', [
      'req',
      '-x509',
      ...ec,
      '-keyout',
      file('ca.key'),
      '-out',
      file('ca.pem'),
      '-days',
      '3',
      '-subj',
      '/CN=mcp-oauth-gateway test CA',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ]);
    await run('openssl', ['req', '-new', ...ec, '-keyout', file('leaf.key'), '-out', file('leaf.csr'), '-subj', '/CN=localhost']);
    // x509 -req ignores the CSR's extensions, so the SAN and usages come from an extension file.
    writeFileSync(
      file('leaf.ext'),
      [
        'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1',
        'basicConstraints=critical,CA:FALSE',
        'keyUsage=critical,digitalSignature',
        'extendedKeyUsage=serverAuth',
        '',
      ].join('\n'),
    );
    await run('openssl', [
      'x509',
      '-req',
      '-in',
      file('leaf.csr'),
      '-CA',
      file('ca.pem'),
      '-CAkey',
      file('ca.key'),
      '-set_serial',
      `0x${BigInt(Date.now()).toString(16)}${Math.floor(Math.random() * 1e6).toString(16)}`,
      '-days',
      '2',
      '-extfile',
      file('leaf.ext'),
      '-out',
      file('leaf.pem'),
    ]);
  } catch (error) {
    const reason = (error as { code?: string }).code === 'ENOENT' ? 'the openssl CLI is not installed' : String(error);
    throw new Error(`createTestCa: ${reason}`, { cause: error });
  }
  return {
    caPem: readFileSync(file('ca.pem'), 'utf8'),
    certPem: readFileSync(file('leaf.pem'), 'utf8'),
    keyPem: readFileSync(file('leaf.key'), 'utf8'),
    caFile: file('ca.pem'),
    certFile: file('leaf.pem'),
    keyFile: file('leaf.key'),
  };
}

/** A fetch that trusts only `caPem` (the test CA): for SDK transports and ad-hoc requests in tests. */
export function createTrustingFetch(caPem: string): typeof fetch & { close(): Promise<void> } {
  const agent = new Agent({ connect: { ca: caPem } });
  const trusting = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    // undici-the-package has its own Request class; a global Request would be stringified.
    if (typeof input !== 'string' && !(input instanceof URL)) {
      throw new TypeError('createTrustingFetch: pass a string or URL, not a Request');
    }
    return (await undiciFetch(input, { ...init, dispatcher: agent } as UndiciRequestInit)) as unknown as Response;
  };
  return Object.assign(trusting, { close: () => agent.close() }) as typeof fetch & { close(): Promise<void> };
}
