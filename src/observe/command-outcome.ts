/**
 * Which commands the log reports at the default level, and in which words:
 * the audit trail (every PR OUT, since each one asks for a change of
 * reservation state; RESERVATION CONFLICT and UNIT ATTENTION of any command)
 * at info, failures at warn. Pure; the connection adds who and which device.
 */
import type { BackendResult, TransportOutcome } from '../backend/backend.js';
import { DRIVER_STATUS_BUSY_MASK, DRIVER_TIMEOUT, errnoName, hostStatusName } from '../backend/sgio-result.js';
import type { PrRequest } from '../protocol/request.js';
import { describePrCommand, describeSenseInWords, senseKeyNameOf, statusName } from '../scsi/pr-describe.js';
import { ScsiStatus, SenseKey } from '../scsi/status.js';
import { decodeSense } from '../scsi/sense.js';

export interface OutcomeLine {
  readonly level: 'info' | 'warn';
  readonly msg: string;
  readonly fields: Record<string, unknown>;
}

function transportFields(t: TransportOutcome | undefined): Record<string, string> {
  if (!t) return {};
  const fields: Record<string, string> = {};
  if (t.errno !== 0) fields['errno'] = errnoName(t.errno);
  if (t.hostStatus !== 0) fields['hostStatus'] = hostStatusName(t.hostStatus);
  if ((t.driverStatus & DRIVER_STATUS_BUSY_MASK) !== 0) {
    fields['driverStatus'] = (t.driverStatus & 0x0f) === DRIVER_TIMEOUT ? 'DRIVER_TIMEOUT' : `0x${t.driverStatus.toString(16)}`;
  }
  return fields;
}

/**
 * Why a command failed, most fundamental first: the order in which
 * do_sgio_worker (scsi/qemu-pr-helper.c) decides, errno before host_status
 * before driver_status before the device's own status.
 */
function cause(result: BackendResult, fields: Record<string, unknown>): string {
  const t = result.transport;
  if (t && t.errno !== 0) return `SG_IO ${fields['errno']}`;
  if (t && t.hostStatus !== 0) {
    return `host_status ${fields['hostStatus']}${t.unmappedHostStatus ? ' (qemu-pr-helper would report GOOD)' : ''}`;
  }
  if (fields['driverStatus'] === 'DRIVER_TIMEOUT') return 'driver timeout';
  if (fields['driverStatus'] !== undefined) return `driver_status ${fields['driverStatus']}`;
  const key = result.status === ScsiStatus.CHECK_CONDITION ? senseKeyNameOf(result.sense) : null;
  return key ? `${statusName(result.status)}, ${key}` : statusName(result.status);
}

function transportFailed(t: TransportOutcome | undefined): boolean {
  return t !== undefined && (t.errno !== 0 || t.hostStatus !== 0 || (t.driverStatus & DRIVER_STATUS_BUSY_MASK) !== 0);
}

/**
 * The level a result is logged at by default, null for none (a PR IN that
 * went well), decided without building the line.
 */
export function outcomeLevel(direction: PrRequest['direction'], result: BackendResult): OutcomeLine['level'] | null {
  const status = result.status;
  if (status === ScsiStatus.GOOD) return direction === 'in' ? null : 'info';
  if (status === ScsiStatus.RESERVATION_CONFLICT) return 'info';
  // A UNIT ATTENTION made up for a transport failure (DID_RESET) is that failure.
  if (status === ScsiStatus.CHECK_CONDITION && !transportFailed(result.transport) && result.sense && decodeSense(result.sense)?.key === SenseKey.UNIT_ATTENTION) {
    return 'info';
  }
  return 'warn';
}

/**
 * Results with the same key get the same warning (service action and cause),
 * so the rate limit can decide before the line is built.
 */
export function failureKey(cdb: Uint8Array, result: BackendResult): string {
  const t = result.transport;
  const senseKey = result.status === ScsiStatus.CHECK_CONDITION && result.sense ? (decodeSense(result.sense)?.key ?? -1) : -1;
  return `${cdb[0]}/${cdb[1]! & 0x1f}/${result.status}/${t ? `${t.errno}/${t.hostStatus}/${t.driverStatus}` : '-'}/${senseKey}`;
}

/** The line a command's result gets at the default level, or null (PR IN that went well). */
export function outcomeLine(request: Pick<PrRequest, 'cdb' | 'params' | 'direction'>, result: BackendResult): OutcomeLine | null {
  const level = outcomeLevel(request.direction, result);
  if (level === null) return null;
  const status = result.status;
  const command = describePrCommand(request.cdb, request.params);
  const fields: Record<string, unknown> = { ...command, status: statusName(status), ...transportFields(result.transport) };
  if (status === ScsiStatus.CHECK_CONDITION) fields['sense'] = describeSenseInWords(result.sense);
  const name = `${command.op} ${command.action}`;
  if (level === 'info') {
    return { level, msg: `${name}: ${status === ScsiStatus.CHECK_CONDITION ? 'UNIT ATTENTION' : statusName(status)}`, fields };
  }
  return { level, msg: `${name} failed: ${cause(result, fields)}`, fields };
}
