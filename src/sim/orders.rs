//! Orders: placed across channels, paid, picked from stock, shipped and delivered; some are
//! cancelled, a few refunded.
//!
//! The schema keeps no order lines, yet stock has to move with orders: a new order reserves its
//! items, a cancellation releases them and picking takes them off the shelf. So the lines the
//! simulator chose travel with the order through its in-memory queues. Orders it did not place
//! (seed data, an earlier run) get plausible lines made up when they are picked, and every stock
//! update is clamped at zero, so either way the CHECK constraints hold.
//!
//! Lifecycle timestamps never go backwards: each step stamps `greatest(now(), <previous
//! steps>)`, because a transaction's `now()` is its start, which can be a moment before the
//! commit of the step it follows on another connection.

use std::collections::VecDeque;
use std::sync::Arc;

use chrono::Timelike;
use rand::Rng;
use rand::rngs::StdRng;
use tokio_postgres::{Client, Statement};

use super::plan::{EventKind, Moment};
use super::shape::{self, Region};
use super::world::{Reference, Shared, push_capped};

/// Refunds are drawn from this many most recently delivered orders.
const RECENTLY_DELIVERED: usize = 2_000;

/// One order line: what the reservation and the pick move.
#[derive(Clone, Debug)]
pub(crate) struct Line {
    pub sku: Arc<str>,
    pub qty: i32,
}

/// An order in flight, as its queues remember it.
#[derive(Clone, Debug)]
pub(crate) struct OrderRef {
    pub id: i64,
    pub warehouse: u16,
    pub items: i32,
    /// The lines reserved when the simulator placed it; None for orders it found.
    pub lines: Option<Vec<Line>>,
}

pub(crate) struct NewOrder {
    channel: &'static str,
    customer: i64,
    warehouse: u16,
    note: Option<&'static str>,
    lines: Vec<Line>,
}

pub(crate) enum OrderJob {
    Place(NewOrder),
    Pay(OrderRef),
    Cancel(OrderRef),
    Pick(OrderRef),
    Ship(OrderRef),
    Deliver(OrderRef),
    Refund(i64),
}

/// Orders waiting for their next step, oldest first.
#[derive(Default)]
pub(crate) struct Orders {
    pub pending: VecDeque<OrderRef>,
    pub paid: VecDeque<OrderRef>,
    pub picking: VecDeque<OrderRef>,
    pub shipped: VecDeque<OrderRef>,
    /// Ids of recently delivered orders.
    pub delivered: VecDeque<i64>,
}

impl Orders {
    pub async fn load(client: &Client, reference: &Reference) -> Result<Orders, tokio_postgres::Error> {
        let mut orders = Orders::default();
        let rows = client
            .query(
                "SELECT id, warehouse_id, item_count, status FROM orders
                 WHERE status IN ('pending', 'paid', 'picking', 'shipped')
                 ORDER BY updated_at, id LIMIT 400000",
                &[],
            )
            .await?;
        for row in rows {
            let warehouse: &str = row.get(1);
            let Some(w) = reference.warehouses.iter().position(|w| w.id == warehouse) else { continue };
            let order = OrderRef { id: row.get(0), warehouse: w as u16, items: row.get(2), lines: None };
            let queue = match row.get::<_, &str>(3) {
                "pending" => &mut orders.pending,
                "paid" => &mut orders.paid,
                "picking" => &mut orders.picking,
                _ => &mut orders.shipped,
            };
            push_capped(queue, order);
        }
        let rows = client
            .query(
                "SELECT id FROM orders WHERE status = 'delivered' ORDER BY updated_at DESC, id DESC LIMIT $1",
                &[&(RECENTLY_DELIVERED as i64)],
            )
            .await?;
        orders.delivered = rows.iter().rev().map(|r| r.get(0)).collect();
        Ok(orders)
    }

    pub fn take(
        &mut self,
        kind: EventKind,
        moment: &Moment,
        reference: &Reference,
        rng: &mut StdRng,
    ) -> Option<OrderJob> {
        Some(match kind {
            EventKind::OrderPlaced => OrderJob::Place(plan_order(moment, reference, rng)?),
            // Oldest first: payments clear in order, and the orders abandoned longest are the
            // ones that time out.
            EventKind::OrderPaid => OrderJob::Pay(self.pending.pop_front()?),
            EventKind::OrderCancelled => {
                // Mostly unpaid orders; now and then a paid one (the customer changed their mind).
                let order = if rng.random_bool(0.2) { self.paid.pop_front() } else { None };
                OrderJob::Cancel(order.or_else(|| self.pending.pop_front())?)
            }
            EventKind::OrderPicked => {
                let mut order = self.paid.pop_front()?;
                if order.lines.is_none() {
                    order.lines = Some(made_up_lines(reference, order.warehouse, order.items, rng));
                }
                OrderJob::Pick(order)
            }
            EventKind::OrderShipped => OrderJob::Ship(self.picking.pop_front()?),
            EventKind::OrderDelivered => OrderJob::Deliver(self.shipped.pop_front()?),
            EventKind::OrderRefunded => {
                if self.delivered.is_empty() {
                    return None;
                }
                let i = rng.random_range(0..self.delivered.len());
                OrderJob::Refund(self.delivered.swap_remove_back(i)?)
            }
            _ => return None,
        })
    }
}

