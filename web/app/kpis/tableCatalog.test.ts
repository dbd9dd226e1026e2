// The KPI builder's table catalogue comes from the role's schema.
import { describe, expect, it } from "vitest";
import { parseRoleSchema } from "@/lib/schema/roleSchema";
import { tableCatalog } from "./tableCatalog";

describe("tableCatalog", () => {
  it("lists the tables the role can aggregate, with the columns it can see", () => {
    const schema = parseRoleSchema(`
      type Orders { id: BigInt! channel: String! createdAt: Timestamptz! }
      type OrdersAggregateGroup { count: Int! }
      type Inventory { sku: String! }
      type InventoryAggregateGroup { count: Int! }
      type Subscription {
        ordersAggregate(where: OrdersBoolExp, groupBy: [OrdersColumn!]): [OrdersAggregateGroup!]!
        ordersPatches(where: OrdersBoolExp): OrdersLiveUpdate!
        inventory(where: InventoryBoolExp): [Inventory!]!
        kpis: [Kpi!]!
      }
    `);
    expect(tableCatalog(schema)).toEqual([
      {
        table: "orders",
        typePrefix: "Orders",
        columns: [
          { name: "id", type: "BigInt" },
          { name: "channel", type: "String" },
          { name: "createdAt", type: "Timestamptz" },
        ],
      },
    ]);
  });
});
