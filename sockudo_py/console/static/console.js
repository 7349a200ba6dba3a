// The sockudo-py debug console: plain JavaScript, no build step.
//
// The token (admin token or app secret) comes from the login form, or from ?token= (or
// #token=) in the address, which is then dropped from the address bar. It lives in this
// script's memory only: it goes out in an Authorization header to /console/api and as the
// first message of the live log's WebSocket, never in a URL.
'use strict';

(() => {
  const REFRESH_MS = 2000; // stats, channels and members
  const RECONNECT_MS = 2000; // the live log's socket, after it closed
  const KEEP = 2000; // log entries kept in memory
  const SHOWN = 500; // log rows on the page

  const $ = (id) => document.getElementById(id);
  const state = {
    token: null,
    apps: [],
    appId: null,
    ws: null,
    timer: null,
    retry: null,
    entries: [],
    waiting: 0, // entries arrived while paused
    paused: false,
    dropped: 0,
    rate: null,
  };

  // --- the token -------------------------------------------------------------------------

  function takeTokenFromAddress() {
    const url = new URL(window.location.href);
    const hash = new URLSearchParams(url.hash.slice(1));
    const token = url.searchParams.get('token') || hash.get('token');
    if (url.searchParams.has('token') || hash.has('token')) {
      url.searchParams.delete('token');
      window.history.replaceState(null, '', url.pathname + url.search);
    }
    return token;
  }

  async function api(path, options = {}) {
    const response = await fetch(`/console/api${path}`, {
      ...options,
      cache: 'no-store',
      headers: { ...(options.headers || {}), Authorization: `Bearer ${state.token}` },
    });
    let body = null;
    try {
      body = await response.json();
    } catch {
      body = null;
    }
    if (response.status === 401) {
      signOut((body && body.error) || 'Wrong token');
      throw new Error('unauthorized');
    }
    if (!response.ok) throw new Error((body && body.error) || `HTTP ${response.status}`);
    return body;
  }

  async function signIn(token) {
    state.token = token;
    let body;
    try {
      body = await api('/apps');
    } catch (error) {
      if (error.message !== 'unauthorized') showLogin(error.message);
      return;
    }
    state.apps = body.apps;
    if (!state.apps.length) {
      signOut('This token opens no app');
      return;
    }
    const picker = $('app-picker');
    picker.replaceChildren(
      ...state.apps.map((app) => option(app.id, `${app.id} (${app.key})${app.enabled ? '' : ' - disabled'}`)),
    );
    $('node').textContent = `node ${body.node}`;
    $('login').hidden = true;
    $('session').hidden = false;
    $('dashboard').hidden = false;
    selectApp(state.apps[0].id);
  }

  function signOut(reason) {
    stopApp();
    state.token = null;
    state.appId = null;
    $('session').hidden = true;
    $('dashboard').hidden = true;
    showLogin(reason || '');
  }

  function showLogin(reason) {
    $('login').hidden = false;
    $('login-error').textContent = reason;
    $('token').value = '';
    $('token').focus();
  }

  // --- the selected app ------------------------------------------------------------------

  function selectApp(appId) {
    stopApp();
    state.appId = appId;
    $('app-picker').value = appId;
    clearLog();
    $('presence-picker').replaceChildren(option('', 'Choose a presence channel'));
    $('members').replaceChildren();
    $('members-count').textContent = '';
    openStream(appId);
    refresh();
    state.timer = window.setInterval(refresh, REFRESH_MS);
  }

  function stopApp() {
    window.clearInterval(state.timer);
    window.clearTimeout(state.retry);
    state.timer = state.retry = null;
    const ws = state.ws;
    state.ws = null;
    if (ws) ws.close();
  }

  const appPath = () => `/apps/${encodeURIComponent(state.appId)}`;

  async function refresh() {
    const appId = state.appId;
    try {
      const [stats, channels] = await Promise.all([api(`${appPath()}/stats`), api(`${appPath()}/channels`)]);
      if (appId !== state.appId) return;
      showStats(stats);
      showChannels(channels);
      await refreshMembers();
      $('data-error').hidden = true;
    } catch (error) {
      if (error.message === 'unauthorized' || appId !== state.appId) return;
      $('data-error').textContent = `Could not load the app's data: ${error.message}`;
      $('data-error').hidden = false;
    }
  }

  function showStats(stats) {
    $('stat-connections').textContent = stats.connections;
    $('stat-in').textContent = stats.messages_per_second.received.toFixed(1);
    $('stat-out').textContent = stats.messages_per_second.sent.toFixed(1);
    const missing = stats.missing_nodes ? ` (${stats.missing_nodes} silent)` : '';
    $('stat-nodes').textContent = `${stats.nodes}${missing}`;
  }

  function showChannels(body) {
    const rows = body.channels.map((channel) => {
      const presence = channel.user_count !== undefined;
      const row = tr([channel.name, cell(channel.subscription_count, 'num'), cell(presence ? channel.user_count : '', 'num')]);
      row.dataset.channel = channel.name;
      if (presence) {
        row.className = 'presence';
        row.title = 'Show its members';
        row.addEventListener('click', () => {
          $('presence-picker').value = channel.name;
          refreshMembers();
        });
      }
      return row;
    });
    $('channels').replaceChildren(...rows);
    $('channels-empty').hidden = rows.length > 0;
    $('channels-count').textContent = body.partial ? `${rows.length} (partial: a node did not answer)` : `${rows.length}`;
    const picker = $('presence-picker');
    const chosen = picker.value;
    const presence = body.channels.filter((c) => c.user_count !== undefined).map((c) => c.name);
    if (chosen && !presence.includes(chosen)) presence.unshift(chosen); // keep the choice
    picker.replaceChildren(option('', 'Choose a presence channel'), ...presence.map((name) => option(name, name)));
    picker.value = chosen;
  }

  async function refreshMembers() {
    const channel = $('presence-picker').value;
    if (!channel) {
      $('members').replaceChildren();
      $('members-count').textContent = '';
      return;
    }
    const body = await api(`${appPath()}/channels/${encodeURIComponent(channel)}/members`);
    if (channel !== $('presence-picker').value) return;
    $('members').replaceChildren(
      ...body.members.map((member) => {
        const item = document.createElement('li');
        item.append(text('strong', member.id), ' ', text('code', JSON.stringify(member.info)));
        return item;
      }),
    );
    $('members-count').textContent = `${body.members.length}`;
  }

  // --- the event creator -----------------------------------------------------------------

  async function sendEvent(event) {
    event.preventDefault();
    const result = $('event-result');
    const data = $('event-data').value;
    try {
      JSON.parse(data);
    } catch (error) {
      result.className = 'error';
      result.textContent = `Data is not JSON: ${error.message}`;
      return;
    }
    result.className = 'muted';
    result.textContent = 'Sending...';
    try {
      await api(`${appPath()}/events`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ channel: $('event-channel').value.trim(), name: $('event-name').value.trim(), data }),
      });
      result.className = 'muted';
      result.textContent = `Sent at ${clock(Date.now() / 1000)}`;
    } catch (error) {
      result.className = 'error';
      result.textContent = error.message === 'unauthorized' ? '' : error.message;
    }
  }

  // --- the live log ----------------------------------------------------------------------

  function openStream(appId) {
    const scheme = window.location.protocol === 'https:' ? 'wss' : 'ws';
    const ws = new WebSocket(`${scheme}://${window.location.host}/console/ws`);
    state.ws = ws;
    setStatus('connecting...');
    ws.onopen = () => ws.send(JSON.stringify({ type: 'auth', token: state.token, app_id: appId }));
    ws.onmessage = (message) => {
      if (state.ws !== ws) return;
      const body = JSON.parse(message.data);
      if (body.type === 'ready') {
        state.rate = body.rate;
        setStatus(`live, on node ${body.node}`);
      } else if (body.type === 'entries') {
        addEntries(body.entries);
        if (body.dropped) addDropped(body.dropped);
      } else if (body.type === 'error') {
        setStatus(body.error);
      }
    };
    ws.onclose = (event) => {
      if (state.ws !== ws) return;
      state.ws = null;
      if (event.code === 4401) {
        signOut('Wrong token');
        return;
      }
      setStatus('disconnected, reconnecting...');
      state.retry = window.setTimeout(() => {
        if (state.appId === appId && state.token) openStream(appId);
      }, RECONNECT_MS);
    };
  }

  function setStatus(textContent) {
    const waiting = state.paused ? ` - paused, ${state.waiting} new` : '';
    $('log-status').dataset.base = textContent;
    $('log-status').textContent = `${textContent}${waiting}`;
  }

  function addEntries(entries) {
    state.entries.push(...entries);
    if (state.entries.length > KEEP) state.entries.splice(0, state.entries.length - KEEP);
    if (state.paused) {
      state.waiting += entries.length;
      setStatus($('log-status').dataset.base || '');
      return;
    }
    const rows = entries.filter(matches).map(logRow).reverse();
    $('log').prepend(...rows);
    const log = $('log');
    while (log.children.length > SHOWN) log.lastElementChild.remove();
  }

  function addDropped(count) {
    state.dropped += count;
    const rate = state.rate ? ` (at most ${state.rate} per second per app and node)` : '';
    $('dropped').textContent = `${state.dropped} log entries dropped: under load the log is sampled${rate}.`;
    $('dropped').hidden = false;
  }

  function renderLog() {
    const shown = state.entries.filter(matches).slice(-SHOWN).reverse();
    $('log').replaceChildren(...shown.map(logRow));
  }

  function clearLog() {
    state.entries = [];
    state.waiting = 0;
    state.dropped = 0;
    $('log').replaceChildren();
    $('dropped').hidden = true;
  }

  function matches(entry) {
    const channel = $('filter-channel').value.trim().toLowerCase();
    const name = $('filter-event').value.trim().toLowerCase();
    if (channel && !entry.channels.some((c) => c.toLowerCase().includes(channel))) return false;
    return !name || (entry.event || '').toLowerCase().includes(name);
  }

  function logRow(entry) {
    const kind = text('span', entry.kind.replace('_', ' '));
    kind.className = `kind kind-${entry.kind}`;
    const row = tr([clock(entry.time), entry.node, kind, entry.channels.join(', '), entry.event || '', details(entry)]);
    row.dataset.kind = entry.kind;
    row.children[1].title = entry.node;
    row.children[3].title = entry.channels.join(', ');
    if (entry.kind === 'webhook' && entry.error) row.lastElementChild.className = 'failed';
    return row;
  }

  function details(entry) {
    const parts = [];
    const data = () => `${entry.data}${entry.truncated ? '...' : ''} (${entry.size} chars)`;
    switch (entry.kind) {
      case 'api_event':
        parts.push(data(), `via ${entry.via}`);
        if (entry.except) parts.push(`except socket ${entry.except}`);
        break;
      case 'client_event':
        parts.push(data(), `from socket ${entry.socket_id}`);
        if (entry.user_id != null) parts.push(`user ${entry.user_id}`);
        break;
      case 'subscribed':
      case 'unsubscribed':
        parts.push(`socket ${entry.socket_id}`);
        if (entry.user_id != null) parts.push(`user ${entry.user_id}`);
        break;
      case 'connected':
        parts.push(`socket ${entry.socket_id}`);
        break;
      case 'disconnected':
        // 1006: the client (or the network) closed it; anything else: the server, with that code
        parts.push(`socket ${entry.socket_id}`, entry.code === 1006 || entry.code == null ? 'closed by the client' : `closed by the server: ${entry.code}`);
        break;
      case 'webhook':
        parts.push(`${entry.target} -> ${entry.error ? `failed: ${entry.error}` : `HTTP ${entry.status ?? 'ok'}`}`);
        if (entry.attempt > 1) parts.push(`attempt ${entry.attempt}`);
        break;
      default:
        parts.push(JSON.stringify(entry));
    }
    return parts.join(' - ');
  }

  // --- DOM helpers (text only: nothing from the server becomes markup) ----------------------

  function option(value, label) {
    const element = document.createElement('option');
    element.value = value;
    element.textContent = label;
    return element;
  }

  function text(tag, content) {
    const element = document.createElement(tag);
    element.textContent = content;
    return element;
  }

  function cell(content, className) {
    const td = text('td', String(content));
    td.className = className;
    return td;
  }

  function tr(cells) {
    const row = document.createElement('tr');
    for (const content of cells) {
      if (content instanceof HTMLTableCellElement) {
        row.append(content);
      } else {
        const td = document.createElement('td');
        td.append(content instanceof Node ? content : String(content));
        row.append(td);
      }
    }
    return row;
  }

  function clock(seconds) {
    const date = new Date(seconds * 1000);
    const pad = (n, width = 2) => String(n).padStart(width, '0');
    return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`;
  }

  // --- wiring ----------------------------------------------------------------------------

  $('login-form').addEventListener('submit', (event) => {
    event.preventDefault();
    signIn($('token').value.trim());
  });
  $('sign-out').addEventListener('click', () => signOut(''));
  $('app-picker').addEventListener('change', (event) => selectApp(event.target.value));
  $('presence-picker').addEventListener('change', () => refreshMembers().catch(() => {}));
  $('event-form').addEventListener('submit', sendEvent);
  $('filter-channel').addEventListener('input', renderLog);
  $('filter-event').addEventListener('input', renderLog);
  $('clear').addEventListener('click', clearLog);
  $('pause').addEventListener('click', () => {
    state.paused = !state.paused;
    $('pause').textContent = state.paused ? 'Resume' : 'Pause';
    if (!state.paused) {
      state.waiting = 0;
      renderLog();
    }
    setStatus($('log-status').dataset.base || '');
  });

  const token = takeTokenFromAddress();
  if (token) signIn(token);
  else showLogin('');
})();
