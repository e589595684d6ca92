// A small CSMS for the tests, independent of the charger's implementation: ocpp-rpc (a Node
// OCPP-J library) over wss, in strictMode, and every message in either direction also checked
// explicitly against the official OCPP 2.0.1 / 2.1 JSON schemas that ocpp-rpc bundles, the
// result reported with the message.
//
// Driven by one JSON object per line. On stdout, events:
//   {"event":"listening","port":N}
//   {"event":"connected","identity":..,"protocol":..,"auth":"basic"|"certificate"}
//   {"event":"refused","why":..}            a handshake it refused (wrong password, no cert)
//   {"event":"received","method":..,"params":..,"valid":true|false,"errors":..}
//   {"event":"result","ref":..,"method":..,"result":..,"valid":..,"errors":..}
//   {"event":"error","ref":..,"message":..}
//   {"event":"invalid","method":..,"params":..,"errors":..,"outbound":..}  a message ocpp-rpc's
//        strict mode refused before any handler saw it (so no "received" for it)
//   {"event":"call_error","method":..,"params":..,"code":..,"errors":..}  a CallError this CSMS
//        returned to a request of the station
//   {"event":"disconnected","identity":..}
// On stdin, commands:
//   {"cmd":"call","ref":..,"method":..,"params":{..}}   a request to the station
//   {"cmd":"stop"}   close every connection and stop listening (the CSMS goes away)
//   {"cmd":"listen"} listen again on the same port
//   {"cmd":"hold","method":..,"seconds":..}  answer that method only after a delay
// Arguments: --cert F --key F [--client-ca F] [--password P] [--port N] [--host H]
"use strict";

const fs = require("fs");
const https = require("https");
const readline = require("readline");
const { RPCServer, createValidator } = require("ocpp-rpc");

// ocpp-rpc 2.2.1 bundles the official 2.1 schemas under their own ids (urn:XRequest) but its
// strict mode looks them up as urn:X.req / urn:X.conf, as in its 2.0.1 bundle: the 2.1
// schemas are given the ids it looks for, their content untouched.
function renamed(schemas) {
  return schemas.map((schema) => ({
    ...schema,
    $id: schema.$id.replace(/Request$/, ".req").replace(/Response$/, ".conf"),
  }));
}
// ajv (under ocpp-rpc, which gives no way to pass it options) logs a "strict mode" warning for
// each enum definition of the official schemas that has additionalProperties without a type:
// the schemas are as published and validate all the same, so those lines are left out here.
const warn = console.warn;
console.warn = (...args) => {
  if (!(typeof args[0] === "string" && args[0].startsWith("strict mode:"))) warn(...args);
};
const VALIDATORS = {
  "ocpp2.0.1": createValidator("ocpp2.0.1", require("ocpp-rpc/lib/schemas/ocpp2_0_1.json")),
  "ocpp2.1": createValidator("ocpp2.1", renamed(require("ocpp-rpc/lib/schemas/ocpp2_1.json"))),
};

function option(name, fallback) {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 ? process.argv[at + 1] : fallback;
}

function say(event) {
  process.stdout.write(JSON.stringify(event) + "\n");
}

function check(protocol, schemaId, params) {
  try {
    VALIDATORS[protocol].validate(schemaId, params);
    return { valid: true, errors: null };
  } catch (err) {
    return { valid: false, errors: err.message };
  }
}

const answers = {
  BootNotification: () => ({
    currentTime: new Date().toISOString(),
    interval: Number(option("heartbeat", "30")),
    status: "Accepted",
  }),
  Heartbeat: () => ({ currentTime: new Date().toISOString() }),
  // its response requires a status: answered {} (as before), ocpp-rpc's strict mode refused
  // the CSMS's own answer and sent the station an InternalError instead
  NotifyEVChargingNeeds: () => ({ status: "Accepted" }),
};

