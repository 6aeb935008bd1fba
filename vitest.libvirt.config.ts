import { defineConfig } from 'vitest/config';

/**
 * npm run test:e2e:libvirt: the real-libvirt tier alone. It boots an L2 guest under
 * TCG inside TCG for minutes, too long for npm test; .ci/run runs it after npm test.
 */
export default defineConfig({
  test: { include: ['test/e2e/libvirt.test.ts'], testTimeout: 60_000, hookTimeout: 60_000 },
});
