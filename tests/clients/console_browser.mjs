// Drives headless Chromium over the DevTools protocol for the console test, with nothing but
// Node (run with --experimental-websocket on Node 20). The test starts Chromium (and ends it);
// this script takes the page URL and Chromium's DevTools port as arguments, opens the URL,
// records console errors, uncaught exceptions and failed loads, then answers one JSON command
// per stdin line with one JSON line on stdout:
//   {"wait_text": "..."}       until the page's visible text contains it (or the bound passes)
//   {"eval": "expression"}     the expression's value, evaluated in the page
//   {"screenshot": "/path"}    a PNG of the page
//   {"errors": true}           everything recorded as an error so far
//   {"quit": true}
// It never reloads the page: whatever changes on it, the page's own script changed.
import { writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';

const [url, port] = process.argv.slice(2);
const WAIT_BOUND_MS = 120000;
const targets = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
const target = targets.find((t) => t.type === 'page');
const socket = new WebSocket(target.webSocketDebuggerUrl);
await new Promise((resolve) => socket.addEventListener('open', resolve, { once: true }));

let nextId = 1;
const pending = new Map();
const errors = [];
const listeners = [];
socket.addEventListener('message', (event) => {
  const message = JSON.parse(event.data);
  if (message.id && pending.has(message.id)) {
    const { resolve, reject } = pending.get(message.id);
    pending.delete(message.id);
    message.error ? reject(new Error(JSON.stringify(message.error))) : resolve(message.result);
    return;
  }
  record(message);
  for (const listener of listeners) listener(message);
});

function send(method, params = {}) {
  const id = nextId++;
  socket.send(JSON.stringify({ id, method, params }));
  return new Promise((resolve, reject) => pending.set(id, { resolve, reject }));
}

function record({ method, params }) {
  if (method === 'Runtime.exceptionThrown') {
    errors.push(`exception: ${params.exceptionDetails.exception?.description ?? params.exceptionDetails.text}`);
  } else if (method === 'Runtime.consoleAPICalled' && ['error', 'assert'].includes(params.type)) {
    errors.push(`console.${params.type}: ${params.args.map((a) => a.value ?? a.description).join(' ')}`);
  } else if (method === 'Log.entryAdded' && params.entry.level === 'error') {
    errors.push(`log: ${params.entry.text} ${params.entry.url ?? ''}`);
  }
}

async function evaluate(expression) {
  const answer = await send('Runtime.evaluate', { expression, returnByValue: true, awaitPromise: true });
  if (answer.exceptionDetails) throw new Error(answer.exceptionDetails.text);
  return answer.result.value;
}

await send('Runtime.enable');
await send('Log.enable');
await send('Page.enable');
const loaded = new Promise((resolve) => listeners.push((m) => m.method === 'Page.loadEventFired' && resolve()));
await send('Page.navigate', { url });
await loaded;

async function waitText(text) {
  const start = Date.now();
  for (;;) {
    const seen = await evaluate('document.body.innerText');
    if (seen.includes(text)) return { ok: true };
    if (Date.now() - start > WAIT_BOUND_MS) return { ok: false, seen };
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function answer(command) {
  try {
    if ('wait_text' in command) return await waitText(command.wait_text);
    if ('eval' in command) return { ok: true, value: await evaluate(command.eval) };
    if ('screenshot' in command) {
      const { data } = await send('Page.captureScreenshot', { format: 'png', captureBeyondViewport: true });
      writeFileSync(command.screenshot, Buffer.from(data, 'base64'));
      return { ok: true };
    }
    if ('errors' in command) return { ok: true, value: errors };
    if ('quit' in command) {
      process.stdout.write(JSON.stringify({ ok: true }) + '\n');
      process.exit(0);
    }
    return { ok: false, error: `unknown command ${JSON.stringify(command)}` };
  } catch (error) {
    return { ok: false, error: String(error) };
  }
}

process.stdout.write(JSON.stringify({ ok: true, ready: true }) + '\n');
for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim()) continue;
  process.stdout.write(JSON.stringify(await answer(JSON.parse(line))) + '\n');
}
process.exit(0);
