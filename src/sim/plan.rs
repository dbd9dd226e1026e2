//! The planner: which business event happens next, and when.
//!
//! Events arrive as a Poisson process whose rate per kind is recomputed at every event:
//!
//! - *intake* (new orders, new tickets) follows `--rate`, the time-of-day curve and `--burst`;
//! - *work* (paying, picking, shipping, answering, ...) follows `--rate` and the curve too, but
//!   scaled by how much work is waiting compared with a normal day (up to three times faster
//!   when a backlog builds), so queues neither run dry nor grow without bound over hours, and a
//!   flash sale shows as a backlog that builds and then drains (restocking reacts more steeply,
//!   see [`Driver::Batched`]);
//! - *clock-driven* processes (agents' shifts and breaks, the reconciliation job) happen at a
//!   pace per simulated hour, not per order: a support team does not change shifts faster
//!   because the shop is busy.
//!
//! The planner sees the world only through a [`Backlog`] of counts, so it is a pure function of
//! the seed, the options and those counts: two planners with the same inputs plan the same
//! events, which the tests check. In a run the counts come from the database, so how fast it
//! commits feeds back; runs with the same seed are alike, and identical only as far as that
//! timing is.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::SimOptions;
use super::clock::SimClock;
use super::shape::{self, BurstSchedule};

/// One kind of business event; each is one short transaction in the source database.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    /// A customer places an order; its items are reserved in the warehouse's stock.
    OrderPlaced,
    /// Payment arrives for a pending order.
    OrderPaid,
    /// A pending (now and then a paid) order is cancelled; its reservation is released.
    OrderCancelled,
    /// The warehouse picks a paid order: stock leaves the shelf.
    OrderPicked,
    /// A picked order leaves the warehouse.
    OrderShipped,
    /// A shipped order reaches the customer.
    OrderDelivered,
    /// A delivered order is refunded.
    OrderRefunded,
    /// A supplier delivery tops up stock that fell to its reorder point.
    StockReplenished,
    /// A customer opens a support ticket.
    TicketOpened,
    /// A new ticket is assigned to an online agent of its queue.
    TicketAssigned,
    /// The agent sends the first response.
    TicketAnswered,
    /// The customer replies to a ticket that was waiting on them.
    TicketReopened,
    /// The ticket is solved.
    TicketSolved,
    /// A solved ticket is closed.
    TicketClosed,
    /// An agent starts or ends a shift, or takes or ends a break.
    AgentAvailability,
    /// The day's settlement batch of a payment account is opened for matching.
    BatchOpened,
    /// The reconciliation job matches part of a batch, sometimes raising an exception, and
    /// closes the batch as matched or as an exception when it is through.
    BatchMatching,
    /// Finance resolves a reconciliation exception.
    ExceptionResolved,
}

impl EventKind {
    pub const COUNT: usize = 18;
    pub const ALL: [EventKind; EventKind::COUNT] = [
        EventKind::OrderPlaced,
        EventKind::OrderPaid,
        EventKind::OrderCancelled,
        EventKind::OrderPicked,
        EventKind::OrderShipped,
        EventKind::OrderDelivered,
        EventKind::OrderRefunded,
        EventKind::StockReplenished,
        EventKind::TicketOpened,
        EventKind::TicketAssigned,
        EventKind::TicketAnswered,
        EventKind::TicketReopened,
        EventKind::TicketSolved,
        EventKind::TicketClosed,
        EventKind::AgentAvailability,
        EventKind::BatchOpened,
        EventKind::BatchMatching,
        EventKind::ExceptionResolved,
    ];

    pub fn index(self) -> usize {
        self as usize
    }

