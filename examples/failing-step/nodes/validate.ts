import type { Context } from "tentacular";

interface ValidOrder {
  orderId: string;
  items: unknown[];
  itemCount: number;
}

export default async function run(ctx: Context, input: unknown): Promise<ValidOrder> {
  if (typeof input !== "object" || input === null) {
    throw new Error("validate expects the order from prepare");
  }
  const order = input as Record<string, unknown>;
  if (typeof order.orderId !== "string" || order.orderId === "") {
    // The run fails here, and ship (the next stage) never starts.
    throw new Error("order has no orderId");
  }
  const items = Array.isArray(order.items) ? order.items : [];
  const itemCount = typeof order.itemCount === "number" ? order.itemCount : 0;
  ctx.log.info("order is valid", { orderId: order.orderId, itemCount });
  return { orderId: order.orderId, items, itemCount };
}
