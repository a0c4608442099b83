// The matching index: which observers does an assertion or message match, and
// which current assertions does a new observer match, without scanning either.
//
// Each pattern is decomposed into structural checks (at path p: a record of
// arity >= n, a sequence of length >= n, a dictionary with keys k...), constant
// paths with their values, and capture paths. Observers with the same checks and
// constant paths form a *class*; a class maps the tuple of constants to a *group*
// of observers, and a group further splits its observers by capture paths so
// that captures are computed once per event. Classes hang under a discriminator:
// a record's label, or sequence / dictionary / atom, plus two wildcard
// discriminators for patterns whose top level is `_` or a record with a
// non-literal label. An assertion therefore visits only the classes of its own
// discriminator (and the wildcard ones), does one hash lookup per class, and
// touches only observers that match it. Groups also hold the assertions that
// match them, so a new observer is handed its current matches directly, and a
// retraction needs no matching at all (an entry remembers its groups).
//
// Invariants: an AssertionEntry is in group G iff its value passes G's class
// checks and has G's constants (entry.groups/positions and G.entries mirror each
// other); a class is deleted with its last observer; empty groups and empty
// symbol discriminators are swept in batches (amortised O(1), see
// #groupEmptied); notifications are only handed to the `notify` callback, which
// must not call back into the index.
//
// Cost: asserting or retracting touches one discriminator, its classes (one check
// list and one hash lookup each) and the observers it matches; observers whose
// constants differ cost nothing, however many there are. A new observer costs
// O(its current matches), or O(assertions under its discriminator) when it is the
// first of its class.

import {
  Annotated,
  Bytes,
  Dict,
  Double,
  Embedded,
  PSet,
  Record,
  Sym,
  compare,
  hash,
  isValue,
  peel,
  type Value,
} from '../preserves/index.ts';
import { PatternError } from './errors.ts';
import { match, noCaptures, type Captures, type Pattern } from './pattern.ts';
import { ValueTable } from './value-table.ts';

// ---- Paths -------------------------------------------------------------------------------

/**
 * A step into a value: n >= 0 is record field n, LABEL (-1) is the record's label,
 * n <= -2 is sequence item -(n + 2), and an object is a dictionary key. The kind of
 * container is part of the step so that walking needs no type tests.
 */
export const LABEL = -1;
export interface KeyStep {
  readonly key: Value;
}
export type Step = number | KeyStep;
export type Path = readonly Step[];

const itemStep = (i: number): number => -(i + 2);

/** The value at a path. The class checks have already established that the path exists. */
function walk(v: Value, path: Path): Value {
  for (let i = 0; i < path.length; i++) {
    const s = path[i]!;
    if (typeof s === 'number') {
      if (s >= 0) v = (v as Record).fields[s]!;
      else if (s === LABEL) v = (v as Record).label;
      else v = (v as readonly Value[])[-(s + 2)]!;
    } else {
      v = (v as Dict).get(s.key)!;
    }
    if (v instanceof Annotated) v = v.item;
  }
  return v;
}

const CHECK_RECORD = 0;
const CHECK_SEQUENCE = 1;
const CHECK_DICT = 2;
type CheckKind = typeof CHECK_RECORD | typeof CHECK_SEQUENCE | typeof CHECK_DICT;

interface Check {
  readonly path: Path;
  readonly kind: CheckKind;
  readonly arity: number;
  readonly exact: boolean;
  readonly keys: readonly Value[];
}

function passes(checks: readonly Check[], v: Value): boolean {
  for (let i = 0; i < checks.length; i++) {
    const c = checks[i]!;
    const x = c.path.length === 0 ? v : walk(v, c.path);
    switch (c.kind) {
      case CHECK_RECORD: {
        if (!(x instanceof Record)) return false;
        const n = x.fields.length;
        if (c.exact ? n !== c.arity : n < c.arity) return false;
        break;
      }
      case CHECK_SEQUENCE: {
        if (!Array.isArray(x)) return false;
        const n = (x as readonly Value[]).length;
        if (c.exact ? n !== c.arity : n < c.arity) return false;
        break;
      }
      case CHECK_DICT: {
        if (!(x instanceof Dict)) return false;
        for (const k of c.keys) if (!x.has(k)) return false;
        break;
      }
    }
  }
  return true;
}

// ---- Pattern analysis --------------------------------------------------------------------

