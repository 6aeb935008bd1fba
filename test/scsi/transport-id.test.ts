import { describe, expect, it } from 'vitest';
import {
  decodeTransportId,
  encodeTransportId,
  parseInitiatorName,
  transportIdFromPlain,
  transportIdIdentity,
} from '../../src/scsi/transport-id.js';
import { fcTid, hex, iscsiTid, sasTid } from '../fixtures/scsi-bytes.js';
import { fc, iscsi, sas } from '../sim/helpers.js';

describe('decodeTransportId (§2.4)', () => {
  it.each([
    ['iSCSI device name (format 00b)', iscsiTid('iqn.1994-05.com.redhat:host1'), iscsi('iqn.1994-05.com.redhat:host1')],
    [
      'iSCSI port name (format 01b)',
      iscsiTid('iqn.1994-05.com.redhat:host1', '00023D000001'),
      iscsi('iqn.1994-05.com.redhat:host1', '00023d000001'),
    ],
    ['FC N_Port name at bytes 8-15', fcTid('21000024ff5a2b3c'), fc('21000024ff5a2b3c')],
    ['SAS address at bytes 4-11', sasTid('500605b0000272b0'), sas('500605b0000272b0')],
  ])('%s', (_name, bytes, id) => {
    const decoded = decodeTransportId(bytes);
    expect(decoded).toEqual({ ok: true, value: { id, length: bytes.length } });
  });

  it('decodes only the first TransportID and reports its length', () => {
    const first = iscsiTid('iqn.a');
    const decoded = decodeTransportId(Buffer.concat([first, fcTid('0102030405060708')]));
    expect(decoded).toEqual({ ok: true, value: { id: iscsi('iqn.a'), length: 24 } });
  });

  const name = Buffer.from('iqn.x', 'utf8');
  const iscsiWith = (byte0: number, additionalLength: number, body: Buffer): Buffer => {
    const tid = Buffer.alloc(4 + body.length);
    tid[0] = byte0;
    tid.writeUInt16BE(additionalLength, 2);
    body.copy(tid, 4);
    return tid;
  };
  const padded = (content: Buffer, size: number): Buffer => Buffer.concat([content, Buffer.alloc(size - content.length)]);

  it.each([
    ['empty input', Buffer.alloc(0)],
    ['iSCSI header truncated', hex('05 00 00')],
    ['ADDITIONAL LENGTH below 20', iscsiWith(0x05, 16, padded(name, 16))],
    ['ADDITIONAL LENGTH not a multiple of 4', iscsiWith(0x05, 21, padded(name, 21))],
    ['name field straddles the end of the data', iscsiWith(0x05, 24, padded(name, 20))],
    ['name not NUL-terminated', iscsiWith(0x05, 20, Buffer.alloc(20, 0x61))],
    ['padding after the NUL is not zero', iscsiWith(0x05, 20, padded(Buffer.from('iqn.x\0z'), 20))],
    ['empty name', iscsiWith(0x05, 20, Buffer.alloc(20))],
    ['invalid UTF-8', iscsiWith(0x05, 20, padded(Buffer.from([0x69, 0xff, 0xfe]), 20))],
    ['format 10b', iscsiWith(0x85, 20, padded(name, 20))],
    ['format 01b without ISID', iscsiWith(0x45, 20, padded(name, 20))],
    ['format 00b carrying an ISID', iscsiWith(0x05, 28, padded(Buffer.from('iqn.x,i,0x00023d000001'), 28))],
    ['ISID not 12 hex digits', iscsiWith(0x45, 20, padded(Buffer.from('iqn.x,i,0x12'), 20))],
    ['name with a comma', iscsiWith(0x05, 20, padded(Buffer.from('iqn.x,y'), 20))],
    ['FC shorter than 24 bytes', fcTid('0102030405060708').subarray(0, 23)],
    ['FC format code 01b', Buffer.concat([hex('40'), fcTid('0102030405060708').subarray(1)])],
    ['SAS shorter than 24 bytes', sasTid('0102030405060708').subarray(0, 20)],
    ['SPI (protocol 1)', Buffer.concat([hex('01'), Buffer.alloc(23)])],
    ['SRP (protocol 4)', Buffer.concat([hex('04'), Buffer.alloc(39)])],
  ])('rejects %s', (_why, bytes) => {
    const decoded = decodeTransportId(bytes);
    expect(decoded.ok).toBe(false);
    if (!decoded.ok) expect(decoded.error).toMatch(/\S/);
  });
});

