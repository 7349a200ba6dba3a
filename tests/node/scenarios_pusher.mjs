// Scenarios using pusher-js (WebSocket client) and pusher (Node HTTP-API SDK).
// Each is `async (ctx) => void`; failures throw (see lib.mjs Ctx.check / Ctx.step).
import { collect, http, sleep, STEP_MS, withTimeout } from './lib.mjs';

const alice = { user_id: 'u-alice', user_info: { name: 'Alice' } };
const bob = { user_id: 'u-bob', user_info: { name: 'Bob' } };

/** Trigger through the SDK and require a 2xx answer. */
async function trigger(ctx, what, channels, event, data, params) {
  const res = await http(what, () => ctx.sdk.trigger(channels, event, data, params));
  ctx.check(`${what}: HTTP 2xx`, res.status >= 200 && res.status < 300, `status ${res.status} body ${JSON.stringify(res.body)}`);
  // soketi answers errors with HTTP 200 and the code in the body.
  ctx.check(`${what}: no error in body`, !(res.body && res.body.error), JSON.stringify(res.body));
  return res;
}

/** Presence members as plain data: {count, ids (sorted), me}. */
function membersOf(channel) {
  const ids = [];
  channel.members.each((m) => ids.push(String(m.id)));
  return { count: channel.members.count, ids: ids.sort(), me: channel.members.me && String(channel.members.me.id) };
}

export async function publicChannel(ctx) {
  const a = ctx.client('A');
  const b = ctx.client('B');
  const chan = ctx.ch('orders');
  const chan2 = ctx.ch('orders2');
  const [aid] = await ctx.step('connect', () => Promise.all([ctx.connected(a), ctx.connected(b)]));
  const [[chA], [chB], [chB2]] = await ctx.step('subscribe', () =>
    Promise.all([ctx.subscribe(a, chan), ctx.subscribe(b, chan), ctx.subscribe(b, chan2)]),
  );
  const evA = collect(chA, 'news');
  const evB = collect(chB, 'news');
  const evB2 = collect(chB2, 'news');

  await ctx.step('trigger delivered to both subscribers', async () => {
    await trigger(ctx, 'trigger', chan, 'news', { n: 1, text: 'héllo' });
    const [ga, gb] = await Promise.all([evA.next('A news 1'), evB.next('B news 1')]);
    ctx.eq('A got payload', ga.data, { n: 1, text: 'héllo' });
    ctx.eq('B got payload', gb.data, { n: 1, text: 'héllo' });
  });

  await ctx.step('string data delivered as given', async () => {
    await trigger(ctx, 'trigger string', chan, 'news', 'plain text');
    const gb = await evB.next('B string news', (d) => typeof d === 'string');
    ctx.eq('B got string', gb.data, 'plain text');
  });

  await ctx.step('triggerBatch delivered', async () => {
    const res = await http('triggerBatch', () =>
      ctx.sdk.triggerBatch([
        { channel: chan, name: 'news', data: { n: 'batch-1' } },
        { channel: chan2, name: 'news', data: { n: 'batch-2' } },
      ]),
    );
    ctx.check('triggerBatch 2xx', res.status === 200 && !(res.body && res.body.error), JSON.stringify(res));
    await evB.next('B batch-1 on chan', (d) => d && d.n === 'batch-1');
    await evB2.next('B batch-2 on chan2', (d) => d && d.n === 'batch-2');
    await evA.next('A batch-1 on chan', (d) => d && d.n === 'batch-1');
  });

  await ctx.step('socket_id excluded from trigger', async () => {
    await trigger(ctx, 'trigger excluding A', chan, 'news', { n: 'excluded' }, { socket_id: aid });
    await evB.next('B gets the event that excludes A', (d) => d && d.n === 'excluded');
    // Marker: a later event to everybody; A must see it without having seen the excluded one.
    await trigger(ctx, 'trigger marker', chan, 'news', { n: 'marker' });
    await evA.next('A marker', (d) => d && d.n === 'marker');
    const sawExcluded = evA.all.some((x) => x.data && x.data.n === 'excluded');
    ctx.check('A did not get the excluded event', !sawExcluded, 'A received an event triggered with its socket_id');
  });
}

