import { describe, expect, it } from "vitest";
import { describeRouteOptions, describeTiming, formFromSettings, settingsFromForm, weekdayRanges } from "./policyModel";

describe("contact point forms", () => {
  it("sends lists split, the port as a number, and leaves blanks (kept secrets) out", () => {
    const settings = settingsFromForm("EMAIL", {
      host: " smtp.example.com ",
      port: "2525",
      security: "starttls",
      password: "",
      from: "a@example.com",
      to: "ops@example.com,\nlead@example.com\n",
    });
    expect(settings).toEqual({ host: "smtp.example.com", port: 2525, security: "starttls", from: "a@example.com", to: ["ops@example.com", "lead@example.com"] });
  });

  it("reads shown settings back without secrets", () => {
    expect(formFromSettings("TWILIO", { accountSid: "AC1", to: ["+1", "+2"], authToken: "never shown" })).toEqual({ accountSid: "AC1", to: "+1\n+2" });
  });
});

describe("policy descriptions", () => {
  it("says how a route groups, repeats and mutes", () => {
    expect(describeRouteOptions({ contactPoints: [1], groupBy: ["alertname"], groupWait: "30s", repeatInterval: "4h", muteTimings: ["nights"], continue: true })).toBe(
      "grouped by alertname after 30s; repeats every 4h until acknowledged; muted during nights; continues to the next route",
    );
  });

  it("describes a mute timing's days and hours in its zone", () => {
    expect(
      describeTiming({ name: "q", timeZone: "Europe/Berlin", intervals: [{ weekdays: ["saturday:sunday"] }, { weekdays: ["monday:friday"], times: [{ start: "22:00", end: "24:00" }] }] }),
    ).toBe("Sat–Sun all day; Mon–Fri 22:00–24:00 (Europe/Berlin)");
  });

  it("turns checked days into ranges", () => {
    expect(weekdayRanges(new Set(["monday", "tuesday", "wednesday", "friday", "sunday"]))).toEqual(["monday:wednesday", "friday", "sunday"]);
    expect(weekdayRanges(new Set())).toEqual([]);
  });
});
