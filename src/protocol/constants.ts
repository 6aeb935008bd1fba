/** Wire constants of the pr-manager-helper protocol (QEMU scsi/pr-helper.h, docs/interop/pr-helper.rst). */
export const CDB_SIZE = 16;
export const SENSE_SIZE = 96;
/** Largest transfer in either direction; a request asking for more is dropped (prh_read_request). */
export const MAX_TRANSFER = 8192;
/** BE int32 result + BE int32 size + 96 sense bytes, no padding. */
export const RESPONSE_HEADER_SIZE = 8 + SENSE_SIZE;
export const HANDSHAKE_SIZE = 4;
/** The original advertises no optional features, and so do we. */
export const SUPPORTED_FEATURES = 0;
