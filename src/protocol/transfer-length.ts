/**
 * Transfer length by the generic group-code rule, exactly as qemu-pr-helper and
 * QEMU's client compute it (QEMU scsi/utils.c scsi_cdb_xfer). PR OUT (group 2) thus
 * uses only bytes 7-8 of its 32-bit PARAMETER LIST LENGTH; compatibility
 * requires the same framing, the device still sees all CDB bytes.
 */
export function transferLength(cdb: Uint8Array): number {
  const group = cdb[0]! >> 5;
  switch (group) {
    case 0:
      return cdb[4]!;
    case 1:
    case 2:
      return (cdb[7]! << 8) | cdb[8]!;
    case 4:
      return ((cdb[10]! << 24) | (cdb[11]! << 16) | (cdb[12]! << 8) | cdb[13]!) >>> 0;
    case 5:
      return ((cdb[6]! << 24) | (cdb[7]! << 16) | (cdb[8]! << 8) | cdb[9]!) >>> 0;
    default:
      return 0xffffffff;
  }
}
