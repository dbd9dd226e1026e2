//! The shape of business traffic over a day, and the incident spikes of `--burst`.
//!
//! The shop sells in three regions, each busiest at its own local late morning and evening, so
//! the overall curve is a blend of three local days: clearly quieter when Europe and the Americas
//! sleep, never zero because Asia-Pacific is awake. Every local curve averages 1 over its day,
//! so the blend does too, which is what lets `--rate` mean "events per second on average".
//!
//! Spikes run on the real clock, not the simulated one: an incident is something the person
//! watching the dashboard should see unfold in tens of seconds whatever `--day-length` is.

use chrono::{DateTime, Datelike, NaiveDateTime, TimeDelta, Timelike, Utc, Weekday};

/// Relative volume per local hour 00..23 on a weekday: night trough, morning climb, lunch bump,
/// evening peak (the shape the seed data's orders follow).
const WEEKDAY: [f64; 24] = [
    2.0, 1.0, 1.0, 1.0, 1.0, 2.0, 4.0, 6.0, 8.0, 9.0, 9.0, 10.0, 11.0, 10.0, 9.0, 9.0, 9.0, 10.0, 12.0, 13.0, 12.0,
    9.0, 6.0, 3.0,
];
/// Weekends wake up later and stay busy into the evening.
const WEEKEND: [f64; 24] = [
    3.0, 2.0, 1.5, 1.0, 1.0, 1.0, 2.0, 3.0, 5.0, 7.0, 9.0, 10.0, 11.0, 11.0, 10.0, 10.0, 10.0, 11.0, 13.0, 14.0, 13.0,
    10.0, 7.0, 4.0,
];

/// A sales region, as the schema spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Region {
    Eu,
    Us,
    Apac,
}

impl Region {
    pub const ALL: [Region; 3] = [Region::Eu, Region::Us, Region::Apac];

    pub fn as_str(self) -> &'static str {
        match self {
            Region::Eu => "eu",
            Region::Us => "us",
            Region::Apac => "apac",
        }
    }

    pub fn parse(s: &str) -> Option<Region> {
        Region::ALL.into_iter().find(|r| r.as_str() == s)
    }

    pub fn index(self) -> usize {
        self as usize
    }

    /// A representative offset (Central Europe, US East, Singapore); the curve is too coarse
    /// for daylight saving time to matter.
    fn utc_offset_hours(self) -> i64 {
        match self {
            Region::Eu => 1,
            Region::Us => -5,
            Region::Apac => 8,
        }
    }

    /// Share of the business, matching the seed's customer split.
    fn share(self) -> f64 {
        match self {
            Region::Eu => 0.45,
            Region::Us => 0.35,
            Region::Apac => 0.20,
        }
    }

    /// Local wall time in this region at `t`.
    pub fn local(self, t: DateTime<Utc>) -> NaiveDateTime {
        t.naive_utc() + TimeDelta::hours(self.utc_offset_hours())
    }
}

/// Relative activity at a local time: 1 is the day's average.
pub fn local_intensity(local: NaiveDateTime) -> f64 {
    let table = match local.weekday() {
        Weekday::Sat | Weekday::Sun => &WEEKEND,
        _ => &WEEKDAY,
    };
    let mean = table.iter().sum::<f64>() / 24.0;
    // The table gives each hour's middle; interpolating between middles keeps the curve smooth
    // and its average equal to the table's.
    let hour = local.hour() as f64 + local.minute() as f64 / 60.0 + local.second() as f64 / 3600.0 - 0.5;
    let hour = hour.rem_euclid(24.0);
    let lo = hour.floor() as usize % 24;
    let hi = (lo + 1) % 24;
    let frac = hour - hour.floor();
    (table[lo] * (1.0 - frac) + table[hi] * frac) / mean
}

/// Each region's contribution to activity at `t`; they sum to [`intensity`].
pub fn region_weights(t: DateTime<Utc>) -> [f64; 3] {
    Region::ALL.map(|r| r.share() * local_intensity(r.local(t)))
}

