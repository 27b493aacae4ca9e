// Version history: each version's settings and code, a diff against the current one, a
// download of any version, and a roll back (a new version with that version's code and settings).
import { useEffect, useRef, useState } from 'preact/hooks';
import { get, api, fnPath } from './api.js';
import { ErrorBox, ActionButton, useLoad, fmtTime, download } from './ui.jsx';
import { readZip, asText } from './zip.js';
import { diffView } from './codemirror.js';
import { fetchCode } from './editor.jsx';
import { specFromForm, formFromConfig } from './settings.jsx';

function DiffFile({ path, before, after }) {
  const host = useRef(null);
  useEffect(() => {
    const v = diffView(host.current, path, before, after);
    return () => v.destroy();
  }, [path, before, after]);
  return <div ref={host} class="diff" />;
}

/** Files added, removed or changed between two packages, each with its texts. */
function compare(older, newer) {
  const out = [];
  for (const path of [...new Set([...older.keys(), ...newer.keys()])].sort()) {
    const a = older.get(path);
    const b = newer.get(path);
    const same = a && b && a.data.length === b.data.length && a.data.every((x, i) => x === b.data[i]) && a.mode === b.mode;
    if (same) continue;
    out.push({ path, kind: !a ? 'added' : !b ? 'removed' : 'changed', before: a ? asText(a) : '', after: b ? asText(b) : '' });
  }
  return out;
}

function Diff({ fn, version }) {
  const [changes, error] = useLoad(async () => {
    const [older, current] = await Promise.all([fetchCode(fn.name, version.number), fetchCode(fn.name)]);
    return compare(readZip(older), readZip(current));
  }, [fn.latest_version, version.number]);
  const [picked, setPicked] = useState(null);
  if (error) return <ErrorBox error={error} />;
  if (!changes) return <p role="status">Comparing…</p>;
  if (!changes.length) return <p>The code of version {version.number} is the same as the current version's.</p>;
  const shown = changes.find((c) => c.path === picked) || changes[0];
  return (
    <div class="diff-box">
      <h3>
        Version {version.number} → current (version {fn.latest_version})
      </h3>
      <ul class="changes">
        {changes.map((c) => (
          <li>
            <button type="button" class={c === shown ? 'file active' : 'file'} onClick={() => setPicked(c.path)}>
              {c.path} <span class={`tag ${c.kind}`}>{c.kind}</span>
            </button>
          </li>
        ))}
      </ul>
      {shown.before == null || shown.after == null ? <p class="hint">{shown.path} is binary: not shown.</p> : <DiffFile path={shown.path} before={shown.before} after={shown.after} />}
    </div>
  );
}

export function VersionsTab({ fn, can, onChanged }) {
  const [data, error, reload] = useLoad(() => get(`${fnPath(fn.name)}/versions`), [fn.latest_version]);
  const [diffOf, setDiffOf] = useState(null);
  const [actionError, setActionError] = useState(null);
  const [status, setStatus] = useState('');
  const versions = data ? [...data.versions].reverse() : [];

  const rollBack = async (v) => {
    if (!confirm(`Make a new version with the code and settings of version ${v.number}?`)) return;
    const spec = specFromForm(formFromConfig(v.config));
    const r = await api('PUT', fnPath(fn.name), { json: { ...spec, code_sha256: v.code.sha256 } });
    setStatus(r.new_version ? `Rolled back: version ${r.new_version.number} has version ${v.number}'s code and settings` : 'Nothing changed');
    onChanged?.();
    reload();
  };

  return (
    <section>
      <ErrorBox error={error || actionError} />
      {status && (
        <p role="status" class="progress">
          {status}
        </p>
      )}
      <div class="table-wrap">
        <table class="versions">
          <thead>
            <tr>
              <th scope="col">Version</th>
              <th scope="col">Created</th>
              <th scope="col">Code</th>
              <th scope="col">Memory</th>
              <th scope="col">Timeout</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {versions.map((v) => (
              <tr class={v.number === fn.latest_version ? 'current' : ''} data-version={v.number}>
                <td class="num">
                  {v.number} {v.number === fn.latest_version && <span class="badge">current</span>}
                </td>
                <td>{fmtTime(v.created_at)}</td>
                <td>
                  <code title={v.code.sha256}>{v.code.sha256.slice(0, 12)}</code>
                </td>
                <td class="num">{v.config.memory_mb} MB</td>
                <td class="num">{v.config.timeout_s} s</td>
                <td class="row-actions">
                  {v.number !== fn.latest_version && (
                    <button type="button" class="small" onClick={() => setDiffOf(diffOf?.number === v.number ? null : v)} aria-expanded={diffOf?.number === v.number}>
                      Diff with current
                    </button>
                  )}
                  <ActionButton class="small" onError={setActionError} action={async () => download(await fetchCode(fn.name, v.number), `${fn.name}-v${v.number}.zip`)}>
                    Download
                  </ActionButton>
                  {v.number !== fn.latest_version && (
                    <ActionButton class="small" onError={setActionError} disabled={!can.deploy} title={can.deploy ? '' : 'Needs the deploy scope'} action={() => rollBack(v)}>
                      Roll back to this
                    </ActionButton>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {diffOf && <Diff fn={fn} version={diffOf} />}
    </section>
  );
}
