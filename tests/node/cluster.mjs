#!/usr/bin/env node
// Multi-node scenarios: real Pusher clients spread over several sockudo-py nodes that share a
// cluster adapter (redis, redis-cluster, nats). Everything that works on one node must work
// the same across nodes: delivery exactly once, presence, client events, cache channels,
// counts, user connections, app connection limits.
//
//   node cluster.mjs '{"nodes":[{"host":"127.0.0.1","port":6001},...],
//                      "appId":"1001","key":"...","secret":"...",
//                      "limited":{"appId":"1002","key":"...","secret":"...","maxConnections":2},
//                      "scenarios":["publish",...]}'       (default: all of them)
//   node cluster.mjs list     -> prints the scenario names
//
// The scenarios run concurrently (each with its own clients and unique channel / user names);
// "sequential": true runs them one after the other. Every wait is bounded (STEP_MS, env
// INTEROP_STEP_MS, default 5 s) and the whole run by "deadlineMs" (default 45000).
//
// Output (stdout, one line): {"ok", "ms", "scenarios": {name: {scenario, ok, ms, checks,
// notes, error?, frames?}}}; a scenario's result has the shape run.mjs prints, so the Python
// side reports it with describe_failure(). Exit code 0 when every scenario passed.
import PusherJS from 'pusher-js';
import { CheckFailed, Ctx, parseMaybe, sleep, stable, STEP_MS, withTimeout } from './lib.mjs';
import { echoAt } from './scenarios_echo.mjs';

/** Quiet time after the expected events arrived, before asserting that nothing else came. */
const SETTLE_MS = Number(process.env.CLUSTER_SETTLE_MS || 300);
const POLL_MS = 50;

/** A scenario context over several nodes: `on(i, ...)` makes a pusher-js client of node i,
 * `sdks[i]` is a Node SDK talking to node i's HTTP API. */
class ClusterCtx extends Ctx {
  constructor(params, scenario) {
    super({ ...params, port: params.nodes[0].port, host: params.nodes[0].host });
    this.scenario = scenario;
    this.nodes = params.nodes;
    this.sdks = this.nodes.map((n) => this.makeSdk({ host: n.host, port: String(n.port) }));
  }

  /** A pusher-js client connected to node `i` (label gets "@n<i>"). */
  on(i, label, user) {
    const n = this.nodes[i];
    return this.client(`${label}@n${i}`, user, { wsHost: n.host, wsPort: n.port });
  }

  /** A pusher-js client of another app (`app` = {key}) on node `i`. */
  onApp(i, app, label) {
    const n = this.nodes[i];
    const c = new PusherJS(app.key, { ...this.clientOptions(label), wsHost: n.host, wsPort: n.port });
    return this.track(c, `${label}@n${i}`);
  }

  /**
   * Call the Node SDK of node `i`: {status, body, partial} (partial = the X-Sockudo-Partial
   * header, null when absent), also for HTTP errors. `fn(sdk)` returns the SDK's promise.
   */
  async api(i, what, fn) {
    let res;
    try {
      res = await withTimeout(fn(this.sdks[i]), STEP_MS, `${what} on n${i}`);
    } catch (e) {
      if (e && typeof e.status === 'number') return { status: e.status, body: parseMaybe(e.body), partial: null };
      throw e;
    }
    return { status: res.status, body: parseMaybe(await res.text()), partial: res.headers.get('x-sockudo-partial') };
  }

  /** An HTTP answer that must be a complete 200: no error, no "partial" key, no header. */
  async ok(i, what, fn) {
    const res = await this.api(i, what, fn);
    this.check(`${what} on n${i}: 200`, res.status === 200 && !(res.body && res.body.error), JSON.stringify(res));
    this.check(`${what} on n${i}: complete (no partial)`, res.partial === null && !(res.body && 'partial' in res.body), JSON.stringify(res));
    return res.body;
  }

  trigger(i, what, channels, event, data, params) {
    return this.ok(i, what, (sdk) => sdk.trigger(channels, event, data, params));
  }

  get(i, what, path, params) {
    return this.ok(i, what, (sdk) => sdk.get({ path, params }));
  }

  /**
   * Replicated state (presence members) reaches the other nodes asynchronously: ask `fn()`
   * again until `eq(name, value, want)` holds, for at most STEP_MS, then check it once more.
   */
  async eventually(name, fn, want) {
    const deadline = Date.now() + STEP_MS;
    let got;
    let tries = 0;
    for (;;) {
      const mark = this.checks.length;
      got = await fn();
      tries += 1;
      if (stable(got) === stable(want) || Date.now() >= deadline) break;
      this.checks.length = mark; // keep the checks of the last try only
      await sleep(POLL_MS);
    }
    if (tries > 1) this.notes.push(`${name}: ${tries} tries`);
    this.eq(name, got, want);
  }

  /** The user ids of presence channel `chan` as node `i` answers GET users (sorted). */
  async usersOn(i, chan) {
    const body = await this.get(i, 'GET users', `/channels/${chan}/users`);
    return (body.users || []).map((u) => String(u.id)).sort();
  }

  /**
   * Wait until node `i` lists exactly `ids` in presence channel `chan`. Members are replicated
   * asynchronously: a join on one node is in another node's member list a few ms later.
   */
  visible(i, chan, ids) {
    return this.eventually(`users of ${chan} on n${i}`, () => this.usersOn(i, chan), [...ids].sort());
  }

  /** After the expected events came: wait SETTLE_MS so that duplicates would show. */
  settle() {
    return sleep(SETTLE_MS);
  }