type DiscKind = 'label' | 'sequence' | 'dict' | 'atom' | 'anyRecord' | 'any';

/** A pattern decomposed for the index. Computed once per pattern object. */
export interface Analysis {
  readonly pattern: Pattern;
  readonly discKind: DiscKind;
  /** The record label for discKind 'label'. */
  readonly label: Value | undefined;
  /** Identifies the class (checks + constant paths) within its discriminator. */
  readonly classKey: string;
  readonly checks: readonly Check[];
  readonly constPaths: readonly Path[];
  /** The group key: undefined (no constants), the constant, or a sequence of constants. */
  readonly constKey: Value | undefined;
  readonly captureKey: string;
  readonly captureNames: readonly string[];
  readonly capturePaths: readonly Path[];
}

interface Acc {
  checks: Check[];
  consts: [Path, Value][];
  names: string[];
  paths: Path[];
}

function visit(p: Pattern, path: Path, acc: Acc): void {
  switch (p.type) {
    case 'discard':
      return;
    case 'capture':
      if (acc.names.includes(p.name))
        throw new PatternError(`?${p.name} is captured twice in one pattern`, p.pos);
      acc.names.push(p.name);
      acc.paths.push(path);
      visit(p.pattern, path, acc);
      return;
    case 'literal':
      acc.consts.push([path, p.value]);
      return;
    case 'record':
      acc.checks.push({
        path,
        kind: CHECK_RECORD,
        arity: p.fields.length,
        exact: p.exact,
        keys: [],
      });
      visit(p.label, [...path, LABEL], acc);
      p.fields.forEach((f, i) => visit(f, [...path, i], acc));
      return;
    case 'sequence':
      acc.checks.push({
        path,
        kind: CHECK_SEQUENCE,
        arity: p.items.length,
        exact: p.exact,
        keys: [],
      });
      p.items.forEach((x, i) => visit(x, [...path, itemStep(i)], acc));
      return;
    case 'dict': {
      const entries = [...p.entries].sort((a, b) => compare(a[0], b[0]));
      acc.checks.push({
        path,
        kind: CHECK_DICT,
        arity: 0,
        exact: false,
        keys: entries.map((e) => e[0]),
      });
      for (const [k, x] of entries) visit(x, [...path, { key: k }], acc);
      return;
    }
  }
}

function stripCaptures(p: Pattern): Pattern {
  while (p.type === 'capture') p = p.pattern;
  return p;
}

function discOfValue(v: Value): { kind: DiscKind; label: Value | undefined } {
  v = peel(v);
  if (v instanceof Record) return { kind: 'label', label: peel(v.label) };
  if (Array.isArray(v)) return { kind: 'sequence', label: undefined };
  if (v instanceof Dict) return { kind: 'dict', label: undefined };
  return { kind: 'atom', label: undefined };
}

/**
 * Decomposes a pattern for the index. Throws PatternError for a repeated capture name.
 * Not cached (a WeakMap keyed by 100,000 patterns slows every GC): it is linear in the
 * pattern and done once per observer.
 */
export function analyze(pattern: Pattern): Analysis {
  const acc: Acc = { checks: [], consts: [], names: [], paths: [] };
  visit(pattern, [], acc);
  const root = stripCaptures(pattern);
  let discKind: DiscKind;
  let label: Value | undefined;
  switch (root.type) {
    case 'discard':
      discKind = 'any';
      break;
    case 'capture':
      throw new Error('unreachable');
    case 'literal':
      ({ kind: discKind, label } = discOfValue(root.value));
      break;
    case 'record': {
      const l = stripCaptures(root.label);
      if (l.type === 'literal') {
        discKind = 'label';
        label = l.value;
        // The discriminator already guarantees the label: drop that constant.
        const i = acc.consts.findIndex(([p]) => p.length === 1 && p[0] === LABEL);
        acc.consts.splice(i, 1);
      } else {
        discKind = 'anyRecord';
      }
      break;
    }
    case 'sequence':
      discKind = 'sequence';
      break;
    case 'dict':
      discKind = 'dict';
      break;
  }
  const constPaths = acc.consts.map((c) => c[0]);
  const constValues = acc.consts.map((c) => c[1]);
  const classKey = acc.checks.map(checkKey).join(';') + '|' + constPaths.map(pathKey).join(';');
  const captureKey = acc.names.map((n, i) => `${n}@${pathKey(acc.paths[i]!)}`).join(';');
  const a: Analysis = {
    pattern,
    discKind,
    label,
    classKey,
    checks: acc.checks,
    constPaths,
    constKey:
      constValues.length === 0
        ? undefined
        : constValues.length === 1
          ? constValues[0]
          : constValues,
    captureKey,
    captureNames: acc.names,
    capturePaths: acc.paths,
  };
  return a;
}

