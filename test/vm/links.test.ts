// VLAN and WireGuard links (src/net/virtual-links.ts; issue 14, its test 5), inside
// the VM (this machine's kernel has neither): limen in namespace rtr creates
// - `<vlan "wan0.7" {parent: "wan0" id: 7}>`, configured with `<dhcp>` against
//   dnsmasq on VLAN 7 of the ISP's end: the lease, the default route via wan0.7, a ping;
// - `<vlan "wan0.9" {parent: "wan0" id: 9}>` with `<pppoe {…}>` over it, against
//   pppoe-server with CHAP on VLAN 9 of the ISP's end: PPPoE over a VLAN;
// - `<wireguard "wg0" {…}>`, peered with a tunnel configured by hand (ip + wg) in
//   namespace peer: a ping to an address that only the allowed-IPs route reaches.
// No key is in any process's command line, the daemon's log, `limen status --json`
// or `limen query`. The links outlive a daemon restart (adopted, still working), a
// VLAN of the same name that limen did not create is reported and left alone, and
// removing the files deletes limen's links.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { runInVm, vmUnavailable } from '../../src/lab/vm.ts';

const skip = vmUnavailable() ?? false;

const script = (repo: string) => String.raw`
set -u
limen() { ip netns exec rtr node ${repo}/bin/limen.js "$@" --root /tmp/r; }
t0=$(date +%s)
# Runs CMD until it succeeds, for at most SECONDS: prints "NAME 1" or "NAME missing" and
# how long it took (the guest's node is slow: the checks use ip and the log, not limen).
poll() {
  name=$1; end=$(( $(date +%s) + $2 )); shift 2; ok=missing
  while [ "$(date +%s)" -lt "$end" ]; do
    if "$@" >/dev/null 2>&1; then ok=1; break; fi
    sleep 0.2
  done
  echo "$name $ok"
  echo "at $name: $(( $(date +%s) - t0 )) s" >&2
}
has() { ip -n rtr "$@" | grep -q .; }
start_limen() {
  ip netns exec rtr node ${repo}/bin/limen.js daemon --root /tmp/r --config /tmp/site --log-format json >> /tmp/limen.log 2>&1 &
  daemon=$!
}
modprobe 8021q; modprobe wireguard
for n in isp rtr peer; do ip netns add $n; ip -n $n link set lo up; done
ip link add to-rtr type veth peer name wan0
ip link set to-rtr netns isp; ip link set wan0 netns rtr
ip link add to-rtr type veth peer name up0
ip link set to-rtr netns peer; ip link set up0 netns rtr
# The ISP serves DHCP on VLAN 7 only.
ip -n isp link set to-rtr up
ip -n isp link add link to-rtr name to-rtr.7 type vlan id 7
ip -n isp addr add 100.64.7.1/24 dev to-rtr.7
ip -n isp link set to-rtr.7 up
ip netns exec isp dnsmasq --keep-in-foreground --conf-file=/dev/null --pid-file= --no-resolv --no-hosts \
  --port=0 --bind-interfaces --interface=to-rtr.7 --dhcp-range=100.64.7.10,100.64.7.50,255.255.255.0,600 \
  --dhcp-option=option:router,100.64.7.1 --dhcp-authoritative --no-ping --dhcp-leasefile=/tmp/isp.leases \
  > /tmp/dnsmasq.log 2>&1 &
# PPPoE over VLAN 9, as many ISPs require: pppoe-server with CHAP on the ISP's to-rtr.9.
modprobe ppp_generic; modprobe pppoe; modprobe ppp_async
ip -n isp link add link to-rtr name to-rtr.9 type vlan id 9
ip -n isp link set to-rtr.9 up
echo '"alice" * "pw-vlan-9" *' > /etc/ppp/chap-secrets
printf 'require-chap\n' > /tmp/pppoe-server-options
ip netns exec isp pppoe-server -I to-rtr.9 -L 10.64.9.1 -R 10.64.9.10 -N 2 -O /tmp/pppoe-server-options
umask 077; printf 'pw-vlan-9' > /tmp/pw; umask 022
# A VLAN on wan0 that limen did not create.
ip -n rtr link add link wan0 name wan0.8 type vlan id 8
# Keys: root's, mode 0600.
umask 077
wg genkey > /tmp/wg0.key; wg genkey > /tmp/peer.key; wg genpsk > /tmp/wg0.psk
umask 022
RTR_PUB=$(wg pubkey < /tmp/wg0.key); PEER_PUB=$(wg pubkey < /tmp/peer.key)
# The peer: its end of the tunnel by hand; 192.168.50.1 is reachable only through it.
ip -n peer addr add 10.77.0.2/24 dev to-rtr; ip -n peer link set to-rtr up
ip -n peer link add dev wg1 type wireguard
ip netns exec peer wg set wg1 private-key /tmp/peer.key listen-port 51821 \
  peer "$RTR_PUB" preshared-key /tmp/wg0.psk allowed-ips 10.9.0.1/32
ip -n peer addr add 10.9.0.2/24 dev wg1; ip -n peer link set wg1 up
ip -n peer addr add 192.168.50.1/24 dev lo
mkdir -p /tmp/site/core
cat > /tmp/site/core/wan.pr <<EOF
<vlan "wan0.7" {parent: "wan0" id: 7}>
<configure-interface "wan0.7" <dhcp>>
<vlan "wan0.8" {parent: "wan0" id: 8}>
<vlan "wan0.9" {parent: "wan0" id: 9}>
<configure-interface "wan0.9" <pppoe {user: "alice" password-file: "/tmp/pw"}>>
EOF
cat > /tmp/site/core/wg.pr <<EOF
<configure-interface "up0" <static "10.77.0.1/24">>
<wireguard "wg0" {private-key-file: "/tmp/wg0.key" listen-port: 51820 addresses: ["10.9.0.1/24"]
  peers: [{public-key: "$PEER_PUB" preshared-key-file: "/tmp/wg0.psk" endpoint: "10.77.0.2:51821"
           allowed-ips: ["10.9.0.2/32" "192.168.50.0/24"] persistent-keepalive: 25}]}>
EOF
start_limen
poll default-route 150 has route show default dev wan0.7
ip -n rtr -d link show wan0.7 | grep -o 'vlan protocol 802.1Q id 7'
ip -n rtr -4 -br addr show dev wan0.7
ip -n rtr route show default
ip netns exec rtr ping -c1 -W3 100.64.7.1 >/dev/null && echo "vlan ping ok"
poll pppoe-vlan 150 has route show default dev ppp-wan0.9
ip netns exec rtr ping -c1 -W3 10.64.9.1 >/dev/null && echo "pppoe over vlan ping ok"
poll wg-route 90 has route show 192.168.50.0/24 dev wg0
limen query '<link-state ?n ?k ?s ?d>'
ip -n rtr route show 192.168.50.0/24
tunnel=failed
for i in 1 2 3 4 5; do ip netns exec rtr ping -c1 -W2 192.168.50.1 >/dev/null && { tunnel=ok; break; }; done
echo "tunnel ping $tunnel"
ip netns exec peer wg show wg1 latest-handshakes | awk '{ print ($2 > 0) ? "handshake yes" : "handshake no" }'
limen query '<vlan-error ?n ?m>'
# The keys as grep patterns in a file: on grep's command line they would be in ps.
cat /tmp/wg0.key /tmp/wg0.psk > /tmp/keys.pattern
echo "key in ps: $(ps -eo args | grep -cFf /tmp/keys.pattern)"
limen status --json > /tmp/status.json
echo "key in status: $(grep -cFf /tmp/keys.pattern /tmp/status.json)"
echo "key in query: $(limen query '?x' 2>&1 | grep -cFf /tmp/keys.pattern)"
# A restart keeps the links (no traffic dropped) and adopts them.
kill -TERM $daemon; wait $daemon
ip -n rtr link show wan0.7 >/dev/null 2>&1 && ip -n rtr link show wg0 >/dev/null 2>&1 && echo "links kept"
start_limen
poll adopted 150 grep -q 'adopted a link made by an earlier run' /tmp/limen.log
tunnel=failed
for i in 1 2 3 4 5; do ip netns exec rtr ping -c1 -W2 192.168.50.1 >/dev/null && { tunnel=ok; break; }; done
echo "tunnel after restart $tunnel"
# Removing the files deletes limen's links, and only those.
rm /tmp/site/core/wan.pr /tmp/site/core/wg.pr
gone() { ! ip -n rtr link show wan0.7 && ! ip -n rtr link show wg0; }
poll links-deleted 90 gone
ip -n rtr link show wan0.8 >/dev/null 2>&1 && echo "foreign vlan kept"
kill -TERM $daemon; wait $daemon
echo "key in log: $(grep -cFf /tmp/keys.pattern /tmp/limen.log)"
gone >/dev/null 2>&1 || tail -40 /tmp/limen.log
`;