  /** `collector` saw exactly the payloads `want` (as a multiset, order ignored). */
  exactly(name, collector, want, map = (x) => x.data) {
    const got = collector.all.map(map).map(stable).sort();
    this.check(name, stable(got) === stable(want.map(stable).sort()), `got ${JSON.stringify(collector.all.map(map))} want ${JSON.stringify(want)}`);
  }
}

/**
 * Collect events named `event` on `target` (a channel, pusher.user, anything with bind).
 * Unlike lib.mjs's collect(), `next(what, pred, from)` is not a consuming cursor: it waits
 * (bounded) for any event matching `pred` at index >= `from` (default 0), whether it came
 * before or after the call, so concurrent waits on one collector do not steal each other's
 * events. `all` holds everything seen, `count` its length.
 */
function collect(target, event) {
  const seen = [];
  const waiters = new Set();
  target.bind(event, (data, meta) => {
    seen.push({ data, meta });
    for (const w of [...waiters]) w();
  });
  return {
    all: seen,
    get count() {
      return seen.length;
    },
    next(what, pred = () => true, from = 0) {
      let w;
      const p = new Promise((resolve) => {
        w = () => {
          const item = seen.slice(from).find((x) => pred(x.data, x.meta));
          if (item) resolve(item);
        };
        waiters.add(w);
        w();
      });
      return withTimeout(p, STEP_MS, what || event).finally(() => waiters.delete(w));
    },
  };
}

function membersOf(channel) {
  const ids = [];
  channel.members.each((m) => ids.push(String(m.id)));
  return { count: channel.members.count, ids: ids.sort(), me: channel.members.me && String(channel.members.me.id) };
}

function errorCodes(c) {
  return c.__closes.map((e) => e?.error?.data?.code ?? e?.data?.code).filter((x) => x !== undefined);
}

/** Resolves with the next state of `c` that is not connected (disconnected, failed...). */
function leftState(c) {
  return new Promise((resolve) => {
    if (!['connected', 'connecting', 'initialized'].includes(c.connection.state)) resolve(c.connection.state);
    c.connection.bind('state_change', (s) => {
      if (!['connected', 'connecting', 'initialized'].includes(s.current)) resolve(s.current);
    });
  });
}

/**
 * Admission of a fresh client: {connected: socketId} or {refused: [error codes], state}.
 * pusher-js answers a pusher:error during the handshake with an 'error' event and, for
 * 4000-4099, gives up (state disconnected).
 */
function admission(ctx, c) {
  const p = new Promise((resolve) => {
    c.connection.bind('state_change', ({ current }) => {
      if (current === 'connected') resolve({ connected: c.connection.socket_id });
      else if (['disconnected', 'failed', 'unavailable'].includes(current)) resolve({ refused: errorCodes(c), state: current });
    });
  });
  return withTimeout(p, STEP_MS, `${c.__label} admission`);
}

// ------------------------------------------------------------------------------- scenarios

/** HTTP publish on any node reaches every subscriber on every node exactly once; socket_id
 * exclusion across nodes; multi-channel trigger; triggerBatch. */
async function publish(ctx) {
  const chan = ctx.ch('news');
  const chan2 = ctx.ch('news2');
  const cs = [0, 1, 2].map((i) => ctx.on(i, 'C'));
  const ids = await ctx.step('connect', () => Promise.all(cs.map((c) => ctx.connected(c))));
  const chs = await ctx.step('subscribe', () => Promise.all(cs.map((c) => ctx.subscribe(c, chan).then(([ch]) => ch))));
  // chan2: subscribers on n0 and n2 only
  const [ch2a, ch2c] = await ctx.step('subscribe chan2', () =>
    Promise.all([ctx.subscribe(cs[0], chan2), ctx.subscribe(cs[2], chan2)]).then((r) => r.map(([ch]) => ch)),
  );
  const ev = chs.map((ch) => collect(ch, 'news'));
  const ev2 = [collect(ch2a, 'news'), null, collect(ch2c, 'news')];

  await ctx.step('trigger on each node reaches every node', async () => {
    for (const i of [0, 1, 2]) {
      await ctx.trigger(i, 'trigger', chan, 'news', { from: i });
      await Promise.all(ev.map((e, k) => e.next(`C@n${k} gets the event published on n${i}`, (d) => d && d.from === i)));
    }
  });

  await ctx.step('multi-channel trigger', async () => {
    await ctx.trigger(1, 'trigger two channels', [chan, chan2], 'news', { multi: 1 });
    await Promise.all([...ev, ev2[0], ev2[2]].map((e) => e.next('multi-channel event', (d) => d && d.multi === 1)));
  });

  await ctx.step('socket_id excludes a socket on another node', async () => {
    await ctx.trigger(0, 'trigger excluding C@n1', chan, 'news', { x: 'not-n1' }, { socket_id: ids[1] });
    await ctx.trigger(2, 'trigger excluding C@n0', chan, 'news', { x: 'not-n0' }, { socket_id: ids[0] });
    await ctx.trigger(1, 'trigger excluding C@n1 on its own node', chan, 'news', { x: 'not-n1-local' }, { socket_id: ids[1] });
    await Promise.all([
      ev[0].next('C@n0 gets not-n1', (d) => d && d.x === 'not-n1'),
      ev[2].next('C@n2 gets not-n1', (d) => d && d.x === 'not-n1'),
      ev[1].next('C@n1 gets not-n0', (d) => d && d.x === 'not-n0'),
      ev[2].next('C@n2 gets not-n0', (d) => d && d.x === 'not-n0'),
      ev[0].next('C@n0 gets not-n1-local', (d) => d && d.x === 'not-n1-local'),
      ev[2].next('C@n2 gets not-n1-local', (d) => d && d.x === 'not-n1-local'),
    ]);
  });

  await ctx.step('triggerBatch on n2', async () => {
    await ctx.ok(2, 'triggerBatch', (sdk) =>
      sdk.triggerBatch([
        { channel: chan, name: 'news', data: { batch: 1 } },
        { channel: chan2, name: 'news', data: { batch: 2 } },
      ]),
    );
    await Promise.all([
      ...ev.map((e, k) => e.next(`C@n${k} batch 1`, (d) => d && d.batch === 1)),
      ev2[0].next('C@n0 batch 2', (d) => d && d.batch === 2),
      ev2[2].next('C@n2 batch 2', (d) => d && d.batch === 2),
    ]);
  });

  await ctx.step('marker on every node, then exactly once each', async () => {
    await ctx.trigger(0, 'marker', chan, 'news', { marker: 1 });
    await Promise.all(ev.map((e, k) => e.next(`C@n${k} marker`, (d) => d && d.marker === 1)));
    await ctx.settle();
    const common = [{ from: 0 }, { from: 1 }, { from: 2 }, { multi: 1 }, { batch: 1 }, { marker: 1 }, { x: 'not-n1' }, { x: 'not-n0' }, { x: 'not-n1-local' }];
    const without = (...xs) => common.filter((d) => !xs.includes(d.x));
    ctx.exactly('C@n0 on chan: each event once, not the one excluding it', ev[0], without('not-n0'));
    ctx.exactly('C@n1 on chan: each event once, not the ones excluding it', ev[1], without('not-n1', 'not-n1-local'));
    ctx.exactly('C@n2 on chan: each event once', ev[2], common);
    ctx.exactly('C@n0 on chan2: each event once', ev2[0], [{ multi: 1 }, { batch: 2 }]);
    ctx.exactly('C@n2 on chan2: each event once', ev2[2], [{ multi: 1 }, { batch: 2 }]);
  });
}

