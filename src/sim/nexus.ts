import { transportIdIdentity, type TransportId } from '../scsi/transport-id.js';

/** An I_T nexus: initiator port × relative target port identifier, what a registration belongs to. */
export interface Nexus {
  readonly initiator: TransportId;
  readonly targetPort: number;
}

/** A string equal for two nexuses exactly when they are the same I_T nexus. */
export function nexusId(initiator: TransportId, targetPort: number): string {
  return `${transportIdIdentity(initiator)}@${targetPort}`;
}
