// PPPoE (src/net/pppoe.ts; issue 14, its tests 1 and 7), inside the VM (this
// machine's kernel has no PPP): Debian's pppoe-server with CHAP in namespace isp,
// limen in namespace rtr with `<configure-interface "wan0" <pppoe {user password-file}>>`.
// limen runs pppd, the ip-up hook hands the link over, and the provider contract
// installs the address on ppp-wan0 and the default route through it; the router
// reaches the ISP's side over the link. The secret is in no process's command line,
// in neither the daemon's log nor `limen status --json` nor `limen query`.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { runInVm, vmUnavailable } from '../../src/lab/vm.ts';

const skip = vmUnavailable() ?? false;
const SECRET = 'pw-9f2c41';

const script = (repo: string) => String.raw`
set -u
limen() { ip netns exec rtr node ${repo}/bin/limen.js "$@" --root /tmp/r; }
for m in ppp_generic pppoe ppp_async; do modprobe $m; done
ip netns add isp; ip netns add rtr
ip link add to-rtr type veth peer name wan0
ip link set to-rtr netns isp; ip link set wan0 netns rtr
for n in isp rtr; do ip -n $n link set lo up; done
ip -n isp link set to-rtr up
echo '"alice" * "${SECRET}" *' > /etc/ppp/chap-secrets
printf 'require-chap\nms-dns 10.64.0.1\n' > /etc/ppp/pppoe-server-options
ln -sf ${repo}/libexec/ppp-hook /etc/ppp/ip-up.d/limen
ln -sf ${repo}/libexec/ppp-hook /etc/ppp/ip-down.d/limen
ip netns exec isp pppoe-server -I to-rtr -L 10.64.0.1 -R 10.64.0.10 -N 4 -O /etc/ppp/pppoe-server-options
umask 077; printf '${SECRET}' > /tmp/pw; umask 022
mkdir -p /tmp/site/core
echo '<configure-interface "wan0" <pppoe {user: "alice" password-file: "/tmp/pw"}>>' > /tmp/site/core/wan.pr
ip netns exec rtr node ${repo}/bin/limen.js daemon --root /tmp/r --config /tmp/site --log-format json > /tmp/limen.log 2>&1 &
daemon=$!
ok=missing
for i in $(seq 1 300); do
  if limen query '<default-route ipv4>' 2>/dev/null | grep -q default-route; then ok=1; break; fi
  sleep 0.2
done
echo "default-route $ok"
ip -n rtr -4 -br addr show dev ppp-wan0
ip -n rtr route show default
ip netns exec rtr ping -c1 -W3 10.64.0.1 >/dev/null && echo "ping ok"
limen query '<ppp-session "wan0" ?s>'
echo "secret in ps: $(ps -eo args | grep -c '[p]w-9f2c41')"
limen status --json > /tmp/status.json
echo "secret in status: $(grep -c '${SECRET}' /tmp/status.json)"
echo "secret in query: $(limen query '?x' 2>&1 | grep -c '${SECRET}')"
kill -TERM $daemon; wait $daemon
echo "secret in log: $(grep -c '${SECRET}' /tmp/limen.log)"
test "$ok" = 1 || tail -30 /tmp/limen.log
`;

describe('PPPoE in the VM', { skip, timeout: 600_000 }, () => {
  it('dials a CHAP PPPoE server, installs the link through the provider contract, and keeps the secret out of sight', async () => {
    const r = await runInVm({ script: script(process.cwd()), timeoutMs: 300_000, memoryMiB: 1536 });
    const out = r.output;
    assert.equal(r.status, 0, `${out}\n${r.console.slice(-1500)}`);
    assert.match(out, /^default-route 1$/m, out);
    assert.match(out, /^ppp-wan0 +\S+ +10\.64\.0\.10 peer 10\.64\.0\.1\/32/m, out);
    assert.match(out, /^default dev ppp-wan0 /m, out);
    assert.match(out, /^ping ok$/m, out);
    assert.match(out, /interface: "ppp-wan0"/, out);
    for (const where of ['ps', 'status', 'query', 'log'])
      assert.match(out, new RegExp(`^secret in ${where}: 0$`, 'm'), out);
  });
});
