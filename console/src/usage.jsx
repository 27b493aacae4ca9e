// Usage and cost of every function over a chosen period, as `hearth usage` shows it.
import { useState } from 'preact/hooks';
import { get } from './api.js';
import { ErrorBox, useLoad } from './ui.jsx';

const PERIODS = [
  ['1', 'last 24 hours', 'hour'],
  ['7', 'last 7 days', 'day'],
  ['30', 'last 30 days', 'day'],
];

export function UsagePage() {
  const [days, setDays] = useState('1');
  const [by, setBy] = useState('function');
  const [data, error] = useLoad(() => {
    const to = new Date();
    const from = new Date(to.getTime() - Number(days) * 86_400_000);
    return get(`/v1/usage?from=${encodeURIComponent(from.toISOString())}&to=${encodeURIComponent(to.toISOString())}&group_by=${by}`);
  }, [days, by]);
  const label = (r) => (by === 'function' ? r.function : by === 'version' ? `${r.function}:${r.version}` : new Date(r.period_start).toLocaleString());
  return (
    <section>
      <h1>Usage</h1>
      <div class="toolbar">
        <label for="usage-period">Period</label>
        <select id="usage-period" value={days} onChange={(e) => setDays(e.currentTarget.value)}>
          {PERIODS.map(([d, l]) => (
            <option value={d}>{l}</option>
          ))}
        </select>
        <label for="usage-group">Group by</label>
        <select id="usage-group" value={by} onChange={(e) => setBy(e.currentTarget.value)}>
          <option value="function">function</option>
          <option value="version">version</option>
          <option value="day">day</option>
          <option value="hour">hour</option>
        </select>
      </div>
      <ErrorBox error={error} />
      {data && (
        <>
          <p class="hint">
            Prices: {data.prices.per_million_requests} per million requests, {data.prices.per_gb_second} per GB-second, {data.prices.per_provisioned_gb_second} per provisioned GB-second
            (HEARTH_PRICE_* settings).
          </p>
          <div class="table-wrap">
            <table>
              <thead>
                <tr>
                  <th scope="col">{by}</th>
                  <th scope="col">Requests</th>
                  <th scope="col">Errors</th>
                  <th scope="col">Cold starts</th>
                  <th scope="col">GB-s</th>
                  <th scope="col">Provisioned GB-s</th>
                  <th scope="col">Cost</th>
                </tr>
              </thead>
              <tbody>
                {[...data.rows, { ...data.total, total: true }].map((r) => (
                  <tr class={r.total ? 'total' : ''}>
                    <td>{r.total ? 'Total' : label(r)}</td>
                    <td class="num">{r.requests}</td>
                    <td class="num">{r.errors}</td>
                    <td class="num">{r.cold_starts}</td>
                    <td class="num">{r.gb_seconds.toFixed(3)}</td>
                    <td class="num">{r.provisioned_gb_seconds.toFixed(3)}</td>
                    <td class="num">{r.cost.total.toFixed(6)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </>
      )}
    </section>
  );
}
