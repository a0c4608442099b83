// Small pieces every view uses: state badges, error lines, a ticking clock.

import type { ComponentChildren } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import type { ApiError } from './api.ts';
import { show, symName, type Json } from './values.ts';

/** The colour class of a state: up/ready green, starting amber, failed red, else grey. */
export function stateClass(state: string): string {
  switch (state) {
    case 'up':
    case 'ready':
    case 'complete':
    case 'carrier':
    case 'confirmed':
      return 'state-good';
    case 'started':
    case 'starting':
    case 'stopping':
    case 'trial':
    case 'unknown':
    case 'dormant':
      return 'state-busy';
    case 'failed':
    case 'error':
    case 'rolled back':
      return 'state-bad';
    default:
      return 'state-idle';
  }
}

/** A state value (a symbol or a string) as text. */
export function stateText(v: Json | undefined): string {
  return symName(v) ?? show(v);
}

export function StateBadge(props: { state: string; testid?: string }) {
  return (
    <span class={`badge ${stateClass(props.state)}`} data-testid={props.testid}>
      {props.state}
    </span>
  );
}

/** An error from the server, shown as it came. */
export function ErrorLine(props: { error: unknown; testid?: string }) {
  if (props.error === undefined || props.error === null) return null;
  return (
    <p class="error" data-testid={props.testid} role="alert">
      {errorText(props.error)}
    </p>
  );
}

export function errorText(error: unknown): string {
  if (error instanceof Error) {
    const reason = (error as Partial<ApiError>).reason;
    return reason !== undefined ? `${reason}: ${error.message}` : error.message;
  }
  return String(error);
}

/** The time now, re-rendering every `ms` (a local clock: nothing is fetched). */
export function useNow(ms = 1000): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(t);
  }, [ms]);
  return now;
}

export function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '∞';
  const s = Math.max(0, Math.floor(seconds));
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d > 0) return `${d}d ${h}h ${m}m`;
  if (h > 0) return `${h}h ${m}m`;
  if (m > 0) return `${m}m ${s % 60}s`;
  return `${s % 60}s`;
}

/** How long ago an RFC 3339 time was, coarsely: "3m ago". */
export function ago(time: string, now: number): string {
  const at = Date.parse(time);
  return Number.isNaN(at) ? time : `${duration((now - at) / 1000)} ago`;
}

export function Card(props: {
  title: ComponentChildren;
  class?: string;
  testid?: string;
  children: ComponentChildren;
}) {
  return (
    <section class={`card ${props.class ?? ''}`} data-testid={props.testid}>
      <h2>{props.title}</h2>
      {props.children}
    </section>
  );
}

/** Sorts by a text key, for stable tables. */
export function sortBy<T>(items: Iterable<T>, key: (t: T) => string): T[] {
  return [...items].sort((a, b) => key(a).localeCompare(key(b), undefined, { numeric: true }));
}
