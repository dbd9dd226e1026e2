//! The simulator's picture of the business: reference data read once at start (warehouses,
//! what each stocks, customers) and the work queues of every domain.
//!
//! Keeping the queues in memory instead of asking the database "which paid order next?" makes
//! each event one short statement by primary key, which is what lets a few connections reach
//! thousands of events per second. The database stays the authority: every statement re-checks
//! the row's status, and an event whose row moved on (someone else changed it) is skipped.
//! The queues are loaded from the database at start, so a run picks up where the seed data or
//! the previous run left off.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use rand::Rng;
use rand::rngs::StdRng;
use tokio_postgres::Client;

use super::error::JobError;
use super::finance::{self, Finance, FinanceJob};
use super::orders::{self, OrderJob, Orders};
use super::plan::{Backlog, EventKind, Moment};
use super::shape::Region;
use super::stock::{self, Stock, StockJob};
use super::support::{self, Desk, Support, SupportJob};

/// No in-memory queue grows beyond this; the oldest entries are forgotten (their rows simply stay
/// in their status in the database). Backlog feedback keeps queues far below it in practice.
pub(crate) const MAX_QUEUE: usize = 100_000;

pub(crate) fn push_capped<T>(queue: &mut VecDeque<T>, item: T) {
    if queue.len() >= MAX_QUEUE {
        queue.pop_front();
    }
    queue.push_back(item);
}

/// A warehouse and the SKUs it stocks.
pub(crate) struct Warehouse {
    pub id: String,
    pub region: Region,
    pub currency: &'static str,
    /// In a fixed order, most popular first (popularity is a skew over this list).
    pub skus: Vec<Arc<str>>,
}

/// Rows the simulator reads but never writes.
pub(crate) struct Reference {
    pub warehouses: Vec<Warehouse>,
    /// Indexes into `warehouses` of the stocked warehouses of each region.
    by_region: [Vec<u16>; 3],
    /// Customer ids per region, oldest first.
    customers: [Vec<i64>; 3],
}

impl Reference {
    pub async fn load(client: &Client) -> Result<Reference, tokio_postgres::Error> {
        let mut warehouses = Vec::new();
        for row in client.query("SELECT id, region FROM warehouses ORDER BY id", &[]).await? {
            let id: String = row.get(0);
            let region = Region::parse(row.get(1)).unwrap_or(Region::Eu);
            let currency = currency(&id, region);
            warehouses.push(Warehouse { id, region, currency, skus: Vec::new() });
        }
        // Reading the catalogue once lets order lines be chosen without a query per order.
        for row in
            client.query("SELECT warehouse_id, sku FROM inventory ORDER BY warehouse_id, sku LIMIT 500000", &[]).await?
        {
            let warehouse: &str = row.get(0);
            if let Some(w) = warehouses.iter_mut().find(|w| w.id == warehouse) {
                w.skus.push(Arc::from(row.get::<_, &str>(1)));
            }
        }
        let mut by_region: [Vec<u16>; 3] = Default::default();
        for (i, w) in warehouses.iter().enumerate() {
            if !w.skus.is_empty() {
                by_region[w.region.index()].push(i as u16);
            }
        }
        let mut customers: [Vec<i64>; 3] = Default::default();
        for row in client.query("SELECT id, region FROM customers ORDER BY id LIMIT 1000000", &[]).await? {
            let region = Region::parse(row.get(1)).unwrap_or(Region::Eu);
            customers[region.index()].push(row.get(0));
        }
        Ok(Reference { warehouses, by_region, customers })
    }

    /// Tables that must have rows for the simulator to place orders and open tickets.
    pub fn empty_tables(&self) -> Vec<&'static str> {
        let mut empty = Vec::new();
        if self.warehouses.is_empty() {
            empty.push("warehouses");
        }
        if self.warehouses.iter().all(|w| w.skus.is_empty()) {
            empty.push("inventory");
        }
        if self.customers.iter().all(Vec::is_empty) {
            empty.push("customers");
        }
        empty
    }

    /// A stocked warehouse serving `region`, or any stocked one if the region has none.
    pub fn warehouse_for(&self, region: Region, rng: &mut StdRng) -> u16 {
        let local = &self.by_region[region.index()];
        if !local.is_empty() {
            return local[rng.random_range(0..local.len())];
        }
        let all: Vec<u16> = self.by_region.iter().flatten().copied().collect();
        all[rng.random_range(0..all.len())]
    }

    /// A customer of `region` (any if it has none), long-standing customers more often.
    pub fn customer_in(&self, region: Region, rng: &mut StdRng) -> i64 {
        let list = if self.customers[region.index()].is_empty() {
            self.customers.iter().find(|c| !c.is_empty()).expect("checked at start: customers exist")
        } else {
            &self.customers[region.index()]
        };
        let u: f64 = rng.random();
        list[((u.powf(1.4) * list.len() as f64) as usize).min(list.len() - 1)]
    }

    /// Any customer.
    pub fn any_customer(&self, rng: &mut StdRng) -> i64 {
        let region = Region::ALL[rng.random_range(0..3)];
        self.customer_in(region, rng)
    }

    pub fn warehouse(&self, index: u16) -> &Warehouse {
        &self.warehouses[index as usize]
    }
}