/** Client events on private and presence channels reach the other nodes, never the sender. */
async function clientEvents(ctx) {
  for (const kind of ['private', 'presence']) {
    const chan = ctx.ch(`${kind}-whisper`);
    const users = ['alice', 'bob', 'carol'].map((n) => ({ user_id: `u-${n}`, user_info: { name: n } }));
    const cs = [0, 1, 2].map((i) => ctx.on(i, `${kind}-${users[i].user_id}`, users[i]));
    await ctx.step(`${kind}: connect`, () => Promise.all(cs.map((c) => ctx.connected(c))));
    const chs = await ctx.step(`${kind}: subscribe`, () => Promise.all(cs.map((c) => ctx.subscribe(c, chan).then(([ch]) => ch))));
    const got = chs.map((ch) => collect(ch, 'client-typing'));
    const marks = chs.map((ch) => collect(ch, 'mark'));
    await ctx.step(`${kind}: client event from n0 reaches n1 and n2`, async () => {
      ctx.check('trigger accepted by pusher-js', chs[0].trigger('client-typing', { from: 0 }), 'trigger returned false');
      const [g1, g2] = await Promise.all([got[1].next('n1 gets it', (d) => d.from === 0), got[2].next('n2 gets it', (d) => d.from === 0)]);
      if (kind === 'presence') {
        ctx.eq('user_id on n1', g1.meta && g1.meta.user_id, users[0].user_id);
        ctx.eq('user_id on n2', g2.meta && g2.meta.user_id, users[0].user_id);
      }
    });
    await ctx.step(`${kind}: client event from n2 reaches n0 and n1`, async () => {
      chs[2].trigger('client-typing', { from: 2 });
      const [g0] = await Promise.all([got[0].next('n0 gets it', (d) => d.from === 2), got[1].next('n1 gets it', (d) => d.from === 2)]);
      if (kind === 'presence') ctx.eq('user_id on n0', g0.meta && g0.meta.user_id, users[2].user_id);
    });
    await ctx.step(`${kind}: exactly once, never echoed to the sender`, async () => {
      await ctx.trigger(1, `${kind} marker`, chan, 'mark', {});
      await Promise.all(marks.map((m, k) => m.next(`n${k} marker`)));
      await ctx.settle();
      ctx.exactly('n0 got only the event of n2', got[0], [{ from: 2 }]);
      ctx.exactly('n1 got both, once each', got[1], [{ from: 0 }, { from: 2 }]);
      ctx.exactly('n2 got only the event of n0', got[2], [{ from: 0 }]);
    });
  }
}

/** Presence across nodes: member lists, member_added / member_removed once per user
 * cluster-wide (one user with tabs on two nodes), GET users on every node. */
