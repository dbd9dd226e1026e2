//! Stock replenishment: supplier deliveries for inventory that fell to its reorder point.
//!
//! Picking takes stock off the shelf (see `orders`); the rows it leaves at or below their
//! reorder point join a queue here, as do the ones already low at start, and a delivery tops a
//! row up by a few multiples of its reorder point. Replenishing only what ran low keeps stock
//! levels stable over hours without a periodic scan of the inventory table.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use rand::Rng;
use rand::rngs::StdRng;
use tokio_postgres::{Client, Statement};

use super::world::{Reference, Shared, push_capped};

/// Inventory rows waiting for a supplier delivery, oldest first.
#[derive(Default)]
pub(crate) struct Stock {
    low: VecDeque<(u16, Arc<str>)>,
    /// The same rows, so a row that is picked again while waiting is not queued twice.
    queued: HashSet<(u16, Arc<str>)>,
}

pub(crate) struct StockJob {
    warehouse: u16,
    sku: Arc<str>,
    /// The delivery: this many reorder points' worth plus some loose units.
    packs: i32,
    extra: i32,
}

impl Stock {
    pub async fn load(client: &Client, reference: &Reference) -> Result<Stock, tokio_postgres::Error> {
        let mut stock = Stock::default();
        let rows = client
            .query(
                "SELECT warehouse_id, sku FROM inventory WHERE on_hand <= reorder_point
                 ORDER BY updated_at, warehouse_id, sku LIMIT 100000",
                &[],
            )
            .await?;
        for row in rows {
            let warehouse: &str = row.get(0);
            if let Some(w) = reference.warehouses.iter().position(|w| w.id == warehouse) {
                stock.flag(w as u16, Arc::from(row.get::<_, &str>(1)));
            }
        }
        Ok(stock)
    }

    /// Notes that a row reached its reorder point.
    pub fn flag(&mut self, warehouse: u16, sku: Arc<str>) {
        if self.queued.insert((warehouse, sku.clone())) {
            push_capped(&mut self.low, (warehouse, sku));
        }
    }

    pub fn len(&self) -> usize {
        self.low.len()
    }

    pub fn take(&mut self, rng: &mut StdRng) -> Option<StockJob> {
        let (warehouse, sku) = self.low.pop_front()?;
        self.queued.remove(&(warehouse, sku.clone()));
        Some(StockJob { warehouse, sku, packs: rng.random_range(2..=5), extra: rng.random_range(0..=40) })
    }
}

/// Re-checks the reorder point, so a row topped up by someone else meanwhile is left alone.
const REPLENISH: &str = "
UPDATE inventory
SET on_hand = on_hand + greatest(reorder_point, 10) * $3::int4 + $4::int4, updated_at = now()
WHERE sku = $1::text AND warehouse_id = $2::text AND on_hand <= reorder_point";

pub(crate) struct Statements {
    replenish: Statement,
}

impl Statements {
    pub async fn prepare(client: &Client) -> Result<Statements, tokio_postgres::Error> {
        Ok(Statements { replenish: client.prepare(REPLENISH).await? })
    }
}

impl StockJob {
    pub async fn execute(
        &self,
        client: &mut Client,
        st: &Statements,
        shared: &Shared,
    ) -> Result<bool, tokio_postgres::Error> {
        let warehouse = &shared.reference.warehouse(self.warehouse).id;
        let sku: &str = &self.sku;
        Ok(client.execute(&st.replenish, &[&sku, warehouse, &self.packs, &self.extra]).await? == 1)
    }
}