    /// A stable snake_case name, for logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::OrderPlaced => "order_placed",
            EventKind::OrderPaid => "order_paid",
            EventKind::OrderCancelled => "order_cancelled",
            EventKind::OrderPicked => "order_picked",
            EventKind::OrderShipped => "order_shipped",
            EventKind::OrderDelivered => "order_delivered",
            EventKind::OrderRefunded => "order_refunded",
            EventKind::StockReplenished => "stock_replenished",
            EventKind::TicketOpened => "ticket_opened",
            EventKind::TicketAssigned => "ticket_assigned",
            EventKind::TicketAnswered => "ticket_answered",
            EventKind::TicketReopened => "ticket_reopened",
            EventKind::TicketSolved => "ticket_solved",
            EventKind::TicketClosed => "ticket_closed",
            EventKind::AgentAvailability => "agent_availability",
            EventKind::BatchOpened => "batch_opened",
            EventKind::BatchMatching => "batch_matching",
            EventKind::ExceptionResolved => "exception_resolved",
        }
    }

    /// What drives this kind's rate.
    pub fn driver(self) -> Driver {
        use EventKind::*;
        match self {
            // Shares of --rate. Along each chain the shares roughly balance (every placed order
            // is eventually paid or cancelled, picked, shipped, delivered), so backlogs sit near
            // their targets; the rest is absorbed by the backlog feedback.
            OrderPlaced => Driver::Intake(0.150),
            OrderPaid => Driver::Work(0.140),
            OrderCancelled => Driver::Work(0.008),
            OrderPicked => Driver::Work(0.140),
            OrderShipped => Driver::Work(0.140),
            OrderDelivered => Driver::Work(0.140),
            OrderRefunded => Driver::WhileAny(0.003),
            StockReplenished => Driver::Batched(0.020),
            TicketOpened => Driver::Intake(0.050),
            TicketAssigned => Driver::Work(0.050),
            TicketAnswered => Driver::Work(0.050),
            TicketReopened => Driver::Work(0.015),
            TicketSolved => Driver::Work(0.050),
            TicketClosed => Driver::Work(0.045),
            // Per item and simulated hour: an agent changes state every two hours or so (shift
            // start, breaks, shift end: enough to follow the day's staffing curve), a batch is
            // matched in about six steps over a good hour, an open exception waits a few hours
            // for someone in finance.
            AgentAvailability => Driver::Clock(0.5),
            BatchMatching => Driver::Clock(5.0),
            ExceptionResolved => Driver::Clock(0.3),
            // Once per account and simulated day, at 02:00 (see `finance`).
            BatchOpened => Driver::Scheduled,
        }
    }
}

/// How an event kind's rate is set; see the module documentation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Driver {
    /// This share of `--rate`, shaped by the day and by bursts.
    Intake(f64),
    /// This share of `--rate`, shaped by the day and by the backlog of its work.
    Work(f64),
    /// Like `Work`, but held back until the backlog nears its target: buyers reorder stock in
    /// batches, not the moment a shelf runs low, so the count of low rows stays near its usual
    /// level instead of draining to nothing at modest rates.
    Batched(f64),
    /// This share of `--rate`, shaped by the day, while there is anything to work on.
    WhileAny(f64),
    /// This many events per waiting item and simulated hour.
    Clock(f64),
    /// Not random: the dispatcher issues it at set simulated times.
    Scheduled,
}

/// How much work is waiting, per kind of work: the planner's whole view of the world.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Backlog {
    pub pending_orders: usize,
    pub paid_orders: usize,
    pub picking_orders: usize,
    pub shipped_orders: usize,
    /// Recently delivered orders that could still be refunded.
    pub delivered_orders: usize,
    /// Inventory rows at or below their reorder point.
    pub low_stock: usize,
    /// New tickets in queues that have an agent online.
    pub new_tickets: usize,
    pub unanswered_tickets: usize,
    /// Tickets waiting on the customer.
    pub pending_tickets: usize,
    /// Open tickets that had a response and wait for the agent.
    pub answered_tickets: usize,
    pub solved_tickets: usize,
    pub agents: usize,
    /// Reconciliation batches open or being matched.
    pub open_batches: usize,
    pub open_exceptions: usize,
}

