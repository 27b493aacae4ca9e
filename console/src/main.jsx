// The console's shell: sign-in, the page chosen by the URL's fragment, the connection banner.
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { session, events, get, ApiError } from './api.js';
import { ErrorBox } from './ui.jsx';
import { FunctionList } from './functions.jsx';
import { CreateFunction } from './create.jsx';
import { FunctionPage } from './function_page.jsx';
import { UsagePage } from './usage.jsx';

/** The page the fragment names: #/functions, #/new, #/f/NAME/TAB, #/usage. */
function route(hash) {
  const parts = hash
    .replace(/^#\/?/, '')
    .split('/')
    .map((p) => {
      try {
        return decodeURIComponent(p);
      } catch {
        return p;
      }
    });
  if (parts[0] === 'new') return { page: 'new' };
  if (parts[0] === 'usage') return { page: 'usage' };
  if (parts[0] === 'f' && parts[1]) return { page: 'function', name: parts[1], tab: parts[2] || 'code' };
  return { page: 'functions' };
}

function useRoute() {
  const [r, setR] = useState(route(location.hash));
  useEffect(() => {
    const on = () => setR(route(location.hash));
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return r;
}

function SignIn({ onSignedIn, reason }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState(reason);
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    session.set(token.trim());
    try {
      onSignedIn(await get('/v1/token'));
    } catch (err) {
      session.clear();
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="signin">
      <h1>Hearth</h1>
      <form onSubmit={submit} class="card">
        <h2>Sign in</h2>
        <p>
          Paste an API token. <code>hearth up</code> prints the admin token on its first start; <code>hearth token create --scope read</code> makes
          a read-only one. The token stays in this tab's session storage.
        </p>
        <label for="token">API token</label>
        <input id="token" type="password" autocomplete="off" spellcheck={false} value={token} onInput={(e) => setToken(e.currentTarget.value)} required />
        <ErrorBox error={error} />
        <button type="submit" class="primary" disabled={busy || !token.trim()}>
          Sign in
        </button>
      </form>
    </main>
  );
}

function Banner() {
  const [state, setState] = useState('ok');
  useEffect(() => events.on((kind, value) => kind === 'connection' && setState(value)), []);
  if (state === 'ok') return null;
  return (
    <div class="banner" role="status" aria-live="polite">
      Connection to the Hearth server lost. Retrying… (is <code>hearth up</code> running?)
    </div>
  );
}

function Shell({ me, signOut }) {
  const r = useRoute();
  const can = {
    deploy: me.scopes.includes('admin') || me.scopes.includes('deploy'),
    invoke: me.scopes.includes('admin') || me.scopes.includes('invoke'),
  };
  let page;
  if (r.page === 'new') page = <CreateFunction can={can} />;
  else if (r.page === 'usage') page = <UsagePage />;
  else if (r.page === 'function') page = <FunctionPage name={r.name} tab={r.tab} can={can} key={r.name} />;
  else page = <FunctionList can={can} />;
  useEffect(() => {
    document.getElementById('main')?.focus({ preventScroll: true });
  }, [r.page, r.name]);
  return (
    <>
      <a class="skip" href="#main" onClick={(e) => (e.preventDefault(), document.getElementById('main')?.focus())}>
        Skip to content
      </a>
      <header class="top">
        <a href="#/functions" class="brand">
          Hearth
        </a>
        <nav aria-label="Main">
          <a href="#/functions" aria-current={r.page === 'functions' || r.page === 'function' ? 'page' : undefined}>
            Functions
          </a>
          <a href="#/usage" aria-current={r.page === 'usage' ? 'page' : undefined}>
            Usage
          </a>
        </nav>
        <span class="who" title={`Scopes: ${me.scopes.join(', ')}`}>
          {me.name} {can.deploy ? '' : <span class="badge">read-only</span>}
        </span>
        <button type="button" class="small" onClick={signOut}>
          Sign out
        </button>
      </header>
      <Banner />
      <main id="main" tabIndex={-1}>
        {page}
      </main>
    </>
  );
}

function App() {
  const [me, setMe] = useState(null);
  const [checking, setChecking] = useState(!!session.token());
  const [reason, setReason] = useState(null);
  useEffect(() => {
    if (session.token()) {
      get('/v1/token')
        .then(setMe)
        .catch((e) => {
          if (e instanceof ApiError && e.status === 401) session.clear();
          setReason(e);
        })
        .finally(() => setChecking(false));
    }
    return events.on((kind, err) => {
      if (kind === 'unauthorized') {
        session.clear();
        setMe(null);
        setReason(err);
      }
    });
  }, []);
  if (checking) return <p class="boot">Checking your token…</p>;
  if (!me) return <SignIn reason={reason} onSignedIn={(m) => (setReason(null), setMe(m))} />;
  const signOut = () => {
    session.clear();
    setMe(null);
  };
  return <Shell me={me} signOut={signOut} />;
}

// Never a blank page: an exception while rendering shows what happened and a way back.
addEventListener('error', (e) => showCrash(e.error || e.message));
addEventListener('unhandledrejection', (e) => console.warn('unhandled', e.reason));
function showCrash(err) {
  const box = document.getElementById('crash') || document.body.appendChild(document.createElement('div'));
  box.id = 'crash';
  box.className = 'error';
  box.setAttribute('role', 'alert');
  box.textContent = `The console hit an error: ${err?.message || err}. Reload the page; your token is kept for this tab.`;
}

// The page's loading line goes; the console renders in its place.
const root = document.getElementById('app');
root.textContent = '';
render(<App />, root);