/// The currency the seed data uses for a warehouse's orders.
fn currency(warehouse: &str, region: Region) -> &'static str {
    match (warehouse, region) {
        ("WH-SIN", _) => "SGD",
        ("WH-SYD", _) => "AUD",
        (_, Region::Eu) => "EUR",
        _ => "USD",
    }
}

/// Everything the simulator remembers between events.
pub(crate) struct World {
    pub orders: Orders,
    pub stock: Stock,
    pub support: Support,
    pub finance: Finance,
}

impl World {
    /// The queues as the databases hold them: the helpdesk's from its own database when it has
    /// one, else from the shop's.
    pub async fn load(
        client: &Client,
        helpdesk: Option<&mut mysql_async::Conn>,
        reference: &Reference,
    ) -> Result<World, JobError> {
        let support = match helpdesk {
            Some(conn) => Support::load_helpdesk(conn).await?,
            None => Support::load(client).await?,
        };
        Ok(World {
            orders: Orders::load(client, reference).await?,
            stock: Stock::load(client, reference).await?,
            support,
            finance: Finance::load(client).await?,
        })
    }

    pub fn backlog(&self) -> Backlog {
        let o = &self.orders;
        let s = &self.support;
        Backlog {
            pending_orders: o.pending.len(),
            paid_orders: o.paid.len(),
            picking_orders: o.picking.len(),
            shipped_orders: o.shipped.len(),
            delivered_orders: o.delivered.len(),
            low_stock: self.stock.len(),
            new_tickets: s.assignable(),
            unanswered_tickets: s.unanswered.len(),
            pending_tickets: s.pending.len(),
            answered_tickets: s.answered.len(),
            solved_tickets: s.solved.len(),
            agents: s.agents.len(),
            open_batches: self.finance.batches.len(),
            open_exceptions: self.finance.exceptions.len(),
        }
    }

    /// Turns a planned event into concrete work, taking the rows it needs off their queues.
    /// None when there is nothing to do right now (for example no stocked item to order).
    pub fn take_job(
        &mut self,
        kind: EventKind,
        moment: &Moment,
        reference: &Reference,
        rng: &mut StdRng,
    ) -> Option<Job> {
        use EventKind::*;
        let work = match kind {
            OrderPlaced | OrderPaid | OrderCancelled | OrderPicked | OrderShipped | OrderDelivered | OrderRefunded => {
                Work::Order(self.orders.take(kind, moment, reference, rng)?)
            }
            StockReplenished => Work::Stock(self.stock.take(rng)?),
            TicketOpened | TicketAssigned | TicketAnswered | TicketReopened | TicketSolved | TicketClosed
            | AgentAvailability => Work::Support(self.support.take(kind, moment, &self.orders, reference, rng)?),
            BatchMatching | ExceptionResolved => Work::Finance(self.finance.take(kind, rng)?),
            BatchOpened => return None,
        };
        Some(Job { kind, work })
    }
}

/// A worker's connections: the shop's, and the helpdesk's.
pub(crate) struct Connections {
    pub shop: Client,
    pub helpdesk: Helpdesk,
}

/// Where a worker's support events go.
pub(crate) enum Helpdesk {
    /// Beside the shop: the tickets statements prepared on the shop's connection.
    Shop(support::Statements),
    /// In a MariaDB database of its own (the shop's may have no tickets table).
    Apart(mysql_async::Conn),
}

/// One event, ready to run against the database.
pub(crate) struct Job {
    pub kind: EventKind,
    pub work: Work,
}

pub(crate) enum Work {
    Order(OrderJob),
    Stock(StockJob),
    Support(SupportJob),
    Finance(FinanceJob),
}

/// What the workers share: the reference data and the world they report results to.
pub(crate) struct Shared {
    pub reference: Reference,
    pub world: Mutex<World>,
}

impl Shared {
    pub fn world(&self) -> MutexGuard<'_, World> {
        // A panic elsewhere while holding the lock leaves queues that are still usable.
        self.world.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Every statement the simulator runs, prepared once per connection.
pub(crate) struct Statements {
    orders: orders::Statements,
    stock: stock::Statements,
    finance: finance::Statements,
}

impl Statements {
    pub async fn prepare(client: &Client) -> Result<Statements, tokio_postgres::Error> {
        Ok(Statements {
            orders: orders::Statements::prepare(client).await?,
            stock: stock::Statements::prepare(client).await?,
            finance: finance::Statements::prepare(client).await?,
        })
    }
}

impl Job {
    /// Runs the event as one transaction; Ok(false) when its row had moved on and nothing was
    /// written. Results (new ids, next steps) go back onto the world's queues.
    pub async fn execute(
        &self,
        conns: &mut Connections,
        statements: &Statements,
        shared: &Shared,
    ) -> Result<bool, JobError> {
        let client = &mut conns.shop;
        Ok(match &self.work {
            Work::Order(job) => job.execute(client, &statements.orders, shared).await?,
            Work::Stock(job) => job.execute(client, &statements.stock, shared).await?,
            Work::Support(job) => {
                let desk = match &mut conns.helpdesk {
                    Helpdesk::Shop(st) => Desk::Postgres(client, st),
                    Helpdesk::Apart(conn) => Desk::Mariadb(conn),
                };
                return job.execute(desk, shared).await;
            }
            Work::Finance(job) => job.execute(client, &statements.finance, shared).await?,
        })
    }
}
