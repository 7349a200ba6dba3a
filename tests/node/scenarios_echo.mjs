// Laravel Echo (pusher broadcaster) scenarios. Echo passes its options to pusher-js; the
// `authorizer` option signs subscriptions locally with the Node SDK.
import Echo from 'laravel-echo';
import PusherJS from 'pusher-js';
import { collect, http, STEP_MS, withTimeout } from './lib.mjs';

/** An Echo client of `ctx`'s app on `host:port` signing as `user`, tracked as `label`. */
export function echoAt(ctx, host, port, label, user) {
  const echo = new Echo({
    broadcaster: 'pusher',
    key: ctx.p.key,
    wsHost: host,
    wsPort: port,
    forceTLS: false,
    enabledTransports: ['ws'],
    disableStats: true,
    cluster: 'mt1',
    Pusher: PusherJS,
    authorizer: (channel) => ({
      authorize: (socketId, callback) => ctx.signChannel(socketId, channel.name, user, callback),
    }),
  });
  ctx.track(echo.connector.pusher, label);
  return echo;
}

function echoFor(ctx, label, user) {
  return echoAt(ctx, ctx.p.host, ctx.p.port, label, user);
}

/** Wait (bounded) for a callback-style Echo hook: `register(resolve)`. */
function once(what, register) {
  return withTimeout(new Promise((resolve) => register(resolve)), STEP_MS, what);
}

async function trigger(ctx, what, channel, event, data) {
  const res = await http(what, () => ctx.sdk.trigger(channel, event, data));
  ctx.check(`${what}: 2xx`, res.status === 200 && !(res.body && res.body.error), JSON.stringify(res));
}

export async function echo(ctx) {
  const alice = { user_id: 'u-alice', user_info: { name: 'Alice' } };
  const bob = { user_id: 'u-bob', user_info: { name: 'Bob' } };
  const e1 = echoFor(ctx, 'Echo-alice', alice);
  const e2 = echoFor(ctx, 'Echo-bob', bob);
  await ctx.step('connect', () => Promise.all([ctx.connected(e1.connector.pusher), ctx.connected(e2.connector.pusher)]));

  await ctx.step("Echo.channel().listen('.OrderShipped')", async () => {
    const name = ctx.ch('orders');
    const ch = e1.channel(name);
    await once('subscribed to orders', (r) => ch.subscribed(r));
    const got = once('.OrderShipped', (r) => ch.listen('.OrderShipped', r));
    await trigger(ctx, 'trigger OrderShipped', name, 'OrderShipped', { order: 7 });
    ctx.eq('payload', await got, { order: 7 });
  });

  await ctx.step("Echo.channel().listen('OrderPaid') with the App.Events namespace", async () => {
    const name = ctx.ch('orders');
    const got = once('OrderPaid', (r) => e1.channel(name).listen('OrderPaid', r));
    await trigger(ctx, 'trigger App\\Events\\OrderPaid', name, 'App\\Events\\OrderPaid', { order: 8 });
    ctx.eq('payload', await got, { order: 8 });
  });

  await ctx.step('Echo.private().listen()', async () => {
    const name = ctx.ch('chat');
    const ch = e1.private(name);
    await once('subscribed to private chat', (r) => ch.subscribed(r));
    const got = once('.Message', (r) => ch.listen('.Message', r));
    await trigger(ctx, 'trigger private Message', `private-${name}`, 'Message', { text: 'hi' });
    ctx.eq('payload', await got, { text: 'hi' });
  });

  await ctx.step('Echo.private().error() on a bad signature', async () => {
    const err = await once('error() callback', (r) => e1.private(ctx.ch('room-bad-x')).error(r));
    ctx.check('error status 401', err && Number(err.status) === 401, JSON.stringify(err));
  });

  const room = ctx.ch('room');
  await ctx.step('Echo.join().here/joining/leaving + whisper', async () => {
    const p1 = e1.join(room);
    const joining = collect({ bind: (_, cb) => p1.joining(cb), unbind: () => {} }, 'joining');
    const leaving = collect({ bind: (_, cb) => p1.leaving(cb), unbind: () => {} }, 'leaving');
    const whispers1 = collect({ bind: (_, cb) => p1.listenForWhisper('typing', cb), unbind: () => {} }, 'typing');
    const here1 = await once('here() for alice', (r) => p1.here(r));
    ctx.eq('here (alice alone)', here1, [alice.user_info]);

    const p2 = e2.join(room);
    const whispers2 = collect({ bind: (_, cb) => p2.listenForWhisper('typing', cb), unbind: () => {} }, 'typing');
    const here2 = await once('here() for bob', (r) => p2.here(r));
    ctx.eq('here (both)', [...here2].sort((x, y) => x.name.localeCompare(y.name)), [alice.user_info, bob.user_info]);
    ctx.eq('joining(bob)', (await joining.next('joining')).data, bob.user_info);

    p2.whisper('typing', { who: 'bob' });
    ctx.eq('listenForWhisper payload', (await whispers1.next('whisper from bob')).data, { who: 'bob' });
    p1.whisper('typing', { who: 'alice' });
    ctx.eq('listenForWhisper payload', (await whispers2.next('whisper from alice')).data, { who: 'alice' });

    e2.leave(room);
    ctx.eq('leaving(bob)', (await leaving.next('leaving')).data, bob.user_info);
  });

  await ctx.step('whisper on a private channel', async () => {
    const name = ctx.ch('private-whisper');
    const c1 = e1.private(name);
    const c2 = e2.private(name);
    await Promise.all([once('c1 subscribed', (r) => c1.subscribed(r)), once('c2 subscribed', (r) => c2.subscribed(r))]);
    const got = once('listenForWhisper', (r) => c2.listenForWhisper('typing', r));
    c1.whisper('typing', { name: 'alice' });
    ctx.eq('payload', await got, { name: 'alice' });
  });
}

export const scenarios = { echo };
