/** @vitest-environment jsdom */
// The live table's flashes: a new row flashes as a whole, an updated row flashes only the cells
// that changed, and nothing flashes once the change is older than the flash.
import { beforeAll, describe, expect, it, vi } from "vitest";
import { act, render } from "@testing-library/react";
import { FLASH_MS, FLASH_STEPS, LiveTable } from "./LiveTable";
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

  it("renders only the new row when one arrives at the top: the rows below keep their elements and are not rendered again", () => {
    const renderTotal = vi.fn((row: Row) => `${row.total} EUR`);
    const priced = [...columns.slice(0, 2), { field: "total", label: "Total", render: renderTotal }];
    const changes = new Map<string, RowChange>();
    const view = (shown: Row[]) => <LiveTable label="t" columns={priced} rows={shown} changes={changes} keyFields={["id"]} now={0} height={200} />;
    const { container, rerender } = render(view(rows));
    expect(renderTotal).toHaveBeenCalledTimes(3);
    const before = container.querySelector('[role="row"][data-key="3"]');

    const arrived: Row = { id: "4", status: "pending", total: "40" };
    changes.set("4", { fields: null, stamp: 2, at: 0 });
    renderTotal.mockClear();
    rerender(view([arrived, ...rows]));
    expect(renderTotal).toHaveBeenCalledTimes(1);
    expect(renderTotal).toHaveBeenCalledWith(arrived);
    expect(container.querySelector('[role="row"][data-key="3"]')).toBe(before);
    expect([...container.querySelectorAll('[role="row"][data-key]')].map((r) => r.getAttribute("data-key"))).toEqual(["4", "1", "2", "3"]);
  });

  it("fades a flash in steps as time passes without an update, then ends it, without rendering the cells again", () => {
    vi.useFakeTimers();
    try {
      const changes = new Map<string, RowChange>([
        ["1", { fields: null, stamp: 1, at: 1_000 }],
        ["2", { fields: new Set(["status"]), stamp: 1, at: 1_000 }],
      ]);
      const renderTotal = vi.fn((r: Row) => r.total);
      const priced = [...columns.slice(0, 2), { field: "total", label: "Total", render: renderTotal }];
      const { container } = render(<LiveTable label="t" columns={priced} rows={rows} changes={changes} keyFields={["id"]} now={1_000} height={200} />);
      expect(renderTotal).toHaveBeenCalledTimes(3);
      const row = (id: string) => container.querySelector(`[role="row"][data-key="${id}"]`) as HTMLElement;
      const status = () => row("2").querySelector('[data-field="status"]') as HTMLElement;
      expect(row("1").dataset.flash).toBe("0");
      expect(row("2").dataset.flash).toBe("0");
      expect(status().className).toMatch(/\bflash\b/);
      act(() => vi.advanceTimersByTime(FLASH_MS / FLASH_STEPS));
      expect(row("1").dataset.flash).toBe("1");
      expect(row("2").dataset.flash).toBe("1");
      expect(status().className).toMatch(/\bflash\b/);
      act(() => vi.advanceTimersByTime(FLASH_MS / FLASH_STEPS));
      expect(row("1").dataset.flash).toBe("2");
      expect(renderTotal, "a flash's steps render no cell again").toHaveBeenCalledTimes(3);
      act(() => vi.advanceTimersByTime(FLASH_MS / FLASH_STEPS));
      expect(container.querySelectorAll(".flash")).toHaveLength(0);
      expect(row("1").dataset.flash).toBeUndefined();
      expect(row("2").dataset.flash).toBeUndefined();
      // Only the end of row 2's flash renders its cells again (the status cell drops `flash`).
      expect(renderTotal).toHaveBeenCalledTimes(4);
    } finally {
      vi.useRealTimers();
    }
  });
});
