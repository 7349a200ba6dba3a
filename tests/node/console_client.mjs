#!/usr/bin/env node
// One pusher-js client for the console's browser test: connects, subscribes to a public
// channel and to a presence channel (as user "user"), and waits for the event the test
// sends from the console page. One JSON line per step:
//
//   node console_client.mjs '{"host":"127.0.0.1","port":6001,"appId":"app-id","key":"app-key",
//                             "secret":"app-secret","channel":"c","presence":"presence-c",
//                             "user":"ada","event":"hello","timeoutMs":20000}'
//
//   {"step":"connected","socketId"}, {"step":"subscribed","channel"} (for each channel),
//   {"step":"event","channel","event","data"} (then exit 0), or {"step":"error","error"}
//   (exit 1), also after timeoutMs without the event.
import Pusher from 'pusher';
import PusherJS from 'pusher-js';

const p = { host: '127.0.0.1', appId: 'app-id', key: 'app-key', secret: 'app-secret', timeoutMs: 20000, ...JSON.parse(process.argv[2] || '{}') };
const sdk = new Pusher({ appId: p.appId, key: p.key, secret: p.secret, host: p.host, port: String(p.port), useTLS: false });
let client;

function say(line, exitCode) {
  process.stdout.write(`${JSON.stringify(line)}\n`, () => {
    if (exitCode !== undefined) process.exit(exitCode);
  });
}

function fail(error) {
  client?.disconnect();
  say({ step: 'error', error: String(error?.message || error) }, 1);
}

const timer = setTimeout(() => fail(`no "${p.event}" event within ${p.timeoutMs} ms`), p.timeoutMs);

try {
  client = new PusherJS(p.key, {
    cluster: 'mt1',
    wsHost: p.host,
    wsPort: p.port,
    forceTLS: false,
    enabledTransports: ['ws'],
    disableStats: true,
    channelAuthorization: {
      customHandler: ({ socketId, channelName }, cb) => {
        try {
          cb(null, sdk.authorizeChannel(socketId, channelName, { user_id: p.user, user_info: { name: p.user } }));
        } catch (e) {
          cb(e, null);
        }
      },
    },
  });
  client.connection.bind('connected', () => say({ step: 'connected', socketId: client.connection.socket_id }));
  client.connection.bind('state_change', ({ current }) => {
    if (current === 'failed' || current === 'unavailable') fail(`connection ${current}`);
  });
  for (const name of [p.channel, p.presence]) {
    const channel = client.subscribe(name);
    channel.bind('pusher:subscription_succeeded', () => say({ step: 'subscribed', channel: name }));
    channel.bind('pusher:subscription_error', (e) => fail(`subscription_error on ${name}: ${JSON.stringify(e)}`));
  }
  client.channel(p.channel).bind(p.event, (data) => {
    clearTimeout(timer);
    client.disconnect();
    say({ step: 'event', channel: p.channel, event: p.event, data }, 0);
  });
} catch (e) {
  fail(e);
}
