#!/usr/bin/env node
// The six official RabbitMQ tutorials (JavaScript/amqplib), plus publisher confirms.
//
// usage: node tutorials.js AMQP_URL     exit 0 only if every check held.
// Declarations and flags follow the official tutorial programs; names get a
// random suffix so repeated runs against the same broker never collide. Every
// wait is bounded (WAIT ms) and driven by callbacks/confirms, never by sleeping.
'use strict';

const amqp = require('amqplib');
const crypto = require('crypto');
const assert = require('assert');

const URL = process.argv[2];
if (!URL) {
  console.error('usage: node tutorials.js AMQP_URL');
  process.exit(2);
}
const WAIT = 5000;
const RUN_LIMIT = 110000; // the whole program gives up past this (never hangs)
setTimeout(() => {
  console.log(`FAIL - tutorials.js did not finish within ${RUN_LIMIT} ms`);
  process.exit(1);
}, RUN_LIMIT).unref();
const SFX = crypto.randomBytes(5).toString('hex');

let passed = 0;
const failed = [];

function check(what, cond, detail) {
  if (cond) {
    passed++;
    console.log(`ok   - ${what}`);
  } else {
    failed.push(what);
    console.log(`FAIL - ${what}${detail ? ': ' + detail : ''}`);
  }
  return cond;
}

