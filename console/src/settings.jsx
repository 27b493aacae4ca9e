// Every setting of `hearth fn deploy`, as a form. Values are checked by the API, whose code and
// message are shown; the form only turns text into the spec's JSON. Each field's hint is the
// API's own description of it (ranges and defaults), read from /openapi.json.
import { useEffect, useState } from 'preact/hooks';

let schema = null;
/** FunctionSpec's properties from the server's OpenAPI document (loaded once, no token). */
function useSpecSchema() {
  const [props, setProps] = useState(schema);
  useEffect(() => {
    if (schema) return;
    fetch('/openapi.json')
      .then((r) => (r.ok ? r.json() : null))
      .then((doc) => {
        const spec = doc?.components?.schemas?.FunctionSpec;
        const parts = spec?.allOf || [spec];
        schema = Object.assign({}, ...parts.map((p) => p?.properties || {}));
        setProps(schema);
      })
      .catch(() => {});
  }, []);
  return props || {};
}

const NUMBERS = [
  ['memory_mb', 'Memory (MB)'],
  ['timeout_s', 'Timeout (s)'],
  ['concurrency', 'Concurrency per instance'],
  ['min_instances', 'Min instances'],
  ['max_instances', 'Max instances'],
  ['keep_alive_s', 'Keep-alive (s)'],
  ['ephemeral_storage_mb', 'Ephemeral storage, /tmp (MB)'],
  ['async_retries', 'Async retries'],
  ['max_event_age_s', 'Max event age (s)'],
  ['max_queued_events', 'Max queued events'],
];

export const RUNTIMES = ['python3', 'nodejs', 'provided', 'wasm'];

/** Form values (all strings) from a function's configuration. */
export function formFromConfig(c) {
  const v = { runtime: c.runtime, handler: c.handler || '', description: c.description || '' };
  for (const [k] of NUMBERS) v[k] = c[k] == null ? '' : String(c[k]);
  v.keep_alive_policy = c.keep_alive_policy || '';
  v.network = c.network || 'none';
  v.on_success = c.on_success || '';
  v.on_failure = c.on_failure || '';
  v.environment = Object.entries(c.environment || {}).map(([key, value]) => ({ key, value }));
  return v;
}

export const emptyForm = (runtime = 'python3', handler = 'main.handler') =>
  formFromConfig({ runtime, handler, network: 'none', environment: {} });

/** The spec to send: empty fields left out so they take the server's defaults. */
export function specFromForm(v) {
  const spec = { runtime: v.runtime };
  if (v.handler.trim()) spec.handler = v.handler.trim();
  for (const [k] of NUMBERS) {
    const t = v[k].trim();
    // Sent as typed, number or not: the API's own message explains a bad value.
    if (t) spec[k] = /^-?\d+(\.\d+)?$/.test(t) ? Number(t) : t;
  }
  if (v.keep_alive_policy) spec.keep_alive_policy = v.keep_alive_policy;
  if (v.network) spec.network = v.network;
  if (v.description.trim()) spec.description = v.description.trim();
  if (v.on_success.trim()) spec.on_success = v.on_success.trim();
  if (v.on_failure.trim()) spec.on_failure = v.on_failure.trim();
  const env = {};
  for (const { key, value } of v.environment) if (key.trim()) env[key.trim()] = value;
  if (Object.keys(env).length) spec.environment = env;
  return spec;
}

export function SettingsForm({ value, onChange, disabled, runtimeFixed }) {
  const props = useSpecSchema();
  const set = (k) => (e) => onChange({ ...value, [k]: e.currentTarget.value });
  const setEnv = (i, k) => (e) => {
    const environment = value.environment.map((row, j) => (j === i ? { ...row, [k]: e.currentTarget.value } : row));
    onChange({ ...value, environment });
  };
  const id = (k) => `setting-${k}`;
  return (
    <fieldset class="settings" disabled={disabled}>
      <legend>Settings</legend>
      <div class="grid">
        <div>
          <label for={id('runtime')}>Runtime</label>
          <select id={id('runtime')} value={value.runtime} onChange={set('runtime')} disabled={runtimeFixed}>
            {RUNTIMES.map((r) => (
              <option value={r}>{r}</option>
            ))}
          </select>
        </div>
        <div>
          <label for={id('handler')}>Handler</label>
          <input id={id('handler')} value={value.handler} onInput={set('handler')} placeholder="file.function (not for provided)" />
        </div>
        {NUMBERS.map(([k, label]) => {
          const p = props[k] || {};
          const hint = p.description?.split('\n')[0] || (p.minimum != null ? `${p.minimum}–${p.maximum}` : '');
          return (
          <div>
            <label for={id(k)}>{label}</label>
            <input id={id(k)} inputMode="numeric" value={value[k]} onInput={set(k)} placeholder="default" aria-describedby={hint ? `${id(k)}-hint` : undefined} />
            {hint && (
              <small id={`${id(k)}-hint`} class="hint">
                {hint}
              </small>
            )}
          </div>
          );
        })}
        <div>
          <label for={id('keep_alive_policy')}>Keep-alive policy</label>
          <select id={id('keep_alive_policy')} value={value.keep_alive_policy} onChange={set('keep_alive_policy')}>
            <option value="">server default</option>
            <option value="fixed">fixed</option>
            <option value="adaptive">adaptive</option>
          </select>
        </div>
        <div>
          <label for={id('network')}>Network</label>
          <select id={id('network')} value={value.network} onChange={set('network')}>
            <option value="none">none (loopback only)</option>
            <option value="egress">egress (outbound through NAT)</option>
          </select>
        </div>
        <div>
          <label for={id('on_success')}>On success (async)</label>
          <input id={id('on_success')} value={value.on_success} onInput={set('on_success')} placeholder="NAME, NAME:VERSION or NAME:ALIAS" />
        </div>
        <div>
          <label for={id('on_failure')}>On failure (async)</label>
          <input id={id('on_failure')} value={value.on_failure} onInput={set('on_failure')} placeholder="NAME, NAME:VERSION or NAME:ALIAS" />
        </div>
        <div class="wide">
          <label for={id('description')}>Description</label>
          <input id={id('description')} value={value.description} onInput={set('description')} />
        </div>
      </div>
      <fieldset class="env">
        <legend>Environment</legend>
        {value.environment.map((row, i) => (
          <div class="env-row">
            <label class="visually-hidden" for={`env-key-${i}`}>
              Variable {i + 1} name
            </label>
            <input id={`env-key-${i}`} value={row.key} onInput={setEnv(i, 'key')} placeholder="NAME" />
            <label class="visually-hidden" for={`env-value-${i}`}>
              Variable {i + 1} value
            </label>
            <input id={`env-value-${i}`} value={row.value} onInput={setEnv(i, 'value')} placeholder="value" />
            <button type="button" class="small" onClick={() => onChange({ ...value, environment: value.environment.filter((_, j) => j !== i) })}>
              Remove
            </button>
          </div>
        ))}
        <button type="button" class="small" onClick={() => onChange({ ...value, environment: [...value.environment, { key: '', value: '' }] })}>
          Add variable
        </button>
      </fieldset>
    </fieldset>
  );
}
