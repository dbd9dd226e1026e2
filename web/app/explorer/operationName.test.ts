import { describe, expect, it } from "vitest";
import { Kind, OperationTypeNode, parse } from "graphql";
import { mendOperation } from "./operationName";

const operationOf = (options: { documentAST?: ReturnType<typeof parse> } | undefined) => {
  const d = options?.documentAST?.definitions[0];
  return d?.kind === Kind.OPERATION_DEFINITION ? d.operation : undefined;
};

describe("mendOperation", () => {
  it("keeps a name the document defines", () => {
    const p = { query: "query A { a } query B { b }", operationName: "B" };
    expect(mendOperation(p, {})[0]).toBe(p);
  });
  it("replaces a stale name by the document's only operation", () => {
    const p = { query: "subscription LatestOrdersLive { orders { id } }", operationName: "AgentsAvailable" };
    expect(mendOperation(p, {})[0].operationName).toBe("LatestOrdersLive");
  });
  it("names a document's only operation when GraphiQL gave no name", () => {
    const p = { query: "subscription LatestOrdersLive { orders { id } }", operationName: null };
    expect(mendOperation(p, undefined)[0].operationName).toBe("LatestOrdersLive");
  });
  it("drops a stale name when the document has several operations or an anonymous one", () => {
    expect(mendOperation({ query: "query A { a } query B { b }", operationName: "C" }, {})[0].operationName).toBeNull();
    expect(mendOperation({ query: "{ a }", operationName: "C" }, {})[0].operationName).toBeNull();
  });
  it("replaces the previous tab's parsed document by the one sent, so a subscription goes over the WebSocket", () => {
    const stale = { documentAST: parse("query AgentsAvailable { agents { id } }"), headers: "{}" };
    const [, options] = mendOperation({ query: "subscription LatestOrdersLive { orders { id } }", operationName: "AgentsAvailable" }, stale);
    expect(operationOf(options)).toBe(OperationTypeNode.SUBSCRIPTION);
    expect(options?.headers).toBe("{}");
  });
  it("leaves a document that does not parse to the server", () => {
    const p = { query: "query {", operationName: "C" };
    const o = { documentAST: parse("{ a }") };
    const [params, options] = mendOperation(p, o);
    expect(params).toBe(p);
    expect(options).toBe(o);
  });
});