impl Backlog {
    /// The queue an event kind works on (None for intake and scheduled kinds).
    pub fn work_for(&self, kind: EventKind) -> Option<usize> {
        use EventKind::*;
        Some(match kind {
            OrderPaid | OrderCancelled => self.pending_orders,
            OrderPicked => self.paid_orders,
            OrderShipped => self.picking_orders,
            OrderDelivered => self.shipped_orders,
            OrderRefunded => self.delivered_orders,
            StockReplenished => self.low_stock,
            TicketAssigned => self.new_tickets,
            TicketAnswered => self.unanswered_tickets,
            TicketReopened => self.pending_tickets,
            TicketSolved => self.answered_tickets + self.pending_tickets,
            TicketClosed => self.solved_tickets,
            AgentAvailability => self.agents,
            BatchMatching => self.open_batches,
            ExceptionResolved => self.open_exceptions,
            OrderPlaced | TicketOpened | BatchOpened => return None,
        })
    }

    /// Feedback targets for a run that starts from `initial`: the backlog the database has, so
    /// the dashboard keeps its familiar levels, but never so small that a nearly empty queue
    /// makes its work run at full speed.
    pub fn targets(initial: &Backlog) -> Backlog {
        Backlog {
            pending_orders: initial.pending_orders.max(20),
            paid_orders: initial.paid_orders.max(20),
            picking_orders: initial.picking_orders.max(20),
            shipped_orders: initial.shipped_orders.max(50),
            delivered_orders: initial.delivered_orders.max(1),
            low_stock: initial.low_stock.max(20),
            new_tickets: initial.new_tickets.max(10),
            unanswered_tickets: initial.unanswered_tickets.max(10),
            pending_tickets: initial.pending_tickets.max(10),
            answered_tickets: initial.answered_tickets.max(10),
            solved_tickets: initial.solved_tickets.max(20),
            agents: initial.agents.max(1),
            open_batches: initial.open_batches.max(1),
            open_exceptions: initial.open_exceptions.max(1),
        }
    }
}

/// How much faster than normal work may go when its backlog is long.
const MAX_CATCH_UP: f64 = 3.0;

/// The planner's next event.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Planned {
    /// When it is due, counted from the start of the run.
    pub at: Duration,
    pub kind: EventKind,
}

/// What an event's details depend on besides the world: the simulated time and the bursts.
#[derive(Clone, Copy, Debug)]
pub struct Moment {
    pub sim_time: DateTime<Utc>,
    /// 0 normally, 1 at the height of a flash sale.
    pub orders_burst: f64,
    /// 0 normally, 1 at the height of a ticket wave.
    pub tickets_burst: f64,
}

/// Plans events; see the module documentation.
pub struct Planner {
    rng: StdRng,
    rate: f64,
    clock: SimClock,
    burst: Option<BurstSchedule>,
    targets: Backlog,
    /// Seconds from start to the last planned event.
    elapsed: f64,
    /// The rate total at the last planned event, events per second.
    total_rate: f64,
}

impl Planner {
    /// A planner for a run whose simulated clock reads `start` at the beginning, with feedback
    /// targets `targets` (see [`Backlog::targets`]).
    pub fn new(options: &SimOptions, start: DateTime<Utc>, targets: Backlog) -> Planner {
        Planner {
            rng: StdRng::seed_from_u64(options.seed),
            rate: options.rate,
            clock: SimClock::new(start, options.day_length),
            burst: options.burst.map(|factor| BurstSchedule::new(factor, options.seed)),
            targets,
            elapsed: 0.0,
            total_rate: 0.0,
        }
    }

    pub fn clock(&self) -> &SimClock {
        &self.clock
    }

    pub fn burst(&self) -> Option<&BurstSchedule> {
        self.burst.as_ref()
    }

    /// The simulated time and burst levels `elapsed` seconds after start.
    pub fn moment(&self, elapsed: f64) -> Moment {
        Moment {
            sim_time: self.clock.at(elapsed),
            orders_burst: self.burst.map_or(0.0, |b| b.orders_level(elapsed)),
            tickets_burst: self.burst.map_or(0.0, |b| b.tickets_level(elapsed)),
        }
    }

