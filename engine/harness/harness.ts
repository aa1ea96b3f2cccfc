// The Kraken node harness: one long-lived Deno process per tentacle.
//
// Protocol, one JSON object per line. Go writes to stdin:
//   {"t":"init", nodes, config, secrets, deps}   once, first
//   {"t":"run", id, node, input}                 run one attempt of a node
//   {"t":"cancel", id}                           abort that attempt
// The harness writes to stdout, each line prefixed with the nonce given as
// its first argument, so anything a node prints itself cannot be mistaken
// for a message:
//   {"t":"ready", loadErrors}
//   {"t":"log", id, node, level, msg, fields}
//   {"t":"done", id, output}      output is the node's JSON text
//   {"t":"fail", id, kind, error}
import { AsyncLocalStorage } from "node:async_hooks";

type Json = unknown;
type Level = "info" | "warn" | "error" | "debug";
interface Dep { protocol: string; host: string; port: number; authType?: string; secret?: string; [k: string]: unknown }
interface Init { nodes: Record<string, string>; config: Record<string, Json>; secrets: Record<string, Json>; deps: Record<string, Dep> }
interface Call { id: number; node: string; ac: AbortController; settle: (kind: string, error: string) => void }
type NodeFn = (ctx: unknown, input: Json) => unknown;

const nonce = Deno.args[0] ?? "";
const MAX_OUTPUT = 8 << 20;
const encoder = new TextEncoder();
const current = new AsyncLocalStorage<{ id: number; node: string }>();
const calls = new Map<number, Call>();
const modules = new Map<string, NodeFn>();
const loadErrors: Record<string, string> = {};
let init: Init;

function send(msg: Record<string, unknown>): void {
  write(JSON.stringify(msg));
}

function write(json: string): void {
  // writeSync keeps each line whole even when many nodes finish at once.
  const bytes = encoder.encode(nonce + json + "\n");
  let off = 0;
  while (off < bytes.length) off += Deno.stdout.writeSync(bytes.subarray(off));
}

function log(level: Level, msg: unknown, fields?: unknown): void {
  const who = current.getStore();
  let f: unknown = undefined;
  if (fields !== undefined) {
    try { f = JSON.parse(JSON.stringify(fields)); } catch { f = { unserialisable: String(fields) }; }
  }
  send({ t: "log", id: who?.id ?? 0, node: who?.node ?? "", level, msg: String(msg), fields: f });
}

// Nodes that print with console.* still reach the logs, attributed to them.
const fmt = (args: unknown[]) => args.map((a) => typeof a === "string" ? a : Deno.inspect(a)).join(" ");
console.log = (...a: unknown[]) => log("info", fmt(a));
console.info = console.log;
console.debug = (...a: unknown[]) => log("debug", fmt(a));
console.warn = (...a: unknown[]) => log("warn", fmt(a));
console.error = (...a: unknown[]) => log("error", fmt(a));

// A promise a node forgot about must not take every other run down.
globalThis.addEventListener("unhandledrejection", (e) => {
  e.preventDefault();
  log("error", "unhandled rejection: " + describe(e.reason));
});
globalThis.addEventListener("error", (e) => {
  e.preventDefault();
  log("error", "uncaught error: " + describe(e.error ?? e.message));
});

function describe(e: unknown): string {
  if (e instanceof Error) {
    const msg = e.message || e.name;
    // fetch says only "fetch failed"; the cause says why.
    return e.cause instanceof Error ? `${msg}: ${e.cause.message}` : msg;
  }
  try { return typeof e === "string" ? e : JSON.stringify(e); } catch { return String(e); }
}

// Deno says NotCapable (2.x) or PermissionDenied (1.x) when a node reaches
// past its flags; say it in words a tentacle author can act on.
function refusal(e: unknown): string | undefined {
  if (!(e instanceof Error) || (e.name !== "NotCapable" && e.name !== "PermissionDenied")) return undefined;
  const m = /Requires (\w+) access to "?([^",]+)"?/.exec(e.message);
  if (!m) return "the node did something tentacles may not do: " + e.message;
  switch (m[1]) {
    case "net": return `the node tried to reach ${m[2]}, which the tentacle's contract does not declare; add it to contract.dependencies`;
    case "read": return `the node tried to read ${m[2]}; a tentacle may read only its own directory`;
    case "write": return `the node tried to write ${m[2]}; a tentacle may write only to its scratch directory`;
    case "env": return `the node tried to read the environment variable ${m[2]}; tentacles get configuration from ctx.config and ctx.secrets`;
    case "run": return `the node tried to start the program ${m[2]}; tentacles may not run programs (use a sidecar)`;
    case "ffi": return "the node tried to load native code; tentacles may not";
    default: return `the node was refused ${m[1]} access to ${m[2]}`;
  }
}

function resolveSecret(name: string): Record<string, Json> {
  const s = init.secrets[name];
  return s && typeof s === "object" ? s as Record<string, Json> : {};
}

