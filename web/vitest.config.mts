// Unit tests of the data layer (node) and of hooks/components (jsdom, per file via a docblock).
import { defineConfig } from "vitest/config";
import { fileURLToPath } from "node:url";

export default defineConfig({
  resolve: { alias: { "@": fileURLToPath(new URL(".", import.meta.url)) } },
  test: {
    include: ["**/*.test.ts", "**/*.test.tsx"],
    exclude: ["node_modules/**", "out/**", ".next/**", "e2e/**"],
    environment: "node",
    setupFiles: ["./vitest.setup.ts"],
  },
});
