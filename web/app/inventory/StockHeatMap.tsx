// Stock against reorder points as a heat map, warehouse × product category: each cell's colour is
// the share of its rows below their reorder point; hover names the counts. Redrawn per frame from
// the live rows, so a stock move recolours its cell on the transaction that made it. Clicking a
// cell narrows the low-stock list to it (clicking it again, or another, changes that).
"use client";
import { cellKey, type HeatMap } from "./stockMath";

export interface HeatCellChoice {
  readonly warehouse: string;
  readonly category: string;
}

export function StockHeatMap({ map, selected, onSelect }: { map: HeatMap; selected: HeatCellChoice | null; onSelect: (cell: HeatCellChoice | null) => void }) {
  if (map.warehouses.length === 0) return <p className="muted">No stock rows.</p>;
  return (
    <div style={{ overflowX: "auto" }}>
      <table className="heatmap live-value" aria-label="Share of stock rows below their reorder point, per warehouse and category">
        <thead>
          <tr>
            <th />
            {map.categories.map((category) => (
              <th key={category} scope="col">
                {category}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {map.warehouses.map((warehouse) => (
            <tr key={warehouse} data-warehouse={warehouse}>
              <th scope="row">{warehouse}</th>
              {map.categories.map((category) => {
                const cell = map.cells.get(cellKey(warehouse, category));
                if (!cell) return <td key={category} className="muted">·</td>;
                const share = cell.low / cell.rows;
                const isSelected = selected?.warehouse === warehouse && selected.category === category;
                return (
                  <td
                    key={category}
                    className={`num heat-cell${isSelected ? " selected" : ""}`}
                    onClick={() => onSelect(isSelected ? null : { warehouse, category })}
                    aria-selected={isSelected}
                    data-low={cell.low}
                    title={`${warehouse} · ${category}: ${cell.low} of ${cell.rows} SKUs below reorder point; ${cell.onHand} on hand vs ${cell.reorderPoint} reorder`}
                    style={{ background: heat(share) }}
                  >
                    {cell.low}/{cell.rows}
                  </td>
                );
              })}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** Green (nothing low) through amber to red (a third or more low). */
function heat(share: number): string {
  const t = Math.min(1, share * 3);
  const hue = 140 - 140 * t;
  return `hsla(${hue}, 70%, 45%, ${0.25 + 0.5 * t})`;
}
