import { readFileSync } from 'node:fs';

/**
 * Resolves -u/-g arguments: numbers as they are, names through /etc/passwd and
 * /etc/group (Node has no getpwnam; names only known to NSS services need the
 * numeric form).
 */
function lookup(file: string, name: string): string[] | null {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return null;
  }
  for (const line of text.split('\n')) {
    const fields = line.split(':');
    if (fields[0] === name && fields.length >= 4) return fields;
  }
  return null;
}

function resolve(value: string, file: string, kind: 'user' | 'group'): number {
  if (/^\d+$/.test(value)) return Number(value);
  const entry = lookup(file, value);
  const id = entry ? Number(entry[2]) : NaN;
  if (!Number.isInteger(id)) throw new Error(`invalid ${kind} '${value}'`);
  return id;
}

export function resolveUser(value: string, passwd = '/etc/passwd'): number {
  return resolve(value, passwd, 'user');
}

export function resolveGroup(value: string, group = '/etc/group'): number {
  return resolve(value, group, 'group');
}
