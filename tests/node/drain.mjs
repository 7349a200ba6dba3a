#!/usr/bin/env node
// pusher-js clients through a server's graceful drain (tests/test_drain.py).
//
//   node drain.mjs '{"host":"127.0.0.1","port":6001,"appId":"app-id","key":"app-key",
//                    "secret":"app-secret","clients":4,"channel":"drain-x",
//                    "presence":"presence-drain-x"?, "reconnect":false, "deadlineMs":20000}'
//
// Connects `clients` pusher-js clients (client i signs in to `presence` as user "drain-<i>"
// when given) and subscribes each to `channel` (and `presence`); then prints one line
//   {"event":"ready","socketIds":[...]}
// and records, per client, every error event (pusher:error frames and close errors: type and
// code), every close code of its WebSocket, its states and its reconnect attempts. When every
// client has seen its WebSocket closed with a code and has tried to reconnect ("reconnect":
// false) or is connected and subscribed again ("reconnect": true), it prints
//   {"event":"settled","clients":[...]}
// then waits for a line "done" on stdin (or the deadline) and prints its result as the last
// line: {"ok": <settled in time>, "clients":[{label, closes, errors, states,
// reconnectAttempts, socketIds, subscribed}], "error"?}. Every wait is bounded.
import { Ctx } from './lib.mjs';

const params = JSON.parse(process.argv[2] || '{}');
const ctx = new Ctx(params);
const count = Number(params.clients || 4);
const deadlineMs = Number(params.deadlineMs || 20000);
const started = Date.now();
const clients = [];

function line(obj) {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

function report() {
  return clients.map((c) => ({
    label: c.label,
    closes: c.closes,
    errors: c.errors,
    states: c.states.map((s) => s.state),
    reconnectAttempts: c.reconnectAttempts,
    socketIds: c.socketIds,
    subscribed: c.subscribed,
  }));
}

function finish(ok, error) {
  ctx.disconnectAll();
  process.stdout.write(`${JSON.stringify({ ok, ms: Date.now() - started, clients: report(), ...(error ? { error } : {}) })}\n`, () =>
    process.exit(ok ? 0 : 1),
  );
}

setTimeout(() => finish(false, `deadline of ${deadlineMs} ms reached`), deadlineMs).unref();

function track(i) {
  const user = params.presence ? { user_id: `drain-${i}`, user_info: { n: i } } : undefined;
  const pusher = ctx.client(`c${i}`, user);
  const c = { label: `c${i}`, pusher, closes: [], errors: [], states: [], reconnectAttempts: 0, socketIds: [], subscribed: 0 };
  let wasConnected = false;
  pusher.connection.bind('state_change', ({ current }) => {
    c.states.push({ state: current, at: Date.now() - started });
    if (current === 'connecting' && wasConnected) c.reconnectAttempts += 1;
  });
  pusher.connection.bind('connected', () => {
    wasConnected = true;
    c.socketIds.push(pusher.connection.socket_id);
    // the WebSocket's own close code (pusher-js reports it only as an error or an action)
    pusher.connection.connection.transport.bind('closed', (ev) => c.closes.push(ev?.code ?? null));
  });
  pusher.connection.bind('error', (err) => {
    c.errors.push({
      type: err?.type,
      code: err?.data?.code ?? null,
      message: err?.data?.message ?? String(err?.error?.message ?? err?.error?.type ?? ''),
    });
  });
  for (const name of [params.channel, params.presence].filter(Boolean)) {
    pusher.subscribe(name).bind('pusher:subscription_succeeded', () => {
      c.subscribed += 1;
    });
  }
  return c;
}

const wanted = [params.channel, params.presence].filter(Boolean).length;
const until = async (cond, what) => {
  while (!cond()) {
    if (Date.now() - started > deadlineMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

try {
  for (let i = 0; i < count; i += 1) clients.push(track(i));
  await until(() => clients.every((c) => c.subscribed >= wanted), 'every client subscribed');
  line({ event: 'ready', socketIds: clients.map((c) => c.socketIds[0]) });
  const settled = params.reconnect
    ? (c) => c.closes.length > 0 && c.socketIds.length > 1 && c.subscribed >= 2 * wanted
    : (c) => c.closes.length > 0 && c.reconnectAttempts > 0;
  await until(() => clients.every(settled), 'every client closed and reconnecting');
  line({ event: 'settled', clients: report() });
  await new Promise((resolve) => {
    process.stdin.on('data', (d) => String(d).includes('done') && resolve());
    process.stdin.on('end', resolve);
  });
  finish(true);
} catch (e) {
  finish(false, String(e?.message || e));
}