export async function privateChannel(ctx) {
  const a = ctx.client('A');
  const chan = ctx.ch('private-chat');
  await ctx.step('connect', () => ctx.connected(a));
  const [chA] = await ctx.step('subscribe private (signed locally)', () => ctx.subscribe(a, chan));
  const ev = collect(chA, 'msg');
  await ctx.step('trigger delivered', async () => {
    await trigger(ctx, 'trigger private', chan, 'msg', { hi: 'private' });
    ctx.eq('payload', (await ev.next('private msg')).data, { hi: 'private' });
  });

  await ctx.step('bad signature -> pusher:subscription_error on the channel', async () => {
    const bad = a.subscribe(ctx.ch('private-bad-chat'));
    const errs = collect(bad, 'pusher:subscription_error');
    const oks = collect(bad, 'pusher:subscription_succeeded');
    const { data } = await errs.next('subscription_error for bad signature');
    ctx.check('subscription_error data has status 401', data && Number(data.status) === 401, JSON.stringify(data));
    ctx.soft('subscription_error data has type AuthError', data && data.type === 'AuthError', JSON.stringify(data));
    ctx.check('not subscribed', oks.count === 0 && !bad.subscribed, 'got subscription_succeeded too');
  });

  await ctx.step('socket stays open after a failed subscription', async () => {
    await trigger(ctx, 'trigger after failure', chan, 'msg', { hi: 'still-open' });
    await ev.next('msg after failed subscription', (d) => d && d.hi === 'still-open');
    ctx.eq('state', a.connection.state, 'connected');
  });
}

export async function encryptedChannel(ctx) {
  // ctx.esdk was built with encryptionMasterKeyBase64 (32 random bytes); the client's
  // customHandler returns its authorizeChannel answer, which includes shared_secret.
  const esdk = ctx.esdk;
  const chan = ctx.ch('private-encrypted-x');
  const a = ctx.client('A');
  await ctx.step('connect', () => ctx.connected(a));
  const [chA] = await ctx.step('subscribe private-encrypted', () => ctx.subscribe(a, chan));
  const ev = collect(chA, 'secret');
  await ctx.step('encrypted trigger decrypted by pusher-js', async () => {
    const res = await http('encrypted trigger', () => esdk.trigger(chan, 'secret', { msg: 'for your eyes only', n: 42 }));
    ctx.check('encrypted trigger 2xx', res.status === 200 && !(res.body && res.body.error), JSON.stringify(res));
    ctx.eq('decrypted payload', (await ev.next('encrypted event')).data, { msg: 'for your eyes only', n: 42 });
  });
  await ctx.step('wire frame was ciphertext', () => {
    const f = a.__frames.find((x) => x.dir === 'in' && x.event === 'secret' && x.channel === chan);
    // pusher-js records data after JSON parsing: an object with nonce + ciphertext.
    const d = f && (typeof f.data === 'string' ? JSON.parse(f.data) : f.data);
    ctx.check('frame data has nonce and ciphertext', d && d.nonce && d.ciphertext, JSON.stringify(f));
  });
}

