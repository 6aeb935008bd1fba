import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import * as fsp from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { PersistedLunState } from '../../src/sim/persisted-state.js';
import { deleteLunState, loadLunState, saveLunState, stateFileName } from '../../src/sim/state-store.js';

vi.mock('node:fs/promises', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:fs/promises')>();
  return { ...actual, rename: vi.fn(actual.rename), open: vi.fn(actual.open) };
});

const STATE: PersistedLunState = {
  version: 1,
  generation: 7,
  aptpl: true,
  registrations: [
    { initiator: { protocol: 'iscsi', name: 'iqn.2008-11.org.linux-kvm:node-a', isid: null }, targetPort: 1, key: '00000000000000aa', allTgPt: false },
  ],
  reservation: { type: 5, scope: 0, holder: { initiator: { protocol: 'iscsi', name: 'iqn.2008-11.org.linux-kvm:node-a', isid: null }, targetPort: 1 } },
};
const NEWER: PersistedLunState = { ...STATE, generation: 8 };

let root: string;
let dir: string;
const log = { warn: vi.fn<(obj: object, msg: string) => void>() };

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'pr-state-'));
  dir = join(root, 'state');
  log.warn.mockClear();
});

afterEach(() => {
  rmSync(root, { recursive: true, force: true });
});

const file = (): string => join(dir, 'disk0.pr-state.json');

describe('saveLunState / loadLunState', () => {
  it('round-trips a snapshot, creating the directory with mode 0700 and the file with 0600', async () => {
    await saveLunState(dir, 'disk0', STATE);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(statSync(file()).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(file(), 'utf8'))).toEqual(STATE);
    expect(await loadLunState(dir, 'disk0', log)).toEqual(STATE);
    expect(log.warn).not.toHaveBeenCalled();
  });

  it('replaces the previous state and leaves no temporary file', async () => {
    await saveLunState(dir, 'disk0', STATE);
    await saveLunState(dir, 'disk0', NEWER);
    expect(await loadLunState(dir, 'disk0', log)).toEqual(NEWER);
    expect(readdirSync(dir)).toEqual(['disk0.pr-state.json']);
  });

  it('keeps the old file when the rename fails', async () => {
    await saveLunState(dir, 'disk0', STATE);
    vi.mocked(fsp.rename).mockRejectedValueOnce(Object.assign(new Error('EIO: i/o error'), { code: 'EIO' }));
    await expect(saveLunState(dir, 'disk0', NEWER)).rejects.toThrow('EIO');
    expect(await loadLunState(dir, 'disk0', log)).toEqual(STATE);
    expect(readdirSync(dir)).toEqual(['disk0.pr-state.json']);
  });

  it('keeps the old file when the temporary file cannot be written', async () => {
    await saveLunState(dir, 'disk0', STATE);
    vi.mocked(fsp.open).mockRejectedValueOnce(Object.assign(new Error('ENOSPC: no space left'), { code: 'ENOSPC' }));
    await expect(saveLunState(dir, 'disk0', NEWER)).rejects.toThrow('ENOSPC');
    expect(await loadLunState(dir, 'disk0', log)).toEqual(STATE);
  });

  it('removes temporary files a crashed save left behind when loading', async () => {
    await saveLunState(dir, 'disk0', STATE);
    writeFileSync(join(dir, 'disk0.pr-state.json.tmp-1234'), '{"half');
    writeFileSync(join(dir, 'disk1.pr-state.json.tmp-1234'), '{"other lun');
    expect(await loadLunState(dir, 'disk0', log)).toEqual(STATE);
    expect(readdirSync(dir).sort()).toEqual(['disk0.pr-state.json', 'disk1.pr-state.json.tmp-1234']);
  });

  it('returns null silently for a missing file or directory', async () => {
    expect(await loadLunState(dir, 'disk0', log)).toBeNull();
    mkdirSync(dir);
    expect(await loadLunState(dir, 'disk0', log)).toBeNull();
    expect(log.warn).not.toHaveBeenCalled();
  });

  it.each([
    ['truncated JSON', '{"version": 1, "gener'],
    ['valid JSON that is not PR state', '{"version": 1}'],
    ['a state with a zero key', JSON.stringify({ ...STATE, registrations: [{ ...STATE.registrations[0], key: '0000000000000000' }] })],
  ])('sets aside %s, warns and returns null', async (_name, content) => {
    mkdirSync(dir);
    writeFileSync(file(), content);
    expect(await loadLunState(dir, 'disk0', log)).toBeNull();
    expect(log.warn).toHaveBeenCalledTimes(1);
    const [obj, msg] = log.warn.mock.calls[0]!;
    expect(obj).toMatchObject({ file: file(), keptAs: `${file()}.corrupt-1` });
    expect((obj as { err: unknown }).err).toBeInstanceOf(Error);
    expect(msg).toMatch(/kept aside/);
    expect(readdirSync(dir)).toEqual(['disk0.pr-state.json.corrupt-1']);
    expect(readFileSync(`${file()}.corrupt-1`, 'utf8')).toBe(content);
  });

  it('never overwrites an earlier corrupt copy', async () => {
    mkdirSync(dir);
    writeFileSync(file(), 'first');
    expect(await loadLunState(dir, 'disk0', log)).toBeNull();
    writeFileSync(file(), 'second');
    expect(await loadLunState(dir, 'disk0', log)).toBeNull();
    expect(readFileSync(`${file()}.corrupt-1`, 'utf8')).toBe('first');
    expect(readFileSync(`${file()}.corrupt-2`, 'utf8')).toBe('second');
    // A later good save is unaffected by the copies.
    await saveLunState(dir, 'disk0', STATE);
    expect(await loadLunState(dir, 'disk0', log)).toEqual(STATE);
  });

  it('warns and returns null for an unreadable path', async () => {
    mkdirSync(file(), { recursive: true });
    expect(await loadLunState(dir, 'disk0', log)).toBeNull();
    expect(log.warn).toHaveBeenCalledTimes(1);
    expect(log.warn.mock.calls[0]![0]).toMatchObject({ file: file() });
  });
});

describe('deleteLunState', () => {
  it('removes the state', async () => {
    await saveLunState(dir, 'disk0', STATE);
    await deleteLunState(dir, 'disk0');
    expect(await loadLunState(dir, 'disk0', log)).toBeNull();
    expect(readdirSync(dir)).toEqual([]);
  });

  it('accepts a missing file or directory', async () => {
    await expect(deleteLunState(dir, 'disk0')).resolves.toBeUndefined();
    mkdirSync(dir);
    await expect(deleteLunState(dir, 'disk0')).resolves.toBeUndefined();
  });
});

describe('stateFileName', () => {
  it.each([
    ['disk0', 'disk0.pr-state.json'],
    ['my_disk-1.a', 'my_disk-1.a.pr-state.json'],
    ['../etc/passwd', '%2E.%2Fetc%2Fpasswd.pr-state.json'],
    ['a/b', 'a%2Fb.pr-state.json'],
    ['..', '%2E..pr-state.json'],
    ['50%', '50%25.pr-state.json'],
    ['disk é', 'disk%20%C3%A9.pr-state.json'],
  ])('maps %j to %j', (name, expected) => {
    expect(stateFileName(name)).toBe(expected);
    expect(expected).not.toContain('/');
  });

  it('rejects an empty name', () => {
    expect(() => stateFileName('')).toThrow('must not be empty');
  });

  it('keeps path separators inside the state directory', async () => {
    await saveLunState(dir, '../escape', STATE);
    expect(readdirSync(root)).toEqual(['state']);
    expect(await loadLunState(dir, '../escape', log)).toEqual(STATE);
  });
});