/// A new order: where the customer is awake, from a warehouse of their region, through a
/// channel that fits the hour, for a few popular-skewed items.
fn plan_order(moment: &Moment, reference: &Reference, rng: &mut StdRng) -> Option<NewOrder> {
    let weights = shape::region_weights(moment.sim_time);
    let region = Region::ALL[pick_weighted(&weights, rng)];
    let warehouse = reference.warehouse_for(region, rng);
    let w = reference.warehouse(warehouse);
    let customer = reference.customer_in(w.region, rng);
    let hour = w.region.local(moment.sim_time).hour();
    let lines = new_lines(&w.skus, rng);
    if lines.is_empty() {
        return None;
    }
    Some(NewOrder {
        channel: channel(hour, moment.orders_burst, rng),
        customer,
        warehouse,
        note: rng.random_bool(0.06).then(|| NOTES[rng.random_range(0..NOTES.len())]),
        lines,
    })
}

const CHANNELS: [&str; 5] = ["web", "app", "marketplace", "phone", "store"];

/// Phone lines and shops keep opening hours; a flash sale is pushed through the app and the web.
fn channel(local_hour: u32, flash_sale: f64, rng: &mut StdRng) -> &'static str {
    let phone_open = (8..20).contains(&local_hour);
    let store_open = (9..20).contains(&local_hour);
    let weights = [
        0.45 * (1.0 + flash_sale),
        0.30 * (1.0 + 2.0 * flash_sale),
        0.15,
        if phone_open { 0.04 } else { 0.0 },
        if store_open { 0.06 } else { 0.0 },
    ];
    CHANNELS[pick_weighted(&weights, rng)]
}

const NOTES: [&str; 10] = [
    "Leave at the front door",
    "Gift wrap please",
    "Call before delivery",
    "Deliver after 5pm",
    "Fragile, handle with care",
    "Customer asked for an invoice copy",
    "Address confirmed by phone",
    "Split shipment approved",
    "Upgraded to express shipping",
    "Leave with neighbour if not home",
];

pub(crate) fn pick_weighted(weights: &[f64], rng: &mut StdRng) -> usize {
    let total: f64 = weights.iter().sum();
    let mut x = rng.random::<f64>() * total;
    for (i, w) in weights.iter().enumerate() {
        if x < *w {
            return i;
        }
        x -= w;
    }
    weights.iter().rposition(|w| *w > 0.0).unwrap_or(0)
}

/// One to three lines, a few bestsellers much more often than the long tail. Sorted by SKU, so
/// concurrent orders lock stock rows in the same order and cannot deadlock.
fn new_lines(skus: &[Arc<str>], rng: &mut StdRng) -> Vec<Line> {
    if skus.is_empty() {
        return Vec::new();
    }
    let n = pick_weighted(&[0.55, 0.30, 0.15], rng) + 1;
    let mut lines: Vec<Line> = Vec::with_capacity(n);
    for _ in 0..n {
        let u: f64 = rng.random();
        let sku = &skus[((u.powf(2.5) * skus.len() as f64) as usize).min(skus.len() - 1)];
        let qty = pick_weighted(&[0.80, 0.15, 0.05], rng) as i32 + 1;
        if !lines.iter().any(|l| l.sku == *sku) {
            lines.push(Line { sku: sku.clone(), qty });
        }
    }
    lines.sort_by(|a, b| a.sku.cmp(&b.sku));
    lines
}

/// Lines for an order the simulator did not place: `items` units over up to three SKUs.
fn made_up_lines(reference: &Reference, warehouse: u16, items: i32, rng: &mut StdRng) -> Vec<Line> {
    let skus = &reference.warehouse(warehouse).skus;
    if skus.is_empty() || items <= 0 {
        return Vec::new();
    }
    let n = (items as usize).min(rng.random_range(1..=3));
    let mut lines: Vec<Line> = Vec::with_capacity(n);
    for i in 0..n {
        let sku = skus[rng.random_range(0..skus.len())].clone();
        let qty = items / n as i32 + i32::from((i as i32) < items % n as i32);
        match lines.iter_mut().find(|l| l.sku == sku) {
            Some(l) => l.qty += qty,
            None => lines.push(Line { sku, qty }),
        }
    }
    lines.sort_by(|a, b| a.sku.cmp(&b.sku));
    lines
}

