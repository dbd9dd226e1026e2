//! The shape of a run: how many clients on which live queries, and what the writer writes.
//!
//! Both standard scenarios watch `orders`, latest first, which is what an operations screen
//! shows. *spread* is many small audiences: 100 distinct queries (one warehouse × one status,
//! latest 50), each change landing in exactly one of them, so a change reaches about ten
//! subscribers. *hot* is one big audience: everybody on the latest 100 orders, so a change
//! reaches every client. *custom* takes the same knobs without a preset.
//!
//! Every change is an insert whose `created_at` is now, so it enters the result of each query its
//! warehouse and status match (it is the newest row there): the number of deliveries a change
//! must make is known from the plan alone.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::frame::Form;

/// Statuses the filtered queries watch: five of the seven, so 20 warehouses × 5 make 100 queries.
pub const STATUSES: [&str; 5] = ["pending", "paid", "picking", "shipped", "delivered"];

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ScenarioKind {
    /// 1,000 clients over 100 (warehouse × status) queries, latest 50; 1,000 changes/s.
    Spread,
    /// 1,000 clients on one query, the latest 100 orders; 100 changes/s.
    Hot,
    /// The knobs below, without a preset (defaults: 100 clients, 10 queries, latest 50, 100/s).
    Custom,
}

/// The numbers a scenario fixes unless overridden.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Shape {
    pub clients: usize,
    /// Committed changes per second.
    pub rate: f64,
    /// Distinct live queries; 1 means the unfiltered one.
    pub queries: usize,
    /// Rows in each live result.
    pub limit: usize,
}

impl ScenarioKind {
    pub fn shape(self) -> Shape {
        match self {
            ScenarioKind::Spread => Shape { clients: 1000, rate: 1000.0, queries: 100, limit: 50 },
            ScenarioKind::Hot => Shape { clients: 1000, rate: 100.0, queries: 1, limit: 100 },
            ScenarioKind::Custom => Shape { clients: 100, rate: 100.0, queries: 10, limit: 50 },
        }
    }
}

/// A warehouse the writer may put orders in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warehouse {
    pub id: String,
    pub region: String,
}

/// Warehouses the `queries` filtered queries need (one per five statuses).
pub fn warehouses_needed(queries: usize) -> usize {
    if queries <= 1 { 0 } else { queries.div_ceil(STATUSES.len()) }
}

/// Ids for `count` warehouses to add (`WH-QAA`, `WH-QAB`, …: the fixture's check wants
/// `WH-` and three capitals), none of them in `existing`.
pub fn extra_warehouse_ids(existing: &[Warehouse], count: usize) -> Vec<String> {
    let letters = |i: usize| [b'A' + (i / 26) as u8, b'A' + (i % 26) as u8];
    (0..26 * 26)
        .map(|i| {
            let [a, b] = letters(i);
            format!("WH-Q{}{}", a as char, b as char)
        })
        .filter(|id| !existing.iter().any(|w| &w.id == id))
        .take(count)
        .collect()
}

/// One live query on `orders`, newest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveQuery {
    /// `(warehouse, status)`, or every order.
    pub filter: Option<(String, &'static str)>,
    pub limit: usize,
}

/// The columns each row carries: what a dashboard list would show.
const COLUMNS: &str = "id status warehouseId total createdAt";

