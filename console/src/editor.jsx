// The online editor: the package's files and folders, CodeMirror for each text file, saved as
// a new version (button or Ctrl-S). Compiled and image functions get settings and a download.
import { useEffect, useRef, useState } from 'preact/hooks';
import { request, api, fnPath } from './api.js';
import { ErrorBox, ActionButton, download } from './ui.jsx';
import { EditorState, EditorView, basics, language, cspNonce } from './codemirror.js';
import { readZip, asText, writeZip, textFile } from './zip.js';
import { uploadPackage } from './create.jsx';

export const EDITABLE_RUNTIMES = ['python3', 'nodejs'];

export async function fetchCode(name, version) {
  const q = version ? `?version=${version}` : '';
  const res = await request('GET', `${fnPath(name)}/code${q}`);
  return new Uint8Array(await res.arrayBuffer());
}

/** Folder rows and file rows, in order, for the file tree. */
function treeRows(paths) {
  const rows = [];
  const seen = new Set();
  for (const path of [...paths].sort()) {
    const parts = path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join('/');
      if (!seen.has(dir)) {
        seen.add(dir);
        rows.push({ kind: 'dir', path: dir, name: parts[i - 1], depth: i - 1 });
      }
    }
    rows.push({ kind: 'file', path, name: parts[parts.length - 1], depth: parts.length - 1 });
  }
  return rows;
}

/** A path the package may hold: relative, no `..`, no empty parts. */
function pathProblem(path, files, except) {
  if (!path) return 'Give the file a path, e.g. lib/util.py.';
  if (path.startsWith('/') || path.split('/').some((p) => p === '' || p === '.' || p === '..')) return 'Use a relative path without empty, "." or ".." parts.';
  if (path !== except && files.has(path)) return `${path} exists already.`;
  if ([...files.keys()].some((f) => f.startsWith(`${path}/`))) return `${path} is a folder.`;
  return null;
}

export function CodeTab({ fn, can, onSaved }) {
  if (!EDITABLE_RUNTIMES.includes(fn.config.runtime)) return <CompiledCode fn={fn} />;
  return <CodeEditor fn={fn} can={can} onSaved={onSaved} />;
}

function CompiledCode({ fn }) {
  const [error, setError] = useState(null);
  const c = fn.config;
  return (
    <section>
      <p>
        {c.runtime} functions are not edited online: build them on your machine and deploy with <code>hearth fn deploy</code>.
      </p>
      <dl class="facts">
        <dt>Runtime</dt>
        <dd>{c.runtime}</dd>
        <dt>Handler</dt>
        <dd>{c.handler || '—'}</dd>
        <dt>Code</dt>
        <dd>
          <code>{fn.code?.sha256?.slice(0, 12)}</code> ({fn.code?.size_bytes} bytes)
        </dd>
      </dl>
      <ActionButton onError={setError} action={async () => download(await fetchCode(fn.name), `${fn.name}-v${fn.latest_version}.zip`)}>
        Download the package
      </ActionButton>
      <ErrorBox error={error} />
    </section>
  );
}

