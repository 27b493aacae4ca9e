// A function's triggers: HTTP (its URL, a copy button and a ready curl line), cron and NATS.
import { useState } from 'preact/hooks';
import { get, api } from './api.js';
import { ErrorBox, ActionButton, CopyButton, useLoad, fmtTime } from './ui.jsx';

const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS'];

function curlLine(t) {
  const method = t.methods.length && !t.methods.includes('GET') ? ` -X ${t.methods[0]}` : '';
  const auth = t.auth === 'token' ? ' -H "Authorization: Bearer $HEARTH_TOKEN"' : '';
  return `curl -sS${method}${auth} '${t.url}'`;
}

function Field({ id, label, children }) {
  return (
    <div>
      <label for={id}>{label}</label>
      {children}
    </div>
  );
}

function HttpTriggers({ fn, can }) {
  const [data, error, reload] = useLoad(() => get('/v1/triggers'), []);
  const [form, setForm] = useState({ path: `/${fn.name}`, methods: [], auth: 'none', qualifier: '' });
  const [actionError, setActionError] = useState(null);
  const mine = (data?.triggers || []).filter((t) => t.function === fn.name);
  const add = async () => {
    const target = form.qualifier.trim() ? `${fn.name}:${form.qualifier.trim()}` : fn.name;
    await api('POST', '/v1/triggers', { json: { function: target, path: form.path.trim(), methods: form.methods, auth: form.auth } });
    reload();
  };
  const toggle = (m) => setForm({ ...form, methods: form.methods.includes(m) ? form.methods.filter((x) => x !== m) : [...form.methods, m] });
  return (
    <section>
      <h2>HTTP triggers</h2>
      <ErrorBox error={error} />
      {mine.length === 0 && <p class="empty">No HTTP trigger: add one to call the function at a URL.</p>}
      <ul class="trigger-list">
        {mine.map((t) => (
          <li class="trigger" data-testid="http-trigger">
            <div>
              <strong>{t.path}</strong> {t.qualifier && <span class="tag">{t.qualifier}</span>} <span class="tag">{t.methods.length ? t.methods.join(' ') : 'any method'}</span>{' '}
              <span class="tag">{t.auth === 'token' ? 'token required' : 'public'}</span>
            </div>
            {t.url ? (
              <>
                <div class="url-line">
                  <a href={t.url} target="_blank" rel="noopener noreferrer" data-testid="trigger-url">
                    {t.url}
                  </a>{' '}
                  <CopyButton text={t.url} label="Copy URL" />
                </div>
                <div class="url-line">
                  <code data-testid="trigger-curl">{curlLine(t)}</code> <CopyButton text={curlLine(t)} label="Copy curl" />
                </div>
              </>
            ) : (
              <p class="hint">The server does not know its trigger address (set HEARTH_TRIGGER_URL).</p>
            )}
            <ActionButton class="small danger" disabled={!can.deploy} onError={setActionError} action={async () => confirm(`Remove the trigger ${t.path}?`) && (await api('DELETE', `/v1/triggers/${t.id}`), reload())}>
              Remove
            </ActionButton>
          </li>
        ))}
      </ul>
      {can.deploy && (
        <form class="add-trigger" onSubmit={(e) => e.preventDefault()}>
          <h3>Add an HTTP trigger</h3>
          <div class="grid">
            <Field id="trigger-path" label="Path prefix">
              <input id="trigger-path" value={form.path} onInput={(e) => setForm({ ...form, path: e.currentTarget.value })} />
            </Field>
            <Field id="trigger-auth" label="Callers">
              <select id="trigger-auth" value={form.auth} onChange={(e) => setForm({ ...form, auth: e.currentTarget.value })}>
                <option value="none">anyone (public)</option>
                <option value="token">with an invoke token</option>
              </select>
            </Field>
            <Field id="trigger-qualifier" label="Version or alias (optional)">
              <input id="trigger-qualifier" value={form.qualifier} onInput={(e) => setForm({ ...form, qualifier: e.currentTarget.value })} placeholder="$LATEST" />
            </Field>
          </div>
          <fieldset class="methods">
            <legend>Methods (none = any)</legend>
            {METHODS.map((m) => (
              <label class="radio">
                <input type="checkbox" checked={form.methods.includes(m)} onChange={() => toggle(m)} /> {m}
              </label>
            ))}
          </fieldset>
          <ActionButton class="primary" onError={setActionError} action={add}>
            Add HTTP trigger
          </ActionButton>
        </form>
      )}
      <ErrorBox error={actionError} />
    </section>
  );
}

