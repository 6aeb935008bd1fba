// A "guest driver" for a legacy virtio-scsi PCI function, played over qtest.
// QEMU runs paused (-S), so no guest code runs, but device emulation answers port and
// memory accesses made through qtest (test-rigs.md 5). One command in flight at a time.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Qtest } from './qtest-client.js';

const PCI_CONFIG_ADDRESS = 0xcf8;
const PCI_CONFIG_DATA = 0xcfc;
const VIRTIO_VENDOR = 0x1af4;
const VIRTIO_SCSI_LEGACY_DEVICE = 0x1004; // transitional id; disable-modern=on

// Legacy virtio PCI I/O register block (virtio 0.9.5 / virtio 1.x section 4.1.4.8).
const REG_HOST_FEATURES = 0x00;
const REG_GUEST_FEATURES = 0x04;
const REG_QUEUE_PFN = 0x08;
const REG_QUEUE_SIZE = 0x0c;
const REG_QUEUE_SELECT = 0x0e;
const REG_QUEUE_NOTIFY = 0x10;
const REG_STATUS = 0x12;
const REG_DEVICE_CONFIG = 0x14; // without MSI-X enabled
const STATUS_ACK = 1;
const STATUS_DRIVER = 2;
const STATUS_DRIVER_OK = 4;

const VRING_DESC_F_NEXT = 1;
const VRING_DESC_F_WRITE = 2;
const VRING_AVAIL_F_NO_INTERRUPT = 1;
const VRING_ALIGN = 4096;

// virtio-scsi: queue 0 control, 1 event, 2.. requests.
const REQUEST_QUEUE = 2;
const REQ_SIZE = 51; // lun[8] tag[8] task_attr prio crn cdb[32]
const RESP_SIZE = 108; // sense_len[4] resid[4] status_qualifier[2] status response sense[96]
const DATA_MAX = 8192;

// Guest-physical layout (the guest has 128 MiB; nothing else runs).
const RING_BASE = 0x100000;
const REQ_ADDR = 0x110000;
const RESP_ADDR = 0x111000;
const DATA_OUT_ADDR = 0x112000;
const DATA_IN_ADDR = 0x114000;

export interface ScsiResult {
  /** virtio-scsi response code: 0 = VIRTIO_SCSI_S_OK (the SCSI status is meaningful). */
  response: number;
  status: number;
  sense: Buffer; // sense_len bytes
  dataIn: Buffer; // bytes actually transferred (buffer length - resid)
  ms: number;
}

export interface VirtioScsiConfig {
  hostFeatures: number;
  queueSize: number;
  numQueues: number;
  senseSize: number;
  cdbSize: number;
  pciSlot: number;
}

export class VirtioScsiLegacy {
  private availIdx = 0;
  private tag = 0;
  private desc = 0;
  private avail = 0;
  private used = 0;
  private queueSize = 0;

  constructor(
    private readonly qt: Qtest,
    private readonly ioBase = 0xc000,
  ) {}

  private async cfgRead(slot: number, reg: number): Promise<number> {
    await this.qt.outl(PCI_CONFIG_ADDRESS, 0x80000000 | (slot << 11) | (reg & 0xfc));
    return this.qt.inl(PCI_CONFIG_DATA);
  }

  private async cfgWrite(slot: number, reg: number, value: number): Promise<void> {
    await this.qt.outl(PCI_CONFIG_ADDRESS, 0x80000000 | (slot << 11) | (reg & 0xfc));
    await this.qt.outl(PCI_CONFIG_DATA, value);
  }

  /** Finds the function on bus 0, maps BAR0, runs the legacy init and sets up queue 2. */
  async init(): Promise<VirtioScsiConfig> {
    let slot = -1;
    for (let s = 0; s < 32 && slot < 0; s++) {
      const id = await this.cfgRead(s, 0);
      if ((id & 0xffff) === VIRTIO_VENDOR && id >>> 16 === VIRTIO_SCSI_LEGACY_DEVICE) slot = s;
    }
    if (slot < 0) throw new Error('no legacy virtio-scsi function (1af4:1004) on bus 0');
    await this.cfgWrite(slot, 0x10, this.ioBase); // BAR0: I/O space
    await this.cfgWrite(slot, 0x04, 0x0007); // command: I/O, memory, bus master

    const io = this.ioBase;
    await this.qt.outb(io + REG_STATUS, 0); // reset
    await this.qt.outb(io + REG_STATUS, STATUS_ACK);
    await this.qt.outb(io + REG_STATUS, STATUS_ACK | STATUS_DRIVER);
    const hostFeatures = await this.qt.inl(io + REG_HOST_FEATURES);
    await this.qt.outl(io + REG_GUEST_FEATURES, 0); // no EVENT_IDX, no indirect descriptors

    await this.qt.outw(io + REG_QUEUE_SELECT, REQUEST_QUEUE);
    this.queueSize = await this.qt.inw(io + REG_QUEUE_SIZE);
    if (this.queueSize === 0) throw new Error('request queue 2 does not exist');
    // Legacy split ring: descriptors, then the available ring, then (page aligned) used.
    this.desc = RING_BASE;
    this.avail = this.desc + 16 * this.queueSize;
    this.used = Math.ceil((this.avail + 6 + 2 * this.queueSize) / VRING_ALIGN) * VRING_ALIGN;
    await this.qt.memset(RING_BASE, this.used + 6 + 8 * this.queueSize - RING_BASE, 0);
    await this.writeU16(this.avail, VRING_AVAIL_F_NO_INTERRUPT);
    await this.qt.outl(io + REG_QUEUE_PFN, RING_BASE / 4096);
    await this.qt.outb(io + REG_STATUS, STATUS_ACK | STATUS_DRIVER | STATUS_DRIVER_OK);

    const devcfg = io + REG_DEVICE_CONFIG;
    return {
      hostFeatures,
      queueSize: this.queueSize,
      numQueues: await this.qt.inl(devcfg + 0),
      senseSize: await this.qt.inl(devcfg + 20),
      cdbSize: await this.qt.inl(devcfg + 24),
      pciSlot: slot,
    };
  }

