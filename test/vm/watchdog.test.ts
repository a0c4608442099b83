// The hardware watchdog (src/daemon/watchdog.ts; issue 14, its test 6), inside the VM,
// whose kernel has the software watchdog `softdog` (this machine has no watchdog, and
// a test here must never reboot it). Boot 1: limen feeds /dev/watchdog (softdog with a
// 5 s margin) as its site asks; a normal stop magic-closes it (the kernel reports it
// inactive, and the machine is still up after twice the margin); limen starts again,
// a second configuration goes on trial, and the daemon is stopped with SIGSTOP before
// it is confirmed: nothing feeds the watchdog, softdog resets the machine, and qemu
// (-no-reboot) exits before the script ends. Boot 2, on the same persistent state (a
// router's /var/lib/limen and /etc/limen, kept on the host between the two boots):
// limen starts on the previous generation, the trial recorded as rolled back because
// the daemon restarted during it, and the site's files are the previous generation's;
// the timeout set with wdctl, as on real hardware, is the one limen feeds at half of.

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runInVm, vmUnavailable } from '../../src/lab/vm.ts';

const skip = vmUnavailable() ?? false;
const MARGIN = 5;

/** Shell helpers both boots use: limen on a persistent state, polls bounded in time. */
const prelude = (repo: string) => String.raw`
set -u
R=/tmp/r
limen() { node ${repo}/bin/limen.js "$@" --root $R; }
start() {
  node ${repo}/bin/limen.js daemon --root $R --config /vmstate/site --no-network --log-format json >> /vmstate/daemon.log 2>&1 &
  daemon=$!
}
# waitfor WHAT CHECK: polls CHECK for up to 3 minutes (node is slow under TCG).
waitfor() {
  what=$1; shift
  end=$(($(date +%s) + 180))
  while [ "$(date +%s)" -lt $end ]; do
    if "$@" > /dev/null 2>&1; then echo "$what"; return 0; fi
    sleep 0.3
  done
  echo "timed out waiting for: $what"; tail -30 /vmstate/daemon.log; cat /tmp/try.log 2>/dev/null
  exit 2
}
feeding() { limen query '<watchdog-feeding "/dev/watchdog" _>' | grep -q watchdog-feeding; }
modprobe softdog soft_margin=${MARGIN} nowayout=0
# A router's persistent /var/lib/limen, on the host between boots; /run stays volatile.
mkdir -p /vmstate/state $R/var/lib/limen && mount --bind /vmstate/state $R/var/lib/limen
`;

const firstBoot = (repo: string) =>
  prelude(repo) +
  String.raw`
mkdir -p /vmstate/site/core /vmstate/site/services
echo '<watchdog {device: "/dev/watchdog"}>' > /vmstate/site/core/watchdog.pr
echo '<site-marker first>' > /vmstate/site/services/marker.pr
cp -r /vmstate/site /tmp/candidate
echo '<site-marker second>' > /tmp/candidate/services/marker.pr
start
waitfor "feeding" feeding
limen query '<watchdog-feeding _ _>'
echo "softdog $(cat /sys/class/watchdog/watchdog0/state)"
kill -TERM $daemon; wait $daemon; echo "clean stop $?"
echo "softdog $(cat /sys/class/watchdog/watchdog0/state)"
# Twice the margin: a watchdog left armed would have reset the machine by now.
sleep ${2 * MARGIN}
echo "not reset after a clean stop"
start
waitfor "feeding again" feeding
limen try /tmp/candidate --timeout 900 --message "the second marker" > /tmp/try.log 2>&1 &
on_trial() { limen status | grep -q 'ON TRIAL' && limen query '<site-marker second>' | grep -q second; }
waitfor "on trial" on_trial
limen generations
echo "stopping the daemon"
kill -STOP $daemon
for i in $(seq 1 90); do sleep 1; done
echo "still running 90 s after the daemon stopped"
exit 3
`;