describe('encodeTransportId (§2.4, §5.5)', () => {
  it('pads a short iSCSI name to the 24-byte minimum (ADDITIONAL LENGTH 20)', () => {
    expect(encodeTransportId(iscsi('iqn.a'))).toEqual(
      hex('05 00 00 14  69 71 6e 2e 61 00 00 00  00 00 00 00 00 00 00 00  00 00 00 00'),
    );
  });

  it('NUL-terminates and pads a long iSCSI name to a multiple of 4', () => {
    // 32 characters + NUL = 33 -> 36.
    const encoded = encodeTransportId(iscsi('iqn.2008-11.org.linux-kvm:node-a'));
    expect(encoded.length).toBe(40);
    expect(encoded.subarray(0, 4)).toEqual(hex('05 00 00 24'));
    expect(encoded.subarray(4, 36).toString('utf8')).toBe('iqn.2008-11.org.linux-kvm:node-a');
    expect(encoded.subarray(36)).toEqual(Buffer.alloc(4));
  });

  it('always adds a NUL even when the name length is a multiple of 4', () => {
    const encoded = encodeTransportId(iscsi(`iqn.${'x'.repeat(32)}`));
    expect(encoded.readUInt16BE(2)).toBe(40);
    expect(encoded[4 + 36]).toBe(0);
  });

  it('uses format 01b and ",i,0x<ISID>" for a port name', () => {
    const encoded = encodeTransportId(iscsi('iqn.x', '00023d000001'));
    expect(encoded[0]).toBe(0x45);
    expect(encoded).toEqual(iscsiTid('iqn.x', '00023d000001'));
  });

  it('encodes FC and SAS at their fixed offsets', () => {
    expect(encodeTransportId(fc('21000024ff5a2b3c'))).toEqual(
      hex('00 000000 00000000 21000024ff5a2b3c 0000000000000000'),
    );
    expect(encodeTransportId(sas('500605b0000272b0'))).toEqual(hex('06 000000 500605b0000272b0 ' + '00'.repeat(12)));
  });

  it.each([iscsi('iqn.2008-11.org.linux-kvm:node-a'), iscsi('eui.0123456789abcdef', 'abcdef012345'), fc('0011223344556677'), sas('8899aabbccddeeff')])(
    'round-trips %o through decode',
    (id) => {
      const encoded = encodeTransportId(id);
      expect(decodeTransportId(encoded)).toEqual({ ok: true, value: { id, length: encoded.length } });
    },
  );
});

describe('transportIdIdentity', () => {
  it('compares iSCSI names case-insensitively', () => {
    expect(transportIdIdentity(iscsi('IQN.2008-11.Org.Linux-KVM:Node-A'))).toBe(
      transportIdIdentity(iscsi('iqn.2008-11.org.linux-kvm:node-a')),
    );
  });

  it('distinguishes ISIDs, the device name, and protocols', () => {
    const ids = [
      iscsi('iqn.x'),
      iscsi('iqn.x', '000000000001'),
      iscsi('iqn.x', '000000000002'),
      fc('0011223344556677'),
      sas('0011223344556677'),
    ].map(transportIdIdentity);
    expect(new Set(ids).size).toBe(ids.length);
  });
});

