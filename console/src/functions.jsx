// The function list: settings and the last hour's invocations, errors, p99 and live instances.
import { useState } from 'preact/hooks';
import { get } from './api.js';
import { ErrorBox, useLoad, fmtMs, fmtAgo } from './ui.jsx';

const COLUMNS = [
  ['name', 'Name', (f) => f.name],
  ['runtime', 'Runtime', (f) => f.config.runtime],
  ['memory', 'Memory', (f) => f.config.memory_mb],
  ['version', 'Version', (f) => f.latest_version ?? 0],
  ['modified', 'Last modified', (f) => f.updated_at],
  ['invocations', 'Invocations (1 h)', (f) => f.stats?.invocations ?? 0],
  ['errors', 'Errors (1 h)', (f) => f.stats?.errors ?? 0],
  ['p99', 'p99 (1 h)', (f) => f.stats?.p99_ms ?? -1],
  ['instances', 'Live instances', (f) => f.stats?.live_instances ?? 0],
];

export function FunctionList({ can }) {
  const [query, setQuery] = useState('');
  const [sort, setSort] = useState({ by: 'name', desc: false });
  const [data, error, reload, loading] = useLoad(async () => {
    const [list, stats] = await Promise.all([get('/v1/functions'), get('/v1/stats?window_s=3600')]);
    const byName = new Map(stats.functions.map((s) => [s.name, s]));
    return list.functions.map((f) => ({ ...f, stats: byName.get(f.name) }));
  }, []);
  const key = COLUMNS.find((c) => c[0] === sort.by)[2];
  const q = query.trim().toLowerCase();
  const rows = (data || [])
    .filter((f) => !q || f.name.includes(q) || f.config.runtime.includes(q) || (f.config.description || '').toLowerCase().includes(q))
    .sort((a, b) => {
      const x = key(a);
      const y = key(b);
      const c = x < y ? -1 : x > y ? 1 : 0;
      return sort.desc ? -c : c;
    });
  const sortBy = (by) => setSort((s) => ({ by, desc: s.by === by ? !s.desc : false }));
  return (
    <section>
      <div class="heading">
        <h1>Functions</h1>
        <div class="actions">
          <button type="button" class="small" onClick={reload} disabled={loading}>
            Refresh
          </button>
          {can.deploy ? (
            <a class="button primary" href="#/new">
              Create function
            </a>
          ) : (
            <span class="hint">Read-only token: creating functions needs the deploy scope.</span>
          )}
        </div>
      </div>
      <label for="search" class="visually-hidden">
        Search functions
      </label>
      <input id="search" type="search" placeholder="Search by name, runtime or description" value={query} onInput={(e) => setQuery(e.currentTarget.value)} />
      <ErrorBox error={error} />
      {data && data.length === 0 && (
        <p class="empty">
          No functions yet. {can.deploy ? <a href="#/new">Create one</a> : null} or run <code>hearth new hello --runtime python3 && cd hello && hearth deploy</code>.
        </p>
      )}
      {rows.length > 0 && (
        <div class="table-wrap">
          <table class="functions">
            <thead>
              <tr>
                {COLUMNS.map(([id, label]) => (
                  <th scope="col" aria-sort={sort.by === id ? (sort.desc ? 'descending' : 'ascending') : 'none'}>
                    <button type="button" class="sort" onClick={() => sortBy(id)}>
                      {label} {sort.by === id ? (sort.desc ? '▼' : '▲') : ''}
                    </button>
                  </th>
                ))}
              </tr>
            </thead>
            <tbody>
              {rows.map((f) => (
                <tr>
                  <td>
                    <a href={`#/f/${encodeURIComponent(f.name)}/code`}>{f.name}</a>
                  </td>
                  <td>{f.config.runtime}</td>
                  <td class="num">{f.config.memory_mb} MB</td>
                  <td class="num">{f.latest_version ?? '—'}</td>
                  <td title={f.updated_at}>{fmtAgo(f.updated_at)}</td>
                  <td class="num">{f.stats?.invocations ?? 0}</td>
                  <td class={f.stats?.errors ? 'num bad' : 'num'}>{f.stats?.errors ?? 0}</td>
                  <td class="num">{fmtMs(f.stats?.p99_ms)}</td>
                  <td class="num">{f.stats?.live_instances ?? 0}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