async function presence(ctx) {
  const chan = ctx.ch('presence-room');
  const alice = { user_id: 'u-alice', user_info: { name: 'Alice' } };
  const bob = { user_id: 'u-bob', user_info: { name: 'Bob' } };
  const carol = { user_id: 'u-carol', user_info: { name: 'Carol' } };
  const a = ctx.on(0, 'A', alice);
  const b1 = ctx.on(1, 'B1', bob);
  const b2 = ctx.on(2, 'B2', bob); // a second tab of bob, on another node
  const c = ctx.on(2, 'C', carol);
  await ctx.step('connect', () => Promise.all([a, b1, b2, c].map((x) => ctx.connected(x))));

  const [chA, mA] = await ctx.step('A joins on n0', () => ctx.subscribe(a, chan));
  ctx.eq('A alone', { count: mA.count, me: mA.me && mA.me.id }, { count: 1, me: alice.user_id });
  const addedA = collect(chA, 'pusher:member_added');
  const removedA = collect(chA, 'pusher:member_removed');
  const marksA = collect(chA, 'mark');

  const chB1 = await ctx.step('B1 joins on n1: sees alice of n0; A gets member_added', async () => {
    await ctx.visible(1, chan, [alice.user_id]);
    const [ch] = await ctx.subscribe(b1, chan);
    ctx.eq('B1 members', membersOf(ch), { count: 2, ids: [alice.user_id, bob.user_id].sort(), me: bob.user_id });
    const m = await addedA.next('A member_added bob');
    ctx.eq('member_added bob', { id: m.data.id, info: m.data.info }, { id: bob.user_id, info: bob.user_info });
    return ch;
  });
  const addedB1 = collect(chB1, 'pusher:member_added');
  const removedB1 = collect(chB1, 'pusher:member_removed');
  const marksB1 = collect(chB1, 'mark');

  const chC = await ctx.step('C joins on n2: sees alice and bob; A and B1 get member_added', async () => {
    await ctx.visible(2, chan, [alice.user_id, bob.user_id]);
    const [ch] = await ctx.subscribe(c, chan);
    ctx.eq('C members', membersOf(ch), { count: 3, ids: [alice.user_id, bob.user_id, carol.user_id].sort(), me: carol.user_id });
    ctx.eq('C sees the user_info of other nodes', ch.members.get(bob.user_id)?.info, bob.user_info);
    await Promise.all([addedA.next('A member_added carol', (d) => d.id === carol.user_id), addedB1.next('B1 member_added carol', (d) => d.id === carol.user_id)]);
    return ch;
  });
  const addedC = collect(chC, 'pusher:member_added');
  const removedC = collect(chC, 'pusher:member_removed');
  const marksC = collect(chC, 'mark');

  const chB2 = await ctx.step('B2 (second tab of bob) joins on n2: nobody gets member_added', async () => {
    const [ch] = await ctx.subscribe(b2, chan);
    ctx.eq('B2 members', membersOf(ch), { count: 3, ids: [alice.user_id, bob.user_id, carol.user_id].sort(), me: bob.user_id });
    await ctx.trigger(1, 'marker 1', chan, 'mark', { n: 1 });
    await Promise.all([marksA, marksB1, marksC].map((m, k) => m.next(`marker 1 (${k})`, (d) => d.n === 1)));
    await ctx.settle();
    ctx.exactly('A: member_added once per user', addedA, [bob.user_id, carol.user_id], (x) => x.data.id);
    ctx.exactly('B1: member_added once (carol)', addedB1, [carol.user_id], (x) => x.data.id);
    ctx.eq('C: no member_added for the second tab', addedC.count, 0);
    return ch;
  });
  const removedB2 = collect(chB2, 'pusher:member_removed');
  const marksB2 = collect(chB2, 'mark');

  const everyone = [alice.user_id, bob.user_id, carol.user_id].sort();
  for (const i of [0, 1, 2]) {
    await ctx.step(`GET users on n${i}`, () => ctx.visible(i, chan, everyone));
    await ctx.step(`GET channel user_count on n${i}`, async () => {
      await ctx.eventually(`user_count on n${i}`, async () => {
        const body = await ctx.get(i, 'GET channel', `/channels/${chan}`, { info: 'user_count,subscription_count' });
        return { occupied: body.occupied, user_count: body.user_count, subscription_count: body.subscription_count };
      }, { occupied: true, user_count: 3, subscription_count: 4 });
    });
  }

  await ctx.step('B1 (n1) leaves while B2 (n2) stays: no member_removed', async () => {
    b1.disconnect();
    // Nothing tells the others that n1 has seen the close: wait until n0 counts 3 sockets.
    await ctx.eventually('sockets in the channel after B1 left', async () => (await ctx.get(0, 'GET channel', `/channels/${chan}`, { info: 'subscription_count' })).subscription_count, 3);
    await ctx.trigger(0, 'marker 2', chan, 'mark', { n: 2 });
    await Promise.all([marksA, marksC, marksB2].map((m, k) => m.next(`marker 2 (${k})`, (d) => d.n === 2)));
    await ctx.settle();
    ctx.eq('member_removed while a tab remains (A, C, B2)', [removedA.count, removedC.count, removedB2.count], [0, 0, 0]);
    ctx.eq('A still has bob', membersOf(chA).ids, everyone);
    ctx.eq('B1 saw no member_removed before leaving', removedB1.count, 0);
  });

  await ctx.step('B2 (n2) leaves: member_removed bob once on n0 and n2', async () => {
    b2.disconnect();
    await Promise.all([removedA.next('A member_removed bob'), removedC.next('C member_removed bob')]);
    await ctx.settle();
    ctx.exactly('A: member_removed bob once', removedA, [bob.user_id], (x) => String(x.data.id));
    ctx.exactly('C: member_removed bob once', removedC, [bob.user_id], (x) => String(x.data.id));
    ctx.eq('A members', membersOf(chA), { count: 2, ids: [alice.user_id, carol.user_id].sort(), me: alice.user_id });
    ctx.eq('C members', membersOf(chC), { count: 2, ids: [alice.user_id, carol.user_id].sort(), me: carol.user_id });
  });

  for (const i of [0, 1, 2]) {
    await ctx.step(`GET users on n${i} after bob left`, () => ctx.visible(i, chan, [alice.user_id, carol.user_id]));
  }

  await ctx.step('C (n2) unsubscribes: A (n0) gets member_removed carol once', async () => {
    c.unsubscribe(chan);
    await removedA.next('A member_removed carol', (d) => d.id === carol.user_id);
    await ctx.settle();
    ctx.exactly('A: member_removed once per user', removedA, [bob.user_id, carol.user_id], (x) => String(x.data.id));
  });
}