function checkKey(c: Check): string {
  const kind = c.kind === CHECK_RECORD ? 'R' : c.kind === CHECK_SEQUENCE ? 'S' : 'D';
  const keys = c.keys.length === 0 ? '' : '{' + c.keys.map(canonicalString).join(',') + '}';
  return `${kind}${c.exact ? '=' : '>'}${c.arity}@${pathKey(c.path)}${keys}`;
}

function pathKey(path: Path): string {
  let s = '';
  for (const step of path)
    s +=
      typeof step === 'number'
        ? step >= 0
          ? `.${step}`
          : step === LABEL
            ? '.L'
            : `.I${-(step + 2)}`
        : `.K${canonicalString(step.key)}`;
  return s;
}

const embeddedIds = new WeakMap<object, number>();
let nextEmbeddedId = 1;

/** An injective string for a value, used only to build class keys (dictionary keys in paths). */
function canonicalString(v: Value): string {
  if (v instanceof Annotated) return canonicalString(v.item);
  switch (typeof v) {
    case 'boolean':
      return v ? '#t' : '#f';
    case 'number':
    case 'bigint':
      return `${v}`;
    case 'string':
      return JSON.stringify(v);
    default:
      break;
  }
  if (v instanceof Sym) return `'${JSON.stringify(v.name)}`;
  if (v instanceof Double) return `d${v.bits()}`;
  if (v instanceof Bytes)
    return `b${Array.from(v.bytes, (x) => x.toString(16).padStart(2, '0')).join('')}`;
  if (v instanceof Record)
    return `<${canonicalString(v.label)} ${v.fields.map(canonicalString).join(' ')}>`;
  if (Array.isArray(v)) return `[${(v as readonly Value[]).map(canonicalString).join(' ')}]`;
  if (v instanceof PSet) return `#{${[...v].sort(compare).map(canonicalString).join(' ')}}`;
  if (v instanceof Dict)
    return `{${[...v]
      .sort((a, b) => compare(a[0], b[0]))
      .map(([k, x]) => `${canonicalString(k)}:${canonicalString(x)}`)
      .join(' ')}}`;
  if (v instanceof Embedded) {
    if (isValue(v.value)) return `#:${canonicalString(v.value)}`;
    const o = v.value;
    if (typeof o !== 'object' || o === null) return `#:?${String(o)}`;
    let id = embeddedIds.get(o);
    if (id === undefined) {
      id = nextEmbeddedId++;
      embeddedIds.set(o, id);
    }
    return `#:@${id}`;
  }
  return '?';
}

// ---- The index ---------------------------------------------------------------------------
// Membership is kept in arrays with back-indices (swap-remove), not in Sets: a small
// Set whose members come and go reallocates its table every few operations, and an
// assertion joins and leaves several groups every time it is asserted and retracted.

export const IndexEvent = { Added: 0, Removed: 1, Message: 2 } as const;
export type IndexEvent = (typeof IndexEvent)[keyof typeof IndexEvent];

export type Notify<O> = (observer: O, event: IndexEvent, value: Value, captures: Captures) => void;

/** One distinct asserted value. The owner (the dataspace) keeps the reference count. */
export class AssertionEntry<O> {
  readonly value: Value;
  count = 0;
  /** The groups this value is in (so that retraction needs no matching)... */
  groups: Group<O>[] = [];
  /** ...and its index in each group's `entries`. */
  positions: number[] = [];
  disc: Disc<O> | undefined = undefined;
  /** Its index in disc.entries. */
  discIndex = -1;
  constructor(value: Value) {
    this.value = value;
  }
}

function removeFromGroup<O>(g: Group<O>, pos: number): void {
  const entries = g.entries;
  const last = entries.pop()!;
  if (pos === entries.length) return;
  entries[pos] = last;
  const gs = last.groups;
  for (let k = 0; k < gs.length; k++) {
    if (gs[k] === g) {
      last.positions[k] = pos;
      return;
    }
  }
}