function CodeEditor({ fn, can, onSaved }) {
  const host = useRef(null);
  const view = useRef(null);
  // files: path -> {data, mode} as loaded (or made); states: path -> EditorState of text files;
  // texts: path -> the text as loaded, so an unchanged file is saved with its own bytes.
  const model = useRef({ files: new Map(), states: new Map(), texts: new Map() });
  const [paths, setPaths] = useState([]);
  const [current, setCurrent] = useState(null);
  const [dirty, setDirty] = useState(false);
  const [error, setError] = useState(null);
  const [status, setStatus] = useState('Loading the code…');
  const [naming, setNaming] = useState(null); // { mode: 'new' | 'rename', value }
  const saveRef = useRef(null);

  const stateFor = (path, text) =>
    EditorState.create({
      doc: text,
      extensions: [basics({ readOnly: !can.deploy, onSave: () => can.deploy && saveRef.current?.(), onChange: (s) => (model.current.states.set(path, s), setDirty(true)) }), language(path)],
    });

  const open = (path) => {
    const m = model.current;
    if (!m.states.has(path)) return setCurrent(path);
    view.current.setState(m.states.get(path));
    setCurrent(path);
  };

  useEffect(() => {
    view.current = new EditorView({ parent: host.current, state: EditorState.create({ doc: '', extensions: [cspNonce] }) });
    (async () => {
      try {
        const files = readZip(await fetchCode(fn.name));
        const m = model.current;
        m.files = files;
        for (const [path, f] of files) {
          const text = asText(f);
          if (text != null) {
            m.states.set(path, stateFor(path, text));
            m.texts.set(path, text);
          }
        }
        const names = [...files.keys()];
        setPaths(names);
        const handlerFile = fn.config.handler.split('.')[0];
        open(names.find((p) => p.startsWith(`${handlerFile}.`)) || names.find((p) => m.states.has(p)) || names[0]);
        setStatus(`Version ${fn.latest_version}`);
      } catch (e) {
        setError(e);
        setStatus('');
      }
    })();
    return () => view.current.destroy();
  }, []);

  // Without the deploy scope the button is disabled; if forced, the API's refusal is shown.
  const save = async () => {
    setError(null);
    const m = model.current;
    const files = new Map();
    for (const [path, f] of m.files) {
      const text = m.states.get(path)?.doc.toString();
      // Unchanged files keep their bytes (line endings, byte order mark) and mode.
      files.set(path, text == null || text === m.texts.get(path) ? f : textFile(text, f.mode));
    }
    setStatus('Saving…');
    try {
      const sha = await uploadPackage(writeZip(files));
      const r = await api('PATCH', fnPath(fn.name), { json: { code_sha256: sha } });
      setDirty(false);
      setStatus(r.new_version ? `Saved as version ${r.new_version.number}` : 'No change: the code is the same as the current version');
      onSaved?.();
    } catch (e) {
      setError(e);
      setStatus('Not saved');
    }
  };
  saveRef.current = save;

  const finishNaming = (e) => {
    e.preventDefault();
    const m = model.current;
    const path = naming.value.trim();
    const problem = pathProblem(path, m.files, naming.mode === 'rename' ? current : null);
    if (problem) return setError({ code: 'InvalidPath', message: problem });
    if (naming.mode === 'new') {
      m.files.set(path, textFile(''));
      m.states.set(path, stateFor(path, ''));
    } else if (path !== current) {
      m.files.set(path, m.files.get(current));
      m.files.delete(current);
      if (m.states.has(current)) {
        // A new state: the language follows the new name; the text is kept.
        m.states.set(path, stateFor(path, m.states.get(current).doc.toString()));
        m.states.delete(current);
      }
    }
    setNaming(null);
    setError(null);
    setDirty(true);
    setPaths([...m.files.keys()]);
    open(path);
  };

  const remove = () => {
    if (!current || !confirm(`Delete ${current}?`)) return;
    const m = model.current;
    m.files.delete(current);
    m.states.delete(current);
    const names = [...m.files.keys()];
    setPaths(names);
    setDirty(true);
    const next = names.find((p) => m.states.has(p));
    if (next) open(next);
    else {
      setCurrent(null);
      view.current.setState(EditorState.create({ doc: '', extensions: [cspNonce] }));
    }
  };

  const binary = current && !model.current.states.has(current);
  return (
    <section class="code">
      <div class="toolbar">
        <button type="button" class="primary" onClick={save} disabled={!can.deploy || status === 'Saving…'} title={can.deploy ? 'Save as a new version (Ctrl-S)' : 'Saving needs a token with the deploy scope'}>
          Save
        </button>
        <button type="button" onClick={() => setNaming({ mode: 'new', value: '' })} disabled={!can.deploy}>
          New file
        </button>
        <button type="button" onClick={() => setNaming({ mode: 'rename', value: current })} disabled={!can.deploy || !current}>
          Rename
        </button>
        <button type="button" onClick={remove} disabled={!can.deploy || !current}>
          Delete
        </button>
        <span class="status" role="status" aria-live="polite">
          {status}
          {dirty ? ' · unsaved changes' : ''}
        </span>
        {!can.deploy && <span class="badge">read-only: saving needs the deploy scope</span>}
      </div>
      {naming && (
        <form class="naming" onSubmit={finishNaming}>
          <label for="file-path">{naming.mode === 'new' ? 'New file path' : `Rename ${current} to`}</label>
          <input id="file-path" value={naming.value} onInput={(e) => setNaming({ ...naming, value: e.currentTarget.value })} autoFocus />
          <button type="submit" class="small">
            OK
          </button>
          <button type="button" class="small" onClick={() => setNaming(null)}>
            Cancel
          </button>
        </form>
      )}
      <ErrorBox error={error} onClose={() => setError(null)} />
      <div class="workbench">
        <nav class="files" aria-label="Files">
          <ul>
            {treeRows(paths).map((r) =>
              r.kind === 'dir' ? (
                <li class="dir" style={{ paddingLeft: `${r.depth}em` }}>
                  {r.name}/
                </li>
              ) : (
                <li style={{ paddingLeft: `${r.depth}em` }}>
                  <button type="button" class={r.path === current ? 'file active' : 'file'} aria-current={r.path === current ? 'true' : undefined} onClick={() => open(r.path)} data-path={r.path}>
                    {r.name}
                  </button>
                </li>
              ),
            )}
          </ul>
        </nav>
        <div class="editor-pane">
          {current && <div class="path">{current}</div>}
          {binary && <p class="hint">{current} is binary or over 1 MiB: it is kept as it is and not shown.</p>}
          <div ref={host} class={binary ? 'editor hidden' : 'editor'} />
        </div>
      </div>
    </section>
  );
}