/** Three users join one presence channel at the same moment on three nodes: each ends up
 * with the same three members, every other user announced exactly once (in the member list
 * of subscription_succeeded or by one member_added, never both), and leaving likewise. */
async function presenceRace(ctx) {
  const chan = ctx.ch('presence-race');
  const users = ['dave', 'erin', 'frank'].map((n) => ({ user_id: `u-${n}`, user_info: { name: n } }));
  const ids = users.map((u) => u.user_id).sort();
  const cs = users.map((u, i) => ctx.on(i, u.user_id, u));
  await ctx.step('connect', () => Promise.all(cs.map((c) => ctx.connected(c))));
  const chs = cs.map((c) => c.subscribe(chan));
  const initial = [];
  const added = chs.map((ch) => collect(ch, 'pusher:member_added'));
  const removed = chs.map((ch) => collect(ch, 'pusher:member_removed'));
  // Snapshot the member list in the handler: pusher-js hands over its live Members object,
  // which member_added frames of the same socket read may change before a promise resolves.
  const succeeded = chs.map((ch, k) => {
    ch.bind('pusher:subscription_succeeded', (m) => (initial[k] ??= Object.keys(m.members).sort()));
    return collect(ch, 'pusher:subscription_succeeded').next(`${users[k].user_id} subscribed`);
  });
  await ctx.step('all three subscribed', () => Promise.all(succeeded));
  await ctx.step('every subscriber ends up with the three members, each announced once', async () => {
    await Promise.all(
      chs.map((ch, k) =>
        withTimeout(
          (async () => {
            while (membersOf(ch).count < 3) await sleep(10);
          })(),
          STEP_MS,
          `${users[k].user_id} to see 3 members`,
        ),
      ),
    );
    await ctx.settle();
    ctx.notes.push(`member lists at subscription: ${JSON.stringify(initial)}`);
    for (const k of [0, 1, 2]) {
      const announced = [...initial[k], ...added[k].all.map((x) => String(x.data.id))].sort();
      ctx.eq(`${users[k].user_id}: initial members + member_added, each once`, announced, ids);
      ctx.eq(`${users[k].user_id}: members`, membersOf(chs[k]).ids, ids);
    }
  });
  await ctx.step('all leave but dave (n0): he gets member_removed once per user', async () => {
    cs[1].disconnect();
    cs[2].disconnect();
    await Promise.all(['u-erin', 'u-frank'].map((u) => removed[0].next(`dave: member_removed ${u}`, (d) => d.id === u)));
    await ctx.settle();
    ctx.exactly('dave: member_removed', removed[0], ['u-erin', 'u-frank'], (x) => String(x.data.id));
  });
}

/** A cache channel's last event, published through n0 and n1, is replayed to a subscriber
 * who comes later on n2; an empty cache channel answers pusher:cache_miss on any node. */
async function cache(ctx) {
  const chan = ctx.ch('cache-price');
  const empty = ctx.ch('cache-empty');
  await ctx.trigger(0, 'trigger via n0', chan, 'price', { eur: 10 });
  await ctx.trigger(1, 'trigger via n1', chan, 'price', { eur: 11 });
  const late = ctx.on(2, 'Late');
  const other = ctx.on(1, 'Other');
  await ctx.step('connect', () => Promise.all([ctx.connected(late), ctx.connected(other)]));
  await ctx.step('late subscriber on n2 gets the last event once', async () => {
    const ch = late.subscribe(chan);
    const prices = collect(ch, 'price');
    const misses = collect(ch, 'pusher:cache_miss');
    await collect(ch, 'pusher:subscription_succeeded').next('subscription_succeeded');
    ctx.eq('replayed payload', (await prices.next('cached price')).data, { eur: 11 });
    await ctx.settle();
    ctx.eq('replayed once, no cache_miss', [prices.count, misses.count], [1, 0]);
  });
  await ctx.step('a subscriber on n0 also gets it', async () => {
    const early = ctx.on(0, 'Early');
    await ctx.connected(early);
    const ch = early.subscribe(chan);
    ctx.eq('replayed payload on n0', (await collect(ch, 'price').next('cached price on n0')).data, { eur: 11 });
  });
  await ctx.step('empty cache channel on n1 -> pusher:cache_miss', async () => {
    const ch = other.subscribe(empty);
    await collect(ch, 'pusher:cache_miss').next('pusher:cache_miss');
  });
}

