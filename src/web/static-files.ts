// The page's files (dist/web/static, built by scripts/build-web.mjs), read once at
// start into memory with their gzip form: `/` is index.html, `/assets/NAME` a file of
// the directory, anything else 404. No path from the URL ever reaches the file system.

import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname, join } from 'node:path';
import { gzipSync } from 'node:zlib';

const TYPES: { [ext: string]: string } = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
};

/** The page's files are small; a directory holding more is not the page's. */
const MAX_TOTAL = 16 * 1024 * 1024;

interface File {
  readonly type: string;
  readonly body: Buffer;
  readonly gzip: Buffer;
  readonly etag: string;
}

export class StaticFiles {
  readonly #files = new Map<string, File>();

  constructor(dir: string) {
    let total = 0;
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (!statSync(path).isFile()) continue;
      const type = TYPES[extname(name)];
      if (type === undefined) continue;
      const body = readFileSync(path);
      total += body.length;
      if (total > MAX_TOTAL) throw new Error(`${dir} holds more than ${MAX_TOTAL} bytes of files`);
      const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`;
      this.#files.set(name, { type, body, gzip: gzipSync(body, { level: 9 }), etag });
    }
    if (!this.#files.has('index.html'))
      throw new Error(`${dir} has no index.html: build the page (npm run build)`);
  }

  /** Bytes a browser downloads for the page (gzip): index.html and its assets, not the source map or the bundled licences (app.js.LEGAL.txt). */
  compressedSize(): number {
    let n = 0;
    for (const [name, f] of this.#files)
      if (!name.endsWith('.map') && !name.endsWith('.txt')) n += f.gzip.length;
    return n;
  }

  serve(path: string, req: IncomingMessage, res: ServerResponse): void {
    const name =
      path === '/'
        ? 'index.html'
        : path.startsWith('/assets/')
          ? path.slice('/assets/'.length)
          : '';
    const f = name.includes('/') ? undefined : this.#files.get(name);
    if (f === undefined) {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found\n');
      return;
    }
    const headers: { [k: string]: string | number } = {
      'content-type': f.type,
      etag: f.etag,
      'cache-control': 'no-cache',
      vary: 'accept-encoding',
    };
    if (req.headers['if-none-match'] === f.etag) {
      res.writeHead(304, headers).end();
      return;
    }
    const gz = /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''));
    const body = gz ? f.gzip : f.body;
    if (gz) headers['content-encoding'] = 'gzip';
    headers['content-length'] = body.length;
    res.writeHead(200, headers);
    res.end(req.method === 'HEAD' ? undefined : body);
  }
}