export async function presence(ctx) {
  const chan = ctx.ch('presence-room');
  const a = ctx.client('A', alice);
  const b1 = ctx.client('B1', bob);
  const b2 = ctx.client('B2', bob); // a second tab of the same user
  await ctx.step('connect', () => Promise.all([ctx.connected(a), ctx.connected(b1), ctx.connected(b2)]));

  const [chA, membersA] = await ctx.step('A subscribes', () => ctx.subscribe(a, chan));
  ctx.eq('A subscription_succeeded members', { count: membersA.count, me: membersA.me && membersA.me.id }, { count: 1, me: alice.user_id });
  const added = collect(chA, 'pusher:member_added');
  const removed = collect(chA, 'pusher:member_removed');
  const marks = collect(chA, 'mark');

  await ctx.step('B (first tab) joins', async () => {
    const [chB1] = await ctx.subscribe(b1, chan);
    ctx.eq('B1 members', membersOf(chB1), { count: 2, ids: [alice.user_id, bob.user_id].sort(), me: bob.user_id });
    const m = await added.next('A member_added bob');
    ctx.eq('member_added id + info', { id: m.data.id, info: m.data.info }, { id: bob.user_id, info: bob.user_info });
    ctx.eq('A members after add', membersOf(chA), { count: 2, ids: [alice.user_id, bob.user_id].sort(), me: alice.user_id });
  });

  await ctx.step('B (second tab) joins: no second member_added', async () => {
    const [chB2] = await ctx.subscribe(b2, chan);
    ctx.eq('B2 members', membersOf(chB2), { count: 2, ids: [alice.user_id, bob.user_id].sort(), me: bob.user_id });
    await trigger(ctx, 'marker 1', chan, 'mark', { n: 1 });
    await marks.next('A marker 1');
    ctx.eq('member_added count', added.count, 1);
  });

  await ctx.step('HTTP GET /channels/{presence}/users', async () => {
    const res = await http('GET users', () => ctx.sdk.get({ path: `/channels/${chan}/users` }));
    ctx.check('users 200', res.status === 200, JSON.stringify(res));
    const ids = (res.body.users || []).map((u) => String(u.id)).sort();
    ctx.eq('users', ids, [alice.user_id, bob.user_id].sort());
  });

  await ctx.step('first tab leaves: no member_removed', async () => {
    b1.disconnect();
    await sleep(500); // the server has to notice the close; no frame tells us when
    await trigger(ctx, 'marker 2', chan, 'mark', { n: 2 });
    await marks.next('A marker 2');
    ctx.eq('member_removed count while a tab remains', removed.count, 0);
  });

  await ctx.step('last tab leaves: member_removed', async () => {
    b2.disconnect();
    const m = await removed.next('A member_removed bob');
    ctx.eq('member_removed id', String(m.data.id), bob.user_id);
    ctx.eq('A members after remove', membersOf(chA), { count: 1, ids: [alice.user_id], me: alice.user_id });
  });

  await ctx.step('HTTP users after leave', async () => {
    const res = await http('GET users', () => ctx.sdk.get({ path: `/channels/${chan}/users` }));
    ctx.eq('users', (res.body.users || []).map((u) => String(u.id)), [alice.user_id]);
  });

  await ctx.step('unsubscribe also removes the member', async () => {
    const c = ctx.client('C', { user_id: 'u-carol', user_info: { name: 'Carol' } });
    await ctx.connected(c);
    await ctx.subscribe(c, chan);
    await added.next('A member_added carol', (d) => d.id === 'u-carol');
    c.unsubscribe(chan);
    const m = await removed.next('A member_removed carol', (d) => d.id === 'u-carol');
    ctx.eq('removed carol', String(m.data.id), 'u-carol');
  });

  await ctx.step('numeric user_id (as Laravel sends it)', async () => {
    const d = ctx.client('D', { user_id: 42, user_info: { name: 'Dave' } });
    await ctx.connected(d);
    const [chD] = await ctx.subscribe(d, chan);
    ctx.eq('D me', String(chD.members.me.id), '42');
    const m = await added.next('A member_added 42', (x) => String(x.id) === '42');
    ctx.eq('member_added info', m.data.info, { name: 'Dave' });
    d.disconnect();
    await removed.next('A member_removed 42', (x) => String(x.id) === '42');
  });
}

