// A live count matrix (queue × priority, queue × availability): cells shaded by their share of
// the largest cell, a total per row.
"use client";
import type { Matrix } from "./supportMath";

export function CountMatrix({ label, matrix, rowHeader }: { label: string; matrix: Matrix; rowHeader: string }) {
  const max = Math.max(1, ...matrix.rows.flatMap((r) => matrix.columns.map((c) => matrix.get(r, c))));
  return (
    <table className="heatmap live-value" aria-label={label}>
      <thead>
        <tr>
          <th>{rowHeader}</th>
          {matrix.columns.map((c) => (
            <th key={c}>{c}</th>
          ))}
          <th>total</th>
        </tr>
      </thead>
      <tbody>
        {matrix.rows.map((row) => (
          <tr key={row} data-row={row}>
            <th scope="row">{row}</th>
            {matrix.columns.map((c) => {
              const n = matrix.get(row, c);
              return (
                <td key={c} className="num" style={{ background: n ? `rgba(74, 163, 255, ${0.1 + (0.5 * n) / max})` : undefined }}>
                  {n}
                </td>
              );
            })}
            <td className="num">
              <strong>{matrix.rowTotal(row)}</strong>
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
