// The routing policy and mute timings as the server stores them (JSON), and how the page
// shows and edits them: contact point forms by kind, a route's one-line description, a mute
// timing's.

export type ContactKind = "WEBHOOK" | "SLACK" | "TWILIO" | "EMAIL";
export const KINDS: readonly ContactKind[] = ["SLACK", "EMAIL", "TWILIO", "WEBHOOK"];

/** One input of a contact point's form. `list`: several values, one per line or comma. */
export interface ContactField {
  readonly key: string;
  readonly label: string;
  readonly secret?: boolean;
  readonly list?: boolean;
  readonly optional?: boolean;
  readonly placeholder?: string;
  readonly choices?: readonly string[];
}

export const FIELDS: Record<ContactKind, readonly ContactField[]> = {
  SLACK: [{ key: "url", label: "Incoming webhook URL", secret: true, placeholder: "https://hooks.slack.com/services/…" }],
  EMAIL: [
    { key: "host", label: "SMTP host", placeholder: "smtp.example.com" },
    { key: "port", label: "Port", optional: true, placeholder: "587" },
    { key: "security", label: "Security", choices: ["starttls", "tls", "none"] },
    { key: "username", label: "User name", optional: true },
    { key: "password", label: "Password", secret: true, optional: true },
    { key: "from", label: "From", placeholder: "opslive <alerts@example.com>" },
    { key: "to", label: "To", list: true, placeholder: "ops@example.com" },
    { key: "caCertificate", label: "Private CA (PEM)", optional: true },
  ],
  TWILIO: [
    { key: "accountSid", label: "Account SID", placeholder: "AC…" },
    { key: "apiKeySid", label: "API key SID", optional: true, placeholder: "SK… (instead of the account's token)" },
    { key: "authToken", label: "Auth token or API key secret", secret: true },
    { key: "from", label: "From number", optional: true, placeholder: "+4930123456" },
    { key: "messagingServiceSid", label: "Messaging service SID", optional: true, placeholder: "MG… (instead of a from number)" },
    { key: "to", label: "To", list: true, placeholder: "+4915112345678" },
    { key: "baseUrl", label: "API base URL", optional: true, placeholder: "https://api.twilio.com/" },
  ],
  WEBHOOK: [
    { key: "url", label: "URL", placeholder: "https://example.com/opslive" },
    { key: "secret", label: "Signing secret", secret: true },
  ],
};

/** A form's values as the server's `settings`: blanks left out (a secret left out keeps its
 * value on an update), lists split, the port a number. */
export function settingsFromForm(kind: ContactKind, values: Record<string, string>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const field of FIELDS[kind]) {
    const raw = (values[field.key] ?? "").trim();
    if (!raw) continue;
    if (field.list) out[field.key] = raw.split(/[\n,]+/).map((v) => v.trim()).filter(Boolean);
    else if (field.key === "port") out[field.key] = Number(raw);
    else out[field.key] = raw;
  }
  return out;
}

/** A stored contact point's shown settings back into form values (secrets stay blank). */
export function formFromSettings(kind: ContactKind, settings: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const field of FIELDS[kind]) {
    if (field.secret) continue;
    const value = settings[field.key];
    if (value === undefined || value === null) continue;
    out[field.key] = Array.isArray(value) ? value.join("\n") : String(value);
  }
  return out;
}

/** What a contact point reaches, in a few words. */
export function describeSettings(kind: string, settings: Record<string, unknown>): string {
  const list = (v: unknown) => (Array.isArray(v) ? v.join(", ") : "");
  switch (kind) {
    case "SLACK":
      return `Slack (${String(settings.host ?? "")})`;
    case "EMAIL":
      return `${list(settings.to)} via ${String(settings.host ?? "")}:${String(settings.port ?? "")}`;
    case "TWILIO":
      return `SMS to ${list(settings.to)}`;
    default:
      return String(settings.url ?? "");
  }
}

export interface Matcher {
  label: string;
  value: string;
  negated?: boolean;
}

export interface Route {
  matchers?: Matcher[];
  contactPoints: (string | number)[];
  continue?: boolean;
  groupBy?: string[];
  groupWait?: string;
  repeatInterval?: string;
  muteTimings?: string[];
}

export interface RoutingPolicy {
  routes: Route[];
  muteTimings?: MuteTiming[];
}

export interface TimeRange {
  start: string;
  end: string;
}

export interface MuteInterval {
  weekdays?: string[];
  times?: TimeRange[];
}

export interface MuteTiming {
  name: string;
  timeZone?: string;
  intervals: MuteInterval[];
}

/** `team=ops, severity!=info`, or "every alert". */
export function describeMatchers(matchers: readonly Matcher[] | undefined): string {
  if (!matchers || matchers.length === 0) return "every alert";
  return matchers.map((m) => `${m.label}${m.negated ? "!=" : "="}${m.value}`).join(", ");
}

/** The parts of a route besides its matchers and contact points. */
export function describeRouteOptions(route: Route): string {
  const parts: string[] = [];
  if (route.groupBy?.length) parts.push(`grouped by ${route.groupBy.join(", ")}${route.groupWait ? ` after ${route.groupWait}` : ""}`);
  if (route.repeatInterval) parts.push(`repeats every ${route.repeatInterval} until acknowledged`);
  if (route.muteTimings?.length) parts.push(`muted during ${route.muteTimings.join(", ")}`);
  if (route.continue) parts.push("continues to the next route");
  return parts.join("; ");
}

const DAY = (d: string) => d.slice(0, 1).toUpperCase() + d.slice(1, 3);

/** `Sat–Sun all day; Mon–Fri 22:00–24:00 (Europe/Berlin)`. */
export function describeTiming(timing: MuteTiming): string {
  const intervals = timing.intervals.map((interval) => {
    const days = interval.weekdays?.length
      ? interval.weekdays.map((w) => w.split(":").map(DAY).join("–")).join(", ")
      : "every day";
    const times = interval.times?.length ? interval.times.map((t) => `${t.start}–${t.end}`).join(", ") : "all day";
    return `${days} ${times}`;
  });
  return `${intervals.join("; ")} (${timing.timeZone ?? "UTC"})`;
}

export const WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"] as const;

/** Checked days as the server's weekday ranges: runs of adjacent days become `monday:friday`. */
export function weekdayRanges(checked: ReadonlySet<string>): string[] {
  const out: string[] = [];
  let start = -1;
  const day = (i: number) => WEEKDAYS[i] ?? "";
  for (let i = 0; i <= WEEKDAYS.length; i++) {
    const on = i < WEEKDAYS.length && checked.has(day(i));
    if (on && start < 0) start = i;
    if (!on && start >= 0) {
      out.push(start === i - 1 ? day(start) : `${day(start)}:${day(i - 1)}`);
      start = -1;
    }
  }
  return out;
}