impl LiveQuery {
    /// The subscription document in `form`.
    pub fn document(&self, form: Form) -> String {
        let mut args = String::new();
        if let Some((warehouse, status)) = &self.filter {
            let quote = |s: &str| serde_json::to_string(s).expect("strings serialise");
            args.push_str(&format!(
                "where: {{warehouseId: {{eq: {}}}, status: {{eq: {}}}}}, ",
                quote(warehouse),
                quote(status)
            ));
        }
        if form == Form::Changes {
            // A change stream has no order or page: every change the filter lets through.
            let args = args.trim_end_matches(", ");
            let args = if args.is_empty() { String::new() } else { format!("({args})") };
            return format!(
                "subscription {{ ordersChanges{args} {{ cursor events {{ kind op key {{ id }} after {{ {COLUMNS} }} }} }} }}"
            );
        }
        args.push_str(&format!("orderBy: {{createdAt: DESC}}, limit: {}", self.limit));
        match form {
            Form::Full => format!("subscription {{ orders({args}) {{ {COLUMNS} }} }}"),
            Form::Patches => format!(
                "subscription {{ ordersPatches({args}) {{ seq asOf {{ position commitTs }} reset {{ {COLUMNS} }} \
                 patch {{ upserts {{ index row {{ {COLUMNS} }} }} removedKeys {{ id }} }} }} }}"
            ),
            Form::Changes => unreachable!("answered above"),
        }
    }

    /// Whether a new order of `warehouse` and `status` enters this query's result.
    pub fn matches(&self, warehouse: &str, status: &str) -> bool {
        self.filter.as_ref().is_none_or(|(w, s)| w == warehouse && *s == status)
    }

    pub fn describe(&self) -> String {
        match &self.filter {
            Some((w, s)) => format!("orders of {w} in {s}, latest {}", self.limit),
            None => format!("all orders, latest {}", self.limit),
        }
    }
}

/// `count` distinct queries: the unfiltered one for 1, else (warehouse × status) pairs, all five
/// statuses of a warehouse before the next one.
pub fn live_queries(count: usize, limit: usize, warehouses: &[Warehouse]) -> Vec<LiveQuery> {
    if count <= 1 {
        return vec![LiveQuery { filter: None, limit }];
    }
    warehouses
        .iter()
        .flat_map(|w| STATUSES.iter().map(move |s| LiveQuery { filter: Some((w.id.clone(), *s)), limit }))
        .take(count)
        .collect()
}

/// The query each client subscribes to: round robin, so audiences differ by one at most.
pub fn query_of_client(client: usize, queries: usize) -> usize {
    client % queries.max(1)
}

/// The rows the writer inserts, fixed before the run (and reproducible from the seed).
pub struct Plan {
    pub warehouses: Vec<Warehouse>,
    rows: Vec<PlannedRow>,
}

struct PlannedRow {
    customer: i64,
    warehouse: u32,
    status: &'static str,
}

/// The values of one insert.
pub struct RowValues<'a> {
    pub customer: i64,
    pub status: &'a str,
    pub warehouse: &'a str,
    pub region: &'a str,
}

