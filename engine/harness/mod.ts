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
