import type { Context } from "tentacular";

// The runtime keeps one worker per tentacle, so this counter survives from
// one attempt to the next. It is reset on success: every run goes fail,
// fail, succeed, which keeps the demo (and its output) the same each time.
let attempts = 0;
const failuresBeforeSuccess = 2;

export default async function run(ctx: Context, _input: unknown): Promise<{ attempts: number }> {
  attempts++;
  if (attempts <= failuresBeforeSuccess) {
    ctx.log.warn("failing on purpose", { attempt: attempts });
    throw new Error(`temporary glitch, attempt ${attempts}`);
  }
  const result = { attempts };
  attempts = 0;
  ctx.log.info("succeeded", result);
  return result;
}
