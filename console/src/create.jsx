// Create a function: from a template, a zip, a folder or an s3:// URL, with every setting.
import { useState } from 'preact/hooks';
import templates from 'hearth-templates';
import { api, request, fnPath } from './api.js';
import { ErrorBox } from './ui.jsx';
import { SettingsForm, emptyForm, specFromForm } from './settings.jsx';
import { readFolder, textFile, writeZip } from './zip.js';

/** Stores a package: zip bytes, or an s3:// URL the server fetches. Returns its sha256. */
export async function uploadPackage(source) {
  const opts =
    typeof source === 'string'
      ? { json: { object_url: source } }
      : { body: source, headers: { 'Content-Type': 'application/zip' } };
  const res = await request('POST', '/v1/packages', opts);
  return (await res.json()).sha256;
}

/** Creates or replaces a function with code and settings in one version. */
export const deploy = (name, spec, sha256) => api('PUT', fnPath(name), { json: { ...spec, code_sha256: sha256 } });

export function templateFiles(runtime) {
  const t = templates[runtime];
  const files = new Map();
  for (const [path, text] of Object.entries(t.files)) files.set(path, textFile(text, path === 'bootstrap' ? 0o755 : 0o644));
  return files;
}

export function CreateFunction({ can }) {
  const [name, setName] = useState('');
  const [source, setSource] = useState('template');
  const [form, setForm] = useState(emptyForm());
  const [zip, setZip] = useState(null);
  const [folder, setFolder] = useState(null);
  const [url, setUrl] = useState('');
  const [error, setError] = useState(null);
  const [progress, setProgress] = useState('');

  const chooseRuntime = (next) => {
    // A template brings its handler; keep what the user typed otherwise.
    if (source === 'template' && next.runtime !== form.runtime) next = { ...next, handler: templates[next.runtime]?.handler ?? '' };
    setForm(next);
  };

  const create = async (e) => {
    e.preventDefault();
    setError(null);
    try {
      // PUT creates or replaces: never replace a function by creating one of the same name.
      const exists = await api('GET', fnPath(name.trim())).then(
        () => true,
        (e) => (e.status === 404 ? false : Promise.reject(e)),
      );
      if (exists) throw { code: 'FunctionExists', message: `${name.trim()} exists already: open it from the list, or choose another name.` };
      let pkg;
      if (source === 'template') {
        if (!templates[form.runtime]) throw { code: 'NoTemplate', message: `No template for ${form.runtime}: upload a zip or a folder instead.` };
        pkg = writeZip(templateFiles(form.runtime));
      } else if (source === 'zip') {
        if (!zip) throw { code: 'NoPackage', message: 'Choose a .zip file.' };
        pkg = new Uint8Array(await zip.arrayBuffer());
      } else if (source === 'folder') {
        if (!folder?.length) throw { code: 'NoPackage', message: 'Choose a folder.' };
        pkg = writeZip(await readFolder(folder));
      } else {
        pkg = url.trim();
      }
      setProgress('Uploading the code…');
      const sha = await uploadPackage(pkg);
      setProgress('Creating the function…');
      await deploy(name.trim(), specFromForm(form), sha);
      location.hash = `#/f/${encodeURIComponent(name.trim())}/code`;
    } catch (err) {
      setError(err);
    } finally {
      setProgress('');
    }
  };

  if (!can.deploy) return <ErrorBox error={{ code: 'InsufficientScope', message: 'Creating a function needs a token with the deploy scope.' }} />;
  return (
    <section>
      <h1>Create a function</h1>
      <form onSubmit={create} class="create">
        <label for="fn-name">Name</label>
        <input id="fn-name" value={name} onInput={(e) => setName(e.currentTarget.value)} placeholder="lowercase letters, digits and -" required autocomplete="off" />
        <fieldset class="source">
          <legend>Code</legend>
          {[
            ['template', 'From a template'],
            ['zip', 'Upload a .zip'],
            ['folder', 'Upload a folder'],
            ['s3', 'From an s3:// URL'],
          ].map(([id, label]) => (
            <label class="radio">
              <input type="radio" name="source" value={id} checked={source === id} onChange={() => setSource(id)} /> {label}
            </label>
          ))}
          {source === 'template' && (
            <p class="hint">
              A hello function for the chosen runtime ({Object.keys(templates).join(', ')}), the same one <code>hearth new</code> writes. Edit it online after.
            </p>
          )}
          {source === 'zip' && (
            <>
              <label for="zip-file">Zip file</label>
              <input id="zip-file" type="file" accept=".zip,application/zip" onChange={(e) => setZip(e.currentTarget.files[0] || null)} />
            </>
          )}
          {source === 'folder' && (
            <>
              <label for="folder-files">Folder</label>
              <input id="folder-files" type="file" webkitdirectory multiple onChange={(e) => setFolder([...e.currentTarget.files])} />
            </>
          )}
          {source === 's3' && (
            <>
              <label for="s3-url">Object URL</label>
              <input id="s3-url" value={url} onInput={(e) => setUrl(e.currentTarget.value)} placeholder="s3://bucket/key.zip" />
            </>
          )}
        </fieldset>
        <SettingsForm value={form} onChange={chooseRuntime} />
        <ErrorBox error={error} />
        {progress && (
          <p role="status" class="progress">
            {progress}
          </p>
        )}
        <div class="actions">
          <button type="submit" class="primary" disabled={!!progress}>
            Create function
          </button>
          <a href="#/functions" class="button">
            Cancel
          </a>
        </div>
      </form>
    </section>
  );
}
