// Support arithmetic, pure for tests: a count matrix from (row, column, count) groups, and a wait
// from the moment a ticket opened.

export interface Matrix {
  readonly rows: readonly string[];
  readonly columns: readonly string[];
  readonly get: (row: string, column: string) => number;
  readonly rowTotal: (row: string) => number;
}

export function matrix(groups: readonly { readonly row: string; readonly column: string; readonly count: number }[], columnOrder: readonly string[] = []): Matrix {
  const cells = new Map<string, number>();
  const rows = new Set<string>();
  const columns = new Set<string>();
  for (const g of groups) {
    rows.add(g.row);
    columns.add(g.column);
    cells.set(`${g.row}\u0000${g.column}`, (cells.get(`${g.row}\u0000${g.column}`) ?? 0) + g.count);
  }
  const rank = (c: string) => {
    const i = columnOrder.indexOf(c);
    return i === -1 ? columnOrder.length : i;
  };
  const sortedColumns = [...columns].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
  const get = (row: string, column: string) => cells.get(`${row}\u0000${column}`) ?? 0;
  return { rows: [...rows].sort(), columns: sortedColumns, get, rowTotal: (row) => sortedColumns.reduce((sum, c) => sum + get(row, c), 0) };
}

/** "4 min", "1 h 05 min", "12 s": how long since `since` (ISO text) at `now` (ms). */
export function waitSince(since: string | null, now: number): string {
  if (!since) return "—";
  const seconds = Math.max(0, Math.round((now - Date.parse(since)) / 1000));
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min`;
  return `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, "0")} min`;
}
