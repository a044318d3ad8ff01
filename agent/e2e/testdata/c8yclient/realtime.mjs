// Subscribes to channels of the agent's realtime notifications with
// Cumulocity's official client (@c8y/client's Realtime over its
// FetchClient and BasicAuth, as an application uses them) and prints
// each notification as one JSON line, and the CometD transport in use
// ("transport websocket" or "transport long-polling") on stderr. It
// disconnects and exits 0 after the number of notifications asked for,
// and exits 1 if the handshake fails or the time runs out.
//
//   node realtime.mjs URL TENANT USER PASSWORD TRANSPORT COUNT SECONDS CHANNEL...
//
// TRANSPORT websocket gives Node the ws package's WebSocket, which CometD
// then prefers, as it does in a browser; long-polling leaves Node without
// one.
import { BasicAuth, FetchClient, Realtime } from '@c8y/client';
import WebSocket from 'ws';

const [url, tenant, user, password, transport, count, seconds, ...channels] = process.argv.slice(2);
if (transport === 'websocket') {
  // the window CometD's Node adapter made when @c8y/client was loaded
  globalThis.window.WebSocket = WebSocket;
}
const auth = new BasicAuth({ tenant, user, password });
const client = new FetchClient(auth, url);
const realtime = new Realtime(client, '/notification/realtime', (msg) => {
  if (!msg.successful) {
    console.error('handshake failed: ' + JSON.stringify(msg));
    process.exit(1);
  }
});

let shown = false;
realtime.addConnectListener(() => {
  if (!shown) {
    shown = true;
    // cometd is the service's own CometD instance
    console.error('transport ' + realtime.cometd.getTransport().getType());
  }
});
let received = 0;
for (const channel of channels) {
  realtime.subscribe(channel, (msg) => {
    console.log(JSON.stringify(msg));
    received++;
    if (received >= Number(count)) {
      realtime.disconnect(() => process.exit(0));
    }
  });
}
setTimeout(() => {
  console.error(`${received} of ${count} notifications after ${seconds} s`);
  process.exit(1);
}, Number(seconds) * 1000);
