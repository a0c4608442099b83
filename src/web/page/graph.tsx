// The dependency graph of services and milestones: a node per service (from
// `<service-state S _>` and `<require-service S>`), an edge S → D per `<depends-on S
// <service-state D _>>`, and a small condition node for any other dependency. dagre
// lays it out again only when the set of nodes or edges changes; a state change only
// recolours a node.

import dagre, { type EdgeLabel, type GraphLabel, type NodeLabel } from '@dagrejs/dagre';
import { useMemo } from 'preact/hooks';
import { Card, stateClass } from './common.tsx';
import { serviceStates, useWatch } from './live.ts';
import * as P from './patterns.ts';
import { asDict, asRecord, fieldsOf, keyOf, printValue, symName, type Json } from './values.ts';

type NodeKind = 'service' | 'milestone' | 'condition';

interface GraphNode {
  readonly id: string;
  readonly label: string;
  readonly printed: string;
  readonly kind: NodeKind;
}

interface Layout {
  readonly width: number;
  readonly height: number;
  readonly nodes: readonly (GraphNode & { x: number; y: number; w: number; h: number })[];
  readonly edges: readonly { from: string; to: string; path: string }[];
}

/** A path shortened to its last two parts (`…/site/core`); any other string as it is. */
function shortText(v: Json): string {
  if (typeof v !== 'string') {
    const r = asRecord(v);
    return r === undefined ? (symName(v) ?? printValue(v)) : shortRecord(r.label, r.fields);
  }
  const parts = v.split('/').filter((p) => p !== '');
  return v.startsWith('/') && parts.length > 2 ? `…/${parts.slice(-2).join('/')}` : v;
}

/** `<udhcpc "wan0">` reads as `udhcpc wan0`; fields that are dictionaries are left out. */
function shortRecord(label: string, fields: readonly Json[]): string {
  const shown = fields.filter((f) => asDict(f) === undefined);
  return [label, ...shown.map(shortText)].join(' ');
}

/**
 * `<daemon ntpd>` reads as `ntpd`, `<milestone core>` as `core`, `<daemon <dnsmasq
 * "lan0">>` as `dnsmasq lan0`, `<config-watcher "/etc/limen/core" {…}>` as
 * `config-watcher …/limen/core`: short enough for a node; the full value is its tooltip.
 */
function nodeLabel(service: Json): { label: string; kind: NodeKind } {
  const r = asRecord(service);
  if (r === undefined) return { label: printValue(service), kind: 'service' };
  if (r.fields.length === 1 && (r.label === 'milestone' || r.label === 'daemon')) {
    return {
      label: shortText(r.fields[0]!),
      kind: r.label === 'milestone' ? 'milestone' : 'service',
    };
  }
  return { label: shortRecord(r.label, r.fields), kind: 'service' };
}

/** An SVG path through dagre's points, its corners rounded by quadratic curves. */
function smoothPath(points: readonly { x: number; y: number }[]): string {
  const f = (n: number) => n.toFixed(1);
  const first = points[0];
  if (first === undefined) return '';
  let d = `M${f(first.x)},${f(first.y)}`;
  for (let i = 1; i < points.length - 1; i++) {
    const p = points[i]!;
    const q = points[i + 1]!;
    d += ` Q${f(p.x)},${f(p.y)} ${f((p.x + q.x) / 2)},${f((p.y + q.y) / 2)}`;
  }
  const last = points[points.length - 1]!;
  return points.length > 1 ? `${d} L${f(last.x)},${f(last.y)}` : d;
}

const CHAR_WIDTH = 7.2;
const NODE_HEIGHT = 30;

function layOut(nodes: readonly GraphNode[], edges: readonly [string, string][]): Layout {
  const g = new dagre.graphlib.Graph<GraphLabel, NodeLabel, EdgeLabel>();
  // Dependencies to the left, what needs them to the right; arrows point at dependencies.
  g.setGraph({ rankdir: 'RL', nodesep: 14, ranksep: 48, marginx: 12, marginy: 12 });
  g.setDefaultEdgeLabel(() => ({}));
  for (const n of nodes) {
    const small = n.kind === 'condition';
    g.setNode(n.id, {
      width: n.label.length * (small ? 6.8 : CHAR_WIDTH) + (small ? 18 : 28),
      height: small ? 22 : NODE_HEIGHT,
    });
  }
  for (const [from, to] of edges) g.setEdge(from, to);
  dagre.layout(g);
  const graph = g.graph();
  // An empty graph has no extent (dagre gives -Infinity).
  return {
    width: nodes.length === 0 ? 0 : (graph.width ?? 0),
    height: nodes.length === 0 ? 0 : (graph.height ?? 0),
    nodes: nodes.map((n) => {
      const p = g.node(n.id);
      return { ...n, x: p.x ?? 0, y: p.y ?? 0, w: p.width, h: p.height };
    }),
    edges: edges.map(([from, to]) => ({
      from,
      to,
      path: smoothPath(g.edge(from, to).points ?? []),
    })),
  };
}

