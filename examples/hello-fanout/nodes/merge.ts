import type { Context } from "tentacular";

interface Summary {
  shouted: string;
  letters: number;
  words: number;
  reversed: string;
}

// With several predecessors a node gets one object keyed by their ids:
// {shout: {text}, count: {letters, words}, reverse: {text}}.
export default async function run(ctx: Context, input: unknown): Promise<Summary> {
  const { shout, count, reverse } = record(input, "merge expects the outputs of shout, count and reverse");
  const summary: Summary = {
    shouted: field(shout, "shout", "text", "string"),
    letters: field(count, "count", "letters", "number"),
    words: field(count, "count", "words", "number"),
    reversed: field(reverse, "reverse", "text", "string"),
  };
  ctx.log.info("merged", { letters: summary.letters, words: summary.words });
  return summary;
}

function record(v: unknown, msg: string): Record<string, unknown> {
  if (typeof v !== "object" || v === null) throw new Error(msg);
  return v as Record<string, unknown>;
}

function field<T extends "string" | "number">(
  out: unknown,
  from: string,
  key: string,
  type: T,
): T extends "string" ? string : number {
  const v = record(out, `merge is missing the output of ${from}`)[key];
  if (typeof v !== type) throw new Error(`merge expects ${from}.${key} to be a ${type}`);
  return v as T extends "string" ? string : number;
}
