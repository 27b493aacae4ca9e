// Test: an event (JSON, checked before sending), saved test events and templates, and the
// result with its record (durations, memory, cold or warm, version) and its log lines.
import { useEffect, useRef, useState } from 'preact/hooks';
import { request, get, fnPath } from './api.js';
import { ErrorBox, fmtMs } from './ui.jsx';
import { EditorState, EditorView, basics, language } from './codemirror.js';

const now = () => new Date().toISOString();

export const EVENT_TEMPLATES = {
  'Hello event': () => ({ name: 'Hearth' }),
  'HTTP API (payload 2.0)': (fn) => ({
    version: '2.0',
    routeKey: '$default',
    rawPath: `/${fn}`,
    rawQueryString: 'name=Hearth',
    headers: { accept: '*/*', 'content-type': 'application/json', host: 'localhost' },
    queryStringParameters: { name: 'Hearth' },
    requestContext: {
      accountId: 'hearth',
      apiId: 'hearth',
      domainName: 'localhost',
      http: { method: 'GET', path: `/${fn}`, protocol: 'HTTP/1.1', sourceIp: '127.0.0.1', userAgent: 'hearth-console' },
      requestId: 'console-test',
      routeKey: '$default',
      stage: '$default',
      time: new Date().toUTCString(),
      timeEpoch: Date.now(),
    },
    body: '',
    isBase64Encoded: false,
  }),
  'Scheduled event': () => ({
    version: '0',
    id: crypto.randomUUID(),
    'detail-type': 'Scheduled Event',
    source: 'hearth.schedule',
    account: 'hearth',
    time: now(),
    region: 'local',
    resources: [],
    detail: {},
  }),
  Empty: () => ({}),
};

const storeKey = (name) => `hearth.test-events.${name}`;
function savedEvents(name) {
  try {
    return JSON.parse(localStorage.getItem(storeKey(name)) || '{}');
  } catch {
    return {};
  }
}

/** Invokes and gathers what the console shows of one invocation. */
export async function runTest(name, body) {
  const started = performance.now();
  const res = await request('POST', `${fnPath(name)}/invoke`, { body, headers: { 'Content-Type': 'application/json' } }).catch((e) => {
    if (e.status === 0 || e.status === 401 || e.status === 403) throw e;
    return e; // The API's refusal (throttled, too large, timeout...) is the result to show.
  });
  const wall = performance.now() - started;
  if (!(res instanceof Response)) return { refused: res, wall };
  const requestId = res.headers.get('x-hearth-request-id') || '';
  const payload = await res.text();
  const result = {
    requestId,
    payload,
    wall,
    cold: res.headers.get('x-hearth-cold-start') === 'true',
    version: res.headers.get('x-hearth-version'),
    functionError: res.headers.get('x-hearth-function-error'),
  };
  const [list, logs] = await Promise.all([
    get(`${fnPath(name)}/invocations?limit=1000`),
    get(`${fnPath(name)}/logs?request_id=${encodeURIComponent(requestId)}&limit=1000`),
  ]);
  result.record = list.invocations.find((r) => r.request_id === requestId);
  result.logs = logs.lines;
  return result;
}

