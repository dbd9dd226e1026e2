/** @vitest-environment jsdom */
// The role's schema follows the server: a table that finishes loading (absent from the first SDL)
// shows up at the next refresh; an unchanged SDL keeps the same parsed object (so pruned
// documents and their subscriptions stay put); a failed first load is retried.
import { afterEach, describe, expect, it, vi } from "vitest";
import { act, renderHook } from "@testing-library/react";
import { canSubscribe } from "./roleSchema";
import { useRoleSchema, type RoleSchemaState } from "./useRoleSchema";

const sdl = (fields: string) => `type Query { x: Int }\ntype Subscription {\n${fields}\n}\n`;
const session = (token: string) => ({ token, role: "r", sub: "s", expiresAt: Date.now() + 3_600_000, claims: {} });

async function flush() {
  await act(async () => {
    for (let i = 0; i < 5; i++) await Promise.resolve();
  });
}

afterEach(() => {
  vi.useRealTimers();
  vi.unstubAllGlobals();
});

describe("useRoleSchema", () => {
  it("picks up a table that appears later and keeps the parsed schema while the SDL is unchanged", async () => {
    vi.useFakeTimers();
    const answers = [sdl("alerts: Int"), sdl("alerts: Int\ninventoryPatches: Int"), sdl("alerts: Int\ninventoryPatches: Int")];
    const fetchMock = vi.fn(async () => new Response(answers.shift() ?? answers[0] ?? "", { status: 200 }));
    vi.stubGlobal("fetch", fetchMock);
    const { result } = renderHook(() => useRoleSchema(session("t1")));
    await flush();
    const first = result.current as Extract<RoleSchemaState, { status: "ready" }>;
    expect(first.status).toBe("ready");
    expect(canSubscribe(first.schema, "inventoryPatches")).toBe(false);

    await act(async () => {
      await vi.advanceTimersByTimeAsync(10_000);
    });
    await flush();
    const second = result.current as Extract<RoleSchemaState, { status: "ready" }>;
    expect(canSubscribe(second.schema, "inventoryPatches")).toBe(true);

    await act(async () => {
      await vi.advanceTimersByTimeAsync(10_000);
    });
    await flush();
    expect(fetchMock).toHaveBeenCalledTimes(3);
    expect(result.current).toBe(second);
  });

  it("retries a failed first load", async () => {
    vi.useFakeTimers();
    let calls = 0;
    vi.stubGlobal(
      "fetch",
      vi.fn(async () => (++calls === 1 ? new Response("starting", { status: 503 }) : new Response(sdl("alerts: Int"), { status: 200 }))),
    );
    const { result } = renderHook(() => useRoleSchema(session("t2")));
    await flush();
    expect(result.current.status).toBe("error");
    await act(async () => {
      await vi.advanceTimersByTimeAsync(1_000);
    });
    await flush();
    expect(result.current.status).toBe("ready");
  });
});
