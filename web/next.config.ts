// Next.js configuration: a static export (`out/`) that `opslive serve` serves from `web_dir`.
// Per-entity views use query parameters, since dynamic routes would need every id at build time.
import type { NextConfig } from "next";

const config: NextConfig = {
  output: "export",
  trailingSlash: true,
  images: { unoptimized: true },
  reactStrictMode: true,
  poweredByHeader: false,
};

export default config;