async function clientEventsOn(ctx, kind) {
  const chan = ctx.ch(`${kind}-whisper`);
  const a = ctx.client(`A-${kind}`, alice);
  const b = ctx.client(`B-${kind}`, bob);
  await ctx.step(`${kind}: connect`, () => Promise.all([ctx.connected(a), ctx.connected(b)]));
  const [[chA], [chB]] = await ctx.step(`${kind}: subscribe`, () => Promise.all([ctx.subscribe(a, chan), ctx.subscribe(b, chan)]));
  const gotA = collect(chA, 'client-typing');
  const gotB = collect(chB, 'client-typing');
  const marksA = collect(chA, 'mark');
  await ctx.step(`${kind}: client event A -> B`, async () => {
    ctx.check('trigger accepted by pusher-js', chA.trigger('client-typing', { typing: true, from: 'A' }), 'trigger returned false');
    const got = await gotB.next(`B client-typing on ${kind}`);
    ctx.eq('payload', got.data, { typing: true, from: 'A' });
    if (kind === 'presence') ctx.eq('metadata.user_id', got.meta && got.meta.user_id, alice.user_id);
  });
  await ctx.step(`${kind}: sender does not get its own client event`, async () => {
    await trigger(ctx, `${kind} marker`, chan, 'mark', {});
    await marksA.next('A marker');
    ctx.eq('A client-typing count', gotA.count, 0);
  });
  await ctx.step(`${kind}: client event B -> A`, async () => {
    chB.trigger('client-typing', { typing: false, from: 'B' });
    const got = await gotA.next(`A client-typing on ${kind}`);
    ctx.eq('payload', got.data, { typing: false, from: 'B' });
    if (kind === 'presence') ctx.eq('metadata.user_id', got.meta && got.meta.user_id, bob.user_id);
  });
}

export async function clientEvents(ctx) {
  await clientEventsOn(ctx, 'private');
  await clientEventsOn(ctx, 'presence');
}

/** Client events where they are not allowed: public and private-encrypted channels. */
export async function clientEventsRefused(ctx) {
  const a = ctx.client('A');
  await ctx.step('connect', () => ctx.connected(a));
  for (const base of ['public-whisper', 'private-encrypted-whisper']) {
    await ctx.step(`client event on ${base} -> pusher:error 4301`, async () => {
      const name = ctx.ch(base);
      if (base.startsWith('private-encrypted-')) {
        // pusher-js refuses to send client events on encrypted channels itself; send the raw frame.
        await ctx.subscribe(a, name);
        const errP = ctx.frame(a, `pusher:error after client event on ${name}`, (f) => f.event === 'pusher:error');
        a.send_event('client-x', {}, name);
        const f = await errP;
        ctx.eq('pusher:error code', f.data && Number(f.data.code), 4301);
      } else {
        const [ch] = await ctx.subscribe(a, name);
        const errP = ctx.frame(a, `pusher:error after client event on ${name}`, (f) => f.event === 'pusher:error');
        ch.trigger('client-x', {});
        const f = await errP;
        ctx.eq('pusher:error code', f.data && Number(f.data.code), 4301);
      }
      ctx.eq('socket still connected', a.connection.state, 'connected');
    });
  }
}

