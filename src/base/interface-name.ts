// Network interface names, checked once for every layer (the network drivers, the
// control server's ifup/ifdown, the firewall's zones). Linux takes any name of 1 to
// 15 bytes but "." and "..", without '/', ':' or white space (dev_valid_name);
// limen takes a safer subset, because a name is written into dnsmasq's and nft's
// configuration files: letters, digits and `_ . @ + -`. A firewall zone may end a
// name with `*` (a prefix wildcard), which firewallInterfaceProblem allows.

/** The longest interface name (IFNAMSIZ 16, less the terminating NUL). */
export const MAX_INTERFACE_NAME = 15;

const NAME = /^[A-Za-z0-9_.@+-]+$/;

/** What is wrong with `name` as an interface name, in words that follow the name; undefined if nothing. */
export function interfaceNameProblem(name: string): string | undefined {
  if (name === '') return 'is empty';
  if (name === '.' || name === '..') return 'is not a name Linux allows';
  if (name.length > MAX_INTERFACE_NAME) return `is longer than ${MAX_INTERFACE_NAME} characters`;
  if (!NAME.test(name))
    return "has a character other than letters, digits, '_', '.', '@', '+' and '-'";
  return undefined;
}

export function isInterfaceName(name: unknown): name is string {
  return typeof name === 'string' && interfaceNameProblem(name) === undefined;
}

/** As interfaceNameProblem, but a trailing `*` (every interface whose name starts so) is allowed. */
export function firewallInterfaceProblem(name: string): string | undefined {
  return name.endsWith('*') && name.length > 1
    ? interfaceNameProblem(name.slice(0, -1))
    : interfaceNameProblem(name);
}

/** How the rule reads in a message: `an interface name (1 to 15 letters, digits, …)`. */
export const INTERFACE_NAME_RULE =
  "an interface name (1 to 15 letters, digits, '_', '.', '@', '+' or '-')";