/// Reserves what is available of the wanted lines (rows locked in SKU order) and inserts the
/// order priced from the catalogue, in one statement: an order never exists without its
/// reservation or the other way round. Lines without enough free stock are left out; with none
/// left, nothing is written.
const PLACE: &str = "
WITH wanted AS (
    SELECT w.sku, w.qty FROM unnest($1::text[], $2::int4[]) AS w (sku, qty)
), locked AS (
    SELECT i.sku, w.qty
    FROM inventory AS i JOIN wanted AS w ON w.sku = i.sku
    WHERE i.warehouse_id = $3::text AND i.on_hand - i.reserved >= w.qty
    ORDER BY i.sku
    FOR UPDATE OF i
), reserved AS (
    UPDATE inventory AS i SET reserved = i.reserved + l.qty, updated_at = now()
    FROM locked AS l
    WHERE i.sku = l.sku AND i.warehouse_id = $3::text
    RETURNING i.sku, l.qty
), basket AS (
    SELECT sum(p.unit_price * r.qty) AS total, sum(r.qty)::int4 AS items,
           array_agg(r.sku ORDER BY r.sku) AS skus, array_agg(r.qty ORDER BY r.sku) AS qtys
    FROM reserved AS r JOIN products AS p ON p.sku = r.sku
), placed AS (
    INSERT INTO orders (channel, customer_id, status, total, currency, warehouse_id, region,
                        item_count, notes, created_at, updated_at)
    SELECT $4::text, $5::int8, 'pending', b.total, $6::text, $3::text, $7::text, b.items, $8::text, now(), now()
    FROM basket AS b
    WHERE b.items > 0
    RETURNING id
)
SELECT p.id, b.skus, b.qtys FROM placed AS p CROSS JOIN basket AS b";

const PAY: &str = "
UPDATE orders
SET status = 'paid', paid_at = greatest(now(), updated_at), updated_at = greatest(now(), updated_at)
WHERE id = $1::int8 AND status = 'pending'";

/// Cancels and releases the order's reservation together; paid_at stays, as it does in the seed
/// for orders cancelled after payment.
const CANCEL: &str = "
WITH cancelled AS (
    UPDATE orders SET status = 'cancelled', updated_at = greatest(now(), updated_at)
    WHERE id = $1::int8 AND status IN ('pending', 'paid')
    RETURNING id
), locked AS (
    SELECT i.sku, w.qty
    FROM inventory AS i JOIN unnest($2::text[], $3::int4[]) AS w (sku, qty) ON w.sku = i.sku
    WHERE i.warehouse_id = $4::text AND EXISTS (SELECT 1 FROM cancelled)
    ORDER BY i.sku
    FOR UPDATE OF i
), released AS (
    UPDATE inventory AS i SET reserved = greatest(i.reserved - l.qty, 0), updated_at = now()
    FROM locked AS l
    WHERE i.sku = l.sku AND i.warehouse_id = $4::text
    RETURNING 1
)
SELECT count(*) FROM cancelled";

/// Starts picking and takes the lines off the shelf (and out of the reservation). Returns the
/// SKUs that fell to their reorder point, for replenishment.
const PICK: &str = "
WITH picked AS (
    UPDATE orders SET status = 'picking', updated_at = greatest(now(), updated_at)
    WHERE id = $1::int8 AND status = 'paid'
    RETURNING id
), locked AS (
    SELECT i.sku, w.qty
    FROM inventory AS i JOIN unnest($2::text[], $3::int4[]) AS w (sku, qty) ON w.sku = i.sku
    WHERE i.warehouse_id = $4::text AND EXISTS (SELECT 1 FROM picked)
    ORDER BY i.sku
    FOR UPDATE OF i
), taken AS (
    UPDATE inventory AS i
    SET on_hand = greatest(i.on_hand - l.qty, 0), reserved = greatest(i.reserved - l.qty, 0), updated_at = now()
    FROM locked AS l
    WHERE i.sku = l.sku AND i.warehouse_id = $4::text
    RETURNING i.sku, i.on_hand <= i.reorder_point AS low
)
SELECT (SELECT count(*) FROM picked),
       coalesce((SELECT array_agg(sku) FROM taken WHERE low), '{}'::text[])";

const SHIP: &str = "
UPDATE orders
SET status = 'shipped',
    paid_at = coalesce(paid_at, greatest(now(), updated_at)),
    shipped_at = greatest(now(), updated_at, paid_at),
    updated_at = greatest(now(), updated_at, paid_at)
