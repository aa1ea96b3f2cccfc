import type { Context } from "tentacular";

interface Greeting {
  text: string;
}

// Input is {name?: string} from a manual run, or {trigger: "weekday-morning"}
// when the cron trigger fires; anything else is treated as no input.
export default async function run(ctx: Context, input: unknown): Promise<Greeting> {
  const fields = isRecord(input) ? input : {};
  const name = typeof fields.name === "string" && fields.name.trim() !== "" ? fields.name.trim() : "kraken";
  const morning = fields.trigger === "weekday-morning";
  const text = morning ? `Good morning, ${name}!` : `Hello, ${name}!`;
  ctx.log.info("greeting", { name, trigger: fields.trigger ?? "manual" });
  return { text };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
