/**
 * debian/copyright in the machine-readable format (DEP-5,
 * https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/):
 * pr-helper itself, then every bundled npm module with the copyright lines and
 * the full text of its own license file, as Debian Policy 12.5 asks for
 * licenses that /usr/share/common-licenses does not hold.
 */

export interface BundledModule {
  /** Where the module is installed, relative to the package's file system root. */
  readonly installedPath: string;
  readonly name: string;
  /** SPDX expression from its package.json. */
  readonly license: string;
  /** The contents of its LICENSE file. */
  readonly licenseText: string;
  /** package.json "author", used when the license file names no copyright holder. */
  readonly author: string | null;
}

/** SPDX identifiers of bundled modules and their DEP-5 short names (DEP-5 calls MIT "Expat"). */
const DEP5_NAMES: Record<string, string> = { MIT: 'Expat', ISC: 'ISC', 'Apache-2.0': 'Apache-2.0' };

/** Licenses base-files ships in /usr/share/common-licenses: referred to, not copied (Policy 12.5). */
const COMMON_LICENSES = new Set(['Apache-2.0']);

const PROJECT = `Files: *
Copyright: pr-helper contributors
License: GPL-2+
 This program is free software; you can redistribute it and/or modify it
 under the terms of the GNU General Public License as published by the Free
 Software Foundation; either version 2 of the License, or (at your option)
 any later version.
 .
 On Debian systems, the complete text of the GNU General Public License
 version 2 can be found in /usr/share/common-licenses/GPL-2.`;

/** A multi-line field value: continuation lines start with a space, empty ones are " .". */
function fieldText(text: string): string {
  return text
    .trim()
    .split('\n')
    .map((line) => line.trimEnd())
    .map((line) => (line === '' ? ' .' : ` ${line}`))
    .join('\n');
}

function copyrightHolders(module: BundledModule): string[] {
  const holders = module.licenseText
    .split('\n')
    // A notice has a year: the Apache License's own text has lines that begin
    // with "copyright" too, and its appendix a "[yyyy]" template.
    .filter((line) => /^\s*copyright\s*(\(c\)|©)?\s*\d{4}/i.test(line))
    .map((line) => line.trim().replace(/^copyright\s*(\(c\)|©)?\s*/i, ''));
  if (holders.length > 0) return holders;
  if (module.author) return [module.author];
  throw new Error(`${module.name}: its license file names no copyright holder and package.json no author; write its Files paragraph by hand`);
}

function moduleParagraph(module: BundledModule): string {
  const name = DEP5_NAMES[module.license];
  if (!name) throw new Error(`${module.name}: license '${module.license}' has no DEP-5 name in scripts/deb/copyright.ts; check it and add it there`);
  const [first, ...rest] = copyrightHolders(module);
  return [
    `Files: ${module.installedPath}/*`,
    `Copyright: ${first}${rest.map((h) => `\n ${h}`).join('')}`,
    `License: ${name}`,
    COMMON_LICENSES.has(name) ? ` On Debian systems, the complete text of the ${name} license can be found in\n /usr/share/common-licenses/${name}.` : fieldText(module.licenseText),
  ].join('\n');
}

export function renderCopyright(modules: readonly BundledModule[]): string {
  const header = `Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: pr-helper
Comment: The npm modules pr-helper needs at run time are bundled in
 /usr/lib/pr-helper/node_modules; each has a paragraph below.`;
  return [header, PROJECT, ...modules.map(moduleParagraph)].join('\n\n') + '\n';
}
