// Live updates for pages: Cumulocity's realtime notifications (Bayeux,
// CometD) at /notification/realtime over long-polling, and polling of the
// REST API where the agent does not serve them. Pages call follow() for
// each channel they show and handle one kind of message either way,
// {realtimeAction: 'CREATE'|'UPDATE'|'DELETE', data}, so a page works the
// same against an agent with or without the notifications.
//
// One Bayeux session (a Client) serves every channel the open page
// follows: a handshake, one subscribe per channel, and one connect at a
// time held open by the agent until it has messages. It goes when the
// last channel is left.
import { request, session } from '../api.js';
import { h } from '../ui.js';

export const PATH = '/notification/realtime';

// Modes a follow() ends up in.
export const REALTIME = 'realtime';
export const POLLING = 'polling';

// BayeuxError is a Bayeux reply with successful false: error is its
// "error" member ("402::Unknown client"), advice its reconnect advice.
export class BayeuxError extends Error {
  constructor(channel, reply) {
    super(`${channel}: ${reply?.error || 'refused'}`);
    this.name = 'BayeuxError';
    this.reply = reply || {};
  }
}

// matches says whether a subscription pattern covers a channel: '*' is
// one whole segment, '**' (at the end) any rest, as in Bayeux.
export function matches(pattern, channel) {
  if (pattern === channel) return true;
  const p = pattern.split('/');
  const c = channel.split('/');
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '**' && i === p.length - 1) return c.length > i;
    if (i >= c.length) return false;
    if (p[i] !== '*' && p[i] !== c[i]) return false;
  }
  return p.length === c.length;
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
  });
}

let seq = 0;

// Client is one Bayeux session over long-polling, authenticated as the
// REST API is (Basic, through api.js), also in the handshake's ext for
// servers that take the credentials from there, as Cumulocity does.
export class Client {
  constructor({ path = PATH } = {}) {
    this.path = path;
    this.clientId = null;
    this.subs = new Map(); // channel pattern -> Set of callbacks
    this.stop = new AbortController();
    this.timeout = 30000; // the connect's hold, from the server's advice
    this.interval = 0;
    this.failed = null; // the error that ended the session
    this.onFail = new Set();
    this.onReconnect = new Set(); // told after a new session replaced a lost one
    this.running = false;
  }

  async send(messages, signal) {
    for (const m of messages) m.id = String(++seq);
    const replies = await request('POST', this.path, { body: messages, signal: signal || this.stop.signal });
    if (!Array.isArray(replies)) throw new Error(`${this.path}: the answer is not a list of Bayeux messages`);
    const metas = [];
    for (const r of replies) {
      if (typeof r?.channel !== 'string') continue;
      if (r.channel.startsWith('/meta/')) metas.push(r);
      else this.dispatch(r);
    }
    return metas;
  }

  // reply finds the answer to a meta channel among the replies, throwing
  // its error when it was refused.
  reply(metas, channel) {
    const r = metas.find((m) => m.channel === channel);
    if (!r) throw new Error(`${channel}: no answer`);
    if (r.successful === false) throw new BayeuxError(channel, r);
    if (r.advice) this.advise(r.advice);
    return r;
  }

  advise(a) {
    if (Number.isFinite(a.timeout)) this.timeout = a.timeout;
    if (Number.isFinite(a.interval)) this.interval = a.interval;
  }

  async handshake() {
    const s = session();
    const metas = await this.send([{
      channel: '/meta/handshake', version: '1.0', minimumVersion: '1.0',
      supportedConnectionTypes: ['long-polling'],
      ext: s ? { 'com.cumulocity.authn': { token: s.auth } } : undefined,
    }]);
    const r = this.reply(metas, '/meta/handshake');
    if (!r.clientId) throw new Error('/meta/handshake: no clientId');
    this.clientId = r.clientId;
  }

  async subscribeRemote(channel) {
    this.reply(await this.send([{ channel: '/meta/subscribe', clientId: this.clientId, subscription: channel }]), '/meta/subscribe');
  }

  // subscribe adds a callback for a channel pattern; the first for a
  // pattern subscribes it at the agent. Throws what the agent answered.
  async subscribe(channel, callback) {
    let set = this.subs.get(channel);
    const first = !set;
    if (first) {
      set = new Set();
      this.subs.set(channel, set);
    }
    set.add(callback);
    if (!first) return;
    try {
      if (!this.clientId) await (this.ready ||= this.handshake());
      await this.subscribeRemote(channel);
    } catch (err) {
      set.delete(callback);
      if (!set.size) this.subs.delete(channel);
      throw err;
    }
    this.run();
  }

  // unsubscribe removes a callback; the last of a pattern unsubscribes
  // it at the agent, the last of all ends the session.
  unsubscribe(channel, callback) {
    const set = this.subs.get(channel);
    if (!set) return;
    set.delete(callback);
    if (set.size) return;
    this.subs.delete(channel);
    if (!this.subs.size) {
      this.disconnect();
      return;
    }
    if (this.clientId) {
      this.send([{ channel: '/meta/unsubscribe', clientId: this.clientId, subscription: channel }]).catch(() => {});
    }
  }

