// The official openai client against a running `serve`: node scenarios.mjs BASE_URL API_KEY MODEL
// Prints one JSON object with what each scenario saw; tests/EndToEnd/ServeTests.cs checks it.
import OpenAI from 'openai';

const [baseURL, apiKey, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL: `${baseURL}/v1`, apiKey, maxRetries: 0 });
const result = {};

async function collect(stream, piece) {
  let text = '';
  let finish = null;
  for await (const chunk of stream) {
    for (const choice of chunk.choices) {
      text += piece(choice) ?? '';
      finish = choice.finish_reason ?? finish;
    }
  }
  return { text, finish };
}

const completion = await client.completions.create({ model, prompt: 'Once upon a time', max_tokens: 20, temperature: 0 });
result.completion = { text: completion.choices[0].text, finish: completion.choices[0].finish_reason, usage: completion.usage };

const messages = [{ role: 'system', content: 'You tell stories.' }, { role: 'user', content: 'Tell me about a cat.' }];
const chat = await client.chat.completions.create({ model, messages, max_tokens: 30, seed: 5, temperature: 0.9 });
result.chat = { text: chat.choices[0].message.content, finish: chat.choices[0].finish_reason };
result.chatStream = await collect(
  await client.chat.completions.create({ model, messages, max_tokens: 30, seed: 5, temperature: 0.9, stream: true }),
  choice => choice.delta.content);

const streamed = seed => client.completions.create({ model, prompt: 'The dog', max_tokens: 60, seed, temperature: 1, stream: true })
  .then(stream => collect(stream, choice => choice.text));
const alone = [await streamed(11), await streamed(12)];
const together = await Promise.all([streamed(11), streamed(12)]);
result.concurrent = { alone: alone.map(r => r.text), together: together.map(r => r.text) };

// A client that stops reading and aborts mid-stream.
const long = await client.completions.create({ model, prompt: 'Once', max_tokens: 400, temperature: 0, stream: true });
let chunks = 0;
for await (const chunk of long) {
  if (++chunks === 2) { long.controller.abort(); break; }
}
result.aborted = { chunks };

async function status(call) {
  try { await call(); return { status: 200 }; }
  catch (e) { return { status: e.status, param: e.param ?? e.error?.param ?? null, code: e.code ?? null, message: e.message }; }
}
result.errors = {
  emptyMessages: await status(() => client.chat.completions.create({ model, messages: [] })),
  badTemperature: await status(() => client.completions.create({ model, prompt: 'x', temperature: 5 })),
  wrongKey: await status(() => new OpenAI({ baseURL: `${baseURL}/v1`, apiKey: 'wrong', maxRetries: 0 }).models.list()),
};
result.models = (await client.models.list()).data.map(m => m.id);

console.log(JSON.stringify(result));
