// Lint rules for limen. The layering in STYLE.md is enforced here with
// no-restricted-imports: each layer lists the layers it may not reach.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

// Layers, lowest first. A file in a layer may import only from layers to its left
// (and from itself); the CLI reaches the daemon only through control/client.
const layers = {
  base: [],
  // Node-level utilities every layer above may use (atomic files, locks).
  platform: ['base'],
  preserves: ['base'],
  dataspace: ['base', 'preserves'],
  script: ['base', 'platform', 'preserves', 'dataspace'],
  supervisor: ['base', 'platform', 'preserves', 'dataspace'],
  net: ['base', 'platform', 'preserves', 'dataspace'],
  control: ['base', 'platform', 'preserves', 'dataspace', 'script'],
  safety: ['base', 'platform', 'preserves', 'dataspace', 'script'],
  // The lab drives a daemon from outside, and cleans up after one it killed (the
  // supervisor's process tracking).
  lab: ['base', 'platform', 'preserves', 'control', 'supervisor'],
  daemon: [
    'base',
    'platform',
    'preserves',
    'dataspace',
    'script',
    'supervisor',
    'net',
    'control',
    'safety',
  ],
  cli: ['base', 'platform', 'preserves', 'dataspace', 'script', 'control', 'lab', 'daemon'],
  // The dashboard's server, an unprivileged process of its own: it reaches the daemon
  // only through the control protocol's client.
  web: ['base', 'platform', 'preserves', 'control'],
};
const all = Object.keys(layers);

function layerConfig(layer, allowed) {
  const forbidden = all.filter((l) => l !== layer && !allowed.includes(l));
  const patterns = forbidden.map((l) => ({
    group: [`**/${l}/**`, `../${l}/*`, `../../${l}/*`],
    message: `src/${layer} may not import from src/${l} (layering: see docs/architecture.md)`,
  }));
  if (layer === 'base') {
    patterns.push({ group: ['node:*'], message: 'src/base imports no node:* modules' });
  }
  return {
    files: [`src/${layer}/**/*.ts`],
    rules: { 'no-restricted-imports': ['error', { patterns }] },
  };
}

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'coverage/'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          allowForKnownSafeCalls: [
            { from: 'package', package: 'node:test', name: ['describe', 'it', 'test', 'suite'] },
          ],
        },
      ],
      '@typescript-eslint/switch-exhaustiveness-check': [
        'error',
        { considerDefaultExhaustiveForUnions: true },
      ],
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_' },
      ],
      '@typescript-eslint/no-parameter-properties': 'off',
      'no-console': 'error',
    },
  },
  ...Object.entries(layers).map(([layer, allowed]) => layerConfig(layer, allowed)),
  {
    // The daemon's import of the CLI is forbidden; the CLI's reach into the daemon is
    // only for `limen daemon` (the composition root), never for its internals.
    files: ['src/cli/**/*.ts'],
    rules: { 'no-console': 'off' },
  },
  {
    // The web page is browser code bundled on its own: it imports preact, dagre and its
    // own files, never the daemon's layers or node:* modules.
    files: ['src/web/page/**/*.ts', 'src/web/page/**/*.tsx'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: ['node:*'], message: 'the web page runs in a browser: no node:* modules' },
            {
              group: ['../*', '!./*'],
              message: 'src/web/page imports only its own files (it is bundled for the browser)',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    extends: [tseslint.configs.disableTypeChecked],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly' } },
    rules: { 'no-console': 'off' },
  },
  {
    // The CLI's shim and its code cache are CommonJS (bin/package.json): see their headers.
    files: ['bin/*.js'],
    languageOptions: {
      sourceType: 'commonjs',
      globals: { require: 'readonly', __dirname: 'readonly' },
    },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    files: ['test/**/*.ts', 'bench/**/*.ts', 'scripts/**/*.ts'],
    rules: { 'no-console': 'off', '@typescript-eslint/no-non-null-assertion': 'off' },
  },
);
