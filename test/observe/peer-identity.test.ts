import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { guestName, identifyPeer, machineFromCgroup, nameFromCmdline } from '../../src/observe/peer-identity.js';

const proc = mkdtempSync(join(tmpdir(), 'fake-proc-'));
afterAll(() => rmSync(proc, { recursive: true, force: true }));

function fakeProcess(pid: number, cmdline: string[] | null, cgroup: string | null): void {
  mkdirSync(join(proc, String(pid)));
  if (cmdline) writeFileSync(join(proc, String(pid), 'cmdline'), cmdline.join('\0') + '\0');
  if (cgroup !== null) writeFileSync(join(proc, String(pid), 'cgroup'), cgroup);
}

describe('QEMU -name', () => {
  it.each([
    ['guest=vm1,debug-threads=on', 'vm1'],
    ['vm1', 'vm1'],
    ['vm1,process=qemu:vm1', 'vm1'],
    ['process=x,guest=db,,primary', 'db,primary'],
    ['debug-threads=on', null],
    ['guest=', null],
  ])('%s names %s', (option, name) => {
    expect(guestName(option)).toBe(name);
  });

  it('is found in a NUL-separated command line, as -name or --name', () => {
    expect(nameFromCmdline(['/usr/bin/qemu-system-x86_64', '-machine', 'q35', '-name', 'guest=web,debug-threads=on', '-m', '1024'].join('\0'))).toBe('web');
    expect(nameFromCmdline(['qemu-kvm', '--name', 'db'].join('\0'))).toBe('db');
    expect(nameFromCmdline(['qemu-kvm', '-m', '512'].join('\0'))).toBeNull();
  });
});

describe('libvirt machine scope', () => {
  it('unescapes the scope name', () => {
    expect(machineFromCgroup('0::/machine.slice/machine-qemu\\x2d3\\x2dweb\\x2dfront.scope/libvirt/emulator\n')).toBe('qemu-3-web-front');
    expect(machineFromCgroup('12:cpu,cpuacct:/machine.slice/machine-qemu\\x2d1\\x2ddb.scope\n')).toBe('qemu-1-db');
    expect(machineFromCgroup('0::/system.slice/pr-helper.service\n')).toBeNull();
  });
});

describe('identifyPeer (fake /proc)', () => {
  fakeProcess(100, ['/usr/bin/qemu-system-x86_64', '-name', 'guest=vmA,debug-threads=on'], '0::/machine.slice/machine-qemu\\x2d1\\x2dother.scope/libvirt/emulator\n');
  fakeProcess(101, ['/usr/bin/qemu-system-x86_64', '-m', '512'], '0::/machine.slice/machine-qemu\\x2d7\\x2dvmB.scope/libvirt/emulator\n');
  fakeProcess(102, ['/usr/bin/node', 'main.js', 'client'], '0::/user.slice\n');
  fakeProcess(103, null, null);

  it.each([
    [100, { exe: 'qemu-system-x86_64', vm: 'vmA' }],
    [101, { exe: 'qemu-system-x86_64', vm: 'vmB' }],
    [102, { exe: 'node' }],
    [103, {}],
    [999, {}],
    [0, {}],
  ])('pid %i: %j', (pid, fields) => {
    expect(identifyPeer(pid, proc)).toEqual(fields);
  });
});
