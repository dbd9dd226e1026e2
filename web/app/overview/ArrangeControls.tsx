// The controls of the Overview's arrange mode: on each tile, move it one place earlier or later
// and hide it; below the toolbar, the hidden KPIs, each with a control to show it again.
"use client";

export function TileControls({ name, first, last, onMove, onHide }: { name: string; first: boolean; last: boolean; onMove: (delta: -1 | 1) => void; onHide: () => void }) {
  return (
    <div className="tile-controls" role="group" aria-label={`Arrange ${name}`}>
      <button type="button" aria-label="Move earlier" title="Move earlier" disabled={first} onClick={() => onMove(-1)}>
        ←
      </button>
      <button type="button" aria-label="Move later" title="Move later" disabled={last} onClick={() => onMove(1)}>
        →
      </button>
      <button type="button" onClick={onHide}>
        Hide
      </button>
    </div>
  );
}

export function HiddenTiles({ kpis, onShow }: { kpis: readonly { readonly id: string; readonly name: string }[]; onShow: (id: string) => void }) {
  return (
    <div className="panel hidden-tiles" aria-label="Hidden KPIs" role="region">
      <h2>Hidden</h2>
      {kpis.length === 0 ? (
        <p className="muted small">No KPI is hidden.</p>
      ) : (
        <ul>
          {kpis.map((kpi) => (
            <li key={kpi.id} data-kpi={kpi.name}>
              <span>{kpi.name}</span>{" "}
              <button type="button" aria-label={`Show ${kpi.name}`} onClick={() => onShow(kpi.id)}>
                Show
              </button>
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}
