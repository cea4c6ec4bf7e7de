// Counterpart (legitimate event-driven server): a Node JSON API on 127.0.0.1 serving a client
// that keeps sending requests over keep-alive connections, like a busy microservice. epoll_pwait
// reports real readiness and reads/writes move request and response bytes, so it is making
// progress and must not be flagged. Loopback only; the load stops by itself after MAX_RUN_MS,
// because a load generator must be bounded even if nobody kills it.
import { createHash } from 'node:crypto';
import { Agent, createServer, request } from 'node:http';

const CONCURRENT_CLIENTS = 4;
const MAX_RUN_MS = 10 * 60 * 1000;

function handleOrder(body) {
  const order = JSON.parse(body);
  const receipt = createHash('sha256').update(body).digest('hex');
  return JSON.stringify({ id: order.id, items: order.items.length, receipt });
}

const server = createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    res.setHeader('content-type', 'application/json');
    res.end(handleOrder(Buffer.concat(chunks).toString()));
  });
});

function placeOrders(port, agent, clientId) {
  let id = 0;
  const sendNext = () => {
    const body = JSON.stringify({ id: `${clientId}-${id++}`, items: Array.from({ length: 20 }, (_, i) => ({ sku: i, qty: 1 })) });
    const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/orders', agent }, (res) => {
      res.resume(); // the client only needs the exchange to complete
      res.on('end', sendNext);
    });
    req.on('error', () => setTimeout(sendNext, 100));
    req.end(body);
  };
  sendNext();
}

server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENT_CLIENTS });
  for (let c = 0; c < CONCURRENT_CLIENTS; c++) placeOrders(port, agent, c);
});

setTimeout(() => process.exit(0), MAX_RUN_MS).unref();