class Disc<O> {
  readonly entries: AssertionEntry<O>[] = [];
  readonly classes: ObserverClass<O>[] = [];
  readonly classByKey = new Map<string, ObserverClass<O>>();
  /** The label, for a record discriminator (so that it can delete itself when empty). */
  readonly label: Value | undefined;
  constructor(label: Value | undefined) {
    this.label = label;
  }
  get isEmpty(): boolean {
    return this.entries.length === 0 && this.classes.length === 0;
  }
}

class ObserverClass<O> {
  readonly disc: Disc<O>;
  readonly key: string;
  readonly checks: readonly Check[];
  readonly constPaths: readonly Path[];
  readonly groups = new ValueTable<Group<O>>();
  /** The only group, when there are no constant paths. */
  single: Group<O> | undefined = undefined;
  observerCount = 0;
  /** How often a group became empty since the last sweep (see #groupEmptied). */
  emptied = 0;
  constructor(disc: Disc<O>, a: Analysis) {
    this.disc = disc;
    this.key = a.classKey;
    this.checks = a.checks;
    this.constPaths = a.constPaths;
  }
}

class Group<O> {
  readonly cls: ObserverClass<O>;
  readonly key: Value | undefined;
  readonly keyHash: number;
  /** The assertions with this class's shape and this group's constants. */
  readonly entries: AssertionEntry<O>[] = [];
  readonly captureGroups: CaptureGroup<O>[] = [];
  observerCount = 0;
  constructor(cls: ObserverClass<O>, key: Value | undefined, keyHash: number) {
    this.cls = cls;
    this.key = key;
    this.keyHash = keyHash;
  }
}

class CaptureGroup<O> {
  readonly key: string;
  readonly names: readonly string[];
  readonly paths: readonly Path[];
  readonly slots: ObserverSlot<O>[] = [];
  constructor(a: Analysis) {
    this.key = a.captureKey;
    this.names = a.captureNames;
    this.paths = a.capturePaths;
  }
  capture(value: Value): Captures {
    const paths = this.paths;
    const n = paths.length;
    if (n === 0) return noCaptures;
    const v = value instanceof Annotated ? value.item : value;
    const values = new Array<Value>(n);
    for (let i = 0; i < n; i++) values[i] = walk(v, paths[i]!);
    return new CaptureMap(this.names, values);
  }
}

/**
 * Captures as two parallel arrays (names shared by every event of a capture group):
 * far cheaper to build than a Map, and patterns have few captures.
 */
class CaptureMap implements ReadonlyMap<string, Value> {
  readonly #names: readonly string[];
  readonly #values: readonly Value[];
  constructor(names: readonly string[], values: readonly Value[]) {
    this.#names = names;
    this.#values = values;
  }
  get size(): number {
    return this.#names.length;
  }
  get(name: string): Value | undefined {
    const i = this.#names.indexOf(name);
    return i < 0 ? undefined : this.#values[i];
  }
  has(name: string): boolean {
    return this.#names.includes(name);
  }
  forEach(fn: (value: Value, key: string, map: ReadonlyMap<string, Value>) => void): void {
    for (let i = 0; i < this.#names.length; i++) fn(this.#values[i]!, this.#names[i]!, this);
  }
  #toMap(): Map<string, Value> {
    return new Map(this.#names.map((n, i) => [n, this.#values[i]!] as const));
  }
  entries(): MapIterator<[string, Value]> {
    return this.#toMap().entries();
  }
  keys(): MapIterator<string> {
    return this.#toMap().keys();
  }
  values(): MapIterator<Value> {
    return this.#toMap().values();
  }
  [Symbol.iterator](): MapIterator<[string, Value]> {
    return this.entries();
  }
}

/** An observer's place in the index; pass it back to removeObserver. */
export class ObserverSlot<O> {
  readonly observer: O;
  readonly cg: CaptureGroup<O>;
  readonly group: Group<O>;
  /** Its index in cg.slots; -1 once removed. */
  index = -1;
  constructor(observer: O, cg: CaptureGroup<O>, group: Group<O>) {
    this.observer = observer;
    this.cg = cg;
    this.group = group;
  }
}

export interface QueryResult {
  readonly value: Value;
  readonly captures: Captures;
}

export class MatchIndex<O> {
  readonly #notify: Notify<O>;
  /** Record discriminators by symbol label (the usual case: V8 caches string hashes). */
  readonly #bySymbol = new Map<string, Disc<O>>();
  /** Record discriminators with other labels. */
  readonly #byLabel = new ValueTable<Disc<O>>();
  /** How often a symbol discriminator became empty since the last sweep (see #maybeDeleteDisc). */
  #emptied = 0;
  readonly #sequences = new Disc<O>(undefined);
  readonly #dicts = new Disc<O>(undefined);
  readonly #atoms = new Disc<O>(undefined);
  readonly #anyRecord = new Disc<O>(undefined);
  readonly #any = new Disc<O>(undefined);

