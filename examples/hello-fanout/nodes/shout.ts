import type { Context } from "tentacular";

interface Text {
  text: string;
}

export default async function run(_ctx: Context, input: unknown): Promise<Text> {
  return { text: textOf(input).toUpperCase() };
}

function textOf(input: unknown): string {
  if (typeof input === "object" && input !== null && "text" in input && typeof input.text === "string") {
    return input.text;
  }
  throw new Error("shout expects {text: string} from greet");
}
