/** @vitest-environment jsdom */
// The live table's flashes: a new row flashes as a whole, an updated row flashes only the cells
// that changed, and nothing flashes once the change is older than the flash.
import { beforeAll, describe, expect, it } from "vitest";
import { render } from "@testing-library/react";
import { LiveTable } from "./LiveTable";
import type { RowChange } from "@/lib/live/patches";

type Row = { id: string; status: string; total: string };
const columns = [
  { field: "id", label: "Id" },
  { field: "status", label: "Status" },
  { field: "total", label: "Total" },
];
const rows: Row[] = [
  { id: "1", status: "paid", total: "10" },
  { id: "2", status: "pending", total: "20" },
  { id: "3", status: "shipped", total: "30" },
];

// jsdom has no layout: give elements a size so the virtualiser has rows to show.
beforeAll(() => {
  Object.defineProperty(HTMLElement.prototype, "clientHeight", { configurable: true, get: () => 200 });
  Object.defineProperty(HTMLElement.prototype, "clientWidth", { configurable: true, get: () => 800 });
  HTMLElement.prototype.getBoundingClientRect = () => ({ x: 0, y: 0, top: 0, left: 0, right: 800, bottom: 200, width: 800, height: 200, toJSON: () => ({}) });
});

function table(changes: Map<string, RowChange>, now: number) {
  return render(<LiveTable label="t" columns={columns} rows={rows} changes={changes} keyFields={["id"]} now={now} height={200} />);
}

describe("LiveTable", () => {
  it("flashes a new row whole and only the changed cells of an updated row", () => {
    const changes = new Map<string, RowChange>([
      ["1", { fields: null, stamp: 1, at: 1_000 }],
      ["2", { fields: new Set(["status"]), stamp: 1, at: 1_000 }],
    ]);
    const { container } = table(changes, 1_500);
    const row = (id: string) => container.querySelector(`[role="row"][data-key="${id}"]`) as HTMLElement;
    expect(row("1").className).toMatch(/\bflash\b/);
    expect(row("2").className).not.toMatch(/\bflash\b/);
    expect(row("2").querySelector('[data-field="status"]')?.className).toMatch(/\bflash\b/);
    expect(row("2").querySelector('[data-field="total"]')?.className).not.toMatch(/\bflash\b/);
    expect(row("3").querySelectorAll(".flash")).toHaveLength(0);
  });

  it("does not flash a change older than the flash", () => {
    const changes = new Map<string, RowChange>([["2", { fields: new Set(["status"]), stamp: 1, at: 1_000 }]]);
    const { container } = table(changes, 1_000 + 5_000);
    expect(container.querySelectorAll(".flash")).toHaveLength(0);
    expect(container.querySelectorAll('[role="row"][data-key]')).toHaveLength(3);
  });
});