function CronTriggers({ fn, can }) {
  const [data, error, reload] = useLoad(() => get('/v1/schedules'), []);
  const [form, setForm] = useState({ schedule: '0 */5 * * * *', time_zone: '', missed_runs: '' });
  const [actionError, setActionError] = useState(null);
  const mine = (data?.schedules || []).filter((s) => s.function === fn.name);
  const add = async () => {
    const json = { function: fn.name, schedule: form.schedule.trim() };
    if (form.time_zone.trim()) json.time_zone = form.time_zone.trim();
    if (form.missed_runs) json.missed_runs = form.missed_runs;
    await api('POST', '/v1/schedules', { json });
    reload();
  };
  return (
    <section>
      <h2>Cron triggers</h2>
      <ErrorBox error={error} />
      <ul class="trigger-list">
        {mine.map((s) => (
          <li class="trigger" data-testid="cron-trigger">
            <div>
              <strong>{s.schedule}</strong> <span class="tag">{s.time_zone}</span> <span class="tag">fired {s.fired}</span>
            </div>
            <div class="hint">
              next {fmtTime(s.next_fire_at)} · last {fmtTime(s.last_fired_at)}
            </div>
            <ActionButton class="small danger" disabled={!can.deploy} onError={setActionError} action={async () => (await api('DELETE', `/v1/schedules/${s.id}`), reload())}>
              Remove
            </ActionButton>
          </li>
        ))}
      </ul>
      {can.deploy && (
        <form class="add-trigger" onSubmit={(e) => e.preventDefault()}>
          <div class="grid">
            <Field id="cron-schedule" label="Schedule">
              <input id="cron-schedule" value={form.schedule} onInput={(e) => setForm({ ...form, schedule: e.currentTarget.value })} placeholder="sec min hour day month weekday" aria-describedby="cron-hint" />
            </Field>
            <Field id="cron-tz" label="Time zone">
              <input id="cron-tz" value={form.time_zone} onInput={(e) => setForm({ ...form, time_zone: e.currentTarget.value })} placeholder="UTC" />
            </Field>
            <Field id="cron-missed" label="Missed runs">
              <select id="cron-missed" value={form.missed_runs} onChange={(e) => setForm({ ...form, missed_runs: e.currentTarget.value })}>
                <option value="">server default</option>
                <option value="skip">skip</option>
                <option value="once">fire once</option>
              </select>
            </Field>
          </div>
          <p id="cron-hint" class="hint">
            A cron expression with seconds: <code>0 */5 * * * *</code> every five minutes, <code>0 0 9 * * Mon-Fri</code> at 9:00 on weekdays.
          </p>
          <ActionButton class="primary" onError={setActionError} action={add}>
            Add cron trigger
          </ActionButton>
        </form>
      )}
      <ErrorBox error={actionError} />
    </section>
  );
}

function NatsTriggers({ fn, can }) {
  const [data, error, reload] = useLoad(() => get('/v1/nats-triggers'), []);
  const [form, setForm] = useState({ server: 'nats://127.0.0.1:4222', subject: '', stream: '', consumer: '', batch: '' });
  const [actionError, setActionError] = useState(null);
  const mine = (data?.triggers || []).filter((t) => t.function === fn.name);
  const add = async () => {
    const json = { function: fn.name, server: form.server.trim(), subject: form.subject.trim() };
    for (const k of ['stream', 'consumer']) if (form[k].trim()) json[k] = form[k].trim();
    if (form.batch.trim()) json.batch = Number(form.batch);
    await api('POST', '/v1/nats-triggers', { json });
    reload();
  };
  const set = (k) => (e) => setForm({ ...form, [k]: e.currentTarget.value });
  return (
    <section>
      <h2>NATS triggers</h2>
      <ErrorBox error={error} />
      <ul class="trigger-list">
        {mine.map((t) => (
          <li class="trigger" data-testid="nats-trigger">
            <div>
              <strong>{t.subject}</strong> <span class="tag">{t.server}</span> {t.stream && <span class="tag">stream {t.stream}</span>} <span class={`tag ${t.status}`}>{t.status}</span>
            </div>
            {t.error && <div class="error-message">{t.error}</div>}
            <div class="hint">
              received {t.received} · handled {t.handled} · dead-lettered {t.dead_lettered} · dropped {t.dropped}
            </div>
            <ActionButton class="small danger" disabled={!can.deploy} onError={setActionError} action={async () => (await api('DELETE', `/v1/nats-triggers/${t.id}`), reload())}>
              Remove
            </ActionButton>
          </li>
        ))}
      </ul>
      {can.deploy && (
        <form class="add-trigger" onSubmit={(e) => e.preventDefault()}>
          <div class="grid">
            <Field id="nats-server" label="Server">
              <input id="nats-server" value={form.server} onInput={set('server')} />
            </Field>
            <Field id="nats-subject" label="Subject">
              <input id="nats-subject" value={form.subject} onInput={set('subject')} placeholder="orders.>" />
            </Field>
            <Field id="nats-stream" label="JetStream stream (optional)">
              <input id="nats-stream" value={form.stream} onInput={set('stream')} />
            </Field>
            <Field id="nats-consumer" label="Consumer (optional)">
              <input id="nats-consumer" value={form.consumer} onInput={set('consumer')} />
            </Field>
            <Field id="nats-batch" label="Batch size">
              <input id="nats-batch" inputMode="numeric" value={form.batch} onInput={set('batch')} placeholder="1" />
            </Field>
          </div>
          <ActionButton class="primary" onError={setActionError} action={add}>
            Add NATS trigger
          </ActionButton>
        </form>
      )}
      <ErrorBox error={actionError} />
    </section>
  );
}

export function TriggersTab({ fn, can }) {
  return (
    <div class="triggers">
      <HttpTriggers fn={fn} can={can} />
      <CronTriggers fn={fn} can={can} />
      <NatsTriggers fn={fn} can={can} />
    </div>
  );
}
