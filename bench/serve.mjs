// serve's timings over HTTP (bench/serve.sh runs it): node bench/serve.mjs EXECUTABLE
// Each server is a fresh process on a free port; streams are OpenAI completions with "stream": true, read with fetch.
import { spawn } from 'node:child_process';

const exe = process.argv[2];
const tokens = 128;
const prompt = 'Once upon a time';

function start(args) {
  const t0 = performance.now();
  const child = spawn(exe, ['serve', '--port', '0', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  const url = new Promise((resolve, reject) => {
    let err = '';
    child.stderr.on('data', d => {
      err += d;
      const m = /listening on (http:\/\/\S+) .*?of (\d+) threads?/.exec(err);
      if (m) resolve({ url: m[1], threads: Number(m[2]) });
    });
    child.on('exit', code => reject(new Error(`serve exited (${code}): ${err}`)));
  });
  return { child, t0, url };
}

async function stop(server) {
  const exited = new Promise(resolve => server.child.on('exit', resolve));
  server.child.kill('SIGTERM');
  await exited;
}

// One streamed completion: ms to the first text event and from it to the end, tokens generated.
async function stream(url, seed) {
  const t0 = performance.now();
  const response = await fetch(`${url}/v1/completions`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ prompt, max_tokens: tokens, temperature: 1, seed, stream: true, stream_options: { include_usage: true } }),
  });
  if (response.status !== 200) return { status: response.status };
  let first = null, generated = 0, buffer = '';
  const decoder = new TextDecoder();
  for await (const bytes of response.body) {
    buffer += decoder.decode(bytes, { stream: true });
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      if (event === 'data: [DONE]') continue;
      const chunk = JSON.parse(event.slice(6));
      if (first === null && chunk.choices.length > 0 && chunk.choices[0].text) first = performance.now();
      if (chunk.usage) generated = chunk.usage.completion_tokens;
    }
  }
  return { status: 200, firstAt: first, firstMs: first - t0, decodeMs: performance.now() - first, generated };
}

// Process start to the first streamed token: the server is started, and the request is sent as soon as it listens.
{
  const runs = [];
  for (let i = 0; i < 5; i++) {
    const server = start([]);
    const { url } = await server.url;
    const r = await stream(url, 1);
    runs.push(r.firstAt - server.t0);
    await stop(server);
  }
  runs.sort((a, b) => a - b);
  console.log(`process start to first streamed token: median ${runs[2].toFixed(1)} ms of 5 (${runs.map(r => r.toFixed(0)).join(', ')})`);
}

console.log(`${tokens} tokens per stream, temperature 1, prompt "${prompt}"`);
console.log('streams  parallel  threads/session  ttft_ms(mean)  tok/s_per_stream(mean)  tok/s_total');
for (const n of [1, 2, 4]) {
  const server = start(['--parallel', String(n)]);
  const { url, threads } = await server.url;
  await stream(url, 99); // warm-up
  const t0 = performance.now();
  const results = await Promise.all(Array.from({ length: n }, (_, i) => stream(url, i + 1)));
  const wall = (performance.now() - t0) / 1000;
  const perStream = results.map(r => (r.generated - 1) / (r.decodeMs / 1000));
  const mean = xs => xs.reduce((a, b) => a + b, 0) / xs.length;
  console.log(`${String(n).padEnd(8)} ${String(n).padEnd(9)} ${String(threads).padEnd(16)} ${mean(results.map(r => r.firstMs)).toFixed(1).padStart(13)}  ` +
              `${mean(perStream).toFixed(1).padStart(22)}  ${(results.reduce((a, r) => a + r.generated, 0) / wall).toFixed(1).padStart(11)}`);
  await stop(server);
}

// --parallel 1 --queue 1 and three requests at once: one generates, one waits, one is refused.
{
  const server = start(['--parallel', '1', '--queue', '1']);
  const { url } = await server.url;
  const statuses = await Promise.all([1, 2, 3].map(seed => stream(url, seed).then(r => r.status)));
  console.log(`--parallel 1 --queue 1, 3 requests at once: statuses ${statuses.sort().join(', ')}`);
  await stop(server);
}
