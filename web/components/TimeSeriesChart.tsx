// A canvas time series (uPlot): one line per series over a shared time axis in seconds.
// The chart is built once per set of series names; new data goes in with `setData`, which
// redraws the canvas without React re-rendering anything.
"use client";
import { useEffect, useRef } from "react";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

export interface TimeSeries {
  /** Seconds since the epoch, ascending. */
  readonly times: readonly number[];
  readonly series: readonly { readonly name: string; readonly values: readonly (number | null)[] }[];
}

const PALETTE = ["#4aa3ff", "#3ecf8e", "#f5b841", "#ff5d5d", "#b58cff", "#5fd3f3", "#ff9f5d", "#c9d36a"];

export function colorOf(index: number): string {
  return PALETTE[index % PALETTE.length] as string;
}

export function TimeSeriesChart({ data, height = 220, label, unit }: { data: TimeSeries; height?: number; label: string; unit?: string }) {
  const host = useRef<HTMLDivElement>(null);
  const chart = useRef<uPlot | null>(null);
  const names = data.series.map((s) => s.name).join("\u0000");

  useEffect(() => {
    const element = host.current;
    if (!element) return;
    const options: uPlot.Options = {
      width: Math.max(200, element.clientWidth),
      height,
      legend: { show: true },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true } },
      axes: [
        { stroke: "#8b94a3", grid: { stroke: "#2a313b" }, ticks: { stroke: "#2a313b" } },
        { stroke: "#8b94a3", grid: { stroke: "#2a313b" }, ticks: { stroke: "#2a313b" }, label: unit, size: 50 },
      ],
      series: [{}, ...data.series.map((s, i) => ({ label: s.name, stroke: colorOf(i), width: 1.5, spanGaps: true, points: { show: false } }))],
    };
    const plot = new uPlot(options, toAligned(data), element);
    chart.current = plot;
    const resize = new ResizeObserver(() => plot.setSize({ width: Math.max(200, element.clientWidth), height }));
    resize.observe(element);
    return () => {
      resize.disconnect();
      plot.destroy();
      chart.current = null;
    };
    // Rebuilt only when the set of series changes; data flows in through setData below.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [names, height, unit]);

  useEffect(() => {
    chart.current?.setData(toAligned(data));
  }, [data]);

  return <div ref={host} className="live-value" role="img" aria-label={label} />;
}

function toAligned(data: TimeSeries): uPlot.AlignedData {
  return [data.times as number[], ...data.series.map((s) => s.values as (number | null)[])];
}
