// The Overview's tile layout: order from the layout, unknown ids ignored, new KPIs appended,
// hidden ones left out, moves at the edges, and placing a new KPI without moving the others.
import { describe, expect, it } from "vitest";
import { arrange, draftOf, EMPTY_LAYOUT, hideTile, moveTile, placeTile, showTile } from "./layout";

const kpis = ["1", "2", "3", "4"].map((id) => ({ id, name: `kpi ${id}` }));
const ids = (list: readonly { id: string }[]) => list.map((k) => k.id);

describe("arrange", () => {
  it("shows the server's order without a layout or with an empty one", () => {
    expect(ids(arrange(kpis, null).shown)).toEqual(["1", "2", "3", "4"]);
    expect(ids(arrange(kpis, EMPTY_LAYOUT).shown)).toEqual(["1", "2", "3", "4"]);
    expect(arrange(kpis, EMPTY_LAYOUT).hidden).toEqual([]);
  });

  it("puts the layout's tiles first in its order, then the KPIs it does not name in the server's order", () => {
    expect(ids(arrange(kpis, { tiles: ["3", "1"], hidden: [] }).shown)).toEqual(["3", "1", "2", "4"]);
    expect(ids(arrange(kpis, { tiles: ["4", "3", "2", "1"], hidden: [] }).shown)).toEqual(["4", "3", "2", "1"]);
  });

  it("ignores ids of KPIs that are gone (deleted, or not readable by the role) and ids named twice", () => {
    const arranged = arrange(kpis, { tiles: ["9", "2", "2", "7", "1"], hidden: ["8"] });
    expect(ids(arranged.shown)).toEqual(["2", "1", "3", "4"]);
    expect(arranged.hidden).toEqual([]);
  });

  it("appends KPIs created after the layout was saved", () => {
    const later = [...kpis, { id: "5", name: "kpi 5" }];
    expect(ids(arrange(later, { tiles: ["4", "3", "2", "1"], hidden: [] }).shown)).toEqual(["4", "3", "2", "1", "5"]);
  });

  it("leaves hidden KPIs out and lists them in the server's order, also when the tiles name them", () => {
    const arranged = arrange(kpis, { tiles: ["3", "2"], hidden: ["4", "2"] });
    expect(ids(arranged.shown)).toEqual(["3", "1"]);
    expect(ids(arranged.hidden)).toEqual(["2", "4"]);
  });

  it("keeps the KPI objects themselves", () => {
    expect(arrange(kpis, { tiles: ["2"], hidden: [] }).shown[0]).toBe(kpis[1]);
  });
});

describe("arranging", () => {
  const draft = draftOf(kpis, { tiles: ["3"], hidden: ["4"] });

  it("starts from a draft naming every KPI as shown now", () => {
    expect(draft).toEqual({ tiles: ["3", "1", "2"], hidden: ["4"] });
  });

  it("moves a tile one place earlier or later", () => {
    expect(moveTile(draft, "1", -1).tiles).toEqual(["1", "3", "2"]);
    expect(moveTile(draft, "1", 1).tiles).toEqual(["3", "2", "1"]);
  });

  it("moves nothing at the edges, or for a tile not shown", () => {
    expect(moveTile(draft, "3", -1)).toBe(draft);
    expect(moveTile(draft, "2", 1)).toBe(draft);
    expect(moveTile(draft, "4", -1)).toBe(draft);
    expect(moveTile(draft, "9", 1)).toBe(draft);
    expect(moveTile({ tiles: ["1"], hidden: [] }, "1", 1).tiles).toEqual(["1"]);
  });

  it("hides a tile and shows it again as the last tile", () => {
    const hidden = hideTile(draft, "3");
    expect(hidden).toEqual({ tiles: ["1", "2"], hidden: ["4", "3"] });
    expect(hideTile(hidden, "3")).toEqual(hidden);
    const shown = showTile(hidden, "4");
    expect(shown).toEqual({ tiles: ["1", "2", "4"], hidden: ["3"] });
    expect(ids(arrange(kpis, shown).shown)).toEqual(["1", "2", "4"]);
  });

  it("moves to the front in steps", () => {
    let layout = draftOf(kpis, null);
    for (let i = 0; i < 5; i++) layout = moveTile(layout, "4", -1);
    expect(layout.tiles).toEqual(["4", "1", "2", "3"]);
  });
});

describe("placeTile", () => {
  it("on a layout never saved, names every known KPI in the server's order, then the new one", () => {
    expect(placeTile(EMPTY_LAYOUT, ["1", "2", "3", "5"], "5")).toEqual({ tiles: ["1", "2", "3", "5"], hidden: [] });
    expect(placeTile(null, ["1", "2"], "7")).toEqual({ tiles: ["1", "2", "7"], hidden: [] });
  });

  it("keeps the other tiles where they are shown, the new one last", () => {
    const layout = { tiles: ["3", "1"], hidden: ["2"] };
    const placed = placeTile(layout, ["1", "2", "3", "4", "5"], "5");
    expect(placed).toEqual({ tiles: ["3", "1", "4", "5"], hidden: ["2"] });
    expect(ids(arrange([...kpis, { id: "5", name: "kpi 5" }], placed).shown)).toEqual(["3", "1", "4", "5"]);
  });

  it("shows the KPI when it was hidden; one the layout names already keeps its place", () => {
    expect(placeTile({ tiles: ["1"], hidden: ["5", "9"] }, ["1", "2", "5"], "5")).toEqual({ tiles: ["1", "2", "5"], hidden: ["9"] });
    expect(placeTile({ tiles: ["5", "1"], hidden: ["5"] }, ["1", "2", "5"], "5")).toEqual({ tiles: ["5", "1", "2"], hidden: [] });
    expect(placeTile({ tiles: ["5", "1"], hidden: [] }, ["1", "5"], "5")).toEqual({ tiles: ["5", "1"], hidden: [] });
  });

  it("places a KPI the known list does not hold yet", () => {
    expect(placeTile({ tiles: ["2"], hidden: [] }, ["1", "2"], "6")).toEqual({ tiles: ["2", "1", "6"], hidden: [] });
  });
});
