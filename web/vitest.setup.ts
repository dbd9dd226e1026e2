// Unmount what a test rendered, so one test's components never see the next test's events.
import { afterEach } from "vitest";
import { cleanup } from "@testing-library/react";

afterEach(() => {
  if (typeof document !== "undefined") cleanup();
});
