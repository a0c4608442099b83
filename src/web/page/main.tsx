// The page's entry point: renders the app into <div id="app"> of index.html.

import { render } from 'preact';
import { App } from './app.tsx';

const root = document.getElementById('app');
if (root !== null) render(<App />, root);
