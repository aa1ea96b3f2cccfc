import type { Context } from "tentacular";

interface Advice {
  city: string;
  temperature: string;
  advice: string;
  umbrella: boolean;
}

export default async function run(ctx: Context, input: unknown): Promise<Advice> {
  const { city, tempC, summary } = forecastOf(input);
  return {
    city,
    temperature: show(tempC, ctx.config.units),
    advice: adviceFor(tempC),
    umbrella: /rain|shower|drizzle|storm/i.test(summary),
  };
}

function adviceFor(tempC: number): string {
  if (tempC < 10) return "take a coat";
  if (tempC < 18) return "take a jumper";
  if (tempC < 28) return "t-shirt weather";
  return "stay in the shade";
}

// show rounds to whole degrees in the configured units; metric unless the
// config says imperial.
function show(tempC: number, units: unknown): string {
  if (units === "imperial") return `${Math.round(tempC * 9 / 5 + 32)}°F`;
  return `${Math.round(tempC)}°C`;
}

function forecastOf(input: unknown): { city: string; tempC: number; summary: string } {
  if (typeof input !== "object" || input === null) {
    throw new Error("advise expects {city, tempC, summary} from forecast");
  }
  const { city, tempC, summary } = input as Record<string, unknown>;
  if (typeof tempC !== "number") throw new Error("advise expects a numeric tempC");
  return {
    city: typeof city === "string" ? city : "",
    tempC,
    summary: typeof summary === "string" ? summary : "",
  };
}
