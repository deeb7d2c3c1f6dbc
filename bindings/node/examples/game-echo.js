'use strict';
// A game server's network loop, written for node:dgram: only the require
// line below names dgring. Players send text commands; the server answers
// pings at once and sends every player the world's state each tick.
//
//   join NAME         enter the world (the sender's address is the player)
//   move X Y          set the player's position
//   ping N            answered with "pong N" straight away
//   leave             leave the world
// Each tick (TICK_MS) every player gets "state T name:x,y name:x,y ...".
// SIGTERM or SIGINT closes the server.
//
//   node game-echo.js         listens on 7777 (GAME_PORT, GAME_HOST)

const dgram = require('dgring');

const port = Number(process.env.GAME_PORT ?? 7777);
const host = process.env.GAME_HOST ?? '127.0.0.1';
const tickMs = Number(process.env.TICK_MS ?? 50);

const players = new Map(); // "address:port" -> {name, x, y, address, port}
let tick = 0;

const server = dgram.createSocket({ type: 'udp4', reuseAddr: true });

function reply(rinfo, text) {
  server.send(text, rinfo.port, rinfo.address);
}

server.on('message', (msg, rinfo) => {
  const key = `${rinfo.address}:${rinfo.port}`;
  const [cmd, a, b] = msg.toString().trim().split(/\s+/);
  const player = players.get(key);
  if (cmd === 'ping') {
    reply(rinfo, `pong ${a}`);
  } else if (cmd === 'join' && a) {
    players.set(key, { name: a, x: 0, y: 0, address: rinfo.address, port: rinfo.port });
    reply(rinfo, `welcome ${a} ${players.size}`);
  } else if (cmd === 'move' && player) {
    player.x = Number(a) || 0;
    player.y = Number(b) || 0;
  } else if (cmd === 'leave' && player) {
    players.delete(key);
    reply(rinfo, `bye ${player.name}`);
  } else {
    reply(rinfo, 'error unknown command');
  }
});

function broadcast() {
  tick++;
  if (players.size === 0) return;
  const state = [...players.values()].map((p) => `${p.name}:${p.x},${p.y}`).join(' ');
  const payload = Buffer.from(`state ${tick} ${state}`);
  for (const p of players.values()) server.send(payload, p.port, p.address);
}

server.on('error', (err) => {
  console.error(`game: ${err.message}`);
  server.close();
});
server.bind(port, host, () => {
  const a = server.address();
  console.error(`game: listening on ${a.address}:${a.port}`);
});

const timer = setInterval(broadcast, tickMs);
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    clearInterval(timer);
    server.close();
  });
}