    /// Events per second of each kind at `elapsed` seconds after start, given `backlog`.
    pub fn rates(&self, elapsed: f64, backlog: &Backlog) -> [f64; EventKind::COUNT] {
        let moment = self.moment(elapsed);
        let day = shape::intensity(moment.sim_time);
        let orders_burst = self.burst.map_or(1.0, |b| b.multiplier(moment.orders_burst));
        let tickets_burst = self.burst.map_or(1.0, |b| b.multiplier(moment.tickets_burst));
        let volume = self.rate / volume_share_total();
        let per_sim_hour = self.clock.speed() / 3600.0;
        EventKind::ALL.map(|kind| match kind.driver() {
            Driver::Intake(share) => {
                let burst = match kind {
                    EventKind::OrderPlaced => orders_burst,
                    EventKind::TicketOpened => tickets_burst,
                    _ => 1.0,
                };
                volume * share * day * burst
            }
            Driver::Work(share) => volume * share * day * self.load(kind, backlog).min(MAX_CATCH_UP),
            Driver::Batched(share) => volume * share * day * self.load(kind, backlog).powi(4).min(MAX_CATCH_UP),
            Driver::WhileAny(share) => {
                if backlog.work_for(kind).unwrap_or(0) > 0 {
                    volume * share * day
                } else {
                    0.0
                }
            }
            Driver::Clock(per_item) => {
                let waiting = backlog.work_for(kind).unwrap_or(0) as f64;
                // Finance resolves exceptions in office hours; shifts and the batch job are
                // driven by their own schedules.
                let office = if kind == EventKind::ExceptionResolved { day } else { 1.0 };
                waiting * per_item * per_sim_hour * office
            }
            Driver::Scheduled => 0.0,
        })
    }

    /// Waiting work of `kind` relative to its target: 1 is a normal day.
    fn load(&self, kind: EventKind, backlog: &Backlog) -> f64 {
        let waiting = backlog.work_for(kind).unwrap_or(0) as f64;
        waiting / self.targets.work_for(kind).unwrap_or(1).max(1) as f64
    }

    /// The next event after the last one planned.
    pub fn next(&mut self, backlog: &Backlog) -> Planned {
        let rates = self.rates(self.elapsed, backlog);
        let total: f64 = rates.iter().sum();
        self.total_rate = total;
        // Order intake never stops (the day curve is never zero), so `total` is positive; the
        // guard only protects against a zero --rate slipping through.
        let total = total.max(1e-9);
        let u: f64 = self.rng.random();
        self.elapsed += -(1.0 - u).ln() / total;
        let mut pick = self.rng.random::<f64>() * total;
        let mut kind = EventKind::OrderPlaced;
        for (k, r) in EventKind::ALL.into_iter().zip(rates) {
            if r <= 0.0 {
                continue;
            }
            kind = k;
            if pick < r {
                break;
            }
            pick -= r;
        }
        Planned { at: Duration::from_secs_f64(self.elapsed), kind }
    }

    /// Total planned events per second at the last planned event.
    pub fn planned_rate(&self) -> f64 {
        self.total_rate
    }

    /// Seconds from start to the last planned event.
    pub fn elapsed(&self) -> f64 {
        self.elapsed
    }

    /// Moves the schedule forward to `elapsed`, giving up the events in between: how the
    /// simulator falls behind without building a backlog.
    pub fn skip_to(&mut self, elapsed: f64) {
        self.elapsed = self.elapsed.max(elapsed);
    }

    /// The random source for the details of planned events (which order, which customer), so
    /// they are as repeatable as the events themselves.
    pub fn rng(&mut self) -> &mut StdRng {
        &mut self.rng
    }
}

fn volume_share_total() -> f64 {
    EventKind::ALL
        .into_iter()
        .map(|k| match k.driver() {
            Driver::Intake(s) | Driver::Work(s) | Driver::Batched(s) | Driver::WhileAny(s) => s,
            Driver::Clock(_) | Driver::Scheduled => 0.0,
        })
        .sum()
}