export async function userSignin(ctx) {
  // User ids unique to this run: terminateUserConnections acts on every socket of the user.
  const alice = { user_id: `u-alice-${ctx.suffix}`, user_info: { name: 'Alice' } };
  const bob = { user_id: `u-bob-${ctx.suffix}`, user_info: { name: 'Bob' } };
  const a = ctx.client('A', alice);
  const other = ctx.client('Other', bob);
  await ctx.step('connect', () => Promise.all([ctx.connected(a), ctx.connected(other)]));
  await ctx.step('signin -> pusher:signin_success', async () => {
    const ok = ctx.frame(a, 'pusher:signin_success', (f) => f.event === 'pusher:signin_success');
    const subscribed = ctx.frame(a, 'subscription to #server-to-user-', (f) =>
      f.event === 'pusher_internal:subscription_succeeded' && f.channel === `#server-to-user-${alice.user_id}`,
    );
    const okOther = ctx.frame(other, 'pusher:signin_success (other)', (f) => f.event === 'pusher:signin_success');
    a.signin();
    other.signin();
    const f = await ok;
    const ud = typeof f.data.user_data === 'string' ? JSON.parse(f.data.user_data) : f.data.user_data;
    ctx.eq('user_data.id', String(ud.id), alice.user_id);
    await okOther;
    await subscribed;
  });
  await ctx.step('sendToUser delivered via pusher.user.bind', async () => {
    const notes = collect(a.user, 'note');
    const res = await http('sendToUser', () => ctx.sdk.sendToUser(alice.user_id, 'note', { text: 'just for alice' }));
    ctx.check('sendToUser 2xx', res.status === 200 && !(res.body && res.body.error), JSON.stringify(res));
    ctx.eq('payload', (await notes.next('user event note')).data, { text: 'just for alice' });
  });
  await ctx.step('terminateUserConnections closes the user connection', async () => {
    const states = [];
    const closed = new Promise((resolve) => {
      a.connection.bind('state_change', (s) => {
        states.push(s.current);
        if (['disconnected', 'unavailable', 'failed'].includes(s.current)) resolve(s.current);
      });
    });
    const res = await http('terminateUserConnections', () => ctx.sdk.terminateUserConnections(alice.user_id));
    ctx.check('terminate 2xx', res.status === 200 && !(res.body && res.body.error), JSON.stringify(res));
    const state = await withTimeout(closed, STEP_MS, 'A state change after terminate');
    ctx.notes.push(`A states after terminate: ${states.join(' -> ')}`);
    const codes = a.__closes.map((e) => e?.error?.data?.code ?? e?.data?.code).filter(Boolean);
    ctx.soft('close code 4009 seen', codes.includes(4009), `errors ${JSON.stringify(a.__closes)}`);
    ctx.check('A not connected', state !== 'connected', state);
  });
  await ctx.step('other user stays connected', async () => {
    await sleep(200);
    ctx.eq('other state', other.connection.state, 'connected');
  });
}

export async function cacheChannels(ctx) {
  const chan = ctx.ch('cache-x');
  const empty = ctx.ch('cache-y');
  await trigger(ctx, 'trigger before subscribe', chan, 'price', { eur: 10 });
  await trigger(ctx, 'second trigger before subscribe', chan, 'price', { eur: 11 });
  const a = ctx.client('A');
  await ctx.step('connect', () => ctx.connected(a));
  await ctx.step('late subscriber gets the last cached event', async () => {
    const ch = a.subscribe(chan);
    const prices = collect(ch, 'price');
    const ok = collect(ch, 'pusher:subscription_succeeded');
    const got = await prices.next('cached price event');
    ctx.eq('cached payload is the last one', got.data, { eur: 11 });
    await ok.next('subscription_succeeded on cache channel');
    await sleep(200);
    ctx.eq('replayed once', prices.count, 1);
  });
  await ctx.step('empty cache channel -> pusher:cache_miss', async () => {
    const ch = a.subscribe(empty);
    const miss = collect(ch, 'pusher:cache_miss');
    await miss.next('pusher:cache_miss');
  });
}

