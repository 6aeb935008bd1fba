/**
 * dm-multipath, what the daemon remembers between requests: the key each map
 * it served is registered with (the map's paths together stand for one I_T
 * nexus of the host, so one key per map), and for every path of the map
 * whether it is known to carry that key. Pure state, no I/O: multipath.ts
 * feeds it sysfs snapshots (probeMap) and command results, and asks it which
 * paths must be re-registered before they are used again.
 *
 * A path is "verified" after it answered GOOD to a registration with the
 * current key (or to a check that it carries it). It becomes "suspect" when
 * it is not usable in a snapshot (offline, blocked, gone), fails at the
 * transport level, misses a key change, or joins the map: the I_T nexus behind
 * it may have lost or never had the registration (iSCSI ISID changes on
 * reconnect, fence-agents #517), or may carry an older key. multipathd's
 * counterpart registers the configured reservation_key on paths that come
 * back (multipath-tools 0.12/0.14, mpath_pr_event_handle).
 */
import type { MapInfo } from './multipath.js';

/** The key the map's paths must carry; 0 = the map was unregistered through us. */
export interface MapKey {
  readonly key: bigint;
  /** The registration covers every target port of the initiator port (ALL_TG_PT). */
  readonly allTgPt: boolean;
  /** Bumped on every change of the key: a check that started under an older one proves nothing. */
  readonly generation: number;
}

interface PathRecord {
  readonly devno: string | null;
  readonly verified: boolean;
}

interface MapEntry {
  key: MapKey;
  readonly devno: string;
  paths: Map<string, PathRecord>;
}

const usable = (use: string): boolean => use === 'first' || use === 'later';

export class MapKeyBook {
  private readonly maps = new Map<string, MapEntry>();
  private generations = 0;

  /** The remembered key of a map, by dm uuid. */
  key(uuid: string): MapKey | undefined {
    return this.maps.get(uuid)?.key;
  }

  /** The maps with a remembered key: the ones worth watching. */
  served(): Array<{ readonly uuid: string; readonly devno: string }> {
    return [...this.maps].map(([uuid, e]) => ({ uuid, devno: e.devno }));
  }

  /**
   * A registration through the map succeeded: `verified` are the paths that
   * answered GOOD with the new key; every other path of the map is suspect.
   * With ALL_TG_PT a path's registration also covers the other paths of its
   * SCSI host (the same initiator port).
   */
  learn(map: MapInfo, key: bigint, allTgPt: boolean, verified: readonly string[]): void {
    const good = new Set(verified);
    if (allTgPt) {
      const hosts = new Set(map.paths.filter((p) => good.has(p.name) && p.host !== null).map((p) => p.host));
      for (const p of map.paths) if (p.host !== null && hosts.has(p.host)) good.add(p.name);
    }
    const paths = new Map(map.paths.map((p): [string, PathRecord] => [p.name, { devno: p.devno, verified: good.has(p.name) }]));
    const entry: MapEntry = { key: { key, allTgPt, generation: ++this.generations }, devno: map.devno, paths };
    this.maps.set(map.uuid, entry);
    this.dropIfSettled(map.uuid);
  }

  /** Nothing to re-register any more (CLEAR, the key preempted by another node, the map gone). */
  forget(uuid: string, generation?: number): void {
    const entry = this.maps.get(uuid);
    if (entry && (generation === undefined || entry.key.generation === generation)) this.maps.delete(uuid);
  }

  /**
   * A new sysfs snapshot of the map: paths that are not usable, are new, or
   * are a different device under the same name become suspect. Returns the
   * usable suspect paths, the ones to check before anything else uses them;
   * none when no key is remembered.
   */
  observe(map: MapInfo): string[] {
    const entry = this.maps.get(map.uuid);
    if (!entry) return [];
    const paths = new Map<string, PathRecord>();
    for (const p of map.paths) {
      const before = entry.paths.get(p.name);
      const same = before !== undefined && before.devno === p.devno;
      paths.set(p.name, { devno: p.devno, verified: same && before.verified && usable(p.use) });
    }
    entry.paths = paths;
    return map.paths.filter((p) => usable(p.use) && !paths.get(p.name)!.verified).map((p) => p.name);
  }

  /** The path failed or missed a command that mattered: check it before it is used again. */
  suspect(uuid: string, path: string): void {
    const entry = this.maps.get(uuid);
    const record = entry?.paths.get(path);
    if (entry && record) entry.paths.set(path, { ...record, verified: false });
  }

  /**
   * The path carries the key of `generation`. False (and the path stays
   * suspect) when the key changed in the meantime.
   */
  verify(uuid: string, path: string, generation: number): boolean {
    const entry = this.maps.get(uuid);
    const record = entry?.paths.get(path);
    if (!entry || !record || entry.key.generation !== generation) return false;
    entry.paths.set(path, { ...record, verified: true });
    this.dropIfSettled(uuid);
    return true;
  }

  /** Paths of the map not known to carry the key. */
  suspects(uuid: string): string[] {
    const entry = this.maps.get(uuid);
    return entry ? [...entry.paths].filter(([, r]) => !r.verified).map(([name]) => name) : [];
  }

  /**
   * An unregistered map whose paths are all unregistered needs no watching:
   * only a path that missed the unregistration has something to undo.
   */
  private dropIfSettled(uuid: string): void {
    const entry = this.maps.get(uuid);
    if (entry && entry.key.key === 0n && [...entry.paths.values()].every((r) => r.verified)) this.maps.delete(uuid);
  }
}