function makeContext(node: string, signal: AbortSignal) {
  const logger = (level: Level) => (msg: unknown, fields?: unknown) => log(level, msg, fields);
  return {
    nodeId: node,
    log: { info: logger("info"), warn: logger("warn"), error: logger("error"), debug: logger("debug") },
    config: init.config,
    secrets: init.secrets,
    signal,
    dependency(name: string): Dep & { name: string } {
      const d = init.deps[name];
      if (!d) throw new Error(`no dependency named "${name}" in the tentacle's contract`);
      return { name, ...d };
    },
    fetch(service: string, path: string, reqInit: RequestInit = {}): Promise<Response> {
      const headers = new Headers(reqInit.headers);
      let base: string;
      const d = init.deps[service];
      if (/^https?:\/\//.test(service)) {
        base = service.replace(/\/$/, "");
      } else if (d) {
        if (d.protocol !== "http" && d.protocol !== "https") {
          throw new Error(`dependency "${service}" speaks ${d.protocol}, not HTTP; use ctx.dependency("${service}")`);
        }
        base = `${d.protocol}://${d.host}:${d.port}`;
        if (d.secret && d.authType === "token" && !headers.has("authorization")) headers.set("Authorization", `Bearer ${d.secret}`);
        if (d.secret && d.authType === "api_key" && !headers.has("x-api-key")) headers.set("X-API-Key", d.secret);
      } else {
        base = `https://api.${service}.com`;
        const s = resolveSecret(service);
        if (typeof s.token === "string" && !headers.has("authorization")) headers.set("Authorization", `Bearer ${s.token}`);
        if (typeof s.api_key === "string" && !headers.has("x-api-key")) headers.set("X-API-Key", s.api_key);
      }
      const sig = reqInit.signal ? AbortSignal.any([reqInit.signal, signal]) : signal;
      return fetch(base + path, { ...reqInit, headers, signal: sig });
    },
  };
}

async function load(node: string, url: string): Promise<void> {
  try {
    const mod = await import(url);
    if (typeof mod.default !== "function") {
      loadErrors[node] = `${node}: the file has no default export function; write \`export default async function run(ctx, input) { ... }\``;
      return;
    }
    modules.set(node, mod.default as NodeFn);
  } catch (e) {
    loadErrors[node] = `${node}: the file does not load: ${refusal(e) ?? describe(e)}`;
  }
}

function deepFreeze(v: unknown): void {
  if (v && typeof v === "object") {
    Object.freeze(v);
    for (const x of Object.values(v)) deepFreeze(x);
  }
}

function encodeOutput(out: unknown): string {
  if (out === undefined) return "null";
  if (typeof out === "function" || typeof out === "symbol" || typeof out === "bigint") {
    throw new TypeError(`a ${typeof out}`);
  }
  const text = JSON.stringify(out);
  if (text.length > MAX_OUTPUT) throw new RangeError(`${text.length} bytes, more than the ${MAX_OUTPUT} allowed`);
  return text;
}

function run(id: number, node: string, input: Json): void {
  const fn = modules.get(node);
  if (!fn) {
    send({ t: "fail", id, kind: "load", error: loadErrors[node] ?? `${node}: no such node` });
    return;
  }
  const ac = new AbortController();
  let settled = false;
  const settle = (kind: string, error: string, output?: string) => {
    if (settled) return;
    settled = true;
    calls.delete(id);
    // The output is already JSON text: splice it in rather than encode it twice.
    if (kind === "done") write(`{"t":"done","id":${id},"output":${output}}`);
    else send({ t: "fail", id, kind, error });
  };
  calls.set(id, { id, node, ac, settle });
  current.run({ id, node }, async () => {
    let out: unknown;
    try {
      out = await fn(makeContext(node, ac.signal), input);
    } catch (e) {
      const r = refusal(e);
      settle(r ? "permission" : "throw", r ?? describe(e));
      return;
    }
    let text: string;
    try {
      text = encodeOutput(out);
    } catch (e) {
      settle("output", `returned a value that cannot be sent as JSON (${describe(e)})`);
      return;
    }
    settle("done", "", text);
  });
}

function handle(line: string): void {
  let msg: Record<string, unknown>;
  try { msg = JSON.parse(line); } catch { return; }
  switch (msg.t) {
    case "run":
      run(msg.id as number, msg.node as string, msg.input as Json);
      break;
    case "cancel": {
      // Answer at once: the node's own promise is abandoned, and the abort
      // signal tells well-behaved code to stop its I/O.
      const c = calls.get(msg.id as number);
      if (c) {
        c.ac.abort(new DOMException("cancelled", "AbortError"));
        c.settle("cancelled", "cancelled");
      }
      break;
    }
  }
}

async function* lines(): AsyncGenerator<string> {
  // Only the newest chunk is searched for a newline, so a large input
  // arriving in many chunks costs linear time.
  const decoder = new TextDecoder();
  let parts: string[] = [];
  for await (const chunk of Deno.stdin.readable) {
    let text = decoder.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = text.indexOf("\n")) >= 0) {
      parts.push(text.slice(0, nl));
      yield parts.join("");
      parts = [];
      text = text.slice(nl + 1);
    }
    if (text) parts.push(text);
  }
}

const input = lines();
const first = await input.next();
if (first.done) Deno.exit(0);
init = JSON.parse(first.value) as Init;
// Every node and run shares these objects: frozen, one cannot change what
// the next one sees.
deepFreeze(init);
await Promise.all(Object.entries(init.nodes).map(([node, url]) => load(node, url)));
send({ t: "ready", loadErrors });
for await (const line of input) handle(line);
