//! Customer support: tickets opened, assigned, answered, solved and closed, and the agents who
//! work them coming online, taking breaks and going off shift.
//!
//! A ticket can only be assigned to an agent of its queue who is online, so when a queue's agents
//! are away its new tickets wait: at night, or when a wave of "where is my order" tickets follows
//! a flash sale, the backlog visibly builds. How many agents are online follows the same daily
//! curve as the business, which is how a support team staffs its shifts.
//!
//! The tickets and agents live beside the shop in PostgreSQL or in a MariaDB database of their
//! own (the demo's helpdesk): a [`Desk`] runs each step's statement in whichever it is, and the
//! queues here do not care.

use std::collections::VecDeque;

use mysql_async::prelude::Queryable;
use rand::Rng;
use rand::rngs::StdRng;
use tokio_postgres::{Client, Statement};

use super::error::JobError;
use super::helpdesk;

use super::orders::{Orders, pick_weighted};
use super::plan::{EventKind, Moment};
use super::shape;
use super::world::{Reference, Shared, push_capped};

/// The schema's ticket and agent queues.
pub(crate) const QUEUES: [&str; 4] = ["billing", "shipping", "returns", "technical"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Availability {
    Online,
    Away,
    Offline,
}

impl Availability {
    pub fn as_str(self) -> &'static str {
        match self {
            Availability::Online => "online",
            Availability::Away => "away",
            Availability::Offline => "offline",
        }
    }

    fn parse(s: &str) -> Availability {
        match s {
            "online" => Availability::Online,
            "away" => Availability::Away,
            _ => Availability::Offline,
        }
    }
}

pub(crate) struct Agent {
    id: i32,
    queue: usize,
    /// As the simulator last set it; the assignment statement re-checks it in the database.
    availability: Availability,
}

pub(crate) struct NewTicket {
    queue: usize,
    priority: &'static str,
    subject: String,
    customer: i64,
}

pub(crate) enum SupportJob {
    Open(NewTicket),
    Assign { ticket: i64, queue: usize, agent: i32 },
    Answer { ticket: i64, waiting_on_customer: bool },
    Reopen(i64),
    Solve(i64),
    Close(i64),
    Agent { agent: i32, availability: Availability },
}

/// Tickets waiting for their next step, oldest first, and the agents.
#[derive(Default)]
pub(crate) struct Support {
    pub agents: Vec<Agent>,
    /// New tickets per queue (indexes of [`QUEUES`]).
    pub new: [VecDeque<i64>; 4],
    /// Assigned, no response yet.
    pub unanswered: VecDeque<i64>,
    /// Waiting on the customer.
    pub pending: VecDeque<i64>,
    /// Open again after a response, waiting on the agent.
    pub answered: VecDeque<i64>,
    pub solved: VecDeque<i64>,
}