  constructor(notify: Notify<O>) {
    this.#notify = notify;
  }

  // -- discriminators

  #recordDisc(label: Value, create: boolean): Disc<O> | undefined {
    if (label instanceof Annotated) label = label.item;
    if (label instanceof Sym) {
      let d = this.#bySymbol.get(label.name);
      if (d === undefined && create) {
        d = new Disc(label);
        this.#bySymbol.set(label.name, d);
      }
      return d;
    }
    const h = hash(label);
    let d = this.#byLabel.get(label, h);
    if (d === undefined && create) {
      d = new Disc(label);
      this.#byLabel.set(label, d, h);
    }
    return d;
  }

  #discOf(v: Value, create: boolean): Disc<O> | undefined {
    if (v instanceof Record) return this.#recordDisc(v.label, create);
    if (Array.isArray(v)) return this.#sequences;
    if (v instanceof Dict) return this.#dicts;
    return this.#atoms;
  }

  #discOfAnalysis(a: Analysis, create: boolean): Disc<O> | undefined {
    switch (a.discKind) {
      case 'label':
        return this.#recordDisc(a.label!, create);
      case 'sequence':
        return this.#sequences;
      case 'dict':
        return this.#dicts;
      case 'atom':
        return this.#atoms;
      case 'anyRecord':
        return this.#anyRecord;
      case 'any':
        return this.#any;
    }
  }

  #maybeDeleteDisc(d: Disc<O>): void {
    if (d.label === undefined || !d.isEmpty) return;
    if (!(d.label instanceof Sym)) {
      this.#byLabel.delete(d.label);
      return;
    }
    // Deleting and re-adding one key of a large Map is O(size) in V8 (tombstones pile up
    // in its bucket), and a label that comes and goes would do exactly that: sweep empty
    // symbol discriminators in batches instead, which keeps the cost amortised O(1).
    if (++this.#emptied > 256 && this.#emptied * 2 > this.#bySymbol.size) {
      this.#emptied = 0;
      for (const [name, x] of this.#bySymbol) if (x.isEmpty) this.#bySymbol.delete(name);
    }
  }

  /** The discriminators whose assertions a class under `d` must consider. */
  *#sources(d: Disc<O>): Iterable<Disc<O>> {
    if (d === this.#any || d === this.#anyRecord) {
      yield* this.#bySymbol.values();
      yield* this.#byLabel.values();
      if (d === this.#any) {
        yield this.#sequences;
        yield this.#dicts;
        yield this.#atoms;
      }
    } else {
      yield d;
    }
  }

  // -- groups

  /** The group of `v` (already known to pass cls.checks). */
  #groupFor(cls: ObserverClass<O>, v: Value, create: boolean): Group<O> | undefined {
    const cp = cls.constPaths;
    if (cp.length === 0) {
      if (cls.single === undefined && create) cls.single = new Group(cls, undefined, 0);
      return cls.single;
    }
    let key: Value;
    if (cp.length === 1) key = walk(v, cp[0]!);
    else {
      const k: Value[] = new Array<Value>(cp.length);
      for (let i = 0; i < cp.length; i++) k[i] = walk(v, cp[i]!);
      key = k;
    }
    const h = hash(key);
    let g = cls.groups.get(key, h);
    if (g === undefined && create) {
      g = new Group(cls, key, h);
      cls.groups.set(key, g, h);
    }
    return g;
  }

  /**
   * A group has no observers and no assertions. Rather than delete it at once (an
   * assertion that comes and goes would create and delete it every time), sweep a
   * class's empty groups once they are as many as its groups: amortised O(1).
   */
  #groupEmptied(g: Group<O>): void {
    const cls = g.cls;
    if (g.key === undefined) return; // the single group costs nothing to keep
    if (++cls.emptied <= 64 || cls.emptied <= cls.groups.size) return;
    cls.emptied = 0;
    const dead: Group<O>[] = [];
    for (const x of cls.groups.values())
      if (x.observerCount === 0 && x.entries.length === 0) dead.push(x);
    for (const x of dead) cls.groups.delete(x.key!, x.keyHash);
  }

  #notifyGroup(g: Group<O>, event: IndexEvent, value: Value): void {
    const cgs = g.captureGroups;
    const notify = this.#notify;
    for (let i = 0; i < cgs.length; i++) {
      const cg = cgs[i]!;
      const captures = cg.capture(value);
      const slots = cg.slots;
      for (let j = 0; j < slots.length; j++) notify(slots[j]!.observer, event, value, captures);
    }
  }

  #join(g: Group<O>, entry: AssertionEntry<O>): void {
    entry.groups.push(g);
    entry.positions.push(g.entries.length);
    g.entries.push(entry);
  }

  // -- assertions

  /** A value's count went from 0 to 1. */
  addAssertion(entry: AssertionEntry<O>): void {
    const value = entry.value;
    const v = value instanceof Annotated ? value.item : value;
    const disc = this.#discOf(v, true)!;
    entry.disc = disc;
    entry.discIndex = disc.entries.length;
    disc.entries.push(entry);
    if (disc.classes.length !== 0) this.#addTo(disc, entry, v);
    if (v instanceof Record && this.#anyRecord.classes.length !== 0)
      this.#addTo(this.#anyRecord, entry, v);
    if (this.#any.classes.length !== 0) this.#addTo(this.#any, entry, v);
  }

  #addTo(disc: Disc<O>, entry: AssertionEntry<O>, v: Value): void {
    const classes = disc.classes;
    for (let i = 0; i < classes.length; i++) {
      const cls = classes[i]!;
      if (!passes(cls.checks, v)) continue;
      const g = this.#groupFor(cls, v, true)!;
      this.#join(g, entry);
      if (g.observerCount !== 0) this.#notifyGroup(g, IndexEvent.Added, entry.value);
    }
  }

  /** A value's count went from 1 to 0. */
  removeAssertion(entry: AssertionEntry<O>): void {
    const groups = entry.groups;
    const positions = entry.positions;
    for (let i = 0; i < groups.length; i++) {
      const g = groups[i]!;
      removeFromGroup(g, positions[i]!);
      if (g.observerCount !== 0) this.#notifyGroup(g, IndexEvent.Removed, entry.value);
      else if (g.entries.length === 0) this.#groupEmptied(g);
    }
    entry.groups = [];
    entry.positions = [];
    const disc = entry.disc;
    if (disc !== undefined) {
      const entries = disc.entries;
      const last = entries.pop()!;
      if (last !== entry) {
        entries[entry.discIndex] = last;
        last.discIndex = entry.discIndex;
      }
      entry.disc = undefined;
      entry.discIndex = -1;
      if (entries.length === 0) this.#maybeDeleteDisc(disc);
    }
  }

  // -- messages

  deliver(value: Value): void {
    const v = peel(value);
    const disc = this.#discOf(v, false);
    if (disc !== undefined && disc.classes.length !== 0) this.#deliverTo(disc, v, value);
    if (v instanceof Record && this.#anyRecord.classes.length !== 0)
      this.#deliverTo(this.#anyRecord, v, value);
    if (this.#any.classes.length !== 0) this.#deliverTo(this.#any, v, value);
  }

  #deliverTo(disc: Disc<O>, v: Value, value: Value): void {
    const classes = disc.classes;
    for (let i = 0; i < classes.length; i++) {
      const cls = classes[i]!;
      if (!passes(cls.checks, v)) continue;
      const g = this.#groupFor(cls, v, false);
      if (g !== undefined && g.observerCount !== 0) this.#notifyGroup(g, IndexEvent.Message, value);
    }
  }

  // -- observers

  /** Adds an observer and notifies it (Added) of every current match. */
  addObserver(a: Analysis, observer: O): ObserverSlot<O> {
    const disc = this.#discOfAnalysis(a, true)!;
    const cls = disc.classByKey.get(a.classKey) ?? this.#createClass(disc, a);
    let g: Group<O> | undefined;
    if (a.constKey === undefined) {
      g = cls.single ??= new Group(cls, undefined, 0);
    } else {
      const h = hash(a.constKey);
      g = cls.groups.get(a.constKey, h);
      if (g === undefined) {
        g = new Group(cls, a.constKey, h);
        cls.groups.set(a.constKey, g, h);
      }
    }
    let cg: CaptureGroup<O> | undefined;
    for (const c of g.captureGroups) if (c.key === a.captureKey) cg = c;
    if (cg === undefined) {
      cg = new CaptureGroup(a);
      g.captureGroups.push(cg);
    }
    const slot = new ObserverSlot(observer, cg, g);
    slot.index = cg.slots.length;
    cg.slots.push(slot);
    g.observerCount++;
    cls.observerCount++;
    for (const e of g.entries)
      this.#notify(observer, IndexEvent.Added, e.value, cg.capture(e.value));
    return slot;
  }

  removeObserver(slot: ObserverSlot<O>): void {
    if (slot.index < 0) return;
    const { cg, group: g } = slot;
    const slots = cg.slots;
    const last = slots.pop()!;
    if (last !== slot) {
      slots[slot.index] = last;
      last.index = slot.index;
    }
    slot.index = -1;
    if (slots.length === 0) g.captureGroups.splice(g.captureGroups.indexOf(cg), 1);
    g.observerCount--;
    const cls = g.cls;
    cls.observerCount--;
    if (cls.observerCount === 0) this.#removeClass(cls);
    else if (g.observerCount === 0 && g.entries.length === 0) this.#groupEmptied(g);
  }

  #createClass(disc: Disc<O>, a: Analysis): ObserverClass<O> {
    const cls = new ObserverClass(disc, a);
    disc.classes.push(cls);
    disc.classByKey.set(cls.key, cls);
    for (const source of this.#sources(disc)) {
      for (const e of source.entries) {
        const v = peel(e.value);
        if (passes(cls.checks, v)) this.#join(this.#groupFor(cls, v, true)!, e);
      }
    }
    return cls;
  }

  #removeClass(cls: ObserverClass<O>): void {
    const detach = (g: Group<O>) => {
      for (const e of g.entries) {
        const gs = e.groups;
        const ps = e.positions;
        const i = gs.indexOf(g);
        gs[i] = gs[gs.length - 1]!;
        ps[i] = ps[ps.length - 1]!;
        gs.pop();
        ps.pop();
      }
    };
    if (cls.single !== undefined) detach(cls.single);
    for (const g of cls.groups.values()) detach(g);
    cls.single = undefined;
    cls.groups.clear();
    const disc = cls.disc;
    disc.classes.splice(disc.classes.indexOf(cls), 1);
    disc.classByKey.delete(cls.key);
    this.#maybeDeleteDisc(disc);
  }

  // -- queries

  /** The current assertions matching a pattern, with their captures; at most `limit`. */
  query(pattern: Pattern, limit = Infinity): QueryResult[] {
    const a = analyze(pattern);
    const out: QueryResult[] = [];
    const disc = this.#discOfAnalysis(a, false);
    if (disc === undefined) return out;
    const cls = disc.classByKey.get(a.classKey);
    if (cls !== undefined) {
      const g = a.constKey === undefined ? cls.single : cls.groups.get(a.constKey);
      if (g !== undefined) {
        const cg = new CaptureGroup<O>(a);
        for (const e of g.entries) {
          if (out.length >= limit) break;
          out.push({ value: e.value, captures: cg.capture(e.value) });
        }
      }
      return out;
    }
    for (const source of this.#sources(disc)) {
      for (const e of source.entries) {
        if (out.length >= limit) return out;
        const captures = match(pattern, e.value);
        if (captures !== null) out.push({ value: e.value, captures });
      }
    }
    return out;
  }

  /** Sizes for tests and diagnostics (empty discriminators and groups awaiting a sweep are not counted). */
  stats(): { discriminators: number; classes: number; groups: number } {
    let discriminators = 0;
    let classes = 0;
    let groups = 0;
    const all = [
      ...this.#bySymbol.values(),
      ...this.#byLabel.values(),
      this.#sequences,
      this.#dicts,
      this.#atoms,
      this.#anyRecord,
      this.#any,
    ];
    for (const d of all) {
      if (d.label !== undefined && !d.isEmpty) discriminators++;
      for (const c of d.classes) {
        classes++;
        if (c.single !== undefined) groups++;
        for (const g of c.groups.values())
          if (g.observerCount !== 0 || g.entries.length !== 0) groups++;
      }
    }
    return { discriminators, classes, groups };
  }
}
