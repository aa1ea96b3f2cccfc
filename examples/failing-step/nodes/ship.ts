import type { Context } from "tentacular";

interface Shipment {
  orderId: string;
  status: "shipped";
  // Derived from the orderId so a re-run ships under the same number.
  trackingNumber: string;
}

export default async function run(ctx: Context, input: unknown): Promise<Shipment> {
  if (typeof input !== "object" || input === null || !("orderId" in input) || typeof input.orderId !== "string") {
    throw new Error("ship expects a validated order with an orderId");
  }
  const shipment: Shipment = {
    orderId: input.orderId,
    status: "shipped",
    trackingNumber: "TRK-" + input.orderId.toUpperCase().replace(/[^A-Z0-9]/g, ""),
  };
  ctx.log.info("shipped", { ...shipment });
  return shipment;
}