impl Support {
    /// The agents and the tickets with a next step, from the shop's PostgreSQL.
    pub async fn load(client: &Client) -> Result<Support, tokio_postgres::Error> {
        let agents = client.query("SELECT id, queue, availability FROM agents ORDER BY id", &[]).await?;
        let tickets = client
            .query(
                "SELECT id, queue, status, first_response_at IS NOT NULL FROM tickets
                 WHERE status IN ('new', 'open', 'pending', 'solved')
                 ORDER BY updated_at, id LIMIT 400000",
                &[],
            )
            .await?;
        Ok(Support::from_rows(
            agents.iter().map(|r| (r.get(0), r.get(1), r.get(2))),
            tickets.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3))),
        ))
    }

    /// The same from a helpdesk database of its own (MariaDB).
    pub async fn load_helpdesk(conn: &mut mysql_async::Conn) -> Result<Support, mysql_async::Error> {
        let agents = helpdesk::agents(conn).await?;
        let tickets = helpdesk::open_tickets(conn).await?;
        Ok(Support::from_rows(
            agents.iter().map(|(id, queue, availability)| (*id, queue.as_str(), availability.as_str())),
            tickets.iter().map(|(id, queue, status, responded)| (*id, queue.as_str(), status.as_str(), *responded)),
        ))
    }

    /// From agents (id, queue, availability) and tickets (id, queue, status, responded).
    fn from_rows<'r>(
        agents: impl Iterator<Item = (i32, &'r str, &'r str)>,
        tickets: impl Iterator<Item = (i64, &'r str, &'r str, bool)>,
    ) -> Support {
        let mut support = Support::default();
        for (id, queue, availability) in agents {
            let Some(queue) = QUEUES.iter().position(|q| *q == queue) else { continue };
            support.agents.push(Agent { id, queue, availability: Availability::parse(availability) });
        }
        for (id, queue, status, responded) in tickets {
            let queue = match (status, responded) {
                ("new", _) => match QUEUES.iter().position(|q| *q == queue) {
                    Some(q) => &mut support.new[q],
                    None => continue,
                },
                ("open", false) => &mut support.unanswered,
                ("open", true) => &mut support.answered,
                ("pending", _) => &mut support.pending,
                _ => &mut support.solved,
            };
            push_capped(queue, id);
        }
        support
    }

    fn online_in(&self, queue: usize) -> impl Iterator<Item = &Agent> {
        self.agents.iter().filter(move |a| a.queue == queue && a.availability == Availability::Online)
    }

    /// New tickets that an online agent could pick up now.
    pub fn assignable(&self) -> usize {
        (0..QUEUES.len()).filter(|q| self.online_in(*q).next().is_some()).map(|q| self.new[q].len()).sum()
    }

    pub fn take(
        &mut self,
        kind: EventKind,
        moment: &Moment,
        orders: &Orders,
        reference: &Reference,
        rng: &mut StdRng,
    ) -> Option<SupportJob> {
        Some(match kind {
            EventKind::TicketOpened => SupportJob::Open(new_ticket(moment, orders, reference, rng)),
            EventKind::TicketAssigned => {
                // A queue in proportion to its waiting tickets, among queues someone can serve.
                let weights: Vec<f64> = (0..QUEUES.len())
                    .map(|q| if self.online_in(q).next().is_some() { self.new[q].len() as f64 } else { 0.0 })
                    .collect();
                if weights.iter().all(|w| *w == 0.0) {
                    return None;
                }
                let queue = pick_weighted(&weights, rng);
                let online: Vec<i32> = self.online_in(queue).map(|a| a.id).collect();
                let agent = online[rng.random_range(0..online.len())];
                SupportJob::Assign { ticket: self.new[queue].pop_front()?, queue, agent }
            }
            EventKind::TicketAnswered => {
                // Most first responses ask the customer something; the rest say "looking into it".
                SupportJob::Answer { ticket: self.unanswered.pop_front()?, waiting_on_customer: rng.random_bool(0.6) }
            }
            EventKind::TicketReopened => SupportJob::Reopen(self.pending.pop_front()?),
            EventKind::TicketSolved => {
                let from_pending = self.pending.len() as f64;
                let from_answered = self.answered.len() as f64;
                if from_pending + from_answered == 0.0 {
                    return None;
                }
                let ticket = if pick_weighted(&[from_answered, from_pending], rng) == 0 {
                    self.answered.pop_front()
                } else {
                    self.pending.pop_front()
                };
                SupportJob::Solve(ticket?)
            }
            EventKind::TicketClosed => SupportJob::Close(self.solved.pop_front()?),
            EventKind::AgentAvailability => self.shift_change(moment, rng)?,
            _ => return None,
        })
    }

    /// Moves the number of agents online towards what the time of day calls for; when staffing
    /// is right, someone takes or ends a break. The change is applied here at once, so the next
    /// planned events already see it.
    fn shift_change(&mut self, moment: &Moment, rng: &mut StdRng) -> Option<SupportJob> {
        if self.agents.is_empty() {
            return None;
        }
        let wanted = (0.2 + 0.45 * shape::intensity(moment.sim_time)).clamp(0.15, 0.9);
        let target = (wanted * self.agents.len() as f64).round() as usize;
        let online = self.agents.iter().filter(|a| a.availability == Availability::Online).count();
        let (from, to): (&[Availability], Availability) = if online + 1 < target {
            (&[Availability::Away, Availability::Offline], Availability::Online)
        } else if online > target + 1 {
            (&[Availability::Online], if rng.random_bool(0.6) { Availability::Offline } else { Availability::Away })
        } else if rng.random_bool(0.5) {
            (&[Availability::Online], Availability::Away)
        } else {
            (&[Availability::Away], Availability::Online)
        };
        let candidates: Vec<usize> =
            (0..self.agents.len()).filter(|i| from.contains(&self.agents[*i].availability)).collect();
        if candidates.is_empty() {
            return None;
        }
        let agent = &mut self.agents[candidates[rng.random_range(0..candidates.len())]];
        agent.availability = to;
        Some(SupportJob::Agent { agent: agent.id, availability: to })
    }
}

