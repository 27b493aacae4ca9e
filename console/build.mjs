// Builds the console into crates/hearth-server/console/ (checked in, served from the binary,
// so `cargo build` needs neither Node nor the network). `node build.mjs --check` builds into a
// temporary folder and fails if the result differs from what is checked in.
import * as esbuild from 'esbuild';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync, copyFileSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const committed = join(here, '..', 'crates', 'hearth-server', 'console');
const check = process.argv.includes('--check');
const out = check ? mkdtempSync(join(tmpdir(), 'hearth-console-')) : committed;
mkdirSync(out, { recursive: true });

// The same function templates `hearth new` writes, as one module.
const templatesDir = join(here, '..', 'crates', 'hearth-cli', 'templates');
const templates = {
  name: 'hearth-templates',
  setup(build) {
    build.onResolve({ filter: /^hearth-templates$/ }, () => ({ path: 'templates', namespace: 'hearth' }));
    build.onLoad({ filter: /.*/, namespace: 'hearth' }, () => {
      const read = (p) => readFileSync(join(templatesDir, p), 'utf8');
      const files = {
        python3: { handler: 'main.handler', files: { 'main.py': read('python3/main.py') } },
        nodejs: { handler: 'index.handler', files: { 'index.mjs': read('nodejs/index.mjs') } },
        provided: { handler: '', files: { bootstrap: read('provided/bootstrap') } },
      };
      return { contents: `export default ${JSON.stringify(files)};`, loader: 'js' };
    });
  },
};

await esbuild.build({
  entryPoints: { app: join(here, 'src', 'main.jsx') },
  bundle: true,
  minify: true,
  format: 'esm',
  target: ['chrome110', 'firefox110', 'safari16'],
  jsx: 'automatic',
  jsxImportSource: 'preact',
  legalComments: 'linked',
  charset: 'utf8',
  outdir: out,
  plugins: [templates],
  logLevel: 'warning',
});
await esbuild.build({
  entryPoints: { app: join(here, 'src', 'styles.css') },
  bundle: true,
  minify: true,
  outdir: out,
  logLevel: 'warning',
});
copyFileSync(join(here, 'src', 'index.html'), join(out, 'index.html'));

if (check) {
  const names = (d) => readdirSync(d).sort();
  const a = names(out);
  const b = names(committed);
  let differ = JSON.stringify(a) !== JSON.stringify(b) ? [`files: built ${a} vs checked in ${b}`] : [];
  for (const f of a) {
    let same = false;
    try { same = readFileSync(join(out, f)).equals(readFileSync(join(committed, f))); } catch {}
    if (!same) differ.push(f);
  }
  rmSync(out, { recursive: true, force: true });
  if (differ.length) {
    console.error(`console: the checked-in build differs from a fresh one (${differ.join(', ')}); run \`cd console && npm ci && node build.mjs\` and commit crates/hearth-server/console/`);
    process.exit(1);
  }
  console.error('console: the checked-in build matches a fresh one');
}
