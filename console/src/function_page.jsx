// One function: its header and the tabs Code, Test, Versions, Triggers, Monitor, Configuration.
import { useState } from 'preact/hooks';
import { get, api, fnPath } from './api.js';
import { ErrorBox, ActionButton, Tabs, useLoad, fmtAgo } from './ui.jsx';
import { CodeTab } from './editor.jsx';
import { TestTab } from './test_tab.jsx';
import { VersionsTab } from './versions.jsx';
import { TriggersTab } from './triggers.jsx';
import { MonitorTab } from './monitor.jsx';
import { SettingsForm, formFromConfig, specFromForm } from './settings.jsx';

const TABS = [
  ['code', 'Code'],
  ['test', 'Test'],
  ['versions', 'Versions'],
  ['triggers', 'Triggers'],
  ['monitor', 'Monitor'],
  ['configuration', 'Configuration'],
];

function ConfigurationTab({ fn, can, onSaved }) {
  const [form, setForm] = useState(() => formFromConfig(fn.config));
  const [error, setError] = useState(null);
  const [status, setStatus] = useState('');
  const save = async () => {
    const r = await api('PUT', fnPath(fn.name), { json: specFromForm(form) });
    setStatus(r.new_version ? `Saved as version ${r.new_version.number}` : 'Saved: nothing changed');
    onSaved();
  };
  const remove = async () => {
    if (!confirm(`Delete ${fn.name}, all its versions, triggers and events? This cannot be undone.`)) return;
    await api('DELETE', fnPath(fn.name));
    location.hash = '#/functions';
  };
  return (
    <section>
      <form onSubmit={(e) => e.preventDefault()}>
        <SettingsForm value={form} onChange={setForm} disabled={!can.deploy} runtimeFixed={false} />
        <ErrorBox error={error} />
        {status && (
          <p role="status" class="progress">
            {status}
          </p>
        )}
        <div class="actions">
          <ActionButton class="primary" onError={setError} disabled={!can.deploy} title={can.deploy ? '' : 'Needs the deploy scope'} action={save}>
            Save settings
          </ActionButton>
          <ActionButton class="danger" onError={setError} disabled={!can.deploy} action={remove}>
            Delete function
          </ActionButton>
        </div>
      </form>
    </section>
  );
}

export function FunctionPage({ name, tab, can }) {
  const [fn, error, reload] = useLoad(() => get(fnPath(name)), [name]);
  const base = `#/f/${encodeURIComponent(name)}`;
  const current = TABS.some((t) => t[0] === tab) ? tab : 'code';
  let body = null;
  if (fn) {
    if (current === 'code') body = <CodeTab fn={fn} can={can} onSaved={reload} />;
    else if (current === 'test') body = <TestTab fn={fn} can={can} />;
    else if (current === 'versions') body = <VersionsTab fn={fn} can={can} onChanged={reload} />;
    else if (current === 'triggers') body = <TriggersTab fn={fn} can={can} />;
    else if (current === 'monitor') body = <MonitorTab fn={fn} />;
    else body = <ConfigurationTab fn={fn} can={can} onSaved={reload} key={fn.revision} />;
  }
  return (
    <section class="function">
      <p class="crumbs">
        <a href="#/functions">Functions</a> /
      </p>
      <div class="heading">
        <h1>{name}</h1>
        {fn && (
          <span class="meta" data-testid="function-meta">
            {fn.config.runtime} · {fn.config.memory_mb} MB · version <span data-testid="latest-version">{fn.latest_version ?? '—'}</span> · modified {fmtAgo(fn.updated_at)}
          </span>
        )}
      </div>
      {fn?.config.description && <p class="description">{fn.config.description}</p>}
      <ErrorBox error={error} />
      {fn && <Tabs tabs={TABS} current={current} base={base} />}
      {body}
    </section>
  );
}
