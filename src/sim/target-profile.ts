/**
 * Target quirk profiles of the simulated disk: where Linux LIO
 * (drivers/target/target_core_pr.c) and tgt (usr/spc.c) answer PR commands
 * differently from SPC-4 and the SCST/CTL majority the default follows. Data
 * only; src/sim/pr-engine.ts consults it. Replaying a captured sequence
 * against "lio" or "tgt" then shows what a cluster would meet on that target.
 */
import type { ReportCapabilitiesFields } from '../scsi/pr-in.js';
import { Sense, type SenseCode } from '../scsi/sense.js';

export const TARGET_PROFILE_NAMES = ['spc4', 'lio', 'tgt'] as const;
export type TargetProfileName = (typeof TARGET_PROFILE_NAMES)[number];

export interface TargetProfile {
  readonly name: TargetProfileName;
  /** What REPORT CAPABILITIES claims; PTPL_A follows the APTPL state. */
  readonly capabilities: Omit<ReportCapabilitiesFields, 'ptplA'>;
  /** PR IN allocation lengths below this are INVALID FIELD IN CDB; 0 accepts any and truncates. */
  readonly minimumAllocationLength: number;
  /** REPORT CAPABILITIES' own minimum (LIO checks 6 bytes there). */
  readonly minimumCapabilitiesLength: number;
  readonly readFullStatus: boolean;
  readonly preemptAndAbort: boolean;
  /** SPEC_I_PT, ALL_TG_PT and APTPL are honoured; otherwise setting one is INVALID FIELD IN CDB. */
  readonly optionalBits: boolean;
  /** The answer to a basic parameter list whose length is wrong. */
  readonly parameterListLengthSense: SenseCode;
  /** RESERVE, RELEASE, CLEAR and REGISTER AND MOVE from an unregistered nexus while no reservation is held. */
  readonly unregisteredWithoutReservation: SenseCode | 'conflict';
  readonly reserveScopeSense: SenseCode;
  /** RELEASE by the holder with another TYPE or SCOPE. */
  readonly releaseMismatch: SenseCode | 'conflict';
  /** Which RELEASEs announce RESERVATIONS RELEASED: SPC-4's RO and AR types, or tgt's inverse (WE and EA). */
  readonly releaseAnnounces: 'registrants-types' | 'exclusive-types';
  /** Which holders' unregistering announces RESERVATIONS RELEASED: SPC-4's RO types, or every type but AR (tgt). */
  readonly holderUnregisterAnnounces: 'registrants-only' | 'all-but-all-registrants';
  /** The unit attention of a nexus whose registration PREEMPT removed. */
  readonly preemptedRegistrationSense: SenseCode;
  /** PREEMPT with SARK 0 and no reservation: the spec's INVALID FIELD IN PARAMETER LIST, or a GOOD no-op (tgt). */
  readonly preemptZeroWithoutReservation: 'invalid' | 'good';
  /** PREEMPT with SARK 0 while a WE/EA/RO reservation is held. */
  readonly preemptZeroHeldSense: SenseCode;
  /** PREEMPT that only removes registrations still rejects an invalid TYPE (LIO; SPC-4 says ignore it). */
  readonly preemptChecksType: boolean;
  /** "Removing registrations" also removes the sender when its key is the one preempted. */
  readonly preemptRemovesSender: boolean;
  /** PRgeneration counts an unregister and a registration with SARK 0 from an unregistered nexus. */
  readonly generationCountsUnregister: boolean;
  readonly persistence: {
    /** The state file is written after every REGISTER-family command, APTPL or not (LIO). */
    readonly everyRegister: boolean;
    /** The state directory is created when missing; LIO fails instead. */
    readonly createsDirectory: boolean;
    /** The answer when writing after a REGISTER-family command fails. */
    readonly registerFailure: SenseCode;
    /** The answer when writing after any other command fails; null: only logged (LIO ignores it). */
    readonly otherFailure: SenseCode | null;
  };
}

const ALL_TYPES = { wrEx: true, exAc: true, wrExRo: true, exAcRo: true, wrExAr: true, exAcAr: true } as const;

