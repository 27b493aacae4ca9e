// Observe a function: its live instances, charts over a chosen window, a log that follows new
// lines (server-sent events over fetch), and its usage and cost.
import { useEffect, useRef, useState } from 'preact/hooks';
import { get, follow, fnPath } from './api.js';
import { ErrorBox, useLoad, fmtMs, fmtDuration, fmtTime, useNow } from './ui.jsx';
import { Chart } from './chart.jsx';

const WINDOWS = [
  ['15m', '15 minutes', 900],
  ['1h', '1 hour', 3600],
  ['6h', '6 hours', 21_600],
  ['24h', '24 hours', 86_400],
  ['7d', '7 days', 604_800],
];
/** Lines the log view keeps. */
const LOG_MAX = 2000;

function Instances({ fn, refresh }) {
  const [data, error, reload] = useLoad(() => get(`${fnPath(fn.name)}/instances`), [fn.name, refresh]);
  const now = useNow();
  const list = data?.instances || [];
  return (
    <section>
      <div class="heading">
        <h2>Live instances ({list.length})</h2>
        <button type="button" class="small" onClick={reload}>
          Refresh
        </button>
      </div>
      <ErrorBox error={error} />
      {list.length === 0 ? (
        <p class="empty">No live instance: the next invocation starts one (a cold start).</p>
      ) : (
        <div class="table-wrap">
          <table>
            <thead>
              <tr>
                <th scope="col">Instance</th>
                <th scope="col">Version</th>
                <th scope="col">State</th>
                <th scope="col">Age</th>
                <th scope="col">Requests</th>
                <th scope="col">Memory</th>
                <th scope="col">Last used</th>
              </tr>
            </thead>
            <tbody>
              {list.map((i) => (
                <tr>
                  <td>
                    <code>{i.id}</code>
                  </td>
                  <td class="num">{i.version}</td>
                  <td>{i.state}</td>
                  <td>{fmtDuration((now - Date.parse(i.started_at)) / 1000)}</td>
                  <td class="num">{i.requests_served}</td>
                  <td class="num">{i.memory_used_mb != null ? `${i.memory_used_mb} MB` : '—'}</td>
                  <td>{fmtTime(i.last_used)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

function Charts({ fn, refresh }) {
  const [win, setWin] = useState('1h');
  const seconds = WINDOWS.find((w) => w[0] === win)[2];
  const [stats, error, reload] = useLoad(() => {
    const to = new Date();
    const from = new Date(to.getTime() - seconds * 1000);
    return get(`${fnPath(fn.name)}/stats?from=${encodeURIComponent(from.toISOString())}&to=${encodeURIComponent(to.toISOString())}`);
  }, [fn.name, seconds, refresh]);
  const b = stats?.buckets || [];
  const times = b.map((x) => Date.parse(x.start));
  const t = stats?.total;
  return (
    <section>
      <div class="heading">
        <h2>Charts</h2>
        <div class="actions">
          <label for="window">Window</label>
          <select id="window" value={win} onChange={(e) => setWin(e.currentTarget.value)}>
            {WINDOWS.map(([id, label]) => (
              <option value={id}>{label}</option>
            ))}
          </select>
          <button type="button" class="small" onClick={reload}>
            Refresh
          </button>
        </div>
      </div>
      <ErrorBox error={error} />
      {stats && (
        <div class="charts">
          <Chart
            testid="chart-invocations"
            title="Invocations and errors"
            times={times}
            summary={`${t.invocations} invocations, ${t.errors} errors`}
            series={[
              { label: 'invocations', kind: 'bar', cls: 's1', values: b.map((x) => x.invocations) },
              { label: 'errors', kind: 'bar', cls: 's2', values: b.map((x) => x.errors) },
            ]}
          />
          <Chart
            testid="chart-duration"
            title="Duration"
            times={times}
            format={(v) => fmtMs(v)}
            summary={`p50 ${fmtMs(t.p50_ms)}, p99 ${fmtMs(t.p99_ms)}`}
            series={[
              { label: 'p50', kind: 'line', cls: 's1', values: b.map((x) => x.p50_ms) },
              { label: 'p99', kind: 'line', cls: 's2', values: b.map((x) => x.p99_ms) },
            ]}
          />
          <Chart testid="chart-cold" title="Cold starts" times={times} summary={`${t.cold_starts} cold starts`} series={[{ label: 'cold starts', kind: 'bar', cls: 's3', values: b.map((x) => x.cold_starts) }]} />
          <Chart
            testid="chart-instances"
            title="Instances"
            times={times}
            summary={`at most ${Math.max(0, ...b.map((x) => x.max_instances ?? 0))} at once`}
            series={[{ label: 'instances', kind: 'line', cls: 's4', values: b.map((x) => x.max_instances) }]}
          />
        </div>
      )}
    </section>
  );
}

function Logs({ fn, onLine }) {
  const [filter, setFilter] = useState('');
  const [applied, setApplied] = useState('');
  const [lines, setLines] = useState([]);
  const [state, setState] = useState('connecting');
  const box = useRef(null);
  const stick = useRef(true);
  useEffect(() => {
    setLines([]);
    const ctl = new AbortController();
    // The recent past first (one invocation's: all its lines, up to 1,000), then new lines.
    const q = new URLSearchParams({ tail: applied ? '1000' : '200' });
    if (applied) q.set('request_id', applied);
    let pending = [];
    let timer = null;
    // Lines arrive in bursts: render them together, at most every 100 ms.
    const flush = () => {
      timer = null;
      const got = pending;
      pending = [];
      setLines((old) => [...old, ...got].slice(-LOG_MAX));
      onLine?.();
    };
    follow(`${fnPath(fn.name)}/logs/stream?${q}`, {
      signal: ctl.signal,
      onState: (s, e) => setState(s === 'open' ? 'following' : `reconnecting (${e?.code || e?.message || 'lost'})`),
      onEvent: (ev) => {
        if (ev.event !== 'line') return;
        try {
          pending.push(JSON.parse(ev.data));
        } catch {}
        timer ??= setTimeout(flush, 100);
      },
    });
    return () => {
      ctl.abort();
      clearTimeout(timer);
    };
  }, [fn.name, applied]);
  useEffect(() => {
    if (stick.current && box.current) box.current.scrollTop = box.current.scrollHeight;
  }, [lines]);
  return (
    <section>
      <div class="heading">
        <h2>Log</h2>
        <form
          class="actions"
          onSubmit={(e) => {
            e.preventDefault();
            setApplied(filter.trim());
          }}
        >
          <label for="log-filter">Request id</label>
          <input id="log-filter" value={filter} onInput={(e) => setFilter(e.currentTarget.value)} placeholder="all requests" />
          <button type="submit" class="small">
            Filter
          </button>
          <span class="status" role="status" data-testid="log-state">
            {state}
          </span>
        </form>
      </div>
      <div class="log" ref={box} tabIndex={0} aria-label="Log lines" data-testid="log-view" onScroll={(e) => (stick.current = e.currentTarget.scrollTop + e.currentTarget.clientHeight >= e.currentTarget.scrollHeight - 4)}>
        {lines.length === 0 && <div class="hint">No lines yet: they appear here as the function writes them.</div>}
        {lines.map((l) => (
          <div class={`line ${l.stream}`} data-request-id={l.request_id ?? ''}>
            <span class="at">{new Date(l.at).toLocaleTimeString()}</span> <span class="rid">{l.request_id?.slice(0, 8) ?? ''}</span> <span class="msg">{l.message}</span>
          </div>
        ))}
      </div>
    </section>
  );
}

function Usage({ fn, refresh }) {
  const [data, error] = useLoad(() => get(`/v1/usage?function=${encodeURIComponent(fn.name)}&group_by=day`), [fn.name, refresh]);
  const t = data?.total;
  return (
    <section>
      <h2>Usage and cost (last 24 hours)</h2>
      <ErrorBox error={error} />
      {t && (
        <dl class="facts">
          <dt>Requests</dt>
          <dd>{t.requests}</dd>
          <dt>Errors</dt>
          <dd>{t.errors}</dd>
          <dt>Compute</dt>
          <dd>{t.gb_seconds.toFixed(3)} GB-s</dd>
          <dt>Provisioned</dt>
          <dd>{t.provisioned_gb_seconds.toFixed(3)} GB-s</dd>
          <dt>Cost</dt>
          <dd>{t.cost.total.toFixed(6)}</dd>
        </dl>
      )}
    </section>
  );
}

export function MonitorTab({ fn }) {
  // New log lines mean new invocations: charts and instances reload (at most every 2 s).
  const [refresh, setRefresh] = useState(0);
  const last = useRef(0);
  const timer = useRef(null);
  const onLine = () => {
    if (timer.current) return;
    const wait = Math.max(0, 2000 - (Date.now() - last.current));
    timer.current = setTimeout(() => {
      timer.current = null;
      last.current = Date.now();
      setRefresh((r) => r + 1);
    }, wait);
  };
  useEffect(() => () => clearTimeout(timer.current), []);
  return (
    <div class="monitor">
      <Instances fn={fn} refresh={refresh} />
      <Charts fn={fn} refresh={refresh} />
      <Logs fn={fn} onLine={onLine} />
      <Usage fn={fn} refresh={refresh} />
    </div>
  );
}