const secondBoot = (repo: string) =>
  prelude(repo) +
  String.raw`
# The timeout as docs/running.md says to set it on real hardware (limen cannot).
wdctl --settimeout 8 /dev/watchdog0 > /dev/null && echo "timeout $(cat /sys/class/watchdog/watchdog0/timeout)"
start
waitfor "feeding" feeding
limen query '<watchdog-feeding _ _>'
limen generations --json > /tmp/generations.json && echo "generations $(cat /tmp/generations.json)"
limen query '<site-marker _>' | sed 's/^/marker /'
echo "site file $(cat /vmstate/site/services/marker.pr)"
limen status | grep -i configuration
kill -TERM $daemon; wait $daemon; echo "clean stop $?"
echo "softdog $(cat /sys/class/watchdog/watchdog0/state)"
`;

interface Generation {
  number: number;
  outcome: string;
  current: boolean;
  message: string;
}

// Two boots of at most 400 s each, and the wait for other VM runs (one at a time).
describe('the watchdog in the VM', { skip, timeout: 1_500_000 }, () => {
  const stateDir = mkdtempSync(join(tmpdir(), 'limen-vm-watchdog-'));
  after(() => rmSync(stateDir, { recursive: true, force: true }));

  it('resets a machine whose daemon hangs during a trial; the next boot runs the previous generation', async (t) => {
    const repo = process.cwd();
    let stoppedAt = 0;
    let streamed = '';
    const onOutput = (text: string) => {
      streamed += text;
      if (stoppedAt === 0 && streamed.includes('stopping the daemon')) stoppedAt = Date.now();
    };
    const one = await runInVm({ script: firstBoot(repo), timeoutMs: 400_000, stateDir, onOutput });
    t.diagnostic(
      `boot 1: ${one.ms} ms, qemu gone ${Date.now() - stoppedAt} ms after the SIGSTOP (margin ${MARGIN} s)`,
    );
    const out1 = one.output;
    const why1 = `${out1}\n${one.console.slice(-2000)}`;
    assert.equal(one.timedOut, false, why1);
    assert.match(out1, /^feeding$/m, why1);
    assert.match(
      out1,
      /^<watchdog-feeding "\/dev\/watchdog" \{identity: "Software Watchdog" interval: 2\.5 nowayout: #f timeout: 5\}>$/m,
      why1,
    );
    assert.match(out1, /^softdog active\nclean stop 0\nsoftdog inactive$/m, why1);
    assert.match(out1, /^not reset after a clean stop$/m, why1);
    assert.match(out1, /^on trial$/m, why1);
    assert.match(out1, /^stopping the daemon$/m, why1);
    // The reset, not the script, ended the first boot.
    assert.equal(one.status, undefined, why1);
    assert.doesNotMatch(out1, /still running/, why1);
    assert.match(one.console, /softdog: Initiating system reboot/, why1);
    assert.doesNotMatch(one.console, /watchdog did not stop/, why1);
    // The reset left the trial's files in the site (the daemon writes them with fsync).
    assert.equal(
      readFileSync(join(stateDir, 'site', 'services', 'marker.pr'), 'utf8'),
      '<site-marker second>\n',
    );

    const two = await runInVm({ script: secondBoot(repo), timeoutMs: 400_000, stateDir });
    t.diagnostic(`boot 2: ${two.ms} ms`);
    const out2 = two.output;
    const why2 = `${out2}\n${two.console.slice(-2000)}`;
    assert.equal(two.status, 0, why2);
    assert.match(out2, /^timeout 8\n/m, why2);
    assert.match(
      out2,
      /^<watchdog-feeding "\/dev\/watchdog" \{.*interval: 4 .*timeout: 8\}>$/m,
      why2,
    );
    const listed = JSON.parse(/^generations (.*)$/m.exec(out2)?.[1] ?? '[]') as Generation[];
    assert.deepEqual(
      listed.map((g) => [g.number, g.outcome, g.current]),
      [
        [1, 'confirmed', true],
        [2, 'rolled back: the daemon restarted during the trial', false],
      ],
      why2,
    );
    assert.match(out2, /^marker <site-marker first>$/m, why2);
    assert.doesNotMatch(out2, /^marker <site-marker second>$/m, why2);
    assert.match(out2, /^site file <site-marker first>$/m, why2);
    assert.match(out2, /^softdog inactive$/m, why2);
  });
});
