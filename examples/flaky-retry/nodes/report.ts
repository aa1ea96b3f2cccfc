import type { Context } from "tentacular";

interface Report {
  attempts: number;
  retries: number;
  message: string;
}

export default async function run(_ctx: Context, input: unknown): Promise<Report> {
  const attempts = attemptsOf(input);
  const retries = attempts - 1;
  const message = retries === 0
    ? "flaky succeeded at the first attempt"
    : `flaky succeeded after ${retries} ${retries === 1 ? "retry" : "retries"} (attempt ${attempts})`;
  return { attempts, retries, message };
}

function attemptsOf(input: unknown): number {
  if (typeof input === "object" && input !== null && "attempts" in input) {
    const n = input.attempts;
    if (typeof n === "number" && Number.isInteger(n) && n >= 1) return n;
  }
  throw new Error("report expects {attempts: positive integer} from flaky");
}