WHERE id = $1::int8 AND status = 'picking'";

const DELIVER: &str = "
UPDATE orders SET status = 'delivered', updated_at = greatest(now(), updated_at, shipped_at)
WHERE id = $1::int8 AND status = 'shipped'";

const REFUND: &str = "
UPDATE orders SET status = 'refunded', updated_at = greatest(now(), updated_at)
WHERE id = $1::int8 AND status = 'delivered'";

pub(crate) struct Statements {
    place: Statement,
    pay: Statement,
    cancel: Statement,
    pick: Statement,
    ship: Statement,
    deliver: Statement,
    refund: Statement,
}

impl Statements {
    pub async fn prepare(client: &Client) -> Result<Statements, tokio_postgres::Error> {
        Ok(Statements {
            place: client.prepare(PLACE).await?,
            pay: client.prepare(PAY).await?,
            cancel: client.prepare(CANCEL).await?,
            pick: client.prepare(PICK).await?,
            ship: client.prepare(SHIP).await?,
            deliver: client.prepare(DELIVER).await?,
            refund: client.prepare(REFUND).await?,
        })
    }
}

fn line_params(lines: Option<&Vec<Line>>) -> (Vec<&str>, Vec<i32>) {
    let lines = lines.map(Vec::as_slice).unwrap_or_default();
    (lines.iter().map(|l| &*l.sku).collect(), lines.iter().map(|l| l.qty).collect())
}

impl OrderJob {
    pub async fn execute(
        &self,
        client: &mut Client,
        st: &Statements,
        shared: &Shared,
    ) -> Result<bool, tokio_postgres::Error> {
        let reference = &shared.reference;
        match self {
            OrderJob::Place(order) => {
                let w = reference.warehouse(order.warehouse);
                let (skus, qtys) = line_params(Some(&order.lines));
                let row = client
                    .query_opt(
                        &st.place,
                        &[
                            &skus,
                            &qtys,
                            &w.id,
                            &order.channel,
                            &order.customer,
                            &w.currency,
                            &w.region.as_str(),
                            &order.note,
                        ],
                    )
                    .await?;
                let Some(row) = row else { return Ok(false) };
                let id: i64 = row.get(0);
                let skus: Vec<String> = row.get(1);
                let qtys: Vec<i32> = row.get(2);
                let lines: Vec<Line> =
                    skus.into_iter().zip(qtys).map(|(sku, qty)| Line { sku: sku.into(), qty }).collect();
                let items = lines.iter().map(|l| l.qty).sum();
                let placed = OrderRef { id, warehouse: order.warehouse, items, lines: Some(lines) };
                push_capped(&mut shared.world().orders.pending, placed);
                Ok(true)
            }
            OrderJob::Pay(order) => {
                let done = client.execute(&st.pay, &[&order.id]).await? == 1;
                if done {
                    push_capped(&mut shared.world().orders.paid, order.clone());
                }
                Ok(done)
            }
            OrderJob::Cancel(order) => {
                let w = reference.warehouse(order.warehouse);
                let (skus, qtys) = line_params(order.lines.as_ref());
                let row = client.query_one(&st.cancel, &[&order.id, &skus, &qtys, &w.id]).await?;
                Ok(row.get::<_, i64>(0) == 1)
            }
            OrderJob::Pick(order) => {
                let w = reference.warehouse(order.warehouse);
                let (skus, qtys) = line_params(order.lines.as_ref());
                let row = client.query_one(&st.pick, &[&order.id, &skus, &qtys, &w.id]).await?;
                if row.get::<_, i64>(0) != 1 {
                    return Ok(false);
                }
                let low: Vec<String> = row.get(1);
                let mut world = shared.world();
                // The lines have done their job once the stock has left the shelf.
                push_capped(&mut world.orders.picking, OrderRef { lines: None, ..order.clone() });
                for sku in low {
                    world.stock.flag(order.warehouse, Arc::from(sku));
                }
                Ok(true)
            }
            OrderJob::Ship(order) => {
                let done = client.execute(&st.ship, &[&order.id]).await? == 1;
                if done {
                    push_capped(&mut shared.world().orders.shipped, order.clone());
                }
                Ok(done)
            }
            OrderJob::Deliver(order) => {
                let done = client.execute(&st.deliver, &[&order.id]).await? == 1;
                if done {
                    let mut world = shared.world();
                    let delivered = &mut world.orders.delivered;
                    if delivered.len() >= RECENTLY_DELIVERED {
                        delivered.pop_front();
                    }
                    delivered.push_back(order.id);
                }
                Ok(done)
            }
            OrderJob::Refund(id) => Ok(client.execute(&st.refund, &[id]).await? == 1),
        }
    }
}
