// The Inventory page's GraphQL: stock rows as keyed patches (roles that may read rows), product
// categories to join in the page, and per-warehouse aggregates for roles that may only aggregate.
import { graphql, type ResultOf } from "@/lib/graphql/graphql";

export const StockRows = graphql(`
  subscription StockRows {
    inventoryPatches(orderBy: [{ warehouseId: ASC }, { sku: ASC }]) {
      seq
      asOf { position commitTs }
      reset { sku warehouseId onHand reserved reorderPoint updatedAt }
      patch {
        upserts { index row { sku warehouseId onHand reserved reorderPoint updatedAt } }
        removedKeys { sku warehouseId }
      }
    }
  }
`);
export type StockRow = NonNullable<ResultOf<typeof StockRows>["inventoryPatches"]["reset"]>[number];

export const ProductCategories = graphql(`
  subscription ProductCategories {
    products { sku name category }
  }
`);

export const WarehouseStock = graphql(`
  subscription WarehouseStock {
    inventoryAggregate(groupBy: [WAREHOUSE_ID]) { key { warehouseId } count sum { onHand reorderPoint } }
  }
`);

export const WarehouseLowStock = graphql(`
  subscription WarehouseLowStock {
    inventoryAggregate(where: { onHand: { ltColumn: "reorderPoint" } }, groupBy: [WAREHOUSE_ID]) { key { warehouseId } count }
  }
`);
