// What the configuration's `<web-dashboard {…}>` (config/services/web.pr) needs from
// the daemon: `<web-endpoint {socket: PATH group: GROUP}>` when it serves the web
// endpoint (`--web-group`), and otherwise, while a dashboard is configured, the
// failure `<web-dashboard-error MESSAGE>` saying how to start the daemon, since the
// page cannot run without its endpoint.

import { P, anyRecord, declareFailures, during, type Facet, type Ref } from '../dataspace/index.ts';
import { dict, record } from '../preserves/index.ts';

export function startWebDashboardSupport(
  facet: Facet,
  config: Ref,
  endpoint: { readonly socket: string; readonly group: string } | undefined,
): void {
  if (endpoint !== undefined) {
    facet.assert(
      config,
      record('web-endpoint', dict({ socket: endpoint.socket, group: endpoint.group })),
    );
    return;
  }
  declareFailures(facet, config, anyRecord('web-dashboard-error', 1));
  during(
    facet,
    config,
    P.rec('web-dashboard', P._),
    (child) => {
      child.assert(
        config,
        record(
          'web-dashboard-error',
          '<web-dashboard …> is configured but the daemon serves no web endpoint: start it ' +
            'with limen daemon --web-group limen-web (docs/web.md)',
        ),
      );
    },
    'web-dashboard',
  );
}
