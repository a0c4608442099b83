// `<watchdog {device interval}>` (src/daemon/watchdog-spec.ts): defaults, every
// problem reported together with the device it is about, and the feeding interval:
// half the device's timeout by default, never more than that.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parse } from '../../../src/preserves/index.ts';
import { feedInterval, parseWatchdogSpec } from '../../../src/daemon/watchdog-spec.ts';

describe('the watchdog spec', () => {
  it('defaults to /dev/watchdog at half its timeout, with or without a dictionary', () => {
    for (const text of ['<watchdog>', '<watchdog {}>'])
      assert.deepEqual(parseWatchdogSpec(parse(text)), {
        spec: { device: '/dev/watchdog', interval: undefined },
        device: '/dev/watchdog',
      });
  });

  it('reads the device and an interval in integer or fractional seconds', () => {
    assert.deepEqual(
      parseWatchdogSpec(parse('<watchdog {device: "/dev/watchdog1" interval: 2}>')),
      {
        spec: { device: '/dev/watchdog1', interval: 2 },
        device: '/dev/watchdog1',
      },
    );
    const r = parseWatchdogSpec(parse('<watchdog {interval: 0.5}>'));
    assert.ok('spec' in r);
    assert.equal(r.spec.interval, 0.5);
  });

  it('reports every problem together, about the device named', () => {
    const r = parseWatchdogSpec(parse('<watchdog {device: "watchdog0" intervall: 2 interval: 0}>'));
    assert.deepEqual(r, {
      problems: [
        'device: "watchdog0" is not an absolute path',
        "unknown key 'intervall' (did you mean 'interval'?)",
        'interval: expected seconds from 0.1 to 3600, got 0',
      ],
      device: 'watchdog0',
    });
  });

  it('refuses what is not a dictionary, and a device that is not a string', () => {
    assert.deepEqual(parseWatchdogSpec(parse('<watchdog "/dev/watchdog" 5>')), {
      problems: [
        'expected <watchdog {device: "/dev/watchdog" interval: SECONDS}>, got <watchdog "/dev/watchdog" 5>',
      ],
      device: '',
    });
    const r = parseWatchdogSpec(parse('<watchdog {device: 7 interval: "5"}>'));
    assert.deepEqual(r, {
      problems: [
        'device: expected a path (a string), got 7',
        'interval: expected seconds from 0.1 to 3600, got "5"',
      ],
      device: '7',
    });
  });
});

describe('the feeding interval', () => {
  it('is half the timeout by default, and what was asked when it is no more than that', () => {
    assert.deepEqual(feedInterval(undefined, 5), { seconds: 2.5 });
    assert.deepEqual(feedInterval(1, 5), { seconds: 1 });
    assert.deepEqual(feedInterval(2.5, 5), { seconds: 2.5 });
  });

  it('is cut to half the timeout, with a warning, when more was asked', () => {
    assert.deepEqual(feedInterval(10, 7), {
      seconds: 3.5,
      warning: "interval 10 s is more than half the device's timeout (7 s): fed every 3.5 s",
    });
  });

  it('is what was asked, or every second, when the kernel does not tell the timeout', () => {
    assert.deepEqual(feedInterval(20, undefined), { seconds: 20 });
    assert.deepEqual(feedInterval(undefined, undefined), { seconds: 1 });
  });
});