/** GET /channels and GET /channels/{ch} on every node answer cluster-wide counts, complete. */
async function channelQueries(ctx) {
  const pub = ctx.ch('pubq');
  const pres = ctx.ch('presence-q');
  const alice = { user_id: 'u-alice', user_info: {} };
  const bob = { user_id: 'u-bob', user_info: {} };
  // alice on n0, bob on n1 and n2 (two tabs): 3 sockets, 2 users
  const cs = [ctx.on(0, 'A', alice), ctx.on(1, 'B1', bob), ctx.on(2, 'B2', bob)];
  await ctx.step('connect', () => Promise.all(cs.map((c) => ctx.connected(c))));
  await ctx.step('subscribe', () => Promise.all(cs.flatMap((c) => [ctx.subscribe(c, pub), ctx.subscribe(c, pres)])));
  const nobody = ctx.ch('nobody');
  for (const i of [0, 1, 2]) {
    await ctx.attempt(`n${i}: GET /channels?filter_by_prefix=presence-…&info=user_count`, () =>
      ctx.eventually(`presence channels on n${i}`, async () => (await ctx.get(i, 'GET channels', '/channels', { filter_by_prefix: pres, info: 'user_count' })).channels, { [pres]: { user_count: 2 } }),
    );
    await ctx.attempt(`n${i}: GET /channels?filter_by_prefix=…&info=subscription_count`, async () => {
      const body = await ctx.get(i, 'GET channels', '/channels', { filter_by_prefix: pub, info: 'subscription_count' });
      ctx.eq(`channels on n${i}`, body.channels, { [pub]: { subscription_count: 3 } });
    });
    await ctx.attempt(`n${i}: GET /channels?filter_by_prefix (names only)`, async () => {
      const body = await ctx.get(i, 'GET channels', '/channels', { filter_by_prefix: pub });
      ctx.eq(`channel names on n${i}`, body.channels, { [pub]: {} });
    });
    await ctx.attempt(`n${i}: GET /channels/{public}?info=subscription_count`, async () => {
      const body = await ctx.get(i, 'GET channel', `/channels/${pub}`, { info: 'subscription_count' });
      ctx.eq(`public channel on n${i}`, body, { occupied: true, subscription_count: 3 });
    });
    await ctx.attempt(`n${i}: GET /channels/{presence}?info=user_count,subscription_count`, () =>
      ctx.eventually(`presence channel on n${i}`, () => ctx.get(i, 'GET channel', `/channels/${pres}`, { info: 'user_count,subscription_count' }), { occupied: true, user_count: 2, subscription_count: 3 }),
    );
    await ctx.attempt(`n${i}: GET /channels/{unoccupied}`, async () => {
      const body = await ctx.get(i, 'GET channel', `/channels/${nobody}`, { info: 'subscription_count' });
      ctx.eq(`unoccupied on n${i}`, body, { occupied: false, subscription_count: 0 });
    });
    await ctx.attempt(`n${i}: trigger with info=subscription_count,user_count`, async () => {
      const body = await ctx.trigger(i, 'trigger with info', [pub, pres], 'news', {}, { info: 'subscription_count,user_count' });
      ctx.eq(`trigger info on n${i}`, body.channels, { [pub]: { subscription_count: 3 }, [pres]: { subscription_count: 3, user_count: 2 } });
    });
  }
  await ctx.step('after B1 (n1) leaves: counts drop on every node', async () => {
    cs[1].disconnect();
    for (const i of [0, 1, 2]) {
      await ctx.eventually(`public channel on n${i} after B1 left`, () => ctx.get(i, 'GET channel', `/channels/${pub}`, { info: 'subscription_count' }), { occupied: true, subscription_count: 2 });
      await ctx.eventually(`presence channel on n${i} after B1 left`, () => ctx.get(i, 'GET channel', `/channels/${pres}`, { info: 'user_count,subscription_count' }), { occupied: true, user_count: 2, subscription_count: 2 });
    }
  });
}

/** An app with max_connections = N refuses socket N+1 on another node with 4004; a freed
 * slot is usable from any node. */
async function maxConnections(ctx) {
  const app = ctx.p.limited;
  const max = Number(app.maxConnections);
  const admitted = [];
  await ctx.step(`${max} sockets on ${max} different nodes are admitted`, async () => {
    for (let k = 0; k < max; k++) {
      const c = ctx.onApp(k % ctx.nodes.length, app, `L${k}`);
      const r = await admission(ctx, c);
      ctx.check(`L${k} admitted`, r.connected, JSON.stringify(r));
      admitted.push(c);
    }
  });
  const third = max % ctx.nodes.length;
  await ctx.step(`socket ${max + 1} on n${third} refused with 4004`, async () => {
    const c = ctx.onApp(third, app, `L${max}`);
    const r = await admission(ctx, c);
    ctx.check('refused', r.refused, JSON.stringify(r));
    ctx.check('pusher:error 4004', r.refused.includes(4004), JSON.stringify(r));
    c.disconnect();
  });
  await ctx.step('the admitted ones stay connected', () => {
    ctx.eq('states', admitted.map((c) => c.connection.state), admitted.map(() => 'connected'));
  });
  await ctx.step(`after L0 (n0) leaves, a socket on n${third} is admitted`, async () => {
    admitted[0].disconnect();
    // n0 handles the close asynchronously: try again (bounded) until the slot is free.
    const deadline = Date.now() + STEP_MS;
    let r;
    let tries = 0;
    do {
      tries += 1;
      const c = ctx.onApp(third, app, `L-retry${tries}`);
      r = await admission(ctx, c);
      if (!r.connected) {
        c.disconnect();
        ctx.check('refused only with 4004 while the slot is taken', r.refused.includes(4004), JSON.stringify(r));
        await sleep(POLL_MS);
      }
    } while (!r.connected && Date.now() < deadline);
    if (tries > 1) ctx.notes.push(`admitted after ${tries} tries`);
    ctx.check('admitted once a slot was free', r.connected, JSON.stringify(r));
  });
}