describe('parseInitiatorName', () => {
  it.each([
    ['iqn.2008-11.org.linux-kvm:node-a', iscsi('iqn.2008-11.org.linux-kvm:node-a')],
    ['iqn.2008-11.org.linux-kvm:node-a,i,0x00023D000001', iscsi('iqn.2008-11.org.linux-kvm:node-a', '00023d000001')],
    ['eui.02004567A425678D', iscsi('eui.02004567A425678D')],
    ['naa.52004567BA64678D0123456789ABCDEF', iscsi('naa.52004567BA64678D0123456789ABCDEF')],
    ['naa.iscsi-style:name', iscsi('naa.iscsi-style:name')],
    ['naa.500605B0000272B0', sas('500605b0000272b0')],
    ['fc.21000024FF5A2B3C', fc('21000024ff5a2b3c')],
    ['fc.21:00:00:24:ff:5a:2b:3c', fc('21000024ff5a2b3c')],
    ['wwpn:21000024ff5a2b3c', fc('21000024ff5a2b3c')],
    ['wwpn:21:00:00:24:FF:5A:2B:3C', fc('21000024ff5a2b3c')],
  ])('accepts %s', (text, id) => {
    expect(parseInitiatorName(text)).toEqual(id);
  });

  it.each([
    ['', /not recognised/],
    ['host1', /not recognised/],
    ['sas.500605b0000272b0', /not recognised/],
    ['iqn.', /nothing follows/],
    ['iqn.with space', /whitespace/],
    ['iqn.a,b', /comma/],
    ['iqn.x,i,0x123', /ISID/],
    [`iqn.${'x'.repeat(220)}`, /223 bytes/],
    ['eui.0123', /16 hex digits/],
    ['naa.0123456789', /16 hex digits/],
    ['fc.0123456789abcde', /WWPN/],
    ['fc.01:23:45:67:89:ab:cd', /WWPN/],
    ['wwpn:0123456789abcdeg', /WWPN/],
  ])('rejects %j', (text, message) => {
    expect(() => parseInitiatorName(text)).toThrow(message);
  });

  it('names the offending input in the error', () => {
    expect(() => parseInitiatorName('host1')).toThrow('initiator name "host1"');
  });
});

describe('transportIdFromPlain', () => {
  it.each([iscsi('iqn.x'), iscsi('iqn.x', '00023d000001'), fc('0011223344556677'), sas('8899aabbccddeeff')])(
    'accepts %o',
    (id) => {
      expect(transportIdFromPlain(JSON.parse(JSON.stringify(id)), 'x')).toEqual({ ok: true, value: id });
    },
  );

  it.each([
    [null, 'x must be an object'],
    [[], 'x must be an object'],
    [{ protocol: 'spi' }, 'x.protocol must be "iscsi", "fc" or "sas"'],
    [{ protocol: 'iscsi', name: 'iqn.x' }, 'x must have exactly the keys protocol, name, isid'],
    [{ protocol: 'iscsi', name: 'iqn.x', isid: null, extra: 1 }, 'x must have exactly the keys protocol, name, isid'],
    [{ protocol: 'iscsi', name: 7, isid: null }, 'x.name must be a string'],
    [{ protocol: 'iscsi', name: '', isid: null }, 'x.name is empty'],
    [{ protocol: 'iscsi', name: 'iqn.x', isid: '00023D000001' }, 'x.isid must be null or 12 lowercase hex digits'],
    [{ protocol: 'fc', wwpn: '0011' }, 'x.wwpn must be 16 lowercase hex digits'],
    [{ protocol: 'sas', address: 'AABBCCDDEEFF0011' }, 'x.address must be 16 lowercase hex digits'],
    [{ protocol: 'sas', wwpn: '0011223344556677' }, 'x must have exactly the keys protocol, address'],
  ])('rejects %j', (value, error) => {
    expect(transportIdFromPlain(value, 'x')).toEqual({ ok: false, error });
  });
});
