import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { requireTool, startDaemon } from '../helpers/daemon.js';

const QEMU = '/usr/bin/qemu-system-x86_64';
const haveQemu = requireTool(QEMU, 'qemu-system-x86');
const dir = mkdtempSync(join(tmpdir(), 'pr-qemu-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs QEMU with a pr-manager-helper on `socket`, asks QMP for the managers, and returns the replies. */
function queryPrManagers(socket: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const qemu = spawn(QEMU, ['-machine', 'none', '-nodefaults', '-display', 'none', '-object', `pr-manager-helper,id=pr0,path=${socket}`, '-qmp', 'stdio'], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  let asked = false;
  qemu.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  qemu.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
    // QMP greets first; commands are accepted only after that.
    if (stdout.includes('"QMP"') && !asked) {
      asked = true;
      qemu.stdin.write('{"execute":"qmp_capabilities"}\n{"execute":"query-pr-managers"}\n{"execute":"quit"}\n');
    }
  });
  return new Promise((resolve) => qemu.on('exit', (code) => resolve({ code, stdout, stderr })));
}

describe.skipIf(!haveQemu)('real QEMU as the client', () => {
  it('connects, handshakes, and reports the manager connected', async () => {
    const daemon = await startDaemon(join(dir, 'pr.sock'), ['--simulate', '-v']);
    const result = await queryPrManagers(daemon.socket);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('{"return": [{"connected": true, "id": "pr0"}]}');
    await daemon.stop();
    expect(daemon.stderr()).toContain('"msg":"connection opened"');
  });

  it('refuses to start when no helper listens, as with the original', async () => {
    const result = await queryPrManagers(join(dir, 'nobody.sock'));
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`Failed to connect to '${join(dir, 'nobody.sock')}'`);
  });
});
