// Subscribes to channels of the agent's realtime notifications with
// Cumulocity's official client (@c8y/client's Realtime over its
// FetchClient and BasicAuth, as an application uses them) and prints
// each notification as one JSON line. It disconnects and exits 0 after
// the number of notifications asked for, and exits 1 if the handshake
// fails or the time runs out.
//
//   node realtime.mjs URL TENANT USER PASSWORD COUNT SECONDS CHANNEL...
import { BasicAuth, FetchClient, Realtime } from '@c8y/client';

const [url, tenant, user, password, count, seconds, ...channels] = process.argv.slice(2);
const auth = new BasicAuth({ tenant, user, password });
const client = new FetchClient(auth, url);
const realtime = new Realtime(client, '/notification/realtime', (msg) => {
  if (!msg.successful) {
    console.error('handshake failed: ' + JSON.stringify(msg));
    process.exit(1);
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
