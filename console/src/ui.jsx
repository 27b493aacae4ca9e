// Small shared pieces: errors shown with the API's code, busy buttons, copy buttons, formats.
import { useEffect, useState, useCallback, useRef } from 'preact/hooks';
import { onReconnect } from './api.js';

/** An error as the API gave it: its stable code and its message (text, never HTML). */
export function ErrorBox({ error, onClose }) {
  if (!error) return null;
  const code = error.code || 'Error';
  return (
    <div class="error" role="alert">
      <strong class="error-code">{code}</strong> <span class="error-message">{error.message || String(error)}</span>
      {onClose && (
        <button type="button" class="link" onClick={onClose} aria-label="Dismiss the error">
          ×
        </button>
      )}
    </div>
  );
}

/**
 * Loads data with fn() when deps change and again after a lost connection comes back.
 * Returns [data, error, reload, loading].
 */
export function useLoad(fn, deps) {
  const [state, setState] = useState({ data: undefined, error: null, loading: true });
  const seq = useRef(0);
  const running = useRef(null);
  const load = useCallback(async () => {
    // One load at a time: a reload asked for while one runs happens once, after it.
    if (running.current) {
      running.current.again = true;
      return;
    }
    const run = { again: false };
    running.current = run;
    const mine = ++seq.current;
    setState((s) => ({ ...s, loading: true }));
    try {
      const data = await fn();
      if (mine === seq.current) setState({ data, error: null, loading: false });
    } catch (error) {
      if (mine === seq.current) setState((s) => ({ data: s.data, error, loading: false }));
    } finally {
      running.current = null;
      if (run.again) load();
    }
  }, deps);
  useEffect(() => {
    load();
    return onReconnect(load);
  }, [load]);
  return [state.data, state.error, load, state.loading];
}

/** A button that runs an async action, disabled while it runs; errors go to onError. */
export function ActionButton({ action, onError, children, disabled, title, class: cls, ...rest }) {
  const [busy, setBusy] = useState(false);
  const run = async (e) => {
    e.preventDefault();
    if (busy) return;
    setBusy(true);
    onError?.(null);
    try {
      await action();
    } catch (err) {
      if (onError) onError(err);
      else throw err;
    } finally {
      setBusy(false);
    }
  };
  return (
    <button type="button" class={cls} {...rest} disabled={disabled || busy} aria-busy={busy ? 'true' : 'false'} title={title} onClick={run}>
      {children}
    </button>
  );
}

export function CopyButton({ text, label = 'Copy' }) {
  const [done, setDone] = useState(false);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      // Without clipboard access (plain http on another host), select the text instead.
      const area = document.createElement('textarea');
      area.value = text;
      document.body.append(area);
      area.select();
      document.execCommand('copy');
      area.remove();
    }
    setDone(true);
    setTimeout(() => setDone(false), 1500);
  };
  return (
    <button type="button" class="small" onClick={copy} aria-label={`${label}: ${text}`}>
      {done ? 'Copied' : label}
    </button>
  );
}

export const fmtMs = (ms) => (ms == null ? '—' : ms < 10 ? `${ms.toFixed(2)} ms` : ms < 1000 ? `${ms.toFixed(1)} ms` : `${(ms / 1000).toFixed(2)} s`);

export function fmtAgo(iso, now = Date.now()) {
  if (!iso) return '—';
  const s = Math.max(0, (now - Date.parse(iso)) / 1000);
  if (s < 60) return `${Math.floor(s)} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

export const fmtTime = (iso) => (iso ? new Date(iso).toLocaleString() : '—');

export function fmtDuration(seconds) {
  if (seconds < 60) return `${Math.floor(seconds)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.floor(seconds % 60)} s`;
  return `${Math.floor(seconds / 3600)} h ${Math.floor((seconds % 3600) / 60)} min`;
}

/** Saves bytes as a file download (a blob URL of this origin; nothing leaves the browser). */
export function download(bytes, filename, type = 'application/zip') {
  const url = URL.createObjectURL(new Blob([bytes], { type }));
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

export function Tabs({ tabs, current, base }) {
  return (
    <nav class="tabs" aria-label="Function views">
      {tabs.map(([id, label]) => (
        <a href={`${base}/${id}`} class={id === current ? 'tab active' : 'tab'} aria-current={id === current ? 'page' : undefined}>
          {label}
        </a>
      ))}
    </nav>
  );
}

/** How long ago, refreshed every second while shown. */
export function useNow(every = 1000) {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), every);
    return () => clearInterval(t);
  }, [every]);
  return now;
}