describe('VLAN and WireGuard links in the VM', { skip, timeout: 900_000 }, () => {
  it('runs a DHCP WAN over a VLAN and a WireGuard tunnel, keeps the keys out of sight, and deletes its links', async (t) => {
    const r = await runInVm({ script: script(process.cwd()), timeoutMs: 600_000, memoryMiB: 1536 });
    const out = r.output;
    for (const line of out.match(/^at .*$/gm) ?? []) t.diagnostic(line);
    assert.equal(r.status, 0, `${out}\n${r.console.slice(-1500)}`);
    assert.match(out, /^default-route 1$/m, out);
    assert.match(out, /^vlan protocol 802\.1Q id 7$/m, out);
    assert.match(out, /^wan0\.7@wan0 +UP +100\.64\.7\.\d+\/24/m, out);
    assert.match(out, /^default via 100\.64\.7\.1 dev wan0\.7 /m, out);
    assert.match(out, /^vlan ping ok$/m, out);
    assert.match(out, /^pppoe-vlan 1$/m, out);
    assert.match(out, /^pppoe over vlan ping ok$/m, out);
    assert.match(out, /^wg-route 1$/m, out);
    assert.match(out, /^192\.168\.50\.0\/24 dev wg0 proto 76 scope link metric 50 *$/m, out);
    assert.match(out, /^tunnel ping ok$/m, out);
    assert.match(out, /^handshake yes$/m, out);
    assert.match(
      out,
      /"wan0\.8" +"wan0\.8 exists \(a vlan link\) and limen did not create it/,
      out,
    );
    assert.match(out, /^links kept$/m, out);
    assert.match(out, /^adopted 1$/m, out);
    assert.match(out, /^tunnel after restart ok$/m, out);
    assert.match(out, /^links-deleted 1$/m, out);
    assert.match(out, /^foreign vlan kept$/m, out);
    for (const where of ['ps', 'status', 'query', 'log'])
      assert.match(out, new RegExp(`^key in ${where}: 0$`, 'm'), out);
  });
});
