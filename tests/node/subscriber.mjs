#!/usr/bin/env node
// One pusher-js client: connect, subscribe to a public channel, collect events, print one JSON
// result. The test publishes meanwhile (it sees the subscription through the HTTP API).
//
//   node subscriber.mjs '{"host":"127.0.0.1","port":6001,"key":"app-key","channel":"c",
//                         "events":2,"tls":false,"socket":"node"}'
//
// "tls": pusher-js with forceTLS (wss://; trust a test CA with NODE_EXTRA_CA_CERTS).
// "socket": "node" = pusher-js's own Node transport (faye-websocket: offers no compression);
// "browser" = the WHATWG WebSocket of Node (undici; node --experimental-websocket on Node 20),
// which offers permessage-deflate as browsers do.
// "events": how many events named "payload" to wait for (bounded by "timeoutMs", 10 s).
//
// Output: {"ok", "url" (the socket's URL), "extensions" (what the server accepted, "" if
// none; null for the node socket, which does not tell), "events":[{"length","sha256"}],
// "error"?}. Exit code 0 when ok.
import crypto from 'node:crypto';
import PusherJS from 'pusher-js';
import { withTimeout } from './lib.mjs';

const p = { host: '127.0.0.1', key: 'app-key', events: 1, tls: false, socket: 'node', timeoutMs: 10000, ...JSON.parse(process.argv[2] || '{}') };
const sockets = [];
const events = [];
let client;

function emit(result) {
  process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(result.ok ? 0 : 1));
}

function report(ok, error) {
  const ws = sockets[0];
  emit({ ok, url: ws?.url ?? null, extensions: ws?.extensions ?? null, events, ...(error ? { error } : {}) });
}

try {
  const Native = p.socket === 'browser' ? globalThis.WebSocket : PusherJS.Runtime.getWebSocketAPI();
  if (!Native) throw new Error(`no WebSocket class for socket "${p.socket}" (Node 20 needs --experimental-websocket)`);
  PusherJS.Runtime.getWebSocketAPI = () =>
    class Recorded extends Native {
      constructor(url) {
        super(url);
        sockets.push(this);
      }
    };
  client = new PusherJS(p.key, {
    cluster: 'mt1',
    wsHost: p.host,
    wsPort: p.port,
    wssPort: p.port,
    forceTLS: !!p.tls,
    enabledTransports: ['ws'],
    disableStats: true,
  });
  const all = withTimeout(
    new Promise((resolve, reject) => {
      client.connection.bind('state_change', ({ current }) => {
        if (current === 'failed' || current === 'unavailable') reject(new Error(`connection ${current}`));
      });
      const channel = client.subscribe(p.channel);
      channel.bind('pusher:subscription_error', (e) => reject(new Error(`subscription_error ${JSON.stringify(e)}`)));
      channel.bind('payload', (data) => {
        const text = typeof data === 'string' ? data : JSON.stringify(data);
        events.push({ length: text.length, sha256: crypto.createHash('sha256').update(text).digest('hex') });
        if (events.length >= p.events) resolve();
      });
    }),
    p.timeoutMs,
    `${p.events} "payload" events on ${p.channel}`,
  );
  await all;
  client.disconnect();
  report(true);
} catch (e) {
  client?.disconnect();
  report(false, String(e?.message || e));
}
