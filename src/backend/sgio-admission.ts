/**
 * Bounds the SG_IO commands in flight, and so the native threads issuing
 * them (one per command, native/sgio.c): `maxTotal` in all and `maxPerDevice`
 * on one device, so that a flood of commands to a hung device can exhaust
 * neither the process's threads nor the host's pids. Beyond the bounds a
 * command is refused at once (the caller answers BUSY), never queued: a
 * queue would make a healthy device's command wait behind a hung one, which
 * is what the original's 64-thread pool does. For the same reason a device
 * with nothing in flight is always let in, even at the total bound: the
 * threads stay bounded by `maxTotal` plus one per device on the host.
 */
export class SgioAdmission {
  private total = 0;
  private readonly perDevice = new Map<string, number>();

  constructor(
    private readonly maxTotal: number,
    private readonly maxPerDevice: number,
  ) {}

  /** A release function for an admitted command, or null when it must be refused. */
  admit(device: string): (() => void) | null {
    const running = this.perDevice.get(device) ?? 0;
    if (running > 0 && (running >= this.maxPerDevice || this.total >= this.maxTotal)) return null;
    this.perDevice.set(device, running + 1);
    this.total++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.total--;
      const left = this.perDevice.get(device)! - 1;
      if (left === 0) this.perDevice.delete(device);
      else this.perDevice.set(device, left);
    };
  }

  get inFlight(): number {
    return this.total;
  }
}
