import type { Context } from "tentacular";

interface Item {
  sku: string;
  qty: number;
}

interface Order {
  orderId?: string;
  items: Item[];
  itemCount: number;
}

// prepare normalises whatever the run was given; it does not judge it.
// Deciding that an order is unusable is validate's job.
export default async function run(_ctx: Context, input: unknown): Promise<Order> {
  const fields = typeof input === "object" && input !== null ? input as Record<string, unknown> : {};
  const items = Array.isArray(fields.items) ? fields.items.flatMap(toItem) : [];
  const order: Order = { items, itemCount: items.reduce((n, it) => n + it.qty, 0) };
  if (typeof fields.orderId === "string" && fields.orderId.trim() !== "") {
    order.orderId = fields.orderId.trim();
  }
  return order;
}

// toItem keeps well-formed items and drops the rest.
function toItem(v: unknown): Item[] {
  if (typeof v !== "object" || v === null) return [];
  const { sku, qty } = v as Record<string, unknown>;
  if (typeof sku !== "string" || sku === "") return [];
  return [{ sku, qty: typeof qty === "number" && Number.isInteger(qty) && qty > 0 ? qty : 1 }];
}
