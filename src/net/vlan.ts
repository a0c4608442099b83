// VLAN links: `<vlan NAME {parent: "wan0" id: 7}>` in $config asks for an 802.1Q
// link NAME on PARENT with VLAN ID (1 to 4094). This module reads and checks the
// spec and builds the iproute2 command that creates the link; the virtual-links
// driver (virtual-links.ts) decides when to run it and deletes the link again.

import type { Value } from '../preserves/index.ts';
import { readLinkRecord, type ReadLink } from './link-record.ts';
import { interfaceNameProblem } from '../base/interface-name.ts';

export interface VlanSpec {
  readonly kind: 'vlan';
  readonly name: string;
  readonly parent: string;
  /** 1 to 4094 (0 and 4095 are reserved by 802.1Q). */
  readonly id: number;
}

const KEYS = ['parent', 'id'] as const;
export const VLAN_USAGE = '<vlan NAME {parent: "IF" id: 1..4094}>';

/** Reads `<vlan NAME {parent id}>`: the spec, or every problem. */
export function readVlan(value: Value): ReadLink<VlanSpec> {
  const problems: string[] = [];
  const { name, nameValue, options } = readLinkRecord(value, VLAN_USAGE, KEYS, problems);
  const parent = options.text('parent', true);
  if (parent !== undefined) {
    const p = interfaceNameProblem(parent);
    if (p !== undefined) options.problem(`parent ${JSON.stringify(parent)} ${p}`);
    else if (parent === name) options.problem('parent must be another interface than the VLAN');
  }
  const id = options.integer('id', 1, 4094, true);
  if (problems.length > 0 || name === undefined || parent === undefined || id === undefined)
    return { ok: false, name: nameValue, problems };
  return { ok: true, spec: { kind: 'vlan', name, parent, id } };
}

/** `ip` arguments that create the VLAN link. */
export function vlanAddArgs(s: VlanSpec): string[] {
  return ['link', 'add', 'link', s.parent, 'name', s.name, 'type', 'vlan', 'id', String(s.id)];
}