export async function subscriptionCount(ctx) {
  const chan = ctx.ch('counted');
  const a = ctx.client('A');
  const b = ctx.client('B');
  await ctx.step('connect', () => Promise.all([ctx.connected(a), ctx.connected(b)]));
  const chA = a.subscribe(chan);
  const countsA = collect(chA, 'pusher:subscription_count');
  await ctx.step('A subscribed', () => collect(chA, 'pusher:subscription_succeeded').next('A subscribed'));
  await ctx.step('count reaches 2 after B subscribes', async () => {
    await ctx.subscribe(b, chan);
    const got = await countsA.next('pusher:subscription_count = 2', (d) => d && d.subscription_count === 2);
    ctx.eq('event data', got.data, { subscription_count: 2 });
    ctx.eq('channel.subscriptionCount', chA.subscriptionCount, 2);
  });
  await ctx.step('count drops to 1 after B leaves', async () => {
    b.unsubscribe(chan);
    await countsA.next('pusher:subscription_count = 1', (d) => d && d.subscription_count === 1);
    ctx.eq('channel.subscriptionCount', chA.subscriptionCount, 1);
  });
}

export async function channelQueries(ctx) {
  const pres = ctx.ch('presence-q');
  const pub = ctx.ch('pubq');
  const a = ctx.client('A', alice);
  const b = ctx.client('B', bob);
  await ctx.step('connect', () => Promise.all([ctx.connected(a), ctx.connected(b)]));
  await ctx.step('subscribe', () => Promise.all([ctx.subscribe(a, pres), ctx.subscribe(b, pres), ctx.subscribe(a, pub), ctx.subscribe(b, pub)]));

  await ctx.attempt('GET /channels filter_by_prefix + info=user_count', async () => {
    const prefix = `presence-q-${ctx.suffix}`;
    const res = await http('GET channels', () => ctx.sdk.get({ path: '/channels', params: { filter_by_prefix: prefix, info: 'user_count' } }));
    ctx.check('200', res.status === 200 && !res.body.error, JSON.stringify(res));
    ctx.eq('channels', res.body.channels, { [pres]: { user_count: 2 } });
  });
  await ctx.attempt('GET /channels filter_by_prefix (public)', async () => {
    const res = await http('GET channels', () => ctx.sdk.get({ path: '/channels', params: { filter_by_prefix: pub } }));
    ctx.check('200', res.status === 200 && !res.body.error, JSON.stringify(res));
    ctx.eq('channel names', Object.keys(res.body.channels || {}), [pub]);
  });
  await ctx.attempt('GET /channels/{ch} info=subscription_count', async () => {
    const res = await http('GET channel', () => ctx.sdk.get({ path: `/channels/${pub}`, params: { info: 'subscription_count' } }));
    ctx.check('200', res.status === 200 && !res.body.error, JSON.stringify(res));
    ctx.eq('occupied + subscription_count', { occupied: res.body.occupied, subscription_count: res.body.subscription_count }, { occupied: true, subscription_count: 2 });
  });
  await ctx.attempt('GET /channels/{presence} info=user_count', async () => {
    const res = await http('GET channel', () => ctx.sdk.get({ path: `/channels/${pres}`, params: { info: 'user_count' } }));
    ctx.eq('occupied + user_count', { occupied: res.body.occupied, user_count: res.body.user_count }, { occupied: true, user_count: 2 });
  });
  await ctx.attempt('GET /channels/{unoccupied}', async () => {
    const res = await http('GET channel', () => ctx.sdk.get({ path: `/channels/${ctx.ch('nobody-here')}` }));
    ctx.eq('occupied', res.body.occupied, false);
  });
  await ctx.attempt('trigger with info=subscription_count', async () => {
    const res = await trigger(ctx, 'trigger with info', pub, 'news', {}, { info: 'subscription_count' });
    ctx.eq('channels info', res.body.channels, { [pub]: { subscription_count: 2 } });
  });
  // Real HTTP statuses (soketi answers 200 with the code in the body).
  await ctx.attempt('HTTP error: wrong secret -> 401', async () => {
    const r = await http('wrong secret', () => ctx.badSdk.trigger(pub, 'news', {}));
    ctx.eq('wrong secret -> 401', r.status, 401);
  });
  await ctx.attempt('HTTP error: users of a public channel -> 400', async () => {
    const r = await http('users of a public channel', () => ctx.sdk.get({ path: `/channels/${pub}/users` }));
    ctx.eq('users of non-presence -> 400', r.status, 400);
  });
  await ctx.attempt('HTTP error: info=user_count without presence prefix -> 400', async () => {
    const r = await http('user_count without presence prefix', () => ctx.sdk.get({ path: '/channels', params: { info: 'user_count' } }));
    ctx.eq('info=user_count without presence filter -> 400', r.status, 400);
  });
}

