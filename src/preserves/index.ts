// The Preserves implementation's public surface. Import from here, not from
// the individual modules, so that compare.ts is always loaded (it registers
// hashing and equality for sets and dictionaries).

export * from './values.ts';
export * from './compare.ts';
export * from './errors.ts';
export * from './binary.ts';
export * from './digest.ts';
export * from './json.ts';
export * from './text-reader.ts';
export * from './text-writer.ts';
export * from './measure.ts';
export * from './show.ts';