  dispatch(msg) {
    for (const [pattern, set] of this.subs) {
      if (!matches(pattern, msg.channel)) continue;
      for (const f of set) {
        try {
          f(msg.data, msg.channel);
        } catch (err) {
          console.error(`realtime ${msg.channel}:`, err);
        }
      }
    }
  }

  // run keeps one connect open while there are subscriptions. A connect
  // the agent refuses with advice "handshake" (it forgot the client)
  // starts a new session with the same subscriptions; after errors it
  // waits longer each time, and after several gives up: fail() hands
  // the channels to polling.
  async run() {
    if (this.running) return;
    this.running = true;
    let errors = 0;
    const signal = this.stop.signal;
    while (!signal.aborted && this.subs.size) {
      try {
        const metas = await this.send([{ channel: '/meta/connect', clientId: this.clientId, connectionType: 'long-polling', advice: { timeout: this.timeout } }]);
        this.reply(metas, '/meta/connect');
        errors = 0;
        if (this.interval) await sleep(this.interval, signal);
      } catch (err) {
        if (signal.aborted) break;
        const advice = err.reply?.advice?.reconnect;
        if (advice === 'none') {
          this.fail(err);
          break;
        }
        if (++errors > 4) {
          this.fail(err);
          break;
        }
        await sleep(Math.min(10000, 500 * 2 ** errors), signal);
        if (advice === 'handshake' || err.status === 401 || /402/.test(err.message) || errors >= 2) {
          try {
            this.clientId = null;
            await this.handshake();
            for (const ch of this.subs.keys()) await this.subscribeRemote(ch);
            // what came while no session was held is lost: pages read again
            for (const f of this.onReconnect) f();
          } catch (again) {
            if (signal.aborted) break;
            this.fail(again);
            break;
          }
        }
      }
    }
    this.running = false;
  }

  fail(err) {
    this.failed = err;
    this.stop.abort();
    if (client === this) client = null;
    for (const f of this.onFail) f(err);
  }

  disconnect() {
    if (this.stop.signal.aborted) return;
    const id = this.clientId;
    this.stop.abort();
    this.clientId = null;
    if (client === this) client = null;
    if (id) this.send([{ channel: '/meta/disconnect', clientId: id }], AbortSignal.timeout(5000)).catch(() => {});
  }
}

let client = null;
let unavailable = null; // when the agent last refused the handshake

// The time after a refused handshake during which pages poll without
// asking again: one 404 per page view is enough to learn it.
const RETRY_HANDSHAKE = 60000;

// follow calls onMessage({realtimeAction, data}, channel) for every
// notification of channel ('/alarms/12', '/measurements/*') until signal
// aborts, over the realtime notifications when the agent serves them.
// When it does not (the handshake fails) or they fail later, it calls
// poll(signal) every interval ms instead, which asks the REST API and
// passes what is new to the page's own handler. Answers the mode it
// started in; onMode(mode, err) hears of it and of a later change.
// onReconnect() hears that the session was lost and made anew: the
// notifications sent meanwhile are lost, and a page that keeps state
// reads it again.
export async function follow(channel, { signal, onMessage, poll, interval = 2000, onMode, onReconnect } = {}) {
  if (signal?.aborted) return POLLING;
  const polling = (err) => {
    onMode?.(POLLING, err);
    (async () => {
      while (!signal?.aborted) {
        await sleep(interval, signal);
        if (signal?.aborted) return;
        try {
          await poll?.(signal);
        } catch (e) {
          if (e?.name === 'AbortError') return;
          onMode?.(POLLING, e);
        }
      }
    })();
    return POLLING;
  };
  if (unavailable && Date.now() - unavailable < RETRY_HANDSHAKE) return polling(null);
  const c = client && !client.stop.signal.aborted ? client : (client = new Client());
  const cb = (data) => onMessage?.(data, channel);
  try {
    await c.subscribe(channel, cb);
  } catch (err) {
    if (err?.name === 'AbortError' && signal?.aborted) return POLLING;
    if (c.subs.size === 0 && client === c) client = null;
    if (!c.clientId) unavailable = Date.now();
    return polling(err);
  }
  unavailable = null;
  const failed = (err) => {
    c.onFail.delete(failed);
    if (!signal?.aborted) polling(err);
  };
  c.onFail.add(failed);
  const reconnected = () => onReconnect?.();
  c.onReconnect.add(reconnected);
  signal?.addEventListener('abort', () => {
    c.onFail.delete(failed);
    c.onReconnect.delete(reconnected);
    c.unsubscribe(channel, cb);
  }, { once: true });
  onMode?.(REALTIME);
  return REALTIME;
}

// indicator is a small sign of how a page is kept current: "Live" over
// the notifications, "Refreshing every N s" when polling, with the reason
// as its tooltip. Pass its set as follow's onMode.
export function indicator(interval) {
  const el = h('span', { class: 'live-mode', role: 'status' }, 'Connecting…');
  el.set = (mode, err) => {
    el.dataset.mode = mode;
    el.textContent = mode === REALTIME ? '● Live' : `Refreshing every ${Math.round(interval / 100) / 10} s`;
    el.title = mode === REALTIME ? 'Updated by the realtime notifications as things happen'
      : `The realtime notifications are not available${err?.message ? ` (${err.message})` : ''}: the page asks the API again`;
  };
  return el;
}
