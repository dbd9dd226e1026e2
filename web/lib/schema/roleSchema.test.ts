// The SDL scanner reads the committed admin schema (root fields, object fields with their
// types, multi-line argument lists) and a role's narrower schema; pruning drops what a role
// cannot see and reports it.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parse, print } from "@0no-co/graphql.web";
import { canMutate, canQuery, canSubscribe, hasField, parseRoleSchema } from "./roleSchema";
import { pruneDocument } from "./prune";

const ADMIN = readFileSync(new URL("../../../graphql/schema.graphql", import.meta.url), "utf8");

describe("parseRoleSchema", () => {
  it("reads the admin schema", () => {
    const schema = parseRoleSchema(ADMIN);
    expect(canSubscribe(schema, "ordersPatches")).toBe(true);
    expect(canSubscribe(schema, "kpis")).toBe(true);
    expect(canQuery(schema, "kpiHistory")).toBe(true);
    expect(canMutate(schema, "createSilence")).toBe(true); // its arguments span lines
    expect(canMutate(schema, "expireSilence")).toBe(true);
    expect(schema.types.get("Subscription")?.get("ordersPatches")).toBe("OrdersLiveUpdate");
    expect(schema.types.get("OrdersLiveUpdate")?.get("reset")).toBe("Orders");
    expect(hasField(schema, "Orders", "warehouseId")).toBe(true);
    expect(hasField(schema, "Orders", "startsAt")).toBe(false);
  });

  it("prunes hidden columns and reports them, and drops a root field the role lacks", () => {
    const finance = parseRoleSchema(`
      type Query { orders: [Orders!]! }
      type Subscription {
        "live"
        ordersPatches(where: OrdersBoolExp, limit: Int): OrdersLiveUpdate!
      }
      type Orders { id: BigInt! channel: String! total: Numeric! }
      type OrdersKey { id: BigInt! }
      type OrdersLiveUpdate { seq: Int! reset: [Orders!] patch: OrdersPatch }
      type OrdersPatch { upserts: [OrdersUpsert!]! removedKeys: [OrdersKey!]! }
      type OrdersUpsert { index: Int! row: Orders! }
    `);
    const pruned = pruneDocument(
      parse("subscription { ordersPatches(limit: 5) { seq reset { id channel warehouseId } patch { upserts { index row { id channel warehouseId } } removedKeys { id } } } }"),
      finance,
    );
    expect(pruned.missing).toEqual(["Orders.warehouseId", "Orders.warehouseId"]);
    expect(print(pruned.document!)).not.toContain("warehouseId");
    expect(pruneDocument(parse("subscription { ticketsAggregate { count } }"), finance).document).toBeNull();
  });
});