export function GraphView() {
  const states = useWatch(P.serviceState, 'config');
  const required = useWatch(P.requireService, 'config');
  const depends = useWatch(P.dependsOn, 'config');

  // The structure: nodes and edges by id (the JSON text of the service or condition).
  const structure = useMemo(() => {
    const nodes = new Map<string, GraphNode>();
    const addService = (s: Json) => {
      const id = keyOf(s);
      if (!nodes.has(id)) nodes.set(id, { id, printed: printValue(s), ...nodeLabel(s) });
      return id;
    };
    for (const m of states.items.values()) addService(m.captures.s ?? null);
    for (const m of required.items.values()) addService(m.captures.s ?? null);
    const edges = new Map<string, [string, string]>();
    for (const m of depends.items.values()) {
      const from = addService(m.captures.s ?? null);
      const dep = m.captures.dep ?? null;
      const d = fieldsOf(dep, 'service-state')?.[0];
      let to: string;
      if (d !== undefined) to = addService(d);
      else {
        to = keyOf(dep);
        if (!nodes.has(to)) {
          nodes.set(to, {
            id: to,
            label: shortText(dep),
            printed: printValue(dep),
            kind: 'condition',
          });
        }
      }
      edges.set(`${from} ${to}`, [from, to]);
    }
    const sortedNodes = [...nodes.values()].sort((a, b) => a.id.localeCompare(b.id));
    const sortedEdges = [...edges.values()].sort((a, b) => (a.join() < b.join() ? -1 : 1));
    return {
      key: JSON.stringify([sortedNodes.map((n) => n.id), sortedEdges]),
      nodes: sortedNodes,
      edges: sortedEdges,
    };
  }, [states.items, required.items, depends.items]);

  const layout = useMemo(
    () => layOut(structure.nodes, structure.edges),
    // Only a new set of nodes or edges moves anything.
    [structure.key],
  );

  const stateOf = new Map<string, string>();
  for (const [key, m] of serviceStates(states.items.values())) stateOf.set(key, m.state);

  return (
    <Card title="Dependencies" testid="graph-card" class="graph-card">
      <p class="muted legend">
        Arrows point from a service to what it depends on.{' '}
        <span class="badge state-good">ready/up</span> <span class="badge state-busy">started</span>{' '}
        <span class="badge state-bad">failed</span>{' '}
        <span class="badge state-idle">not running</span>
      </p>
      <div class="graph-scroll">
        <svg
          data-testid="graph"
          class="graph"
          width={layout.width}
          height={layout.height}
          viewBox={`0 0 ${layout.width} ${layout.height}`}
          role="img"
          aria-label="service dependency graph"
        >
          <defs>
            <marker
              id="arrow"
              viewBox="0 0 10 10"
              refX="9"
              refY="5"
              markerWidth="7"
              markerHeight="7"
              orient="auto-start-reverse"
            >
              <path d="M 0 0 L 10 5 L 0 10 z" class="arrowhead" />
            </marker>
          </defs>
          {layout.edges.map((e) => (
            <path key={`${e.from} ${e.to}`} class="edge" d={e.path} marker-end="url(#arrow)" />
          ))}
          {layout.nodes.map((n) => {
            const state =
              n.kind === 'condition' ? 'condition' : (stateOf.get(n.id) ?? 'not running');
            return (
              <g
                key={n.id}
                class={`node ${n.kind} ${stateClass(state)}`}
                data-testid="graph-node"
                data-service={n.printed}
                data-state={state}
                transform={`translate(${(n.x - n.w / 2).toFixed(1)},${(n.y - n.h / 2).toFixed(1)})`}
              >
                <title>{`${n.printed}: ${state}`}</title>
                <rect width={n.w} height={n.h} rx={n.kind === 'service' ? 5 : n.h / 2} />
                <text x={n.w / 2} y={n.h / 2} dominant-baseline="central" text-anchor="middle">
                  {n.label}
                </text>
              </g>
            );
          })}
        </svg>
      </div>
    </Card>
  );
}
