import type { Context } from "tentacular";

interface Counts {
  letters: number;
  words: number;
}

export default async function run(_ctx: Context, input: unknown): Promise<Counts> {
  const text = textOf(input);
  return {
    // \p{L} counts letters in any script, and skips spaces and punctuation.
    letters: text.match(/\p{L}/gu)?.length ?? 0,
    words: text.split(/\s+/).filter((w) => w !== "").length,
  };
}

function textOf(input: unknown): string {
  if (typeof input === "object" && input !== null && "text" in input && typeof input.text === "string") {
    return input.text;
  }
  throw new Error("count expects {text: string} from greet");
}