function pretty(text) {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

function Result({ r }) {
  if (r.refused) return <ErrorBox error={r.refused} />;
  const rec = r.record || {};
  const failed = !!r.functionError;
  let errorDoc = null;
  if (failed) {
    try {
      errorDoc = JSON.parse(r.payload);
    } catch {}
  }
  return (
    <div class={failed ? 'result failed' : 'result succeeded'} data-testid="test-result">
      <h3>
        {failed ? 'Failed' : 'Succeeded'} <span class={r.cold ? 'tag cold' : 'tag warm'}>{r.cold ? 'cold' : 'warm'}</span> <span class="tag">version {r.version}</span>
      </h3>
      {failed && (
        <p class="function-error">
          <strong data-testid="error-type">{errorDoc?.errorType || r.functionError}</strong>: <span data-testid="error-message">{errorDoc?.errorMessage ?? ''}</span>
        </p>
      )}
      <dl class="facts">
        <dt>Duration</dt>
        <dd>{fmtMs(rec.duration_ms)}</dd>
        <dt>Billed duration</dt>
        <dd>{rec.billed_ms != null ? `${rec.billed_ms} ms` : '—'}</dd>
        <dt>Init duration</dt>
        <dd>{fmtMs(rec.init_duration_ms)}</dd>
        <dt>Max memory used</dt>
        <dd>{rec.max_memory_used_mb != null ? `${rec.max_memory_used_mb} MB of ${rec.memory_mb} MB` : '—'}</dd>
        <dt>Request id</dt>
        <dd>
          <code>{r.requestId}</code>
        </dd>
        <dt>Round trip</dt>
        <dd>{fmtMs(r.wall)}</dd>
      </dl>
      <h4>Response</h4>
      <pre class="payload" data-testid="payload">
        {pretty(r.payload)}
      </pre>
      <h4>Log</h4>
      <pre class="log" data-testid="test-log">
        {(r.logs || []).map((l) => `${l.message}\n`).join('')}
      </pre>
    </div>
  );
}

export function TestTab({ fn, can }) {
  const host = useRef(null);
  const view = useRef(null);
  const [saved, setSaved] = useState(() => savedEvents(fn.name));
  const [eventName, setEventName] = useState('');
  const [problem, setProblem] = useState(null);
  const [result, setResult] = useState(null);
  const [error, setError] = useState(null);
  const [running, setRunning] = useState(false);
  const runRef = useRef(null);

  useEffect(() => {
    const doc = JSON.stringify(EVENT_TEMPLATES['Hello event'](fn.name), null, 2);
    view.current = new EditorView({ parent: host.current, state: EditorState.create({ doc, extensions: [basics({ onSave: () => runRef.current?.() }), language('event.json')] }) });
    return () => view.current.destroy();
  }, []);

  const text = () => view.current.state.doc.toString();
  const setText = (t) => view.current.dispatch({ changes: { from: 0, to: view.current.state.doc.length, insert: t } });

  const run = async () => {
    setProblem(null);
    setError(null);
    const body = text();
    try {
      JSON.parse(body);
    } catch (e) {
      return setProblem({ code: 'InvalidJson', message: `The event is not JSON: ${e.message}` });
    }
    setRunning(true);
    try {
      setResult(await runTest(fn.name, body));
    } catch (e) {
      setError(e);
    } finally {
      setRunning(false);
    }
  };
  runRef.current = run;

  const save = () => {
    const n = eventName.trim();
    if (!n) return setProblem({ code: 'NoName', message: 'Name the event to save it.' });
    try {
      JSON.parse(text());
    } catch (e) {
      return setProblem({ code: 'InvalidJson', message: `The event is not JSON: ${e.message}` });
    }
    const next = { ...saved, [n]: text() };
    localStorage.setItem(storeKey(fn.name), JSON.stringify(next));
    setSaved(next);
    setProblem(null);
  };
  const forget = () => {
    const { [eventName.trim()]: _, ...rest } = saved;
    localStorage.setItem(storeKey(fn.name), JSON.stringify(rest));
    setSaved(rest);
  };

  return (
    <section class="test">
      <div class="toolbar">
        <label for="event-template">Template</label>
        <select id="event-template" onChange={(e) => e.currentTarget.value && setText(JSON.stringify(EVENT_TEMPLATES[e.currentTarget.value](fn.name), null, 2))}>
          <option value="">choose…</option>
          {Object.keys(EVENT_TEMPLATES).map((t) => (
            <option value={t}>{t}</option>
          ))}
        </select>
        <label for="saved-event">Saved</label>
        <select
          id="saved-event"
          onChange={(e) => {
            const n = e.currentTarget.value;
            if (n) {
              setText(saved[n]);
              setEventName(n);
            }
          }}
        >
          <option value="">{Object.keys(saved).length ? 'choose…' : 'none yet'}</option>
          {Object.keys(saved)
            .sort()
            .map((n) => (
              <option value={n}>{n}</option>
            ))}
        </select>
      </div>
      <div ref={host} class="editor event-editor" aria-label="Event JSON" />
      <div class="toolbar">
        <label for="event-name" class="visually-hidden">
          Event name
        </label>
        <input id="event-name" placeholder="event name" value={eventName} onInput={(e) => setEventName(e.currentTarget.value)} />
        <button type="button" class="small" onClick={save}>
          Save event
        </button>
        {saved[eventName.trim()] != null && (
          <button type="button" class="small" onClick={forget}>
            Delete saved event
          </button>
        )}
        <button type="button" class="primary" onClick={run} disabled={running || !can.invoke} title={can.invoke ? 'Invoke with this event' : 'Testing needs the invoke scope'}>
          {running ? 'Running…' : 'Test'}
        </button>
      </div>
      <ErrorBox error={problem || error} />
      {result && <Result r={result} />}
    </section>
  );
}
