// The user's arrangement of the Overview's KPI tiles, kept pure for tests. A layout names KPI ids:
// `tiles` are shown first in that order, KPIs it does not name follow in the server's order, and
// `hidden` ones are not shown. Ids of KPIs that no longer exist (or that the role cannot read) are
// ignored, so a deleted KPI never breaks a layout. While arranging, the page edits a draft layout
// that names every KPI (`draftOf`), moved, hidden and shown again with the helpers below.

export interface Layout {
  readonly tiles: readonly string[];
  readonly hidden: readonly string[];
}

export const EMPTY_LAYOUT: Layout = { tiles: [], hidden: [] };

export interface Arranged<K> {
  /** The tiles to show, in order. */
  readonly shown: K[];
  /** The KPIs left out, in the server's order. */
  readonly hidden: K[];
}

/** The KPIs (in the server's order) as the layout arranges them; hidden wins over tiles. */
export function arrange<K extends { readonly id: string }>(kpis: readonly K[], layout: Layout | null): Arranged<K> {
  if (!layout) return { shown: [...kpis], hidden: [] };
  const hiddenIds = new Set(layout.hidden);
  const byId = new Map(kpis.map((k) => [k.id, k]));
  const shown: K[] = [];
  const placed = new Set<string>();
  for (const id of layout.tiles) {
    const kpi = byId.get(id);
    if (!kpi || hiddenIds.has(id) || placed.has(id)) continue;
    shown.push(kpi);
    placed.add(id);
  }
  for (const kpi of kpis) if (!placed.has(kpi.id) && !hiddenIds.has(kpi.id)) shown.push(kpi);
  return { shown, hidden: kpis.filter((k) => hiddenIds.has(k.id)) };
}

/** A layout naming every KPI as it is now arranged: the starting point of arranging. */
export function draftOf(kpis: readonly { readonly id: string }[], layout: Layout | null): Layout {
  const { shown, hidden } = arrange(kpis, layout);
  return { tiles: shown.map((k) => k.id), hidden: hidden.map((k) => k.id) };
}

/** Moves a shown tile one place earlier (-1) or later (+1); at an edge, or not shown, nothing moves. */
export function moveTile(layout: Layout, id: string, delta: -1 | 1): Layout {
  const at = layout.tiles.indexOf(id);
  const to = at + delta;
  if (at < 0 || to < 0 || to >= layout.tiles.length) return layout;
  const tiles = [...layout.tiles];
  tiles[at] = tiles[to] as string;
  tiles[to] = id;
  return { ...layout, tiles };
}

/** Leaves a KPI out of the overview. */
export function hideTile(layout: Layout, id: string): Layout {
  return { tiles: layout.tiles.filter((t) => t !== id), hidden: layout.hidden.includes(id) ? layout.hidden : [...layout.hidden, id] };
}

/** Shows a hidden KPI again, as the last tile. */
export function showTile(layout: Layout, id: string): Layout {
  return { tiles: layout.tiles.includes(id) ? layout.tiles : [...layout.tiles, id], hidden: layout.hidden.filter((h) => h !== id) };
}

/**
 * The layout with a KPI placed on the overview: shown (no longer hidden), and named last unless
 * the layout already names it. The tiles shown now are named first, in their current order (for
 * a layout never saved, every known KPI in the server's order), so placing one tile moves no
 * other: naming only the new id would put it ahead of every KPI the layout leaves unnamed.
 */
export function placeTile(layout: Layout | null, knownIds: readonly string[], id: string): Layout {
  const hidden = (layout?.hidden ?? []).filter((h) => h !== id);
  const named = layout?.tiles.includes(id) ?? false;
  const known = (named ? knownIds : knownIds.filter((k) => k !== id)).map((k) => ({ id: k }));
  const { tiles } = draftOf(known, { tiles: layout?.tiles ?? [], hidden });
  return { tiles: tiles.includes(id) ? tiles : [...tiles, id], hidden };
}
