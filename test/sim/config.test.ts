import { describe, expect, it } from 'vitest';
import { ConfigError, parseSimulationConfig } from '../../src/sim/config.js';

const SOURCE = '/etc/pr-helper/sim.json';

const EXAMPLE = `{"stateDir": "/var/lib/pr-helper", "luns": [{"name": "disk0", "paths": [
  {"path": "/abs/nodeA.img", "initiator": "iqn.2008-11.org.linux-kvm:node-a"},
  {"path": "/abs/nodeB.img", "initiator": "iqn.2008-11.org.linux-kvm:node-b", "targetPort": 2}]}]}`;

describe('parseSimulationConfig', () => {
  it('accepts the documented shape', () => {
    expect(parseSimulationConfig(EXAMPLE, SOURCE)).toEqual({
      stateDir: '/var/lib/pr-helper',
      profile: 'spc4',
      luns: [
        {
          name: 'disk0',
          targetPorts: [1, 2],
          paths: [
            {
              path: '/abs/nodeA.img',
              initiatorName: 'iqn.2008-11.org.linux-kvm:node-a',
              initiator: { protocol: 'iscsi', name: 'iqn.2008-11.org.linux-kvm:node-a', isid: null },
              targetPort: 1,
            },
            {
              path: '/abs/nodeB.img',
              initiatorName: 'iqn.2008-11.org.linux-kvm:node-b',
              initiator: { protocol: 'iscsi', name: 'iqn.2008-11.org.linux-kvm:node-b', isid: null },
              targetPort: 2,
            },
          ],
        },
      ],
    });
  });

  it('makes stateDir optional, accepts FC/SAS initiators and several LUNs', () => {
    const config = parseSimulationConfig(
      JSON.stringify({
        luns: [
          { name: 'a', paths: [{ path: '/x/a1.img', initiator: 'wwpn:21:00:00:24:ff:5a:2b:3c', targetPort: 3 }] },
          { name: 'b', paths: [{ path: '/x/b1.img', initiator: 'naa.500605b0000272b0' }, { path: '/x/b2.img', initiator: 'naa.500605b0000272b0', targetPort: 2 }] },
        ],
      }),
      SOURCE,
    );
    expect(config.stateDir).toBeNull();
    expect(config.luns.map((l) => l.targetPorts)).toEqual([[3], [1, 2]]);
    expect(config.luns[0]!.paths[0]!.initiator).toEqual({ protocol: 'fc', wwpn: '21000024ff5a2b3c' });
    expect(config.luns[1]!.paths[1]!.initiator).toEqual({ protocol: 'sas', address: '500605b0000272b0' });
  });

  it('takes a target profile, spc4 unless given', () => {
    const one = { luns: [{ name: 'a', paths: [{ path: '/a', initiator: 'iqn.x.y:z' }] }] };
    expect(parseSimulationConfig(JSON.stringify({ ...one, profile: 'lio' }), SOURCE).profile).toBe('lio');
    expect(parseSimulationConfig(JSON.stringify({ ...one, profile: 'tgt' }), SOURCE).profile).toBe('tgt');
    expect(() => parseSimulationConfig(JSON.stringify({ ...one, profile: 'scst' }), SOURCE)).toThrow(
      'config /etc/pr-helper/sim.json: profile must be one of "spc4", "lio", "tgt"',
    );
  });

  it('allows the same initiator on the same port of different LUNs', () => {
    const path = (p: string) => ({ path: p, initiator: 'iqn.x.y:z' });
    const config = parseSimulationConfig(JSON.stringify({ luns: [{ name: 'a', paths: [path('/a')] }, { name: 'b', paths: [path('/b')] }] }), SOURCE);
    expect(config.luns).toHaveLength(2);
  });

  const lun = (paths: unknown[], name: unknown = 'disk0') => ({ name, paths });
  const path = (p: string, initiator = 'iqn.2008-11.org.linux-kvm:node-a', extra: Record<string, unknown> = {}) => ({ path: p, initiator, ...extra });
  const doc = (luns: unknown, extra: Record<string, unknown> = {}) => JSON.stringify({ luns, ...extra });

  it.each([
    ['invalid JSON', '{"luns": [', /^config \/etc\/pr-helper\/sim\.json: is not valid JSON: /],
    ['a top-level array', '[]', 'config /etc/pr-helper/sim.json: the top level must be a JSON object'],
    ['an unknown top-level key', doc([lun([path('/a')])], { stateDirectory: '/x' }), 'config /etc/pr-helper/sim.json: stateDirectory is not a known key'],
    ['missing luns', '{}', 'config /etc/pr-helper/sim.json: luns is missing'],
    ['empty luns', doc([]), 'config /etc/pr-helper/sim.json: luns must be a non-empty array'],
    ['a relative stateDir', doc([lun([path('/a')])], { stateDir: 'state' }), 'config /etc/pr-helper/sim.json: stateDir must be an absolute path'],
    ['a null stateDir', doc([lun([path('/a')])], { stateDir: null }), 'config /etc/pr-helper/sim.json: stateDir must be an absolute path'],
    ['a LUN that is not an object', doc(['disk0']), 'config /etc/pr-helper/sim.json: luns[0] must be a JSON object'],
    ['an unknown LUN key', doc([{ ...lun([path('/a')]), lun: 0 }]), 'config /etc/pr-helper/sim.json: luns[0].lun is not a known key'],
    ['a LUN without name', doc([{ paths: [path('/a')] }]), 'config /etc/pr-helper/sim.json: luns[0].name is missing'],
    ['an empty LUN name', doc([lun([path('/a')], '')]), /luns\[0\]\.name must be 1-64 letters/],
    ['a LUN name with a slash', doc([lun([path('/a')], 'a/b')]), /luns\[0\]\.name must be 1-64 letters/],
    ['a LUN name starting with a dot', doc([lun([path('/a')], '..')]), /luns\[0\]\.name must be 1-64 letters/],
    ['a LUN name that is too long', doc([lun([path('/a')], 'x'.repeat(65))]), /luns\[0\]\.name must be 1-64 letters/],
    ['a numeric LUN name', doc([lun([path('/a')], 7)]), /luns\[0\]\.name must be/],
    ['duplicate LUN names', doc([lun([path('/a')], 'Disk0'), lun([path('/b')], 'disk0')]), 'config /etc/pr-helper/sim.json: luns[1].name duplicates luns[0].name'],
    ['empty paths', doc([lun([])]), 'config /etc/pr-helper/sim.json: luns[0].paths must be a non-empty array'],
    ['a path entry that is not an object', doc([lun(['/a'])]), 'config /etc/pr-helper/sim.json: luns[0].paths[0] must be a JSON object'],
    ['a relative path', doc([lun([path('/a'), path('nodeB.img', 'iqn.2008-11.org.linux-kvm:node-b')])]), 'config /etc/pr-helper/sim.json: luns[0].paths[1].path must be an absolute path'],
    ['a missing path', doc([lun([{ initiator: 'iqn.x.y' }])]), 'config /etc/pr-helper/sim.json: luns[0].paths[0].path is missing'],
    ['a path with NUL', doc([lun([path('/a\u0000b')])]), 'config /etc/pr-helper/sim.json: luns[0].paths[0].path must be an absolute path'],
    ['an unknown path key', doc([lun([path('/a', undefined, { port: 2 })])]), 'config /etc/pr-helper/sim.json: luns[0].paths[0].port is not a known key'],
    ['a path used twice in one LUN', doc([lun([path('/a'), path('/a', 'iqn.2008-11.org.linux-kvm:node-b')])]), 'config /etc/pr-helper/sim.json: luns[0].paths[1].path is already used by luns[0].paths[0]'],
    ['a path used twice across LUNs (after normalisation)', doc([lun([path('/img/a')], 'a'), lun([path('/img//x/../a')], 'b')]), 'config /etc/pr-helper/sim.json: luns[1].paths[0].path is already used by luns[0].paths[0]'],
    ['a missing initiator', doc([lun([{ path: '/a' }])]), 'config /etc/pr-helper/sim.json: luns[0].paths[0].initiator is missing'],
    ['a numeric initiator', doc([lun([{ path: '/a', initiator: 5 }])]), 'config /etc/pr-helper/sim.json: luns[0].paths[0].initiator must be a string'],
    ['an unrecognised initiator', doc([lun([path('/a', 'node-a')])]), /^config \/etc\/pr-helper\/sim\.json: luns\[0\]\.paths\[0\]\.initiator is invalid: initiator name "node-a" is not recognised/],
    ['target port 0', doc([lun([path('/a', undefined, { targetPort: 0 })])]), 'config /etc/pr-helper/sim.json: luns[0].paths[0].targetPort must be an integer from 1 to 65535'],
    ['target port 65536', doc([lun([path('/a', undefined, { targetPort: 65536 })])]), 'luns[0].paths[0].targetPort must be an integer from 1 to 65535'],
    ['a fractional target port', doc([lun([path('/a', undefined, { targetPort: 1.5 })])]), 'luns[0].paths[0].targetPort must be an integer from 1 to 65535'],
    ['a string target port', doc([lun([path('/a', undefined, { targetPort: '2' })])]), 'luns[0].paths[0].targetPort must be an integer from 1 to 65535'],
    ['a null target port', doc([lun([path('/a', undefined, { targetPort: null })])]), 'luns[0].paths[0].targetPort must be an integer from 1 to 65535'],
    [
      'the same initiator and port twice in a LUN (default port, name case)',
      doc([lun([path('/a'), path('/b', 'IQN.2008-11.ORG.LINUX-KVM:NODE-A', { targetPort: 1 })])]),
      'config /etc/pr-helper/sim.json: luns[0].paths[1] repeats the initiator and target port of luns[0].paths[0] (one path per I_T nexus)',
    ],
  ])('rejects %s', (_name, text, message) => {
    let error: unknown;
    try {
      parseSimulationConfig(text, SOURCE);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const text_ = (error as Error).message;
    expect(text_).not.toContain('\n');
    if (typeof message === 'string') expect(text_).toContain(message);
    else expect(text_).toMatch(message);
  });
});