const SUBJECTS: [&[&str]; 4] = [
    &[
        "Charged twice for one order",
        "Invoice needs a VAT number",
        "Refund not received yet",
        "Payment declined at checkout",
        "Question about my bill",
    ],
    &[
        "Where is my order",
        "Tracking has not updated",
        "Parcel delivered to the wrong address",
        "Change delivery address",
        "Package arrived damaged",
    ],
    &[
        "Return label request",
        "Wrong size, want an exchange",
        "Return received but no refund",
        "Item missing from the box",
        "How long does a return take",
    ],
    &[
        "Cannot log in to my account",
        "App crashes at checkout",
        "Password reset email not arriving",
        "Promo code not accepted",
        "Order history page is empty",
    ],
];

/// A customer writes in. During a ticket wave most tickets ask where their order is.
fn new_ticket(moment: &Moment, orders: &Orders, reference: &Reference, rng: &mut StdRng) -> NewTicket {
    let wave = moment.tickets_burst;
    let queue = pick_weighted(&[0.25, 0.35 * (1.0 + 4.0 * wave), 0.25, 0.15], rng);
    let priority = ["low", "normal", "high", "urgent"][pick_weighted(&[0.25, 0.50, 0.18, 0.07], rng)];
    let subjects = SUBJECTS[queue];
    let mut subject = subjects[rng.random_range(0..subjects.len())].to_string();
    // Shipping and returns tickets name an order the customer would be asking about.
    let about = match queue {
        1 => orders.shipped.get(rng.random_range(0..orders.shipped.len().max(1))).map(|o| o.id),
        2 if !orders.delivered.is_empty() => orders.delivered.get(rng.random_range(0..orders.delivered.len())).copied(),
        _ => None,
    };
    if let Some(order) = about {
        subject.push_str(&format!(" #{order}"));
    }
    NewTicket { queue, priority, subject, customer: reference.any_customer(rng) }
}

const OPEN: &str = "
INSERT INTO tickets (queue, priority, status, subject, customer_id, opened_at, updated_at)
VALUES ($1::text, $2::text, 'new', $3::text, $4::int8, now(), now())
RETURNING id";

/// Assigns only while the ticket is still new and the agent still online; says which of the two
/// held, so a ticket whose agent just went away goes back to its queue.
const ASSIGN: &str = "
WITH ticket AS (
    SELECT id FROM tickets WHERE id = $1::int8 AND status = 'new' FOR UPDATE
), agent AS (
    SELECT id FROM agents WHERE id = $2::int4 AND availability = 'online'
), assigned AS (
    UPDATE tickets AS t SET status = 'open', assignee_id = a.id, updated_at = greatest(now(), t.updated_at)
    FROM ticket, agent AS a
    WHERE t.id = ticket.id
    RETURNING t.id
)
SELECT EXISTS (SELECT 1 FROM ticket), EXISTS (SELECT 1 FROM assigned)";

const ANSWER: &str = "
UPDATE tickets
SET status = $2::text,
    first_response_at = greatest(now(), updated_at, opened_at),
    updated_at = greatest(now(), updated_at, opened_at)
WHERE id = $1::int8 AND status = 'open' AND first_response_at IS NULL";

const REOPEN: &str = "
UPDATE tickets SET status = 'open', updated_at = greatest(now(), updated_at)
WHERE id = $1::int8 AND status = 'pending'";

const SOLVE: &str = "
UPDATE tickets
SET status = 'solved',
    first_response_at = coalesce(first_response_at, greatest(now(), updated_at, opened_at)),
    solved_at = greatest(now(), updated_at, opened_at, first_response_at),
    updated_at = greatest(now(), updated_at, opened_at, first_response_at)
WHERE id = $1::int8 AND status IN ('open', 'pending') AND assignee_id IS NOT NULL";

const CLOSE: &str = "
UPDATE tickets SET status = 'closed', updated_at = greatest(now(), updated_at, solved_at)
WHERE id = $1::int8 AND status = 'solved'";

const AGENT: &str = "
UPDATE agents SET availability = $2::text, updated_at = greatest(now(), updated_at)
WHERE id = $1::int4 AND availability <> $2::text";

pub(crate) struct Statements {
    open: Statement,
    assign: Statement,
    answer: Statement,
    reopen: Statement,
    solve: Statement,
    close: Statement,
    agent: Statement,
}

impl Statements {
    pub async fn prepare(client: &Client) -> Result<Statements, tokio_postgres::Error> {
        Ok(Statements {
            open: client.prepare(OPEN).await?,
            assign: client.prepare(ASSIGN).await?,
            answer: client.prepare(ANSWER).await?,
            reopen: client.prepare(REOPEN).await?,
            solve: client.prepare(SOLVE).await?,
            close: client.prepare(CLOSE).await?,
            agent: client.prepare(AGENT).await?,
        })
    }
}

