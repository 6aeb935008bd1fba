import { defineConfig } from 'vitest/config';

/** Suites that boot QEMU/TCG virtual machines: they load both cores for minutes. */
const VM_SUITES = ['test/e2e/e2e.test.ts', 'test/e2e/multipath.test.ts', 'test/e2e/systemd.test.ts', 'test/e2e/validate-lio.test.ts'];
/** Runs alone (npm run test:e2e:libvirt, vitest.libvirt.config.ts): an L2 guest boots for minutes. */
const LIBVIRT_SUITE = 'test/e2e/libvirt.test.ts';

// Limits, not performance assertions: daemons are spawned and the machine has
// two cores.
const timeouts = { testTimeout: 60_000, hookTimeout: 60_000 };

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'host',
          include: ['test/**/*.test.ts'],
          exclude: ['dist/**', 'node_modules/**', ...VM_SUITES, LIBVIRT_SUITE],
          ...timeouts,
          sequence: { groupOrder: 0 },
        },
      },
      {
        // After the host suites, so that VM boots do not starve their timing.
        test: { name: 'vm', include: VM_SUITES, ...timeouts, sequence: { groupOrder: 1 } },
      },
    ],
  },
});