/** sendToUser and terminateUserConnections reach a user's sockets on every node. */
async function users(ctx) {
  const alice = { user_id: `u-alice-${ctx.suffix}`, user_info: {} };
  const bob = { user_id: `u-bob-${ctx.suffix}`, user_info: {} };
  const a0 = ctx.on(0, 'Alice', alice);
  const a1 = ctx.on(1, 'Alice', alice);
  const b = ctx.on(2, 'Bob', bob);
  const all = [a0, a1, b];
  await ctx.step('connect', () => Promise.all(all.map((c) => ctx.connected(c))));
  await ctx.step('signin on every node', () =>
    Promise.all(
      all.map((c) => {
        const uid = c === b ? bob.user_id : alice.user_id;
        const ok = ctx.frame(c, 'pusher:signin_success', (f) => f.event === 'pusher:signin_success');
        const sub = ctx.frame(c, `#server-to-user-${uid} subscribed`, (f) => f.event === 'pusher_internal:subscription_succeeded' && f.channel === `#server-to-user-${uid}`);
        c.signin();
        return Promise.all([ok, sub]);
      }),
    ),
  );
  const notes = all.map((c) => collect(c.user, 'note'));
  await ctx.step('sendToUser via n2 reaches alice on n0 and n1, once each', async () => {
    await ctx.ok(2, 'sendToUser alice', (sdk) => sdk.sendToUser(alice.user_id, 'note', { to: 'alice' }));
    await ctx.ok(0, 'sendToUser bob', (sdk) => sdk.sendToUser(bob.user_id, 'note', { to: 'bob' }));
    await Promise.all([notes[0].next('alice@n0 note'), notes[1].next('alice@n1 note'), notes[2].next('bob@n2 note')]);
    await ctx.settle();
    ctx.exactly('alice@n0', notes[0], [{ to: 'alice' }]);
    ctx.exactly('alice@n1', notes[1], [{ to: 'alice' }]);
    ctx.exactly('bob@n2 got only his', notes[2], [{ to: 'bob' }]);
  });
  await ctx.step('terminateUserConnections via n2 closes alice on n0 and n1 with 4009', async () => {
    const gone = [a0, a1].map((c) => withTimeout(leftState(c), STEP_MS, `${c.__label} to be closed`));
    await ctx.ok(2, 'terminateUserConnections', (sdk) => sdk.terminateUserConnections(alice.user_id));
    const states = await Promise.all(gone);
    ctx.check('alice closed on both nodes', states.every((s) => s !== 'connected'), JSON.stringify(states));
    ctx.eq('error codes', [errorCodes(a0).includes(4009), errorCodes(a1).includes(4009)], [true, true]);
  });
  await ctx.step('bob (n2) stays connected', async () => {
    await ctx.ok(1, 'sendToUser bob again', (sdk) => sdk.sendToUser(bob.user_id, 'note', { to: 'bob', n: 2 }));
    await notes[2].next('bob@n2 second note', (d) => d.n === 2);
    ctx.eq('bob state', b.connection.state, 'connected');
  });
}

/** pusher_internal:subscription_count counts the sockets of every node. */
async function subscriptionCount(ctx) {
  const chan = ctx.ch('counted');
  const cs = [0, 1, 2].map((i) => ctx.on(i, 'S'));
  await ctx.step('connect', () => Promise.all(cs.map((c) => ctx.connected(c))));
  const chs = [];
  const counts = [];
  const seen = (k) => counts[k].all.map((x) => x.data && x.data.subscription_count);
  for (const k of [0, 1, 2]) {
    await ctx.step(`S@n${k} subscribes: every subscriber gets ${k + 1}`, async () => {
      const ch = cs[k].subscribe(chan);
      chs.push(ch);
      counts.push(collect(ch, 'pusher:subscription_count'));
      await Promise.all(counts.map((c, j) => c.next(`S@n${j} count ${k + 1}`, (d) => d && d.subscription_count === k + 1)));
      ctx.eq('channel.subscriptionCount', chs.map((c) => c.subscriptionCount), chs.map(() => k + 1));
    });
  }
  await ctx.step('S@n2 unsubscribes: n0 and n1 get 2', async () => {
    const from = counts.map((c) => c.count);
    cs[2].unsubscribe(chan);
    await Promise.all([0, 1].map((j) => counts[j].next(`S@n${j} count 2`, (d) => d && d.subscription_count === 2, from[j])));
  });
  await ctx.step('S@n1 disconnects: n0 gets 1', async () => {
    const from = counts[0].count;
    cs[1].disconnect();
    await counts[0].next('S@n0 count 1', (d) => d && d.subscription_count === 1, from);
    ctx.eq('channel.subscriptionCount on n0', chs[0].subscriptionCount, 1);
  });
  await ctx.step('each count change arrived once', async () => {
    await ctx.settle();
    // A count another node computed just before this socket joined may still reach it (it
    // was between the nodes): leading counts below the one it joined with are such.
    const since = (k) => {
      const values = seen(k);
      const first = values.findIndex((v) => v >= k + 1);
      return first < 0 ? values : values.slice(first);
    };
    ctx.eq('S@n0 counts', since(0), [1, 2, 3, 2, 1]);
    ctx.eq('S@n1 counts', since(1), [2, 3, 2]);
    ctx.eq('S@n2 counts', since(2), [3]);
  });
}