/// Where the helpdesk's statements run: beside the shop in PostgreSQL, or in a MariaDB
/// database of its own.
pub(crate) enum Desk<'a> {
    Postgres(&'a mut Client, &'a Statements),
    Mariadb(&'a mut mysql_async::Conn),
}

impl Desk<'_> {
    /// A new ticket's id.
    async fn open(&mut self, t: &NewTicket) -> Result<i64, JobError> {
        Ok(match self {
            Desk::Postgres(client, st) => {
                client.query_one(&st.open, &[&QUEUES[t.queue], &t.priority, &t.subject, &t.customer]).await?.get(0)
            }
            Desk::Mariadb(conn) => {
                conn.exec_drop(helpdesk::OPEN, (QUEUES[t.queue], t.priority, &t.subject, t.customer)).await?;
                conn.last_insert_id().unwrap_or_default() as i64
            }
        })
    }

    /// (the ticket is still new, it was assigned).
    async fn assign(&mut self, ticket: i64, agent: i32) -> Result<(bool, bool), JobError> {
        Ok(match self {
            Desk::Postgres(client, st) => {
                let row = client.query_one(&st.assign, &[&ticket, &agent]).await?;
                (row.get(0), row.get(1))
            }
            Desk::Mariadb(conn) => {
                if helpdesk::changed(conn, helpdesk::ASSIGN, (agent, ticket).into()).await? {
                    (true, true)
                } else {
                    let new: Option<bool> = conn.exec_first(helpdesk::STILL_NEW, (ticket,)).await?;
                    (new.unwrap_or(false), false)
                }
            }
        })
    }

    async fn answer(&mut self, ticket: i64, status: &str) -> Result<bool, JobError> {
        Ok(match self {
            Desk::Postgres(client, st) => client.execute(&st.answer, &[&ticket, &status]).await? == 1,
            Desk::Mariadb(conn) => helpdesk::changed(conn, helpdesk::ANSWER, (status, ticket).into()).await?,
        })
    }

    /// Runs one of the single-ticket steps (reopen, solve, close).
    async fn step(&mut self, ticket: i64, pick: fn(&Statements) -> &Statement, sql: &str) -> Result<bool, JobError> {
        Ok(match self {
            Desk::Postgres(client, st) => client.execute(pick(st), &[&ticket]).await? == 1,
            Desk::Mariadb(conn) => helpdesk::changed(conn, sql, (ticket,).into()).await?,
        })
    }

    async fn agent(&mut self, agent: i32, availability: Availability) -> Result<bool, JobError> {
        let a = availability.as_str();
        Ok(match self {
            Desk::Postgres(client, st) => client.execute(&st.agent, &[&agent, &a]).await? == 1,
            Desk::Mariadb(conn) => helpdesk::changed(conn, helpdesk::AGENT, (a, agent, a).into()).await?,
        })
    }
}

impl SupportJob {
    pub async fn execute(&self, mut desk: Desk<'_>, shared: &Shared) -> Result<bool, JobError> {
        match self {
            SupportJob::Open(t) => {
                let id = desk.open(t).await?;
                push_capped(&mut shared.world().support.new[t.queue], id);
                Ok(true)
            }
            SupportJob::Assign { ticket, queue, agent } => {
                let (still_new, assigned) = desk.assign(*ticket, *agent).await?;
                let mut world = shared.world();
                if assigned {
                    push_capped(&mut world.support.unanswered, *ticket);
                } else if still_new {
                    world.support.new[*queue].push_front(*ticket);
                }
                Ok(assigned)
            }
            SupportJob::Answer { ticket, waiting_on_customer } => {
                let status = if *waiting_on_customer { "pending" } else { "open" };
                let done = desk.answer(*ticket, status).await?;
                if done {
                    let mut world = shared.world();
                    let next =
                        if *waiting_on_customer { &mut world.support.pending } else { &mut world.support.answered };
                    push_capped(next, *ticket);
                }
                Ok(done)
            }
            SupportJob::Reopen(ticket) => {
                let done = desk.step(*ticket, |st| &st.reopen, helpdesk::REOPEN).await?;
                if done {
                    push_capped(&mut shared.world().support.answered, *ticket);
                }
                Ok(done)
            }
            SupportJob::Solve(ticket) => {
                let done = desk.step(*ticket, |st| &st.solve, helpdesk::SOLVE).await?;
                if done {
                    push_capped(&mut shared.world().support.solved, *ticket);
                }
                Ok(done)
            }
            SupportJob::Close(ticket) => desk.step(*ticket, |st| &st.close, helpdesk::CLOSE).await,
            SupportJob::Agent { agent, availability } => desk.agent(*agent, *availability).await,
        }
    }
}
