import type { Context } from "tentacular";

interface Text {
  text: string;
}

export default async function run(_ctx: Context, input: unknown): Promise<Text> {
  // Spread by code point so letters outside the BMP are not split in half.
  return { text: [...textOf(input)].reverse().join("") };
}

function textOf(input: unknown): string {
  if (typeof input === "object" && input !== null && "text" in input && typeof input.text === "string") {
    return input.text;
  }
  throw new Error("reverse expects {text: string} from greet");
}
