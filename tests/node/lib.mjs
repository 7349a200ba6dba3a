// Shared helpers for the interop scenarios: clients, bounded waits, frame capture, checks.
//
// Every wait here is bounded (STEP_MS, default 5 s); run.mjs adds an overall deadline.
import crypto from 'node:crypto';
import Pusher from 'pusher';
import PusherJS from 'pusher-js';

export const STEP_MS = Number(process.env.INTEROP_STEP_MS || 5000);

export class CheckFailed extends Error {}

/** Context of one scenario run: parameters, clients, recorded checks and frames. */
export class Ctx {
  constructor(params) {
    this.p = {
      host: '127.0.0.1',
      appId: 'app-id',
      key: 'app-key',
      secret: 'app-secret',
      ...params,
    };
    if (!this.p.port) throw new Error('parameter "port" is required');
    // Unique suffix so that scenarios sharing one server never see each other's channels.
    this.suffix = this.p.suffix || crypto.randomBytes(4).toString('hex');
    this.checks = [];
    this.notes = [];
    this.errors = []; // failures of attempt()s
    this.clients = [];
    this.sdk = this.makeSdk();
    this.badSdk = this.makeSdk({ secret: `${this.p.secret}-wrong` });
    // For private-encrypted-* channels: its authorizeChannel adds the per-channel shared_secret.
    this.masterKey = crypto.randomBytes(32).toString('base64');
    this.esdk = this.makeSdk({ encryptionMasterKeyBase64: this.masterKey });
  }

  /** Channel name unique to this run: ch('private-chat') -> 'private-chat-<suffix>'. */
  ch(base) {
    return `${base}-${this.suffix}`;
  }

  makeSdk(extra = {}) {
    return new Pusher({
      appId: this.p.appId,
      key: this.p.key,
      secret: this.p.secret,
      host: this.p.host,
      port: String(this.p.port),
      useTLS: false,
      timeout: STEP_MS,
      ...extra,
    });
  }

  /** Options for pusher-js (also used by Laravel Echo, which passes them through). */
  clientOptions(label, user) {
    return {
      cluster: 'mt1',
      wsHost: this.p.host,
      wsPort: this.p.port,
      forceTLS: false,
      enabledTransports: ['ws'],
      disableStats: true,
      channelAuthorization: {
        customHandler: ({ socketId, channelName }, cb) => {
          this.signChannel(socketId, channelName, user, cb);
        },
      },
      userAuthentication: {
        customHandler: ({ socketId }, cb) => {
          if (!user) return cb(new Error(`${label}: no user to sign in as`), null);
          try {
            cb(null, this.sdk.authenticateUser(socketId, { id: String(user.user_id), ...user.user_info }));
          } catch (e) {
            cb(e, null);
          }
        },
      },
    };
  }

  /**
   * Sign a channel subscription locally with the Node SDK. Channels whose name contains
   * '-bad-' are signed with a wrong secret; private-encrypted-* ones with the SDK holding the
   * encryption master key (so the answer carries shared_secret).
   */
  signChannel(socketId, channelName, user, cb) {
    try {
      let signer = channelName.startsWith('private-encrypted-') ? this.esdk : this.sdk;
      if (channelName.includes('-bad-')) signer = this.badSdk;
      const auth = channelName.startsWith('presence-')
        ? signer.authorizeChannel(socketId, channelName, user)
        : signer.authorizeChannel(socketId, channelName);
      cb(null, auth);
    } catch (e) {
      cb(e, null);
    }
  }

  /** A pusher-js client; `user` = {user_id, user_info} for presence and signin. */
  client(label, user, extraOptions = {}) {
    const c = new PusherJS(this.p.key, { ...this.clientOptions(label, user), ...extraOptions });
    return this.track(c, label);
  }

  /** Record every frame a pusher-js client receives and sends (for failure reports). */
  track(c, label) {
    c.__label = label;
    c.__frames = [];
    c.__closes = [];
    const push = (dir, ev) => {
      // Clone: pusher-js mutates some received objects later (e.g. the presence hash).
      if (c.__frames.length < 200) c.__frames.push(JSON.parse(JSON.stringify({ dir, ...ev })));
    };
    c.connection.bind('message', (ev) => push('in', { event: ev.event, channel: ev.channel, data: ev.data, user_id: ev.user_id }));
    c.connection.bind('error', (err) => c.__closes.push(err));
    const send = c.send_event.bind(c);
    c.send_event = (event, data, channel) => {
      push('out', { event, channel, data });
      return send(event, data, channel);
    };
    this.clients.push(c);
    return c;
  }

  // ---- checks ---------------------------------------------------------------------------
  check(name, cond, detail) {
    this.checks.push({ name, ok: !!cond, ...(cond ? {} : { detail }) });
    if (!cond) throw new CheckFailed(`${name}: ${detail}`);
  }

  eq(name, got, want) {
    const ok = stable(got) === stable(want);
    this.check(name, ok, `got ${JSON.stringify(got)} want ${JSON.stringify(want)}`);
  }

