// The console's only way to the server: same-origin fetch with the bearer token from session
// storage (never a URL or a cookie). Every failure becomes an ApiError carrying the API's own
// code and message; a network failure marks the connection lost until /healthz answers again.

const TOKEN_KEY = 'hearth.token';

export const session = {
  token: () => sessionStorage.getItem(TOKEN_KEY),
  set: (t) => sessionStorage.setItem(TOKEN_KEY, t),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// Listeners: connection state ('ok' | 'lost') and sign-outs (401).
const listeners = new Set();
let connection = 'ok';
export const events = {
  on(fn) {
    listeners.add(fn);
    return () => listeners.delete(fn);
  },
  emit(kind, value) {
    for (const fn of [...listeners]) fn(kind, value);
  },
};
export const connectionState = () => connection;

let probing = null;
function lost() {
  if (connection === 'lost') return;
  connection = 'lost';
  events.emit('connection', 'lost');
  // Waits for the server with a growing pause (1 s to 10 s), then says it is back.
  if (!probing) {
    probing = (async () => {
      let wait = 1000;
      for (;;) {
        await new Promise((r) => setTimeout(r, wait));
        try {
          const r = await fetch('/healthz', { cache: 'no-store' });
          if (r.ok) break;
        } catch {}
        wait = Math.min(wait * 2, 10_000);
      }
      probing = null;
      connection = 'ok';
      events.emit('connection', 'ok');
    })();
  }
}

function headers(extra) {
  const h = new Headers(extra || {});
  const t = session.token();
  if (t) h.set('Authorization', `Bearer ${t}`);
  return h;
}

async function errorOf(res) {
  const text = await res.text().catch(() => '');
  try {
    const body = JSON.parse(text);
    if (body && typeof body.code === 'string') return new ApiError(res.status, body.code, String(body.message ?? ''));
  } catch {}
  return new ApiError(res.status, `HTTP${res.status}`, text.slice(0, 500) || res.statusText);
}

/** fetch() with the token; resolves the Response when it is 2xx, throws ApiError otherwise. */
export async function request(method, path, { json, body, headers: extra, signal } = {}) {
  const h = headers(extra);
  if (json !== undefined) {
    h.set('Content-Type', 'application/json');
    body = JSON.stringify(json);
  }
  let res;
  try {
    res = await fetch(path, { method, headers: h, body, signal, cache: 'no-store' });
  } catch (e) {
    if (signal?.aborted) throw e;
    lost();
    throw new ApiError(0, 'ConnectionLost', 'Cannot reach the Hearth server; is `hearth up` running? The console reconnects by itself.');
  }
  if (connection === 'lost') {
    connection = 'ok';
    events.emit('connection', 'ok');
  }
  if (!res.ok) {
    const err = await errorOf(res);
    if (res.status === 401) events.emit('unauthorized', err);
    throw err;
  }
  return res;
}

export async function api(method, path, opts) {
  const res = await request(method, path, opts);
  if (res.status === 204) return null;
  const type = res.headers.get('content-type') || '';
  return type.includes('json') ? res.json() : res.text();
}

export const get = (path, opts) => api('GET', path, opts);

export const fnPath = (name) => `/v1/functions/${encodeURIComponent(name)}`;

/**
 * Follows a server-sent event stream with fetch (EventSource cannot send the token), calling
 * onEvent({id, event, data}) for each event; reconnects with Last-Event-ID after a drop until
 * the signal aborts. onState('open' | 'retrying', error?) reports the stream's state.
 */
export async function follow(path, { signal, onEvent, onState, lastId }) {
  let wait = 1000;
  while (!signal.aborted) {
    try {
      const extra = lastId != null ? { 'Last-Event-ID': String(lastId) } : {};
      const res = await request('GET', path, { headers: { Accept: 'text/event-stream', ...extra }, signal });
      onState?.('open');
      wait = 1000;
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let cut;
        while ((cut = buf.search(/\r?\n\r?\n/)) >= 0) {
          const block = buf.slice(0, cut);
          buf = buf.slice(cut).replace(/^\r?\n\r?\n/, '');
          const ev = { event: 'message', data: '' };
          const data = [];
          for (const line of block.split(/\r?\n/)) {
            if (!line || line.startsWith(':')) continue;
            const i = line.indexOf(':');
            const field = i < 0 ? line : line.slice(0, i);
            const val = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
            if (field === 'data') data.push(val);
            else if (field === 'id') ev.id = val;
            else if (field === 'event') ev.event = val;
          }
          if (ev.id != null) lastId = ev.id;
          if (data.length) {
            ev.data = data.join('\n');
            onEvent(ev);
          }
        }
      }
    } catch (e) {
      if (signal.aborted) return;
      onState?.('retrying', e);
      // A refusal other than a lost connection or a busy server will not heal by itself.
      if (e instanceof ApiError && e.status && e.status !== 503) return;
    }
    if (signal.aborted) return;
    await new Promise((r) => setTimeout(r, wait));
    wait = Math.min(wait * 2, 15_000);
  }
}

/** Runs fn when the connection comes back, for views that reload their data then. */
export function onReconnect(fn) {
  return events.on((kind, value) => kind === 'connection' && value === 'ok' && fn());
}