  private writeU16(addr: number, v: number): Promise<string> {
    const b = Buffer.alloc(2);
    b.writeUInt16LE(v);
    return this.qt.write(addr, b);
  }

  /**
   * Submits one SCSI command to target 0 / LUN 0 as a single descriptor chain
   * (request, data-out, response, data-in), notifies queue 2 and polls used->idx.
   */
  async command(
    cdb: Buffer,
    opts: { dataOut?: Buffer; dataInLen?: number; timeoutMs?: number } = {},
  ): Promise<ScsiResult> {
    const dataOut = opts.dataOut ?? Buffer.alloc(0);
    const dataInLen = opts.dataInLen ?? 0;
    if (cdb.length > 32 || dataOut.length > DATA_MAX || dataInLen > DATA_MAX) throw new Error('command too large');

    const req = Buffer.alloc(REQ_SIZE);
    req.set([1, 0, 0x40, 0], 0); // LUN: single-level, target 0, LUN 0 (flat addressing)
    req.writeBigUInt64LE(BigInt(++this.tag), 8);
    cdb.copy(req, 19);
    await this.qt.write(REQ_ADDR, req);
    await this.qt.memset(RESP_ADDR, RESP_SIZE, 0);
    if (dataOut.length > 0) await this.qt.write(DATA_OUT_ADDR, dataOut);
    if (dataInLen > 0) await this.qt.memset(DATA_IN_ADDR, dataInLen, 0);

    const chain: Array<[addr: number, len: number, write: boolean]> = [[REQ_ADDR, REQ_SIZE, false]];
    if (dataOut.length > 0) chain.push([DATA_OUT_ADDR, dataOut.length, false]);
    chain.push([RESP_ADDR, RESP_SIZE, true]);
    if (dataInLen > 0) chain.push([DATA_IN_ADDR, dataInLen, true]);
    const table = Buffer.alloc(16 * chain.length);
    chain.forEach(([addr, len, write], i) => {
      const last = i === chain.length - 1;
      table.writeBigUInt64LE(BigInt(addr), 16 * i);
      table.writeUInt32LE(len, 16 * i + 8);
      table.writeUInt16LE((write ? VRING_DESC_F_WRITE : 0) | (last ? 0 : VRING_DESC_F_NEXT), 16 * i + 12);
      table.writeUInt16LE(last ? 0 : i + 1, 16 * i + 14);
    });
    await this.qt.write(this.desc, table);

    const slot = this.availIdx % this.queueSize;
    await this.writeU16(this.avail + 4 + 2 * slot, 0); // head descriptor 0
    this.availIdx = (this.availIdx + 1) & 0xffff;
    await this.writeU16(this.avail + 2, this.availIdx);

    const started = Date.now();
    await this.qt.outw(this.ioBase + REG_QUEUE_NOTIFY, REQUEST_QUEUE);
    const deadline = started + (opts.timeoutMs ?? 30_000);
    while ((await this.qt.readw(this.used + 2)) !== this.availIdx) {
      if (Date.now() > deadline) throw new Error(`no completion within ${opts.timeoutMs ?? 30_000} ms`);
      await sleep(2);
    }
    const ms = Date.now() - started;

    const resp = await this.qt.read(RESP_ADDR, RESP_SIZE);
    const senseLen = Math.min(resp.readUInt32LE(0), 96);
    const resid = resp.readUInt32LE(4);
    const got = Math.max(0, dataInLen - resid);
    const dataIn = got > 0 ? await this.qt.read(DATA_IN_ADDR, got) : Buffer.alloc(0);
    return { response: resp[11]!, status: resp[10]!, sense: resp.subarray(12, 12 + senseLen), dataIn, ms };
  }
}