  /** A check whose failure is recorded but does not stop the scenario. */
  soft(name, cond, detail) {
    this.checks.push({ name, ok: !!cond, soft: true, ...(cond ? {} : { detail }) });
  }

  /** Run `fn` as a named step; a thrown error becomes a failed check. */
  async step(name, fn) {
    try {
      return await fn();
    } catch (e) {
      if (!(e instanceof CheckFailed)) this.checks.push({ name, ok: false, detail: String(e?.message || e) });
      throw new CheckFailed(`${name}: ${e?.message || e}`);
    }
  }

  /** Like step(), but a failure is recorded and the scenario goes on (independent checks). */
  async attempt(name, fn) {
    try {
      return await this.step(name, fn);
    } catch (e) {
      this.errors.push(e.message);
      return undefined;
    }
  }

  frames() {
    const out = {};
    for (const c of this.clients) out[c.__label] = { frames: c.__frames, errors: c.__closes.map(jsonable) };
    return out;
  }

  disconnectAll() {
    for (const c of this.clients) {
      try {
        c.disconnect();
      } catch {
        /* ignore */
      }
    }
  }

  // ---- waits --------------------------------------------------------------------------------

  /** Wait until a pusher-js client is connected; returns its socket id. */
  connected(c) {
    if (c.connection.state === 'connected') return Promise.resolve(c.connection.socket_id);
    let handler;
    const p = new Promise((resolve, reject) => {
      handler = ({ current }) => {
        if (current === 'connected') resolve(c.connection.socket_id);
        if (current === 'failed' || current === 'unavailable') reject(new Error(`${c.__label}: connection ${current}`));
      };
      c.connection.bind('state_change', handler);
    });
    return withTimeout(p, STEP_MS, `${c.__label} to connect`).finally(() => c.connection.unbind('state_change', handler));
  }

  /** Subscribe and wait for pusher:subscription_succeeded; returns [channel, data]. */
  async subscribe(c, name) {
    const channel = c.subscribe(name);
    let okH, errH;
    const p = new Promise((resolve, reject) => {
      okH = (data) => resolve([channel, data]);
      errH = (err) => reject(new Error(`${c.__label}: pusher:subscription_error on ${name}: ${JSON.stringify(err)}`));
      channel.bind('pusher:subscription_succeeded', okH);
      channel.bind('pusher:subscription_error', errH);
    });
    return withTimeout(p, STEP_MS, `${c.__label} subscription to ${name}`).finally(() => {
      channel.unbind('pusher:subscription_succeeded', okH);
      channel.unbind('pusher:subscription_error', errH);
    });
  }

  /** Wait for a frame on a client's connection matching `pred` (seen after this call). */
  frame(c, what, pred) {
    let handler;
    const p = new Promise((resolve) => {
      handler = (ev) => {
        if (pred(ev)) resolve(ev);
      };
      c.connection.bind('message', handler);
    });
    return withTimeout(p, STEP_MS, `${c.__label}: ${what}`).finally(() => c.connection.unbind('message', handler));
  }
}

/**
 * Collect events named `event` on `target` (a channel, pusher.user, or anything with
 * bind/unbind). `.next(what, pred)` waits (bounded) for the next matching one, including ones
 * that already arrived; `.all` has everything seen so far; `.stop()` unbinds.
 */
export function collect(target, event) {
  const seen = [];
  const waiters = [];
  let cursor = 0;
  const handler = (data, meta) => {
    seen.push({ data, meta });
    for (const w of [...waiters]) w();
  };
  target.bind(event, handler);
  return {
    all: seen,
    get count() {
      return seen.length;
    },
    next(what, pred = () => true, ms = STEP_MS) {
      let w;
      const p = new Promise((resolve) => {
        w = () => {
          while (cursor < seen.length) {
            const item = seen[cursor++];
            if (pred(item.data, item.meta)) {
              resolve(item);
              return;
            }
          }
        };
        waiters.push(w);
        w();
      });
      return withTimeout(p, ms, what || event).finally(() => waiters.splice(waiters.indexOf(w), 1));
    },
    stop() {
      target.unbind(event, handler);
    },
  };
}

export function withTimeout(promise, ms, what) {
  let t;
  const timeout = new Promise((_, reject) => {
    t = setTimeout(() => reject(new Error(`timeout after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(t));
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Call the Node SDK; returns {status, body} also for HTTP errors (the SDK rejects on non-2xx). */
export async function http(what, promiseFn) {
  let res;
  try {
    res = await withTimeout(promiseFn(), STEP_MS, what);
  } catch (e) {
    if (e && typeof e.status === 'number') return { status: e.status, body: parseMaybe(e.body) };
    throw e;
  }
  return { status: res.status, body: parseMaybe(await res.text()) };
}

export function parseMaybe(text) {
  if (typeof text !== 'string') return text;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

export function stable(v) {
  if (Array.isArray(v)) return `[${v.map(stable).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${stable(v[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

function jsonable(v) {
  try {
    return JSON.parse(JSON.stringify(v, (k, x) => (x instanceof Error ? { message: x.message } : x)));
  } catch {
    return String(v);
  }
}
