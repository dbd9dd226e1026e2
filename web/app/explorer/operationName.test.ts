import { describe, expect, it } from "vitest";
import { mendOperationName } from "./operationName";

describe("mendOperationName", () => {
  it("keeps a name the document defines", () => {
    const p = { query: "query A { a } query B { b }", operationName: "B" };
    expect(mendOperationName(p)).toBe(p);
  });
  it("replaces a stale name by the document's only operation", () => {
    const p = { query: "subscription LatestOrdersLive { orders { id } }", operationName: "AgentsAvailable" };
    expect(mendOperationName(p).operationName).toBe("LatestOrdersLive");
  });
  it("drops a stale name when the document has several operations or an anonymous one", () => {
    expect(mendOperationName({ query: "query A { a } query B { b }", operationName: "C" }).operationName).toBeNull();
    expect(mendOperationName({ query: "{ a }", operationName: "C" }).operationName).toBeNull();
  });
  it("leaves a document that does not parse to the server", () => {
    const p = { query: "query {", operationName: "C" };
    expect(mendOperationName(p)).toBe(p);
  });
});