const SPC4: TargetProfile = {
  name: 'spc4',
  capabilities: {
    // CRH: SPC-2 RESERVE/RELEASE never reach this unit (the helper forwards only
    // PR commands), so the compatible-handling claim holds vacuously and matches
    // what QEMU sees from LIO/SCST. No REPLACE LOST RESERVATION.
    rlrC: false, crh: true,
    // SPEC_I_PT, ALL_TG_PT and APTPL are all implemented.
    sipC: true, atpC: true, ptplC: true,
    // Every type; ALLOW COMMANDS 100b as SCST and CTL report, consistent with checkAccess.
    tmv: true, allowCommands: 0b100, typeMask: ALL_TYPES,
  },
  minimumAllocationLength: 0,
  minimumCapabilitiesLength: 0,
  readFullStatus: true,
  preemptAndAbort: true,
  optionalBits: true,
  parameterListLengthSense: Sense.PARAMETER_LIST_LENGTH_ERROR,
  unregisteredWithoutReservation: 'conflict',
  reserveScopeSense: Sense.INVALID_FIELD_IN_CDB,
  releaseMismatch: Sense.INVALID_RELEASE_OF_PERSISTENT_RESERVATION,
  releaseAnnounces: 'registrants-types',
  holderUnregisterAnnounces: 'registrants-only',
  preemptedRegistrationSense: Sense.REGISTRATIONS_PREEMPTED,
  preemptZeroWithoutReservation: 'invalid',
  preemptZeroHeldSense: Sense.INVALID_FIELD_IN_PARAMETER_LIST,
  preemptChecksType: false,
  preemptRemovesSender: true,
  generationCountsUnregister: true,
  persistence: {
    everyRegister: false,
    createsDirectory: true,
    registerFailure: Sense.INTERNAL_TARGET_FAILURE,
    otherFailure: Sense.INTERNAL_TARGET_FAILURE,
  },
};

/**
 * LIO as target_core_pr.c behaves (the six departures test/e2e/sim-vs-lio pins
 * against a recording, plus its APTPL file): core_scsi3_update_and_write_aptpl
 * writes <db_root>/pr/aptpl_<serial> after every REGISTER, and a failed write
 * (the pr/ directory missing) turns an applied REGISTER into NOT READY 08/00.
 */
const LIO: TargetProfile = {
  ...SPC4,
  name: 'lio',
  // core_scsi3_pri_report_capabilities: ALLOW COMMANDS 001b.
  capabilities: { ...SPC4.capabilities, allowCommands: 0b001 },
  minimumAllocationLength: 8,
  minimumCapabilitiesLength: 6,
  // core_scsi3_pro_reserve/_release, core_scsi3_emulate_pro_clear and _register_and_move
  // find no registration and return TCM_LOGICAL_UNIT_COMMUNICATION_FAILURE.
  unregisteredWithoutReservation: Sense.NOT_READY_LUN_COMMUNICATION_FAILURE,
  reserveScopeSense: Sense.INVALID_FIELD_IN_PARAMETER_LIST,
  releaseMismatch: 'conflict',
  // core_scsi3_emulate_pro_preempt validates TYPE first (QEMU 15a202656c works around it).
  preemptChecksType: true,
  generationCountsUnregister: false,
  persistence: {
    everyRegister: true,
    createsDirectory: false,
    registerFailure: Sense.NOT_READY_LUN_COMMUNICATION_FAILURE,
    otherFailure: null,
  },
};

/** tgt (usr/spc.c): no PREEMPT AND ABORT, READ FULL STATUS, SPEC_I_PT, ALL_TG_PT or APTPL, and its UA choices. */
const TGT: TargetProfile = {
  ...SPC4,
  name: 'tgt',
  capabilities: { rlrC: false, crh: false, sipC: false, atpC: false, ptplC: false, tmv: true, allowCommands: 0, typeMask: ALL_TYPES },
  minimumAllocationLength: 8,
  minimumCapabilitiesLength: 8,
  readFullStatus: false,
  preemptAndAbort: false,
  optionalBits: false,
  parameterListLengthSense: Sense.INVALID_FIELD_IN_CDB,
  releaseAnnounces: 'exclusive-types',
  holderUnregisterAnnounces: 'all-but-all-registrants',
  preemptedRegistrationSense: Sense.RESERVATIONS_PREEMPTED,
  preemptZeroWithoutReservation: 'good',
  preemptZeroHeldSense: Sense.INVALID_FIELD_IN_CDB,
  preemptRemovesSender: false,
};

export const TARGET_PROFILES: Readonly<Record<TargetProfileName, TargetProfile>> = { spc4: SPC4, lio: LIO, tgt: TGT };

export function isTargetProfileName(value: unknown): value is TargetProfileName {
  return typeof value === 'string' && (TARGET_PROFILE_NAMES as readonly string[]).includes(value);
}
