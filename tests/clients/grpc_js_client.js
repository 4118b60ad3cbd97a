// A proxyless gRPC client (@grpc/grpc-js-xds) driven line by line by the integration tests,
// with the same commands as grpcio_client.py (except csds):
//   calls N [HEADER=VALUE|HEADER=*] [DELAY_MS]  -> {"tally": {...}, "errors": {...}}
//   connect   -> {} once the channel starts connecting (fetches xDS)
//   quit
'use strict';

require('@grpc/grpc-js-xds').register();
const grpc = require('@grpc/grpc-js');
const readline = require('readline');

const METHOD = '/switchyard.test.Who/Name';

function encodeRequest(delayMs) {
  if (!delayMs) return Buffer.alloc(0);
  const bytes = [0x08];
  let value = delayMs;
  do {
    let byte = value & 0x7f;
    value = Math.floor(value / 128);
    bytes.push(value ? byte | 0x80 : byte);
  } while (value);
  return Buffer.from(bytes);
}

function decodeReply(data) {
  if (!data || data.length === 0) return '';
  let length = 0, shift = 0, index = 1;
  for (;;) {
    const byte = data[index++];
    length |= (byte & 0x7f) << shift;
    if (!(byte & 0x80)) break;
    shift += 7;
  }
  return data.subarray(index, index + length).toString();
}

const client = new grpc.Client(process.argv[2], grpc.credentials.createInsecure());

function call(metadata, delayMs) {
  return new Promise((resolve) => {
    const deadline = new Date(Date.now() + 20000);
    client.makeUnaryRequest(METHOD, (b) => b, (b) => b, encodeRequest(delayMs), metadata,
      { deadline, waitForReady: true },
      (error, reply) => resolve(error ? { error: grpc.status[error.code] } : { name: decodeReply(reply) }));
  });
}

async function run(words) {
  const count = Number(words[1]);
  const header = words.length > 2 && words[2].includes('=') ? words[2] : null;
  const delay = words.length > 2 && !words[words.length - 1].includes('=') ? Number(words[words.length - 1]) : 0;
  const tally = {}, errors = {};
  for (let i = 0; i < count; i++) {
    const metadata = new grpc.Metadata();
    if (header) {
      const [key, value] = header.split('=');
      metadata.set(key, value === '*' ? `value-${i}` : value);
    }
    const result = await call(metadata, delay);
    if (result.error) errors[result.error] = (errors[result.error] || 0) + 1;
    else tally[result.name] = (tally[result.name] || 0) + 1;
  }
  return { tally, errors };
}

const lines = readline.createInterface({ input: process.stdin });
const queue = [];
let busy = false;
async function drain() {
  if (busy) return;
  busy = true;
  while (queue.length) {
    const words = queue.shift().trim().split(/\s+/);
    if (words[0] === 'quit') { client.close(); process.exit(0); }
    if (words[0] === 'calls') process.stdout.write(JSON.stringify(await run(words)) + '\n');
    if (words[0] === 'connect') {
      client.getChannel().getConnectivityState(true);
      process.stdout.write('{}\n');
    }
  }
  busy = false;
}
lines.on('line', (line) => { queue.push(line); drain(); });
lines.on('close', () => { queue.push('quit'); drain(); });