/** Laravel Echo on two nodes: join().here/joining/leaving, whisper, listen. */
async function echoPresence(ctx) {
  const alice = { user_id: 'u-alice', user_info: { name: 'Alice' } };
  const bob = { user_id: 'u-bob', user_info: { name: 'Bob' } };
  const echoOn = (i, label, user) => {
    const n = ctx.nodes[i];
    return echoAt(ctx, n.host, n.port, `${label}@n${i}`, user);
  };
  const once = (what, register) => withTimeout(new Promise((resolve) => register(resolve)), STEP_MS, what);
  const hook = (register) => ({ bind: (_, cb) => register(cb), unbind: () => {} });
  const e1 = echoOn(0, 'Echo-alice', alice);
  const e2 = echoOn(2, 'Echo-bob', bob);
  await ctx.step('connect', () => Promise.all([ctx.connected(e1.connector.pusher), ctx.connected(e2.connector.pusher)]));
  const room = ctx.ch('room');
  const p1 = e1.join(room);
  const joining = collect(hook((cb) => p1.joining(cb)), 'joining');
  const leaving = collect(hook((cb) => p1.leaving(cb)), 'leaving');
  const whispers1 = collect(hook((cb) => p1.listenForWhisper('typing', cb)), 'typing');
  const shipped1 = collect(hook((cb) => p1.listen('.Shipped', cb)), 'shipped');
  await ctx.step('alice joins on n0', async () => {
    ctx.eq('here (alice alone)', await once('here() for alice', (r) => p1.here(r)), [alice.user_info]);
    await ctx.visible(2, `presence-${room}`, [alice.user_id]);
  });
  const p2 = e2.join(room);
  const whispers2 = collect(hook((cb) => p2.listenForWhisper('typing', cb)), 'typing');
  const shipped2 = collect(hook((cb) => p2.listen('.Shipped', cb)), 'shipped');
  await ctx.step('bob joins on n2: here() has both, joining(bob) on n0', async () => {
    const here2 = await once('here() for bob', (r) => p2.here(r));
    ctx.eq('here (both)', [...here2].sort((x, y) => x.name.localeCompare(y.name)), [alice.user_info, bob.user_info]);
    ctx.eq('joining(bob)', (await joining.next('joining')).data, bob.user_info);
  });
  await ctx.step('whispers cross the nodes', async () => {
    p2.whisper('typing', { who: 'bob' });
    ctx.eq('whisper on n0', (await whispers1.next('whisper from bob')).data, { who: 'bob' });
    p1.whisper('typing', { who: 'alice' });
    ctx.eq('whisper on n2', (await whispers2.next('whisper from alice')).data, { who: 'alice' });
  });
  await ctx.step('listen() gets an event published on n1 on both nodes, once', async () => {
    await ctx.trigger(1, 'trigger Shipped', `presence-${room}`, 'Shipped', { order: 7 });
    await Promise.all([shipped1.next('Shipped on n0'), shipped2.next('Shipped on n2')]);
    await ctx.settle();
    ctx.exactly('Shipped on n0 once', shipped1, [{ order: 7 }]);
    ctx.exactly('Shipped on n2 once', shipped2, [{ order: 7 }]);
    ctx.exactly('no own whisper echoed (n0)', whispers1, [{ who: 'bob' }]);
    ctx.exactly('no own whisper echoed (n2)', whispers2, [{ who: 'alice' }]);
  });
  await ctx.step('bob leaves on n2: leaving(bob) on n0 once', async () => {
    e2.leave(room);
    ctx.eq('leaving(bob)', (await leaving.next('leaving')).data, bob.user_info);
    await ctx.settle();
    ctx.eq('joining / leaving counts', [joining.count, leaving.count], [1, 1]);
  });
}

export const scenarios = {
  publish,
  'client-events': clientEvents,
  presence,
  'presence-race': presenceRace,
  cache,
  'channel-queries': channelQueries,
  'max-connections': maxConnections,
  users,
  'subscription-count': subscriptionCount,
  'echo-presence': echoPresence,
};

// ------------------------------------------------------------------------------- runner

async function runOne(params, name) {
  const ctx = new ClusterCtx({ ...params, suffix: `${params.suffix || Math.random().toString(16).slice(2, 10)}-${name}` }, name);
  const started = Date.now();
  const result = (ok, error) => ({
    scenario: name,
    ok,
    ms: Date.now() - started,
    suffix: ctx.suffix,
    checks: ctx.checks,
    notes: ctx.notes,
    ...(error ? { error, frames: ctx.frames() } : {}),
  });
  try {
    await scenarios[name](ctx);
    const failed = ctx.checks.filter((c) => !c.ok);
    const error = failed.length ? [...ctx.errors, ...failed.filter((c) => c.soft).map((c) => `${c.name}: ${c.detail}`)].join(' | ') || 'failed checks' : undefined;
    return result(failed.length === 0, error);
  } catch (e) {
    return result(false, e instanceof CheckFailed ? e.message : String(e?.stack || e));
  } finally {
    ctx.disconnectAll();
  }
}

function emit(result, code) {
  process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(code));
}

const arg = process.argv[2];
if (arg === 'list') {
  emit(Object.keys(scenarios), 0);
} else {
  let params;
  try {
    params = JSON.parse(arg || '');
    if (!Array.isArray(params.nodes) || params.nodes.length < 3) throw new Error('"nodes" needs 3 entries');
  } catch (e) {
    process.stderr.write(`usage: node cluster.mjs '{"nodes":[{"host","port"}x3],"appId",...}' | node cluster.mjs list (${e.message})\n`);
    process.exit(2);
  }
  const names = params.scenarios || Object.keys(scenarios);
  const unknown = names.filter((n) => !scenarios[n]);
  const started = Date.now();
  const results = {};
  const finish = () => {
    const ok = names.every((n) => results[n] && results[n].ok);
    return { ok, ms: Date.now() - started, scenarios: results };
  };
  if (unknown.length) {
    emit({ ok: false, error: `unknown scenarios ${unknown.join(', ')}; known: ${Object.keys(scenarios).join(', ')}`, scenarios: {} }, 2);
  } else {
    const deadlineMs = Number(params.deadlineMs || 45000);
    setTimeout(() => {
      for (const n of names) results[n] ??= { scenario: n, ok: false, error: `overall deadline of ${deadlineMs} ms reached`, checks: [], notes: [] };
      emit(finish(), 1);
    }, deadlineMs).unref();
    process.on('unhandledRejection', (e) => process.stderr.write(`unhandled rejection: ${e?.message || e}\n`));
    if (params.sequential) {
      for (const n of names) results[n] = await runOne(params, n);
    } else {
      await Promise.all(names.map(async (n) => (results[n] = await runOne(params, n))));
    }
    const out = finish();
    emit(out, out.ok ? 0 : 1);
  }
}
