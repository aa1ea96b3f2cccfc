// Types for tentacle nodes: `import type { Context } from "tentacular";`
// The runtime maps the "tentacular" (and legacy "pipedreamer") specifier
// here, so nodes written for the seeds' platform run unchanged.

export interface Logger {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  debug(msg: string, fields?: Record<string, unknown>): void;
}

export interface Dependency {
  name: string;
  protocol: string;
  host: string;
  port: number;
  database?: string;
  user?: string;
  subject?: string;
  container?: string;
  authType?: string;
  secret?: string;
  // The enclave's services (tentacular-postgres, -rustfs, -nats) add:
  schema?: string; // postgres: the tentacle's own schema, its search_path
  bucket?: string; // s3
  region?: string; // s3 (use path-style addressing)
  prefix?: string; // s3: the tentacle's key prefix; nats: the enclave's subject prefix
  token?: string; // nats: the user JWT (secret is its nkey seed)
  inboxPrefix?: string; // nats: set as the client's inbox prefix for request-reply
  tls?: boolean;
  [key: string]: unknown;
}

export interface Context {
  nodeId: string;
  log: Logger;
  config: Record<string, unknown>;
  // deno-lint-ignore no-explicit-any
  secrets: Record<string, any>;
  fetch(service: string, path: string, init?: RequestInit): Promise<Response>;
  dependency(name: string): Dependency;
  signal: AbortSignal;
}

export type NodeFunction<I = unknown, O = unknown> = (ctx: Context, input: I) => Promise<O>;
