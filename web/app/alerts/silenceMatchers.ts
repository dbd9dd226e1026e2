// Silence matchers as people type them (`team=ops, severity!=info`), read into `SilenceMatcherInput`s.

/** Reads `team=ops, severity!=info` into matchers; null when a part is not `label=value` or `label!=value`. */
export function parseMatchers(text: string): { label: string; value: string; negated: boolean }[] | null {
  const parts = text.split(",").map((p) => p.trim()).filter(Boolean);
  if (parts.length === 0) return null;
  const matchers = [];
  for (const part of parts) {
    const match = /^([A-Za-z_][\w.-]*)\s*(!=|=)\s*(.+)$/.exec(part);
    if (!match) return null;
    matchers.push({ label: match[1] as string, value: (match[3] as string).trim(), negated: match[2] === "!=" });
  }
  return matchers;
}
