import { describe, expect, it } from 'vitest';
import { SgioAdmission } from '../../src/backend/sgio-admission.js';

describe('SgioAdmission', () => {
  it('refuses beyond the per-device and the total bound; a device with nothing in flight always gets in', () => {
    const a = new SgioAdmission(3, 2);
    const held = [a.admit('x'), a.admit('x')];
    expect(a.admit('x')).toBeNull();
    held.push(a.admit('y'));
    expect(a.inFlight).toBe(3);
    expect(a.admit('y')).toBeNull();
    const idle = a.admit('z');
    expect(idle).not.toBeNull();
    expect(a.admit('z')).toBeNull();
    idle!();
    idle!();
    expect(a.inFlight).toBe(3);
    held[0]!();
    expect(a.admit('x')).not.toBeNull();
  });
});
