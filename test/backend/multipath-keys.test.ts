// The key memory of the multipath backend (src/backend/multipath-keys.ts):
// which paths of a map are known to carry the map's key, from registrations
// and sysfs snapshots. Pure; the I/O is in multipath.test.ts.
import { describe, expect, it } from 'vitest';
import { MapKeyBook } from '../../src/backend/multipath-keys.js';
import type { MapInfo, MapPath, PathUse } from '../../src/backend/multipath.js';

const UUID = 'mpath-36001405aa';

function path(name: string, use: PathUse = 'first', over: Partial<MapPath> = {}): MapPath {
  const devno = { sda: '8:0', sdb: '8:16', sdc: '8:32' }[name] ?? null;
  return { name, node: `/dev/${name}`, devno, state: use === 'first' ? 'running' : 'offline', host: null, use, ...over };
}

const map = (...paths: MapPath[]): MapInfo => ({ devno: '254:0', name: 'mpatha', uuid: UUID, paths });

describe('MapKeyBook', () => {
  it('remembers nothing before a registration: nothing to check', () => {
    const book = new MapKeyBook();
    expect(book.observe(map(path('sda')))).toEqual([]);
    expect(book.key(UUID)).toBeUndefined();
    expect(book.served()).toEqual([]);
  });

  it('a path that missed the registration is suspect; it is checked once it is usable', () => {
    const book = new MapKeyBook();
    book.learn(map(path('sda'), path('sdb', 'never')), 0xaan, false, ['sda']);
    expect(book.key(UUID)).toMatchObject({ key: 0xaan, allTgPt: false });
    expect(book.served()).toEqual([{ uuid: UUID, devno: '254:0' }]);
    expect(book.observe(map(path('sda'), path('sdb', 'never')))).toEqual([]); // offline: not yet
    expect(book.observe(map(path('sda'), path('sdb', 'last-resort')))).toEqual([]); // blocked: not yet
    expect(book.observe(map(path('sda'), path('sdb')))).toEqual(['sdb']);
    expect(book.verify(UUID, 'sdb', book.key(UUID)!.generation)).toBe(true);
    expect(book.observe(map(path('sda'), path('sdb')))).toEqual([]);
  });

  it('a verified path that goes down and comes back is checked again (its nexus may be new)', () => {
    const book = new MapKeyBook();
    book.learn(map(path('sda'), path('sdb')), 0xaan, false, ['sda', 'sdb']);
    expect(book.observe(map(path('sda'), path('sdb', 'never')))).toEqual([]);
    expect(book.observe(map(path('sda'), path('sdb')))).toEqual(['sdb']);
  });

  it('a path that joins the map, or another device under the same name, is suspect', () => {
    const book = new MapKeyBook();
    book.learn(map(path('sda'), path('sdb')), 0xaan, false, ['sda', 'sdb']);
    expect(book.observe(map(path('sda'), path('sdb'), path('sdc')))).toEqual(['sdc']);
    expect(book.observe(map(path('sda'), path('sdb', 'first', { devno: '65:16' }), path('sdc')))).toEqual(['sdb', 'sdc']);
  });

  it('a transport failure makes a path suspect', () => {
    const book = new MapKeyBook();
    book.learn(map(path('sda'), path('sdb')), 0xaan, false, ['sda', 'sdb']);
    book.suspect(UUID, 'sda');
    expect(book.suspects(UUID)).toEqual(['sda']);
    expect(book.observe(map(path('sda'), path('sdb')))).toEqual(['sda']);
  });

  it('a check that started under an older key proves nothing', () => {
    const book = new MapKeyBook();
    const m = map(path('sda'), path('sdb'));
    book.learn(m, 0xaan, false, ['sda']);
    const old = book.key(UUID)!.generation;
    book.learn(m, 0xbbn, false, ['sda']);
    expect(book.verify(UUID, 'sdb', old)).toBe(false);
    expect(book.suspects(UUID)).toEqual(['sdb']);
    book.forget(UUID, old); // a stale "forget" does not drop the new key either
    expect(book.key(UUID)?.key).toBe(0xbbn);
    book.forget(UUID);
    expect(book.key(UUID)).toBeUndefined();
  });

  it('ALL_TG_PT: a registration covers the other paths of the same SCSI host, not those of another', () => {
    const book = new MapKeyBook();
    const m = map(path('sda', 'first', { host: 3 }), path('sdb', 'first', { host: 3 }), path('sdc', 'first', { host: 4 }));
    book.learn(m, 0xaan, true, ['sda']);
    expect(book.suspects(UUID)).toEqual(['sdc']);
  });

  it('an unregistered map is dropped once every path is known to be unregistered', () => {
    const book = new MapKeyBook();
    book.learn(map(path('sda'), path('sdb')), 0n, false, ['sda']);
    expect(book.key(UUID)?.key).toBe(0n); // sdb may still carry the old key
    expect(book.verify(UUID, 'sdb', book.key(UUID)!.generation)).toBe(true);
    expect(book.key(UUID)).toBeUndefined();
    book.learn(map(path('sda')), 0n, false, ['sda']);
    expect(book.served()).toEqual([]);
  });
});
