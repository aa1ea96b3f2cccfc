import type { Context } from "tentacular";

interface Forecast {
  city: string;
  tempC: number;
  summary: string;
}

export default async function run(ctx: Context, input: unknown): Promise<Forecast> {
  const city = cityOf(input);
  // "weather" is the contract dependency: the runtime builds the URL from
  // its host and port and adds the Bearer token from the secrets.
  const res = await ctx.fetch("weather", "/forecast?city=" + encodeURIComponent(city));
  if (!res.ok) {
    const body = (await res.text()).slice(0, 200);
    throw new Error(`weather service answered ${res.status} ${res.statusText} for ${city}${body ? ": " + body : ""}`);
  }
  const data: unknown = await res.json();
  const forecast = trim(data, city);
  ctx.log.info("forecast", { ...forecast });
  return forecast;
}

function cityOf(input: unknown): string {
  if (typeof input === "object" && input !== null && "city" in input && typeof input.city === "string") {
    const city = input.city.trim();
    if (city !== "") return city;
  }
  return "Oslo";
}

// trim keeps the three fields advise needs, so a chatty API does not leak
// into the run's outputs.
function trim(data: unknown, asked: string): Forecast {
  if (typeof data !== "object" || data === null) {
    throw new Error("weather service sent something that is not a JSON object");
  }
  const { city, tempC, summary } = data as Record<string, unknown>;
  if (typeof tempC !== "number" || !Number.isFinite(tempC)) {
    throw new Error("weather service sent no numeric tempC");
  }
  return {
    city: typeof city === "string" && city !== "" ? city : asked,
    tempC,
    summary: typeof summary === "string" ? summary : "",
  };
}
