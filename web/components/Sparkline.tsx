// A sparkline on a small canvas: drawn directly (no chart library) because a page may hold a
// dozen of them and each redraw is a handful of line segments.
"use client";
import { useEffect, useRef } from "react";

export function Sparkline({ points, width = 160, height = 36, label }: { points: readonly (readonly [number, number])[]; width?: number; height?: number; label: string }) {
  const canvas = useRef<HTMLCanvasElement>(null);
  useEffect(() => {
    const element = canvas.current;
    const context = element?.getContext("2d");
    if (!element || !context) return;
    const ratio = window.devicePixelRatio || 1;
    element.width = width * ratio;
    element.height = height * ratio;
    context.setTransform(ratio, 0, 0, ratio, 0, 0);
    context.clearRect(0, 0, width, height);
    if (points.length < 2) return;
    const xs = points.map((p) => p[0]);
    const ys = points.map((p) => p[1]);
    const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
    const [y0, y1] = [Math.min(...ys), Math.max(...ys)];
    const sx = (x: number) => (x1 === x0 ? width : ((x - x0) / (x1 - x0)) * (width - 2) + 1);
    const sy = (y: number) => (y1 === y0 ? height / 2 : height - 2 - ((y - y0) / (y1 - y0)) * (height - 4));
    context.strokeStyle = getComputedStyle(element).color || "#4aa3ff";
    context.lineWidth = 1.5;
    context.beginPath();
    points.forEach(([x, y], i) => (i === 0 ? context.moveTo(sx(x), sy(y)) : context.lineTo(sx(x), sy(y))));
    context.stroke();
  }, [points, width, height]);
  return <canvas ref={canvas} className="sparkline live-value" style={{ width, height }} role="img" aria-label={label} />;
}
