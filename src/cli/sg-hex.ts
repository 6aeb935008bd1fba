/**
 * The hex dump sg3_utils prints (libsgutils2 sg_lib.c dStrHexFp, reached
 * through hex2stdout/dStrHex): 16 bytes a line, two hex digits each, one
 * extra space after the 8th byte, trailing spaces trimmed. With an address
 * each line starts with a space and the offset in at least two hex digits,
 * and the bytes start in column 8; without one (sg3_utils' no_ascii < 0)
 * the bytes start in column 0. The ASCII column (no_ascii == 0) is not
 * needed by sg_persist's PR IN output and is not offered.
 */
const BYTES_PER_LINE = 16;
const ADDRESSED_BYTES_COLUMN = 8;

export function sgHexDump(data: Uint8Array, addressed: boolean): string {
  let out = '';
  for (let offset = 0; offset < data.length; offset += BYTES_PER_LINE) {
    const bytes = [...data.subarray(offset, offset + BYTES_PER_LINE)].map((b) => b.toString(16).padStart(2, '0'));
    const hex = bytes.length > 8 ? `${bytes.slice(0, 8).join(' ')}  ${bytes.slice(8).join(' ')}` : bytes.join(' ');
    const lead = addressed ? ` ${offset.toString(16).padStart(2, '0')}`.padEnd(ADDRESSED_BYTES_COLUMN, ' ') : '';
    out += `${lead}${hex}\n`;
  }
  return out;
}
