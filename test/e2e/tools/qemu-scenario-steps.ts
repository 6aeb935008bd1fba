/**
 * The steps tools/qtest-virtio-scsi.ts reports, in order: the tier 2 scenario (a paused
 * QEMU played over qtest, its scsi-block disk's PR commands going through the helper).
 */
export const QEMU_SCENARIO_STEPS: readonly string[] = [
  'qemu-connected-to-helper',
  'virtio-init',
  'tur-unit-attention',
  'tur-good',
  'read-keys-sees-other-nexus',
  'register',
  'reserve-and-read-reservation',
  'other-nexus-sees-guest-reservation',
  'conflict-reaches-guest',
  'helper-killed',
  'helper-restarted',
  'unregister',
];

/** Run only when the driver is given --helper-ctl; under systemd the service manager owns the helper. */
export const HELPER_RESTART_STEPS: readonly string[] = ['helper-killed', 'helper-restarted'];
