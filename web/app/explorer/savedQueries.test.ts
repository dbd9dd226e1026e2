// The saved-queries panel's decisions: variables text to JSON and back, the proposed name, the
// tab that already holds a query.
import { describe, expect, it } from "vitest";
import { parseVariables, proposedName, tabHolding, variablesText } from "./savedQueries";

describe("saved queries", () => {
  it("reads blank variables as none and JSON as itself, and says when it is not JSON", () => {
    expect(parseVariables("")).toEqual({ ok: true, value: null });
    expect(parseVariables("  \n ")).toEqual({ ok: true, value: null });
    expect(parseVariables('{ "limit": 5 }')).toEqual({ ok: true, value: { limit: 5 } });
    // Not an object: sent as it is, for the server to refuse with its own message.
    expect(parseVariables("[1]")).toEqual({ ok: true, value: [1] });
    const bad = parseVariables("{ limit: ");
    expect(bad.ok).toBe(false);
    expect(!bad.ok && bad.error).toMatch(/^the variables are not JSON/);
  });

  it("shows saved variables as indented JSON, none as blank", () => {
    expect(variablesText(null)).toBe("");
    expect(variablesText(undefined)).toBe("");
    expect(variablesText({ a: 1 })).toBe('{\n  "a": 1\n}');
    expect(parseVariables(variablesText({ a: [1, "x"] }))).toEqual({ ok: true, value: { a: [1, "x"] } });
  });

  it("proposes the name of the query opened in the tab, else of the saved query with this text", () => {
    const saved = [
      { name: "orders", query: "{ orders { id } }" },
      { name: "tickets", query: "{ tickets { id } }" },
    ];
    expect(proposedName("mine", saved, "{ tickets { id } }")).toBe("mine");
    expect(proposedName(undefined, saved, "{ tickets { id } }")).toBe("tickets");
    expect(proposedName(undefined, saved, "{ other }")).toBe("");
  });

  it("finds the tab that holds a query", () => {
    const tabs = [{ query: null }, { query: "{ a }" }, { query: "{ b }" }];
    expect(tabHolding(tabs, "{ b }")).toBe(2);
    expect(tabHolding(tabs, "{ c }")).toBe(-1);
  });
});