/// Overall business activity at simulated time `t`: 1 is the average over a day.
pub fn intensity(t: DateTime<Utc>) -> f64 {
    region_weights(t).iter().sum()
}

/// When the `--burst` spikes happen and how high they go.
///
/// Each spike is a flash sale: order intake climbs to `factor` times normal within seconds,
/// holds for half a minute and fades; twenty seconds after it starts, a wave of tickets (mostly
/// "where is my order") follows and lasts a little longer. The first spike comes 15 s after
/// start so a demo shows one right away; later ones come every 4 to 8 minutes (6 on average), at times drawn
/// from the seed so a run can be repeated.
#[derive(Clone, Copy, Debug)]
pub struct BurstSchedule {
    factor: f64,
    seed: u64,
}

/// Seconds after start of the first spike.
const FIRST_SPIKE: f64 = 15.0;
/// Spike `k` starts in the `k`th slot of this length, jittered by up to [`SPIKE_JITTER`].
const SPIKE_SLOT: f64 = 360.0;
const SPIKE_JITTER: f64 = 120.0;
/// Order intake: ramp, plateau, fade (seconds).
const ORDER_ENVELOPE: (f64, f64, f64) = (5.0, 30.0, 10.0);
/// The ticket wave lags the sale and lasts longer.
const TICKET_DELAY: f64 = 20.0;
const TICKET_ENVELOPE: (f64, f64, f64) = (10.0, 40.0, 20.0);

impl BurstSchedule {
    pub fn new(factor: f64, seed: u64) -> BurstSchedule {
        BurstSchedule { factor: factor.max(1.0), seed }
    }

    pub fn factor(&self) -> f64 {
        self.factor
    }

    /// Seconds after start at which spike `k` (0, 1, ...) begins.
    pub fn spike_start(&self, k: u64) -> f64 {
        if k == 0 {
            return FIRST_SPIKE;
        }
        // A hash rather than a stream of draws, so any spike can be located without
        // generating the ones before it.
        let jitter = (splitmix64(self.seed ^ k.wrapping_mul(0x9E37_79B9_7F4A_7C15)) >> 11) as f64 / (1u64 << 53) as f64;
        FIRST_SPIKE + k as f64 * SPIKE_SLOT + jitter * SPIKE_JITTER
    }

    /// How far into a spike order intake is at `elapsed` seconds: 0 (normal) to 1 (peak).
    pub fn orders_level(&self, elapsed: f64) -> f64 {
        self.level(elapsed, 0.0, ORDER_ENVELOPE)
    }

    /// The same for the ticket wave.
    pub fn tickets_level(&self, elapsed: f64) -> f64 {
        self.level(elapsed, TICKET_DELAY, TICKET_ENVELOPE)
    }

    /// The rate multiplier at a level: 1 at level 0, `factor` at the peak.
    pub fn multiplier(&self, level: f64) -> f64 {
        1.0 + (self.factor - 1.0) * level
    }

    fn level(&self, elapsed: f64, delay: f64, (ramp, plateau, fade): (f64, f64, f64)) -> f64 {
        if elapsed < FIRST_SPIKE {
            return 0.0;
        }
        // A spike, its delay and its envelope all fit inside one slot, so only the spike of the
        // current slot and the one before can be active.
        let slot = ((elapsed - FIRST_SPIKE) / SPIKE_SLOT).floor() as u64;
        let mut level: f64 = 0.0;
        for k in slot.saturating_sub(1)..=slot {
            let t = elapsed - self.spike_start(k) - delay;
            let l = if t < 0.0 {
                0.0
            } else if t < ramp {
                t / ramp
            } else if t < ramp + plateau {
                1.0
            } else if t < ramp + plateau + fade {
                1.0 - (t - ramp - plateau) / fade
            } else {
                0.0
            };
            level = level.max(l);
        }
        level
    }
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}
