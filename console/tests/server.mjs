// Starts `hearth up` on free loopback ports with a fresh data folder and HOME, reads the admin
// token it prints, makes a read-only token, and stops the server after the run.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const freePort = () =>
  new Promise((ok, fail) => {
    const s = createServer();
    s.once('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });

export default async function setup() {
  const bin = resolve(process.env.HEARTH_BIN || join(import.meta.dirname, '..', '..', 'target', 'debug', 'hearth'));
  const home = mkdtempSync(join(tmpdir(), 'hearth-console-test-'));
  const api = await freePort();
  const triggers = await freePort();
  const child = spawn(bin, ['up', '--data-dir', join(home, 'data'), '--listen', `127.0.0.1:${api}`, '--trigger-listen', `127.0.0.1:${triggers}`], {
    env: { ...process.env, HOME: home, NO_COLOR: '1', HEARTH_LOG_FORMAT: 'text' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  const deadline = Date.now() + 60_000;
  let token = null;
  while (Date.now() < deadline) {
    token ??= output.match(/\b(hth_[0-9a-f]{64})\b/)?.[1];
    if (token && output.includes('listening on')) break;
    if (child.exitCode != null) throw new Error(`hearth up exited (${child.exitCode}):\n${output}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  if (!token) throw new Error(`hearth up did not print its admin token within 60 s:\n${output}`);
  const base = `http://127.0.0.1:${api}`;
  const res = await fetch(`${base}/v1/tokens`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ name: 'viewer', scopes: ['read'] }),
  });
  if (!res.ok) throw new Error(`cannot create a read-only token: ${res.status} ${await res.text()}`);
  const readOnly = (await res.json()).token;
  process.env.HEARTH_URL = base;
  process.env.HEARTH_ADMIN_TOKEN = token;
  process.env.HEARTH_READ_TOKEN = readOnly;
  return async () => {
    child.kill('SIGTERM');
    await new Promise((r) => (child.exitCode != null ? r() : child.once('exit', r)));
    if (process.env.KEEP_SERVER_LOG) console.log(output);
    rmSync(home, { recursive: true, force: true });
  };
}