function eq(what, got, want) {
  let same = true;
  try {
    assert.deepStrictEqual(got, want);
  } catch (_) {
    same = false;
  }
  return check(what, same, `got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
}

// Resolve once cond() holds; reject after `ms`. Checks on every event-loop turn
// driven by a short timer (polling with a deadline, not sleeping to synchronise).
function until(cond, what, ms = WAIT) {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + ms;
    const tick = () => {
      let ok = false;
      try {
        ok = cond();
      } catch (e) {
        reject(e);
        return;
      }
      if (ok) resolve(true);
      else if (Date.now() >= deadline) reject(new Error(`timed out after ${ms} ms waiting for ${what}`));
      else setTimeout(tick, 5);
    };
    tick();
  });
}

async function waitCheck(what, cond, detailFn) {
  try {
    await until(cond, what);
    return check(what, true);
  } catch (e) {
    return check(what, false, `${e.message}${detailFn ? ' ' + detailFn() : ''}`);
  }
}

// Every wait on the broker is bounded too.
function bounded(promise, what, ms = WAIT) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

async function connect() {
  const conn = await bounded(amqp.connect(URL), 'connect');
  conn.on('error', () => {}); // reported through the failing operation instead
  return conn;
}

async function channel(conn, confirm = false) {
  const ch = await bounded(confirm ? conn.createConfirmChannel() : conn.createChannel(), 'open channel');
  ch.on('error', () => {});
  return ch;
}

async function closeQuietly(...conns) {
  for (const c of conns) {
    try {
      await bounded(c.close(), 'close');
    } catch (_) {
      /* already closed */
    }
  }
}

// ---------------------------------------------------------------- T1
async function t1HelloWorld() {
  const queue = `hello-${SFX}`;
  const send = await connect();
  const sch = await channel(send);
  await sch.assertQueue(queue, { durable: false });
  sch.sendToQueue(queue, Buffer.from('Hello World!'));
  // As the tutorial's send.js: close the channel, then the connection. (With amqplib,
  // connection.close() straight after sendToQueue loses the message even on RabbitMQ.)
  await sch.close();
  await closeQuietly(send);

  const recv = await connect();
  const rch = await channel(recv);
  await rch.assertQueue(queue, { durable: false });
  const got = [];
  await rch.consume(queue, (msg) => got.push(msg.content.toString()), { noAck: true });
  await waitCheck('T1 hello world: consumer receives the message', () => got.length >= 1);
  eq('T1 body', got.slice(0, 1), ['Hello World!']);
  await rch.deleteQueue(queue);
  await closeQuietly(recv);
}

// ---------------------------------------------------------------- T2
async function t2WorkQueues() {
  const queue = `task_queue-${SFX}`;
  const prod = await connect();
  const pch = await channel(prod);
  await pch.assertQueue(queue, { durable: true });
  const publish = (body) => pch.sendToQueue(queue, Buffer.from(body), { persistent: true });

  async function worker() {
    const conn = await connect();
    const ch = await channel(conn);
    await ch.assertQueue(queue, { durable: true });
    await ch.prefetch(1);
    return { conn, ch };
  }

  const a = await worker();
  const aGot = []; // worker A never acks: it stays busy
  await a.ch.consume(queue, (msg) => aGot.push(msg), { noAck: false });
  publish('task 1');
  await waitCheck('T2 worker A receives task 1', () => aGot.length === 1);
  eq('T2 task 1 first delivery is not redelivered', aGot.map((m) => m.fields.redelivered), [false]);

  const b = await worker();
  const bGot = [];
  await b.ch.consume(
    queue,
    (msg) => {
      bGot.push([msg.content.toString(), msg.fields.redelivered]);
      b.ch.ack(msg); // the tutorial's worker acks after its "work"
    },
    { noAck: false },
  );
  publish('task 2');
  publish('task 3');
  publish('task 4');
  await waitCheck('T2 fair dispatch: idle worker B gets tasks 2-4', () => bGot.length === 3,
    () => JSON.stringify(bGot));
  eq('T2 fair dispatch: worker B order', bGot.map((x) => x[0]), ['task 2', 'task 3', 'task 4']);
  eq('T2 fair dispatch: busy worker A (prefetch 1, unacked) gets nothing more',
    aGot.map((m) => m.content.toString()), ['task 1']);

  // Worker A dies holding task 1: redelivered to B with redelivered=true.
  await closeQuietly(a.conn);
  await waitCheck("T2 dead worker's message redelivered to the other worker", () => bGot.length === 4,
    () => JSON.stringify(bGot));
  eq('T2 redelivered message and flag', bGot.slice(3), [['task 1', true]]);
  const ok = await pch.checkQueue(queue);
  eq('T2 queue empty after all acks', ok.messageCount, 0);
  await pch.deleteQueue(queue);
  await closeQuietly(b.conn, prod);
}

async function t2Quorum() {
  // Newer tutorial versions declare task_queue as a quorum queue.
  const queue = `task_queue_qq-${SFX}`;
  const conn = await connect();
  const ch = await channel(conn, true);
  await ch.assertQueue(queue, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
  ch.sendToQueue(queue, Buffer.from('qq task'), { persistent: true });
  await bounded(ch.waitForConfirms(), 'confirm');
  await ch.prefetch(1);
  const got = [];
  await ch.consume(queue, (msg) => {
    got.push(msg.content.toString());
    ch.ack(msg);
  });
  await waitCheck('T2 quorum queue: persistent task consumed', () => got.length >= 1);
  eq('T2 quorum queue body', got, ['qq task']);
  await ch.deleteQueue(queue);
  await closeQuietly(conn);
}

// ---------------------------------------------------------------- T3
async function t3PubSub() {
  const exchange = `logs-${SFX}`;
  const subs = [];
  for (let i = 0; i < 2; i++) {
    const conn = await connect();
    const ch = await channel(conn);
    await ch.assertExchange(exchange, 'fanout', { durable: false });
    const q = await ch.assertQueue('', { exclusive: true });
    check(`T3 server-named queue ${q.queue} starts with amq.gen-`, q.queue.startsWith('amq.gen-'));
    await ch.bindQueue(q.queue, exchange, '');
    const got = [];
    await ch.consume(q.queue, (msg) => got.push(msg.content.toString()), { noAck: true });
    subs.push({ conn, ch, queue: q.queue, got });
  }
  check('T3 the two exclusive queues differ', subs[0].queue !== subs[1].queue);

  const pub = await connect();
  const pch = await channel(pub);
  await pch.assertExchange(exchange, 'fanout', { durable: false });
  const msgs = [0, 1, 2, 3, 4].map((i) => `info: log ${i}`);
  for (const m of msgs) pch.publish(exchange, '', Buffer.from(m));
  await waitCheck('T3 both subscribers get every message', () => subs.every((s) => s.got.length >= msgs.length));
  subs.forEach((s, i) => eq(`T3 subscriber ${i + 1} messages in order`, s.got, msgs));

  for (const s of subs) await closeQuietly(s.conn);
  for (const s of subs) {
    // the deletion may trail the close-ok: poll with passive declares, bounded
    const deadline = Date.now() + WAIT;
    let code = null;
    while (code === null && Date.now() < deadline) {
      const ch = await channel(pub);
      try {
        await ch.checkQueue(s.queue);
        await ch.close();
      } catch (e) {
        code = e.code;
      }
    }
    eq(`T3 exclusive queue ${s.queue} deleted with its connection (passive -> 404)`, code, 404);
  }
  await pch.deleteExchange(exchange);
  await closeQuietly(pub);
}

// ---------------------------------------------------------------- T4/T5
async function runRouting(label, exchange, type, bindings, sends, expect) {
  const marker = 'end-marker'; // bound to every queue, published last: delivery is complete
  const conn = await connect();
  const ch = await channel(conn);
  await ch.assertExchange(exchange, type, { durable: false });
  const got = {};
  for (const [qlabel, keys] of Object.entries(bindings)) {
    const q = await ch.assertQueue('', { exclusive: true });
    for (const key of keys) await ch.bindQueue(q.queue, exchange, key);
    await ch.bindQueue(q.queue, exchange, marker);
    got[qlabel] = [];
    await ch.consume(q.queue, (msg) => got[qlabel].push(msg.fields.routingKey), { noAck: true });
  }
  const pub = await connect();
  const pch = await channel(pub);
  for (const key of sends) pch.publish(exchange, key, Buffer.from(`msg ${key}`));
  pch.publish(exchange, marker, Buffer.from('end'));
  await waitCheck(`${label} all queues received the end marker`,
    () => Object.values(got).every((g) => g.length && g[g.length - 1] === marker), () => JSON.stringify(got));
  for (const qlabel of Object.keys(bindings)) {
    eq(`${label} ${qlabel} gets exactly ${JSON.stringify(expect[qlabel])}`,
      got[qlabel].filter((k) => k !== marker), expect[qlabel]);
  }
  await ch.deleteExchange(exchange);
  await closeQuietly(conn, pub);
}

async function t4Routing() {
  await runRouting('T4 routing', `direct_logs-${SFX}`, 'direct',
    { 'Q1(error)': ['error'], 'Q2(info,warning,error)': ['info', 'warning', 'error'] },
    ['info', 'warning', 'error', 'debug', 'error'],
    { 'Q1(error)': ['error', 'error'], 'Q2(info,warning,error)': ['info', 'warning', 'error', 'error'] });
}

async function t5Topics() {
  await runRouting('T5 topics', `topic_logs-${SFX}`, 'topic',
    { Q1: ['*.orange.*'], Q2: ['*.*.rabbit', 'lazy.#'] },
    ['quick.orange.rabbit', 'lazy.orange.elephant', 'quick.orange.fox', 'lazy.brown.fox',
      'lazy.pink.rabbit', 'quick.brown.fox', 'quick.orange.male.rabbit', 'lazy.orange.male.rabbit'],
    {
      Q1: ['quick.orange.rabbit', 'lazy.orange.elephant', 'quick.orange.fox'],
      Q2: ['quick.orange.rabbit', 'lazy.orange.elephant', 'lazy.brown.fox', 'lazy.pink.rabbit',
        'lazy.orange.male.rabbit'],
    });
}

// ---------------------------------------------------------------- T6
function fib(n) {
  return n < 2 ? n : fib(n - 1) + fib(n - 2);
}

async function rpcServer(queue) {
  const conn = await connect();
  const ch = await channel(conn);
  await ch.assertQueue(queue, { durable: false });
  await ch.prefetch(1);
  const seenReplyTo = [];
  await ch.consume(queue, (msg) => {
    const n = parseInt(msg.content.toString(), 10);
    seenReplyTo.push(msg.properties.replyTo);
    ch.sendToQueue(msg.properties.replyTo, Buffer.from(fib(n).toString()), {
      correlationId: msg.properties.correlationId,
    });
    ch.ack(msg);
  });
  return { conn, ch, seenReplyTo };
}

async function rpcCalls(label, cch, queue, replyTo, responses, ns) {
  const calls = {};
  for (const n of ns) {
    const corr = crypto.randomUUID();
    calls[corr] = n;
    cch.sendToQueue(queue, Buffer.from(n.toString()), { correlationId: corr, replyTo });
  }
  await waitCheck(`${label}: ${ns.length} concurrent calls all answered`,
    () => Object.keys(calls).every((c) => c in responses), () => JSON.stringify(responses));
  const got = {};
  const want = {};
  for (const [c, n] of Object.entries(calls)) {
    got[c] = responses[c];
    want[c] = fib(n).toString();
  }
  eq(`${label}: every answer matches its correlation id`, got, want);
}

async function t6Rpc() {
  const queue = `rpc_queue-${SFX}`;
  const srv = await rpcServer(queue);
  const cli = await connect();
  const cch = await channel(cli);
  const q = await cch.assertQueue('', { exclusive: true });
  const responses = {};
  await cch.consume(q.queue, (msg) => {
    responses[msg.properties.correlationId] = msg.content.toString();
  }, { noAck: true });
  await rpcCalls('T6 RPC', cch, queue, q.queue, responses, [0, 1, 2, 10, 15, 20, 7]);
  await srv.ch.deleteQueue(queue);
  await closeQuietly(cli, srv.conn);
}

async function t6DirectReplyTo() {
  const queue = `rpc_queue_drt-${SFX}`;
  const srv = await rpcServer(queue);
  const cli = await connect();
  const cch = await channel(cli);
  const responses = {};
  await cch.consume('amq.rabbitmq.reply-to', (msg) => {
    responses[msg.properties.correlationId] = msg.content.toString();
  }, { noAck: true });
  await rpcCalls('T6 direct reply-to', cch, queue, 'amq.rabbitmq.reply-to', responses, [3, 4, 5, 12, 6]);
  check('T6 direct reply-to: server sees reply_to rewritten to amq.rabbitmq.reply-to.<token>',
    srv.seenReplyTo.length > 0 && srv.seenReplyTo.every((r) => typeof r === 'string' && r.startsWith('amq.rabbitmq.reply-to.')),
    JSON.stringify(srv.seenReplyTo));
  await srv.ch.deleteQueue(queue);
  await closeQuietly(cli, srv.conn);
}

// ---------------------------------------------------------------- confirms
async function confirms() {
  const queue = `confirms-${SFX}`;
  const conn = await connect();
  const ch = await channel(conn, true);
  await ch.assertQueue(queue, { durable: true });
  const acks = [];
  for (let i = 0; i < 10; i++) {
    ch.sendToQueue(queue, Buffer.from(`c${i}`), { persistent: true, mandatory: true },
      (err) => acks.push(err ? 'nack' : 'ack'));
  }
  await bounded(ch.waitForConfirms(), 'waitForConfirms');
  eq('confirms: 10 persistent mandatory publishes acked', acks, Array(10).fill('ack'));
  const ok = await ch.checkQueue(queue);
  eq('confirms: confirmed messages are in the queue', ok.messageCount, 10);

  const returns = [];
  const order = [];
  ch.on('return', (msg) => {
    returns.push(msg);
    order.push('return');
  });
  let confirmed = null;
  ch.publish('amq.direct', `nowhere-${SFX}`, Buffer.from('dropped'), {}, (err) => {
    confirmed = err ? 'nack' : 'ack';
  });
  await bounded(ch.waitForConfirms(), 'waitForConfirms');
  eq('confirms: unroutable non-mandatory publish is confirmed, not returned', [confirmed, returns.length], ['ack', 0]);

  ch.publish('amq.direct', `nowhere-${SFX}`, Buffer.from('lost'), { mandatory: true }, (err) => {
    order.push(err ? 'nack' : 'ack');
  });
  await bounded(ch.waitForConfirms(), 'waitForConfirms');
  await waitCheck('confirms: mandatory unroutable publish returned', () => returns.length === 1);
  const r = returns[0];
  if (r) {
    eq('confirms: basic.return reply code/text', [r.fields.replyCode, r.fields.replyText], [312, 'NO_ROUTE']);
    eq('confirms: basic.return exchange/routing key/body',
      [r.fields.exchange, r.fields.routingKey, r.content.toString()], ['amq.direct', `nowhere-${SFX}`, 'lost']);
  }
  eq('confirms: basic.return arrives before the confirm ack', order, ['return', 'ack']);
  await ch.deleteQueue(queue);
  await closeQuietly(conn);
}

async function main() {
  const scenarios = [t1HelloWorld, t2WorkQueues, t2Quorum, t3PubSub, t4Routing, t5Topics, t6Rpc,
    t6DirectReplyTo, confirms];
  for (const s of scenarios) {
    try {
      await bounded(s(), s.name, 6 * WAIT);
    } catch (e) {
      failed.push(`${s.name} raised`);
      console.log(`FAIL - ${s.name} raised ${e && e.stack ? e.stack : e}`);
    }
  }
  console.log(`tutorials.js: ${passed} passed, ${failed.length} failed`);
  if (failed.length || passed === 0) {
    console.error(`failed checks:\n  ${failed.join('\n  ')}`);
  }
  // exitCode, not exit(): let stdout (a pipe) drain; the unref'd timer only ends a
  // process that something (a stray socket) would otherwise keep alive.
  process.exitCode = failed.length || passed === 0 ? 1 : 0;
  setTimeout(() => process.exit(), 2000).unref();
}

main().catch((e) => {
  console.error(`FAIL - ${e && e.stack ? e.stack : e}`);
  process.exitCode = 1;
  setTimeout(() => process.exit(), 2000).unref();
});