/**
 * Needs a server whose activity_timeout is short (parameter activityTimeoutS, e.g. 2): an idle
 * pusher-js client must stay connected through ping/pong exchanges for idleMs.
 */
export async function keepalive(ctx) {
  const timeoutS = Number(ctx.p.activityTimeoutS || 2);
  const idleMs = Number(ctx.p.idleMs || timeoutS * 2500 + 500);
  const a = ctx.client('A');
  const states = [];
  await ctx.step('connect', () => ctx.connected(a));
  a.connection.bind('state_change', (s) => states.push(s.current));
  // pusher-js keeps min(its own 120 s, the server's activity_timeout) in ms.
  ctx.eq('activity_timeout announced', a.connection.activityTimeout, timeoutS * 1000);
  await ctx.step(`idle for ${idleMs} ms`, () => sleep(idleMs));
  const pings = a.__frames.filter((f) => f.event === 'pusher:ping' || f.event === 'pusher:pong').map((f) => f.event);
  ctx.notes.push(`keepalive frames received: ${pings.join(', ')}`);
  ctx.check('ping/pong exchanged', pings.length > 0, 'no pusher:ping or pusher:pong received');
  ctx.eq('no state change while idle', states, []);
  ctx.eq('still connected', a.connection.state, 'connected');
}

/**
 * Needs an app with enable_user_authentication and a short user_authentication_timeout
 * (parameter authTimeoutS, e.g. 1): a connection that neither signs in nor joins a private
 * channel is closed with 4009; the other two stay.
 */
export async function userAuthTimeout(ctx) {
  const timeoutS = Number(ctx.p.authTimeoutS || 1);
  const idle = ctx.client('Idle');
  const signed = ctx.client('SignedIn', { user_id: `u-${ctx.suffix}`, user_info: {} });
  const priv = ctx.client('Private');
  await ctx.step('connect', () => Promise.all([ctx.connected(idle), ctx.connected(signed), ctx.connected(priv)]));
  const closed = new Promise((resolve) => {
    idle.connection.bind('state_change', (s) => {
      if (s.current !== 'connected') resolve(s.current);
    });
  });
  await ctx.step('public subscribe, signin, private subscribe', async () => {
    const ok = ctx.frame(signed, 'pusher:signin_success', (f) => f.event === 'pusher:signin_success');
    signed.signin();
    await Promise.all([ctx.subscribe(idle, ctx.ch('pub')), ctx.subscribe(priv, ctx.ch('private-p')), ok]);
  });
  await ctx.step('idle connection closed with 4009', async () => {
    await withTimeout(closed, timeoutS * 1000 + STEP_MS, 'the unauthenticated connection to close');
    const codes = idle.__closes.map((e) => e?.error?.data?.code ?? e?.data?.code).filter(Boolean);
    ctx.check('4009 seen', codes.includes(4009), JSON.stringify(idle.__closes));
  });
  await ctx.step('signed-in and private-channel connections stay', async () => {
    await sleep(500);
    ctx.eq('states', [signed.connection.state, priv.connection.state], ['connected', 'connected']);
  });
}

export const scenarios = {
  public: publicChannel,
  private: privateChannel,
  encrypted: encryptedChannel,
  presence,
  'client-events': clientEvents,
  'client-events-refused': clientEventsRefused,
  user: userSignin,
  cache: cacheChannels,
  'subscription-count': subscriptionCount,
  'channel-queries': channelQueries,
  keepalive,
  'user-auth-timeout': userAuthTimeout,
};
