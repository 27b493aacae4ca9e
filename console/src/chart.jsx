// A small SVG chart: one or more series over time buckets, as lines or bars, with its numbers
// also in the figure's caption (screen readers and tests read those, not the drawing).

const W = 600;
const H = 160;
const PAD = { left: 44, right: 8, top: 8, bottom: 22 };

function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

const tick = (t, span) => {
  const d = new Date(t);
  return span > 86_400_000 ? `${d.getMonth() + 1}/${d.getDate()} ${d.getHours()}h` : `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
};

/**
 * series: [{ label, values: (number|null)[], kind: 'line' | 'bar', cls }], times: ms per
 * bucket; format: how a value is written; summary: the caption's figures.
 */
export function Chart({ title, times, series, format = String, summary, testid }) {
  const all = series.flatMap((s) => s.values).filter((v) => v != null);
  const max = niceMax(Math.max(0, ...all));
  const n = Math.max(1, times.length);
  const iw = W - PAD.left - PAD.right;
  const ih = H - PAD.top - PAD.bottom;
  const x = (i) => PAD.left + (i + 0.5) * (iw / n);
  const y = (v) => PAD.top + ih - (v / max) * ih;
  const bw = Math.max(1, (iw / n) * 0.7);
  const span = times.length > 1 ? times[times.length - 1] - times[0] : 0;
  const labelEvery = Math.ceil(n / 6);
  return (
    <figure class="chart" data-testid={testid}>
      <figcaption>
        <strong>{title}</strong> <span class="chart-summary">{summary}</span>
      </figcaption>
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-label={`${title}: ${summary}`} preserveAspectRatio="none">
        {[0, 0.5, 1].map((f) => (
          <g>
            <line class="grid" x1={PAD.left} x2={W - PAD.right} y1={y(max * f)} y2={y(max * f)} />
            <text class="axis" x={PAD.left - 4} y={y(max * f) + 4} text-anchor="end">
              {format(max * f)}
            </text>
          </g>
        ))}
        {times.map((t, i) =>
          i % labelEvery === 0 ? (
            <text class="axis" x={x(i)} y={H - 6} text-anchor="middle">
              {tick(t, span)}
            </text>
          ) : null,
        )}
        {series.map((s, si) =>
          s.kind === 'bar' ? (
            <g class={`series ${s.cls}`}>
              {s.values.map((v, i) => (v ? <rect x={x(i) - bw / 2 + (si % 2) * (bw / 4)} y={y(v)} width={bw / (series.length > 1 ? 1.5 : 1)} height={Math.max(0, PAD.top + ih - y(v))} /> : null))}
            </g>
          ) : (
            <g class={`series ${s.cls}`}>
              <polyline
                class="line"
                fill="none"
                points={s.values
                  .map((v, i) => (v == null ? null : `${x(i).toFixed(1)},${y(v).toFixed(1)}`))
                  .filter(Boolean)
                  .join(' ')}
              />
              {/* Points too: a lone bucket with data draws no line. */}
              {s.values.map((v, i) => (v == null ? null : <circle cx={x(i)} cy={y(v)} r="2.5" />))}
            </g>
          ),
        )}
      </svg>
      <div class="legend">
        {series.map((s) => (
          <span class={`key ${s.cls}`}>{s.label}</span>
        ))}
      </div>
    </figure>
  );
}
