// `--web-group GROUP`: the group whose members may connect to the web endpoint
// (docs/control-protocol.md, "The web endpoint"), a name from /etc/group or a gid.
// Resolved once at start: the endpoint's access is the daemon's option, never the
// configuration's, since the endpoint itself can change the configuration (`try`).

import { readFile } from 'node:fs/promises';
import { WebGroupError } from './errors.ts';

/** The gid of `group` (a name in `groupFile`, or digits), or throws WebGroupError. */
export async function resolveWebGroup(group: string, groupFile = '/etc/group'): Promise<number> {
  if (/^[0-9]{1,10}$/.test(group)) {
    const gid = Number(group);
    if (gid > 0 && gid < 2 ** 32 - 1) return gid;
    throw new WebGroupError(
      `--web-group ${group}: not a gid for the web endpoint (0, root's group, is not one)`,
    );
  }
  let text: string;
  try {
    text = await readFile(groupFile, 'utf8');
  } catch (e) {
    throw new WebGroupError(
      `--web-group ${group}: cannot read ${groupFile} (${(e as Error).message}); give a gid`,
    );
  }
  for (const line of text.split('\n')) {
    const [name, , gid] = line.split(':');
    if (name === group && gid !== undefined && /^[0-9]+$/.test(gid)) {
      if (Number(gid) === 0)
        throw new WebGroupError(
          `--web-group ${group}: is gid 0 (root's group); make a group of its own`,
        );
      return Number(gid);
    }
  }
  throw new WebGroupError(
    `--web-group ${group}: no such group in ${groupFile} (create it: groupadd --system ${group})`,
  );
}