const held = {};
const clients = new Set();
const rpc = new RPCServer({
  protocols: ["ocpp2.1", "ocpp2.0.1"],
  strictMode: true,
  strictModeValidators: Object.values(VALIDATORS),
});
const password = option("password");

rpc.auth((accept, reject, handshake) => {
  const socket = handshake.request.socket;
  const peer = socket.getPeerCertificate ? socket.getPeerCertificate() : null;
  if (socket.authorized && peer && peer.subject) {
    if (peer.subject.CN !== handshake.identity) {
      say({ event: "refused", why: `certificate CN ${peer.subject.CN} is not ${handshake.identity}` });
      return reject(401);
    }
    return accept({ auth: "certificate" });
  }
  if (password !== undefined && handshake.password && handshake.password.toString() === password) {
    return accept({ auth: "basic" });
  }
  say({ event: "refused", why: handshake.password ? "wrong password" : "no credentials" });
  reject(401);
});

rpc.on("client", (client) => {
  clients.add(client);
  const protocol = client.protocol;
  say({ event: "connected", identity: client.identity, protocol, auth: client.session.auth });
  client.handle(async ({ method, params }) => {
    const verdict = check(protocol, `urn:${method}.req`, params);
    say({ event: "received", method, params, ...verdict });
    if (held[method]) await new Promise((r) => setTimeout(r, held[method] * 1000));
    const answer = answers[method] ? answers[method]() : {};
    const own = check(protocol, `urn:${method}.conf`, answer);
    if (!own.valid) say({ event: "error", ref: null, message: `own answer invalid: ${own.errors}` });
    return answer;
  });
  client.on("strictValidationFailure", ({ method, params, result, error, outbound }) => {
    say({ event: "invalid", method, params: params ?? result, errors: error.message, outbound });
  });
  client.on("callError", ({ outbound, method, params, error }) => {
    if (outbound) return; // our own request refused: the "error" event of call() says it
    say({ event: "call_error", method, params, code: error.rpcErrorCode, errors: error.message });
  });
  client.once("close", () => {
    clients.delete(client);
    say({ event: "disconnected", identity: client.identity });
  });
});

const tls = {
  cert: fs.readFileSync(option("cert")),
  key: fs.readFileSync(option("key")),
  requestCert: true,
  rejectUnauthorized: false, // a client without a certificate may still use basic auth
};
if (option("client-ca")) tls.ca = fs.readFileSync(option("client-ca"));
let server = null;
let port = Number(option("port", "0"));
const host = option("host", "127.0.0.1");

function listen() {
  server = https.createServer(tls, (req, res) => {
    res.statusCode = 404;
    res.end();
  });
  server.on("upgrade", rpc.handleUpgrade);
  server.on("tlsClientError", (err) => say({ event: "refused", why: `tls: ${err.message}` }));
  server.listen(port, host, () => {
    port = server.address().port;
    say({ event: "listening", port });
  });
}

async function stop() {
  for (const client of clients) await client.close({ force: true });
  if (server) {
    server.closeAllConnections && server.closeAllConnections();
    await new Promise((r) => server.close(r));
    server = null;
  }
  say({ event: "stopped" });
}

async function call(command) {
  const client = [...clients][0];
  if (!client) return say({ event: "error", ref: command.ref, message: "no station connected" });
  const sent = check(client.protocol, `urn:${command.method}.req`, command.params);
  if (!sent.valid) return say({ event: "error", ref: command.ref, message: sent.errors });
  try {
    const result = await client.call(command.method, command.params);
    const verdict = check(client.protocol, `urn:${command.method}.conf`, result);
    say({ event: "result", ref: command.ref, method: command.method, result, ...verdict });
  } catch (err) {
    say({ event: "error", ref: command.ref, message: err.message });
  }
}

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  const command = JSON.parse(line);
  if (command.cmd === "call") call(command);
  else if (command.cmd === "stop") stop();
  else if (command.cmd === "listen") listen();
  else if (command.cmd === "hold") held[command.method] = command.seconds;
}).on("close", () => stop().then(() => process.exit(0)));

listen();