impl Plan {
    /// `changes` inserts spread evenly at random over the filtered `queries` (over every
    /// warehouse and status when there is only the unfiltered one).
    pub fn new(
        queries: &[LiveQuery],
        warehouses: Vec<Warehouse>,
        customers: &[i64],
        changes: usize,
        seed: u64,
    ) -> Plan {
        assert!(!customers.is_empty() && !warehouses.is_empty(), "customers and warehouses to write orders for");
        let mut rng = StdRng::seed_from_u64(seed);
        let filtered: Vec<(u32, &'static str)> = queries
            .iter()
            .filter_map(|q| q.filter.as_ref())
            .map(|(w, s)| (warehouses.iter().position(|x| &x.id == w).expect("a known warehouse") as u32, *s))
            .collect();
        let rows = (0..changes)
            .map(|_| {
                let (warehouse, status) = if filtered.is_empty() {
                    (rng.random_range(0..warehouses.len()) as u32, STATUSES[rng.random_range(0..STATUSES.len())])
                } else {
                    filtered[rng.random_range(0..filtered.len())]
                };
                PlannedRow { customer: customers[rng.random_range(0..customers.len())], warehouse, status }
            })
            .collect();
        Plan { warehouses, rows }
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn row(&self, n: usize) -> RowValues<'_> {
        let r = &self.rows[n];
        let w = &self.warehouses[r.warehouse as usize];
        RowValues { customer: r.customer, status: r.status, warehouse: &w.id, region: &w.region }
    }

    /// Deliveries change `n` must make: the subscribers of every query it enters.
    pub fn expected(&self, n: usize, queries: &[LiveQuery], subscribers: &[u32]) -> u32 {
        let row = self.row(n);
        queries.iter().zip(subscribers).filter(|(q, _)| q.matches(row.warehouse, row.status)).map(|(_, s)| s).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture_warehouses(n: usize) -> Vec<Warehouse> {
        (0..n)
            .map(|i| Warehouse { id: format!("WH-{}", ["BER", "MAD", "NJE", "DAL"][i % 4]), region: "eu".into() })
            .collect()
    }

    #[test]
    fn spread_is_a_hundred_filtered_queries() {
        let shape = ScenarioKind::Spread.shape();
        assert_eq!(warehouses_needed(shape.queries), 20);
        let mut warehouses = fixture_warehouses(4);
        for id in extra_warehouse_ids(&warehouses, 16) {
            warehouses.push(Warehouse { id, region: "eu".into() });
        }
        let queries = live_queries(shape.queries, shape.limit, &warehouses);
        assert_eq!(queries.len(), 100);
        let mut distinct = queries.clone();
        distinct.dedup();
        assert_eq!(distinct.len(), 100);
        assert!(queries.iter().all(|q| q.filter.is_some() && q.limit == 50));
        let mut audience = vec![0u32; queries.len()];
        for c in 0..shape.clients {
            audience[query_of_client(c, queries.len())] += 1;
        }
        assert!(audience.iter().all(|&a| a == 10));
        // Every change lands in exactly one query: ten deliveries each.
        let plan = Plan::new(&queries, warehouses, &[1, 2, 3], 1000, 7);
        assert!((0..plan.len()).all(|n| plan.expected(n, &queries, &audience) == 10));
    }

    #[test]
    fn hot_is_everyone_on_one_query() {
        let shape = ScenarioKind::Hot.shape();
        assert_eq!(warehouses_needed(shape.queries), 0);
        let queries = live_queries(shape.queries, shape.limit, &fixture_warehouses(4));
        assert_eq!(queries, vec![LiveQuery { filter: None, limit: 100 }]);
        let plan = Plan::new(&queries, fixture_warehouses(4), &[9], 100, 1);
        assert!((0..plan.len()).all(|n| plan.expected(n, &queries, &[1000]) == 1000));
        let statuses: std::collections::HashSet<&str> = (0..plan.len()).map(|n| plan.row(n).status).collect();
        assert!(statuses.len() > 1, "hot writes orders of several statuses");
    }

    #[test]
    fn extra_warehouses_fit_the_fixture_check_and_do_not_collide() {
        let existing = vec![Warehouse { id: "WH-QAA".into(), region: "eu".into() }];
        let ids = extra_warehouse_ids(&existing, 30);
        assert_eq!(ids.len(), 30);
        assert_eq!(ids[0], "WH-QAB");
        assert!(ids.iter().all(|id| id.len() == 6 && id[3..].chars().all(|c| c.is_ascii_uppercase())));
    }

    #[test]
    fn documents() {
        let q = LiveQuery { filter: Some(("WH-BER".into(), "paid")), limit: 50 };
        assert_eq!(
            q.document(Form::Full),
            "subscription { orders(where: {warehouseId: {eq: \"WH-BER\"}, status: {eq: \"paid\"}}, \
             orderBy: {createdAt: DESC}, limit: 50) { id status warehouseId total createdAt } }"
        );
        let hot = LiveQuery { filter: None, limit: 100 }.document(Form::Patches);
        assert!(hot.starts_with("subscription { ordersPatches(orderBy: {createdAt: DESC}, limit: 100) { seq"), "{hot}");
        assert!(hot.contains("removedKeys { id }"), "{hot}");
        assert!(q.matches("WH-BER", "paid") && !q.matches("WH-BER", "pending") && !q.matches("WH-MAD", "paid"));
    }
}
