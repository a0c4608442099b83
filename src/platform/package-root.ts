// Where the installed package is: src/platform/ (run from the sources) or
// dist/platform/ (the build) is two levels below its root, which holds config/,
// libexec/, bin/ and examples/.

import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package's root directory (the checkout, or the installed package). */
export function packageRoot(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
}
